//! A contributor's claim in the loop: the next queued contribution (highest claimed gain
//! weighed by its contributor's reputation, `Store::next_contribution`) is proposed in place
//! of an agent turn, its patch applied to a checkout of the current frontier. From there it
//! is an attempt like any other: the boundary and duplicate checks, the runs on the policy's
//! seeds, verification and the hidden evaluator, all on this coordinator's executors. Its
//! verdict is written with the attempt's decision (`picidae_store::contributions`).

use picidae_agent::{Agent, AgentContext, AgentError, Proposal};
use picidae_git::Repo;
use picidae_store::Contribution;

/// The proposer of a contribution's attempt: `contributor:<name>`.
pub const CONTRIBUTOR_PREFIX: &str = "contributor:";

/// A contribution as the loop's proposer for one turn.
pub(crate) struct Contributed {
    contribution: Contribution,
    repo: Repo,
}

impl Contributed {
    pub(crate) fn new(contribution: Contribution, repo: Repo) -> Contributed {
        Contributed { contribution, repo }
    }
}

impl Agent for Contributed {
    fn name(&self) -> String {
        format!("{CONTRIBUTOR_PREFIX}{}", self.contribution.contributor)
    }

    fn propose(&mut self, ctx: &AgentContext<'_>) -> Result<Proposal, AgentError> {
        // The checkout's root: the workspace is its benchmark directory.
        let mut root = ctx.workspace.to_path_buf();
        for _ in self.repo.prefix().components() {
            root.pop();
        }
        self.repo
            .worktree(&root)
            .apply_patch(&self.contribution.patch)
            .map_err(|e| {
                AgentError::Config(format!(
                    "contribution {}: the patch does not apply to the frontier: {e}",
                    self.contribution.id
                ))
            })?;
        Ok(Proposal {
            hypothesis: self.contribution.hypothesis.clone(),
            params: None,
            transcript: None,
            cost: Default::default(),
        })
    }

    fn uses_followups(&self) -> bool {
        false
    }
}
