//! Retrying on request: a fifth `impl Runner` block.
//!
//! This module owns turning an open retry request (`picidae attempt retry`, the API, the
//! cockpit) into a queued attempt: the earlier attempt's change is replayed onto the current
//! frontier (a three-way merge in the object store, `picidae_git::Repo::replay`), committed
//! under a new attempt ref and verified under the program's current policy, on all its seeds
//! (a retry is not screened on one seed first).
//! A retry is deliberate, so the memory's duplicate gate does not stop it; it is indexed like
//! any attempt. A change that no longer applies fails its attempt, naming the conflicting
//! files. The request is consumed by the attempt that took it, so it is taken once.

use picidae_core::{AttemptKind, AttemptStatus};
use picidae_git::Replayed;
use picidae_store::{NewAttempt, RetryRequest};
use serde_json::json;

use crate::runner::{one_line, patch_hash, Events, LoopEvent, Proposed, Runner};
use crate::{attempt_ref, SchedError};

/// The proposer recorded on an attempt made by a retry request.
pub const RETRY_PROPOSER: &str = "retry";

impl Runner<'_> {
    /// The program's oldest open retry request, if any.
    pub(crate) fn next_retry(&self) -> Result<Option<RetryRequest>, SchedError> {
        Ok(self
            .project
            .store
            .open_retries(self.program.id)?
            .into_iter()
            .next())
    }

    /// Make the attempt that verifies `req`'s attempt again, on the current frontier.
    pub(crate) fn propose_retry(
        &mut self,
        req: RetryRequest,
        events: Events<'_>,
    ) -> Result<Proposed, SchedError> {
        let original = self.project.store.attempt(req.attempt_id)?;
        let frontier = self.frontier_commit();
        let hypothesis = format!(
            "retry of #{}: {}",
            original.seq,
            one_line(&original.hypothesis)
        );
        let attempt = self.project.store.insert_attempt(&NewAttempt {
            program_id: self.program.id,
            kind: AttemptKind::Explore,
            parent_commit: frontier.clone(),
            hypothesis: hypothesis.clone(),
            proposer: RETRY_PROPOSER.into(),
            params: original.params.clone(),
        })?;
        if !self.project.store.consume_retry(req.id, attempt.id)? {
            // Another proposer took it between the read and now: this attempt is not needed.
            return self.settle_proposal(
                &attempt,
                AttemptStatus::Failed,
                json!({ "retry_taken": req.id }),
                "the retry request was already taken",
                "retry already taken".into(),
                events,
            );
        }
        events(&LoopEvent::Proposed {
            seq: attempt.seq,
            hypothesis: hypothesis.clone(),
        });
        let by = format!("requested by {}", req.author);
        let Some(commit) = original.commit.clone() else {
            let note = format!("retry of #{}: it has no commit ({by})", original.seq);
            return self.settle_proposal(
                &attempt,
                AttemptStatus::Failed,
                json!({ "retry_of": original.id }),
                &note,
                note.clone(),
                events,
            );
        };
        let message = format!(
            "{hypothesis}\n\nPicidae-Program: {}\nPicidae-Attempt: {}\nPicidae-Proposer: {}\n\
             Picidae-Retry-Of: {}\n",
            self.program.name, attempt.seq, RETRY_PROPOSER, original.seq
        );
        let sha = match self
            .repo
            .replay(&original.parent_commit, &commit, &frontier, &message)?
        {
            Replayed::Committed(sha) => sha,
            Replayed::Conflict(paths) => {
                let note = format!(
                    "retry of #{}: its change no longer applies to the frontier (conflicts in {}; \
                     {by})",
                    original.seq,
                    paths.join(", ")
                );
                return self.settle_proposal(
                    &attempt,
                    AttemptStatus::Failed,
                    json!({ "retry_of": original.id, "conflicts": paths }),
                    &note,
                    note.clone(),
                    events,
                );
            }
        };
        self.repo
            .update_ref(&attempt_ref(&self.program.name, attempt.seq), &sha, None)?;
        let patch = self.repo.show_patch(&sha)?;
        self.project.store.set_attempt_commit(
            attempt.id,
            &sha,
            &patch_hash(&patch),
            &original.touched,
            Some(&hypothesis),
        )?;
        let note = if original.parent_commit == frontier {
            format!("retry of #{} ({by})", original.seq)
        } else {
            format!(
                "retry of #{}, its change replayed onto the current frontier ({by})",
                original.seq
            )
        };
        self.project.store.set_attempt_note(attempt.id, &note)?;
        if self.policy.verifies() {
            // Not screened on one seed again: a retry is verified on all of the policy's seeds.
            let why = format!(
                "retry of #{}: verified on {} seeds, without screening",
                original.seq, self.policy.seeds
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
        Ok(Proposed::Ready(Box::new(
            self.project.store.attempt(attempt.id)?,
        )))
    }
}
