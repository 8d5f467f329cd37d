//! Replaying an earlier attempt's change onto the current frontier, as a new attempt: a sixth
//! `impl Runner` block.
//!
//! Two things call it: a person's retry request (`retry.rs`), and a queued attempt that went
//! stale while it waited (the frontier moved: something was kept meanwhile). Running a stale
//! attempt as it is would drop what was kept since; throwing it away would lose its idea. So
//! the stale attempt is rejected as stale, and its change is three-way merged onto the new
//! frontier (`picidae_git::Repo::replay`, in the object store) as a new attempt linked to it,
//! which is checked like any proposal and queued. Gains found in parallel stack.
//!
//! A replay that conflicts is rejected naming the conflicting files (the agent sees it in its
//! history); one whose change the frontier already holds is rejected as such. A change of
//! environment parameters only needs no merge: the new attempt runs the frontier's code with
//! the original's assignment. A replay is deliberate, so the memory's duplicate gate does not
//! stop it; it is indexed like any attempt.

use picidae_core::{AttemptKind, AttemptStatus};
use picidae_git::Replayed;
use picidae_store::{Attempt, NewAttempt};
use serde_json::json;

use crate::runner::{one_line, patch_hash, Events, LoopEvent, Proposed, Runner};
use crate::{attempt_ref, SchedError};

/// The proposer recorded on an attempt that replays a stale one onto the frontier.
pub const REPLAY_PROPOSER: &str = "replay";

/// What a new replay attempt is for.
pub(crate) struct ReplayOf<'a> {
    /// The attempt whose change is replayed.
    pub original: &'a Attempt,
    /// The new attempt's hypothesis (it names the original).
    pub hypothesis: String,
    /// Why, for its note (`retry of #3 (requested by ana)`).
    pub why: String,
    /// Verify on all of the policy's seeds, without screening (a retry).
    pub verify_all_seeds: bool,
    /// Where to put the change instead of the new attempt's parent, the frontier: a commit
    /// descending from it (a merge candidate stacked on another, `merge.rs`). Where the
    /// change conflicts there, it goes onto the frontier.
    pub onto: Option<String>,
}

