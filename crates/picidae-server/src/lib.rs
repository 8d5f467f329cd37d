//! Picidae's servers: ways for other programs to read what Picidae knows.
//!
//! - [`mcp`]: a Model Context Protocol server over stdio, so coding agents (Claude Code, Codex,
//!   ...) can query the memory — what was tried, how it went, the evidence behind each finding —
//!   before they spend compute on an idea.
//! - [`api`]: the HTTP API behind `picidae serve`: JSON reads, steering mutations behind bearer
//!   tokens, Prometheus metrics, Server-Sent Events and an OpenAPI document.
//! - [`cockpit`]: the web UI `picidae serve` serves next to the API, for a person who steers
//!   programs (compiled-in HTML, CSS and JavaScript; no build step).
//! - [`report`]: the Markdown research report of a program, shared by `picidae findings report`
//!   and the API.
//!
//! Everything the servers return is visible evidence only: hidden-evaluator results are never
//! returned (the report shows them only when the CLI asks it to).

pub mod api;
pub mod cockpit;
pub mod mcp;
pub mod report;

pub use mcp::{serve_stdio, MemoryServer};

/// Errors of the server crate. The user-facing ones (an unknown program, a missing attempt, a
/// bad state name, an empty query) are returned to the MCP client as tool errors carrying this
/// message, so their wording is written for an agent to act on.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("no program named {name:?} (known programs: {})", known_list(.known))]
    UnknownProgram { name: String, known: Vec<String> },
    #[error(
        "program {program:?} has no attempt #{seq} (it has {count} attempts, numbered from #1)"
    )]
    NoSuchAttempt {
        program: String,
        seq: i64,
        count: i64,
    },
    #[error(
        "unknown finding state {0:?}: expected one of candidate, verifying, validated, refuted, \
         retracted"
    )]
    BadState(String),
    #[error("empty query: give some words to search for (a hypothesis, a file, a parameter)")]
    EmptyQuery,
    #[error(transparent)]
    Store(#[from] picidae_store::StoreError),
    #[error(transparent)]
    Memory(picidae_memory::MemoryError),
    #[error(transparent)]
    Git(#[from] picidae_git::GitError),
    #[error("MCP server: {0}")]
    Serve(String),
}

impl From<picidae_memory::MemoryError> for ServerError {
    fn from(e: picidae_memory::MemoryError) -> Self {
        match e {
            picidae_memory::MemoryError::EmptyQuery => ServerError::EmptyQuery,
            other => ServerError::Memory(other),
        }
    }
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        "none yet".into()
    } else {
        known.join(", ")
    }
}

pub type Result<T, E = ServerError> = std::result::Result<T, E>;
