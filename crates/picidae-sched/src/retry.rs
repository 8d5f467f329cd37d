//! Retrying on request: a fifth `impl Runner` block.
//!
//! This module owns turning an open retry request (`picidae attempt retry`, the API, the
//! cockpit) into a queued attempt: the earlier attempt's change is replayed onto the current
//! frontier (`replay.rs`) and verified under the program's current policy, on all its seeds (a
//! retry is not screened on one seed first). A change that no longer applies rejects the new
//! attempt, naming the conflicting files. The request is consumed by the attempt that took it,
//! so it is taken once.

use picidae_core::AttemptStatus;
use picidae_store::RetryRequest;
use serde_json::json;

use crate::replay::ReplayOf;
use crate::runner::{one_line, Events, Proposed, Runner};
use crate::SchedError;

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
        let of = ReplayOf {
            original: &original,
            hypothesis: format!(
                "retry of #{}: {}",
                original.seq,
                one_line(&original.hypothesis)
            ),
            why: format!("retry of #{} (requested by {})", original.seq, req.author),
            verify_all_seeds: true,
            onto: None,
        };
        let attempt = self.insert_replay(&of, RETRY_PROPOSER)?;
        if !self.project.store.consume_retry(req.id, attempt.id)? {
            // Another proposer took it between the read and now: this attempt is not needed.
            return self.settle_unrun(
                &attempt,
                AttemptStatus::Failed,
                json!({ "retry_taken": req.id }),
                "the retry request was already taken",
                "retry already taken".into(),
                events,
            );
        }
        self.replay_into(&attempt, &of, events)
    }
}
