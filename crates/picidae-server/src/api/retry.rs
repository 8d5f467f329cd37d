//! `POST /api/programs/{name}/attempts/{seq}/retry`: a person asks for an attempt decided on
//! too little evidence to be verified again (what `picidae attempt retry` does). Whether it
//! may be is the memory's judgement ([`picidae_memory::retry`]); the program's next proposal
//! takes the request.

use super::*;
use picidae_memory::retry::{request_retry, RetryError};

/// The answer to a retry request.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RetryAnswer {
    /// The request's id.
    pub id: i64,
    pub program: String,
    /// The attempt to verify again.
    pub attempt_seq: i64,
    /// Who asked (the token's name).
    pub author: String,
    /// False when an open request for the same attempt already existed (it is returned).
    pub new: bool,
}

impl From<RetryError> for ApiError {
    fn from(e: RetryError) -> Self {
        match e {
            RetryError::NoSuchAttempt { .. } => ApiError::not_found(e.to_string()),
            RetryError::NotRetryable { .. } => ApiError::conflict(e.to_string()),
            RetryError::Memory(picidae_memory::MemoryError::Store(s)) => s.into(),
            RetryError::Memory(m) => ApiError::internal(m.to_string()),
        }
    }
}

/// Ask for the attempt to be verified again: the program's next proposal, before its agent's
/// turn, replays the attempt's change onto the current frontier and verifies it on all of the
/// policy's seeds. Only an attempt decided on too little evidence may be retried (refuted for
/// lack of power or a failed seed, discarded on one run, or whose run failed): 409 otherwise,
/// with the reason. Asking twice returns the open request (200) instead of a second one (201).
#[utoipa::path(post, path = "/api/programs/{name}/attempts/{seq}/retry", tag = "steering",
    params(("name" = String, Path, description = "The program's name"),
           ("seq" = i64, Path, description = "The attempt's number within the program")),
    security(("bearer" = [])),
    responses((status = 201, body = RetryAnswer), (status = 200, body = RetryAnswer),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub(super) async fn retry_attempt(
    State(ctx): State<Shared>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<(StatusCode, Json<RetryAnswer>), ApiError> {
    let answer = ctx
        .write(&headers, move |store, token| {
            let Path((name, seq)) = path?;
            let seq = int_param("seq", Some(&seq), 1, i64::MAX)?
                .ok_or_else(|| ApiError::bad_request("seq: missing".into()))?;
            let p = program(store, &name)?;
            let (req, new) = request_retry(store, &p.name, seq, &token.name)?;
            Ok(RetryAnswer {
                id: req.id,
                program: p.name,
                attempt_seq: seq,
                author: req.author,
                new,
            })
        })
        .await?;
    let status = if answer.new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(answer)))
}