impl Runner<'_> {
    /// A new attempt on the current frontier that will carry `of.original`'s change, not yet
    /// committed.
    pub(crate) fn insert_replay(
        &mut self,
        of: &ReplayOf<'_>,
        proposer: &str,
    ) -> Result<Attempt, SchedError> {
        let a = self.project.store.insert_attempt(&NewAttempt {
            program_id: self.program.id,
            kind: AttemptKind::Explore,
            parent_commit: self.frontier_commit(),
            hypothesis: of.hypothesis.clone(),
            proposer: proposer.into(),
            params: of.original.params.clone(),
        })?;
        self.project
            .store
            .set_attempt_replay_of(a.id, of.original.id)?;
        Ok(self.project.store.attempt(a.id)?)
    }

    /// Give `attempt` (made by [`Self::insert_replay`]) `of.original`'s change replayed onto
    /// its parent, the frontier, and queue it; or decide it when the change does not apply.
    pub(crate) fn replay_into(
        &mut self,
        attempt: &Attempt,
        of: &ReplayOf<'_>,
        events: Events<'_>,
    ) -> Result<Proposed, SchedError> {
        let original = of.original;
        let frontier = attempt.parent_commit.clone();
        let Some(commit) = original.commit.clone() else {
            let note = format!("{}: #{} has no commit", of.why, original.seq);
            return self.reject_replay(attempt, json!({ "replay_of": original.id }), note, events);
        };
        let params_only = commit == original.parent_commit;
        let (sha, patch) = if params_only {
            (frontier.clone(), String::new())
        } else {
            let message = format!(
                "{}\n\nPicidae-Program: {}\nPicidae-Attempt: {}\nPicidae-Proposer: {}\n\
                 Picidae-Replay-Of: {}\n",
                one_line(&of.hypothesis),
                self.program.name,
                attempt.seq,
                attempt.proposer,
                original.seq
            );
            let mut replayed = Replayed::Conflict(Vec::new());
            if let Some(onto) = of.onto.as_deref().filter(|o| *o != frontier) {
                replayed = self
                    .repo
                    .replay(&original.parent_commit, &commit, onto, &message)?;
            }
            if let Replayed::Conflict(_) = replayed {
                replayed =
                    self.repo
                        .replay(&original.parent_commit, &commit, &frontier, &message)?;
            }
            let sha = match replayed {
                Replayed::Committed(sha) => sha,
                Replayed::Conflict(paths) => {
                    let note = format!(
                        "{}: the change of #{} conflicts with the frontier in {}",
                        of.why,
                        original.seq,
                        paths.join(", ")
                    );
                    let rejection = json!({ "replay_of": original.id, "conflicts": paths });
                    return self.reject_replay(attempt, rejection, note, events);
                }
            };
            let patch = self.repo.show_patch(&sha)?;
            if patch.trim().is_empty() {
                let note = format!(
                    "{}: the frontier already holds the change of #{}",
                    of.why, original.seq
                );
                let rejection = json!({ "replay_of": original.id, "no_change": true });
                return self.reject_replay(attempt, rejection, note, events);
            }
            self.repo
                .update_ref(&attempt_ref(&self.program.name, attempt.seq), &sha, None)?;
            (sha, patch)
        };
        let touched = if params_only {
            Vec::new()
        } else {
            original.touched.clone()
        };
        self.record_commit(
            attempt.id,
            &sha,
            &patch_hash(&patch),
            &touched,
            Some(&of.hypothesis),
        )?;
        let note = if original.parent_commit == frontier {
            of.why.clone()
        } else {
            format!(
                "{}: the change of #{} replayed onto the current frontier",
                of.why, original.seq
            )
        };
        self.project.store.set_attempt_note(attempt.id, &note)?;
        if of.verify_all_seeds && self.policy.verifies() {
            // Not screened on one seed again: verified on all of the policy's seeds.
            let why = format!(
                "{}: verified on {} seeds, without screening",
                of.why, self.policy.seeds
            );
            self.open_finding(attempt.id, &why)?;
        }
        let attempt = self.project.store.attempt(attempt.id)?;
        let params = original
            .params
            .as_ref()
            .and_then(|p| serde_json::from_value(p.clone()).ok());
        let store = &self.project.store;
        picidae_memory::set_keys(store, attempt.id, &patch, params.as_ref())?;
        picidae_memory::index_attempt(store, &attempt, &patch)?;
        self.project.store.queue_attempt(attempt.id)?;
        self.push_history(attempt.id)?;
        events(&LoopEvent::Proposed {
            seq: attempt.seq,
            hypothesis: of.hypothesis.clone(),
        });
        Ok(Proposed::Ready(Box::new(
            self.project.store.attempt(attempt.id)?,
        )))
    }

    /// Decide a replay that cannot run (`note` says why; `rejection` is its JSON).
    fn reject_replay(
        &mut self,
        attempt: &Attempt,
        rejection: serde_json::Value,
        note: String,
        events: Events<'_>,
    ) -> Result<Proposed, SchedError> {
        let reason = note.clone();
        self.settle_unrun(
            attempt,
            AttemptStatus::Rejected,
            rejection,
            &note,
            reason,
            events,
        )
    }

    /// A queued attempt built on an older frontier is not run as it is (see the module docs):
    /// it is rejected as stale and its change replayed onto the frontier as a new attempt.
    /// `None` when `a` is not stale; otherwise what became of the replay.
    pub(crate) fn replay_if_stale(
        &mut self,
        a: &Attempt,
        events: Events<'_>,
    ) -> Result<Option<Proposed>, SchedError> {
        if !self.is_stale(a) {
            return Ok(None);
        }
        self.replay_stale(a, events).map(Some)
    }

    /// Whether `a` was built on a frontier that has moved since. A baseline or a measurement
    /// runs where it is, and is never stale.
    pub(crate) fn is_stale(&self, a: &Attempt) -> bool {
        a.kind == AttemptKind::Explore && a.parent_commit != self.frontier_commit()
    }

    /// Reject the stale attempt `a` and queue its change replayed onto the frontier.
    pub(crate) fn replay_stale(
        &mut self,
        a: &Attempt,
        events: Events<'_>,
    ) -> Result<Proposed, SchedError> {
        let frontier = self.frontier_commit();
        let of = ReplayOf {
            original: a,
            hypothesis: format!("replay of #{}: {}", a.seq, one_line(&a.hypothesis)),
            why: format!("replay of #{} (stale)", a.seq),
            verify_all_seeds: false,
            onto: None,
        };
        let replay = self.insert_replay(&of, REPLAY_PROPOSER)?;
        let note = format!(
            "stale: built on a frontier that has moved since; its change is replayed onto the \
             frontier as #{}",
            replay.seq
        );
        self.project.store.reject_attempt(
            a.id,
            AttemptStatus::Rejected,
            &json!({"stale": {"parent": a.parent_commit, "frontier": frontier, "replay": replay.seq}}),
            &note,
        )?;
        self.push_history(a.id)?;
        events(&LoopEvent::Rejected {
            seq: a.seq,
            status: AttemptStatus::Rejected,
            reason: note,
        });
        self.replay_into(&replay, &of, events)
    }
}
