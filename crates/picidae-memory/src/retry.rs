//! Retrying an idea on request: whether an attempt's change may be verified again, and the
//! request recorded in the store. An idea decided on too little evidence was never shown
//! wrong, so spending runs on it again can change the answer: one refuted for lack of power
//! (its interval straddles zero) or because a seed failed, one discarded on a single run
//! (screened out, or a one-seed policy's revert), one whose run failed. One contradicted by
//! its evidence or flagged as overfit cannot, nor can a kept, rejected or duplicate attempt;
//! those are refused with the reason.

use picidae_core::AttemptStatus;
use picidae_store::{RetryRequest, Store};

use crate::{MemoryError, Refutation};

/// Why a retry request was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    #[error("program {program:?} has no attempt #{seq}")]
    NoSuchAttempt { program: String, seq: i64 },
    #[error("attempt #{seq} cannot be retried: {why}")]
    NotRetryable { seq: i64, why: String },
    #[error(transparent)]
    Memory(#[from] MemoryError),
}

impl From<picidae_store::StoreError> for RetryError {
    fn from(e: picidae_store::StoreError) -> Self {
        RetryError::Memory(MemoryError::Store(e))
    }
}

/// Ask for attempt `seq` of `program` to be verified again by the program's next proposal,
/// under its current policy. Returns the request and whether it is new (an open request for
/// the same attempt is returned as it is).
pub fn request_retry(
    store: &mut Store,
    program: &str,
    seq: i64,
    author: &str,
) -> Result<(RetryRequest, bool), RetryError> {
    let p = store.program(program)?;
    let a = store
        .attempt_by_seq(p.id, seq)?
        .ok_or_else(|| RetryError::NoSuchAttempt {
            program: program.to_string(),
            seq,
        })?;
    let refuse = |why: String| RetryError::NotRetryable { seq, why };
    if a.commit.is_none() {
        return Err(refuse("it has no commit (it was never run)".into()));
    }
    match store.finding_for_attempt(a.id)? {
        Some(f) => match Refutation::of(&f) {
            Some(Refutation::LackOfPower | Refutation::SeedFailed) => {}
            Some(kind) => {
                return Err(refuse(format!(
                    "finding #{} was refuted as {}: more runs would not change that",
                    f.id,
                    kind.label()
                )))
            }
            None => return Err(refuse(format!("finding #{} is {}", f.id, f.state))),
        },
        // Decided on one run: screened out, or a one-seed policy's plain revert.
        None if a.status == AttemptStatus::Discarded => {}
        // Its run failed (a crash, a timeout, a lost machine): nothing was learned.
        None if a.status == AttemptStatus::Failed && !store.runs_of_attempt(a.id)?.is_empty() => {}
        None => {
            return Err(refuse(format!(
                "it is {}; only an attempt decided on too little evidence (discarded, a failed \
                 run, a refutation for lack of power) is verified again",
                a.status
            )))
        }
    }
    Ok(store.request_retry(p.id, a.id, author)?)
}
