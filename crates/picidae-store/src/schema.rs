//! The schema, as numbered migrations for both backends. Never edit a released migration:
//! add a new one.
//!
//! Each migration is written once in SQLite's dialect; [`postgres_sql`] translates its column
//! types for PostgreSQL (`INTEGER PRIMARY KEY` becomes an identity column, `INTEGER` `BIGINT`,
//! `REAL` `DOUBLE PRECISION`). Where the engines differ beyond types (the memory's full-text
//! index: FTS5 on SQLite, a weighted `tsvector` with a GIN index on PostgreSQL) a migration
//! gives both texts. The version is SQLite's `user_version`, or the one row of
//! `picidae_schema` on PostgreSQL; both count applied migrations, so a store has the same
//! version on either engine.

use crate::db::{Backend, Db};
use crate::{Result, StoreError};

/// One migration: its SQLite text, and its PostgreSQL text where that is not a translation.
struct Migration {
    sqlite: &'static str,
    postgres: Option<&'static str>,
}

/// Every table the store owns (for integrity checks and `migrate`), parents before children.
pub const TABLES: &[&str] = &[
    "programs",
    "attempts",
    "fingerprints",
    "runs",
    "frontier_history",
    "findings",
    "finding_events",
    "noise_floors",
    "hidden_results",
    "calibrations",
    "followups",
    "retries",
    "tokens",
    "coordinators",
    "workers",
    "work_items",
    "work_refusals",
    "commit_bundles",
    "open_programs",
    "contributions",
    "arenas",
    "arena_entries",
    "arena_truth",
    "arena_results",
];

const MIGRATIONS: &[Migration] = &[
    Migration {
        sqlite: r#"
CREATE TABLE programs (
    id                  INTEGER PRIMARY KEY,
    name                TEXT NOT NULL UNIQUE,
    benchmark_dir       TEXT NOT NULL,
    program_md          TEXT NOT NULL,
    agent_json          TEXT NOT NULL,
    policy_json         TEXT NOT NULL,
    base_commit         TEXT NOT NULL,
    frontier_attempt_id INTEGER,
    frontier_commit     TEXT,
    frontier_value      REAL,
    status              TEXT NOT NULL,
    created_at          INTEGER NOT NULL
);

CREATE TABLE attempts (
    id             INTEGER PRIMARY KEY,
    program_id     INTEGER NOT NULL REFERENCES programs(id),
    seq            INTEGER NOT NULL,
    kind           TEXT NOT NULL,
    status         TEXT NOT NULL,
    parent_commit  TEXT NOT NULL,
    commit_sha     TEXT,
    hypothesis     TEXT NOT NULL,
    proposer       TEXT NOT NULL,
    params_json    TEXT,
    patch_hash     TEXT,
    touched_json   TEXT,
    rejection_json TEXT,
    primary_value  REAL,
    note           TEXT,
    created_at     INTEGER NOT NULL,
    decided_at     INTEGER,
    UNIQUE (program_id, seq)
);
CREATE INDEX attempts_by_status ON attempts (program_id, status);
CREATE INDEX attempts_by_patch ON attempts (patch_hash);

CREATE TABLE fingerprints (
    hash TEXT PRIMARY KEY,
    json TEXT NOT NULL
);

CREATE TABLE runs (
    id              INTEGER PRIMARY KEY,
    attempt_id      INTEGER NOT NULL REFERENCES attempts(id),
    program_id      INTEGER NOT NULL REFERENCES programs(id),
    seed            INTEGER NOT NULL,
    status          TEXT NOT NULL,
    executor        TEXT NOT NULL,
    pid             INTEGER,
    pgid            INTEGER,
    host            TEXT,
    exit_code       INTEGER,
    signal          INTEGER,
    wall_secs       REAL,
    peak_rss_kb     INTEGER,
    over_budget     INTEGER,
    metrics_json    TEXT,
    primary_value   REAL,
    violations_json TEXT,
    fingerprint     TEXT REFERENCES fingerprints(hash),
    log_dir         TEXT,
    error           TEXT,
    queued_at       INTEGER NOT NULL,
    started_at      INTEGER,
    finished_at     INTEGER
);
CREATE INDEX runs_by_attempt ON runs (attempt_id);
CREATE INDEX runs_by_status ON runs (program_id, status);

CREATE TABLE frontier_history (
    id         INTEGER PRIMARY KEY,
    program_id INTEGER NOT NULL REFERENCES programs(id),
    attempt_id INTEGER NOT NULL REFERENCES attempts(id),
    commit_sha TEXT NOT NULL,
    value      REAL NOT NULL,
    decided_at INTEGER NOT NULL
);
CREATE INDEX frontier_by_program ON frontier_history (program_id, id);
"#,
        postgres: None,
    },
    Migration {
        sqlite: r#"
CREATE TABLE findings (
    id                   INTEGER PRIMARY KEY,
    program_id           INTEGER NOT NULL REFERENCES programs(id),
    attempt_id           INTEGER NOT NULL REFERENCES attempts(id),
    incumbent_attempt_id INTEGER NOT NULL REFERENCES attempts(id),
    state                TEXT NOT NULL,
    metric               TEXT NOT NULL,
    fingerprint          TEXT,
    evidence_json        TEXT NOT NULL,
    note                 TEXT,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
);
CREATE INDEX findings_by_program ON findings (program_id, state);
CREATE INDEX findings_by_attempt ON findings (attempt_id);

CREATE TABLE finding_events (
    id         INTEGER PRIMARY KEY,
    finding_id INTEGER NOT NULL REFERENCES findings(id),
    from_state TEXT,
    to_state   TEXT NOT NULL,
    reason     TEXT NOT NULL,
    at         INTEGER NOT NULL
);
CREATE INDEX finding_events_by_finding ON finding_events (finding_id, id);

CREATE TABLE noise_floors (
    program_id  INTEGER NOT NULL REFERENCES programs(id),
    fingerprint TEXT NOT NULL,
    attempt_id  INTEGER NOT NULL REFERENCES attempts(id),
    n           INTEGER NOT NULL,
    mean        REAL NOT NULL,
    std         REAL NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (program_id, fingerprint)
);

-- Hidden-evaluator output: kept apart from runs so nothing shown to agents can join it in.
CREATE TABLE hidden_results (
    run_id       INTEGER PRIMARY KEY REFERENCES runs(id),
    ok           INTEGER NOT NULL,
    metrics_json TEXT NOT NULL,
    error        TEXT,
    evaluated_at INTEGER NOT NULL
);

CREATE TABLE calibrations (
    id               INTEGER PRIMARY KEY,
    program_id       INTEGER NOT NULL REFERENCES programs(id),
    commit_sha       TEXT NOT NULL,
    passed           INTEGER NOT NULL,
    rank_correlation REAL,
    max_error        REAL,
    details_json     TEXT NOT NULL,
    created_at       INTEGER NOT NULL
);
"#,
        postgres: None,
    },
    Migration {
        sqlite: r#"
-- Memory: dedup keys and a full-text index over every attempt.
ALTER TABLE attempts ADD COLUMN norm_hash TEXT;
ALTER TABLE attempts ADD COLUMN params_hash TEXT;
ALTER TABLE attempts ADD COLUMN duplicate_of INTEGER REFERENCES attempts(id);
CREATE INDEX attempts_by_parent_patch ON attempts (parent_commit, patch_hash);
CREATE INDEX attempts_by_parent_norm ON attempts (parent_commit, norm_hash);
CREATE INDEX attempts_by_params_hash ON attempts (params_hash);

-- rowid = attempts.id. Text columns only; outcomes are joined in at query time so they are
-- always current. Hidden-evaluator results are never indexed.
CREATE VIRTUAL TABLE memory_fts USING fts5(
    hypothesis, diff, files, symbols, params, notes, program,
    tokenize = 'porter unicode61'
);
-- Ranking weights: the hypothesis counts most, then files, symbols and parameters.
INSERT INTO memory_fts (memory_fts, rank) VALUES ('rank', 'bm25(3.0, 1.0, 2.0, 2.0, 2.0, 1.0, 0.0)');
-- Term statistics, to leave out words too common to discriminate.
CREATE VIRTUAL TABLE memory_vocab USING fts5vocab(memory_fts, 'row');
"#,
        postgres: Some(MEMORY_POSTGRES),
    },
    Migration {
        sqlite: r#"
-- Steering: fair-share weight, run budget, follow-up ideas, API tokens.
ALTER TABLE programs ADD COLUMN weight REAL NOT NULL DEFAULT 1.0;
ALTER TABLE programs ADD COLUMN max_runs INTEGER;

CREATE TABLE followups (
    id          INTEGER PRIMARY KEY,
    program_id  INTEGER NOT NULL REFERENCES programs(id),
    text        TEXT NOT NULL,
    author      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    consumed_by INTEGER REFERENCES attempts(id),
    consumed_at INTEGER
);
CREATE INDEX followups_open ON followups (program_id, consumed_at);

-- Only a hash of each token is kept.
CREATE TABLE tokens (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    hash       TEXT NOT NULL UNIQUE,
    read_only  INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
"#,
        postgres: None,
    },
    Migration {
        sqlite: r#"
-- Budgets beyond run counts: GPU-hours and money (GPU time at a price, plus what agents report).
ALTER TABLE programs ADD COLUMN max_gpu_hours REAL;
ALTER TABLE programs ADD COLUMN max_usd REAL;
ALTER TABLE programs ADD COLUMN gpu_hour_usd REAL NOT NULL DEFAULT 0;
-- Placement: the GPU indices a run was given.
ALTER TABLE runs ADD COLUMN gpus TEXT;
ALTER TABLE runs ADD COLUMN gpu_count INTEGER NOT NULL DEFAULT 0;
-- Leases: which coordinator owns a running run, and when it last said so.
ALTER TABLE runs ADD COLUMN lease_owner TEXT;
ALTER TABLE runs ADD COLUMN heartbeat_at INTEGER;
CREATE INDEX runs_lease ON runs (lease_owner, status);
-- What an agent reported its proposal cost.
ALTER TABLE attempts ADD COLUMN agent_cost_usd REAL;
ALTER TABLE attempts ADD COLUMN agent_tokens INTEGER;
"#,
        postgres: None,
    },
    Migration {
        sqlite: r#"
-- Where a program's runs execute (local, Slurm, an SSH host), and each run's handle there
-- (a Slurm job id, a remote run directory), so a restarted coordinator can re-adopt it.
ALTER TABLE programs ADD COLUMN executor_json TEXT;
ALTER TABLE runs ADD COLUMN executor_ref TEXT;
"#,
        postgres: None,
    },
    Migration {
        sqlite: r#"
-- A person's request to cancel a run (ms since the epoch), made through the API, which may be
-- another process than the coordinator running it: the coordinator polls for it and stops the
-- run, and recovery never runs a cancelled seed again.
ALTER TABLE runs ADD COLUMN cancel_requested_at INTEGER;
"#,
        postgres: None,
    },
    Migration {
        sqlite: r#"
-- Team mode: the coordinator that drives a program, and when it last said so. Several
-- coordinators on one database each drive the programs they hold.
ALTER TABLE programs ADD COLUMN lease_owner TEXT;
ALTER TABLE programs ADD COLUMN lease_at INTEGER;
-- The coordinators working on this store, so each can take its fair share of the programs.
CREATE TABLE coordinators (
    name         TEXT PRIMARY KEY,
    slots        INTEGER NOT NULL,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL
);
"#,
        postgres: None,
    },
    Migration {
        sqlite: r#"
-- A run's peak GPU memory (MiB, summed over its processes, sampled with nvidia-smi), and why a
-- program was paused when the harness paused it (cleared on resume).
ALTER TABLE runs ADD COLUMN peak_gpu_mb INTEGER;
ALTER TABLE programs ADD COLUMN paused_reason TEXT;
-- How a run breached its containment (`RunBreach`: sandbox-denied, rewrote-protected), if it did.
ALTER TABLE runs ADD COLUMN breach TEXT;
-- A person's request to verify an attempt's change again (`picidae attempt retry`), taken by
-- the program's next proposal.
CREATE TABLE retries (
    id          INTEGER PRIMARY KEY,
    program_id  INTEGER NOT NULL REFERENCES programs(id),
    attempt_id  INTEGER NOT NULL REFERENCES attempts(id),
    author      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    consumed_by INTEGER REFERENCES attempts(id),
    consumed_at INTEGER
);
CREATE INDEX retries_open ON retries (program_id, consumed_at);
"#,
        postgres: None,
    },
    Migration {
        sqlite: r#"
-- The attempt whose change an attempt carries onto a newer frontier: a replay of a stale
-- attempt, a retry, or a merge candidate (a winner on an old frontier merged onto the new one).
ALTER TABLE attempts ADD COLUMN replay_of INTEGER REFERENCES attempts(id);
"#,
        postgres: None,
    },
    // 11: remote workers (`picidae worker`): worker tokens, the workers that registered, the
    // runs handed to them with their leases and results, and the results refused; and the
    // index that finds what replays an attempt.
    Migration {
        sqlite: r#"
CREATE INDEX attempts_by_replay_of ON attempts (replay_of);
ALTER TABLE tokens ADD COLUMN worker INTEGER NOT NULL DEFAULT 0;
CREATE TABLE workers (
    id               INTEGER PRIMARY KEY,
    name             TEXT NOT NULL,
    token_id         INTEGER NOT NULL REFERENCES tokens(id),
    pool             TEXT NOT NULL,
    fingerprint      TEXT NOT NULL,
    fingerprint_json TEXT NOT NULL,
    capacity_json    TEXT NOT NULL,
    registered_at    INTEGER NOT NULL,
    heartbeat_at     INTEGER NOT NULL,
    UNIQUE (token_id, name)
);
CREATE TABLE work_items (
    id               INTEGER PRIMARY KEY,
    run_id           INTEGER NOT NULL UNIQUE REFERENCES runs(id),
    pool             TEXT NOT NULL,
    spec_json        TEXT NOT NULL,
    state            TEXT NOT NULL,
    worker_id        INTEGER REFERENCES workers(id),
    lease            TEXT,
    lease_expires_at INTEGER,
    claims           INTEGER NOT NULL DEFAULT 0,
    result_json      TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX work_items_open ON work_items (state, pool, id);
CREATE TABLE work_refusals (
    id        INTEGER PRIMARY KEY,
    run_id    INTEGER NOT NULL REFERENCES runs(id),
    worker_id INTEGER REFERENCES workers(id),
    reason    TEXT NOT NULL,
    at        INTEGER NOT NULL
);
"#,
        postgres: None,
    },
    // 12: on PostgreSQL, the memory's documents carry the recency tokens a search narrows
    // itself to (see `memory_recent.rs`); nothing changes on SQLite, whose FTS5 index already
    // walks matches newest first.
    Migration {
        sqlite: "",
        postgres: Some(MEMORY_RECENCY_POSTGRES),
    },
    // 13: attempt commits as git bundles, for coordinators that share the store but no
    // directory (see `carried.rs`).
    Migration {
        sqlite: r#"
CREATE TABLE commit_bundles (
    id          INTEGER PRIMARY KEY,
    program_id  INTEGER NOT NULL REFERENCES programs(id),
    commit_sha  TEXT NOT NULL,
    bundle      BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (program_id, commit_sha)
);
"#,
        postgres: Some(
            r#"
CREATE TABLE commit_bundles (
    id          BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    program_id  BIGINT NOT NULL REFERENCES programs(id),
    commit_sha  TEXT NOT NULL,
    bundle      BYTEA NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (program_id, commit_sha)
);
"#,
        ),
    },
    // 14: contributors (see `contributions.rs`): their tokens, the programs open to them, and
    // what they submitted, from the check before compute to the verdict.
    Migration {
        sqlite: r#"
ALTER TABLE tokens ADD COLUMN contributor INTEGER NOT NULL DEFAULT 0;
CREATE TABLE open_programs (
    id            INTEGER PRIMARY KEY,
    program_id    INTEGER NOT NULL UNIQUE REFERENCES programs(id),
    quota_runs    INTEGER,
    max_patch_kb  INTEGER NOT NULL,
    opened_at     INTEGER NOT NULL
);
CREATE TABLE contributions (
    id             INTEGER PRIMARY KEY,
    program_id     INTEGER NOT NULL REFERENCES programs(id),
    token_id       INTEGER NOT NULL REFERENCES tokens(id),
    contributor    TEXT NOT NULL,
    parent_commit  TEXT NOT NULL,
    patch          TEXT NOT NULL,
    hypothesis     TEXT NOT NULL,
    claimed_value  REAL NOT NULL,
    claimed_gain   REAL NOT NULL,
    claimed_json   TEXT NOT NULL,
    sign           REAL NOT NULL,
    state          TEXT NOT NULL,
    reason         TEXT,
    attempt_id     INTEGER REFERENCES attempts(id),
    measured_value REAL,
    measured_gain  REAL,
    created_at     INTEGER NOT NULL,
    decided_at     INTEGER
);
CREATE INDEX contributions_queue ON contributions (program_id, state);
CREATE INDEX contributions_attempt ON contributions (attempt_id);
CREATE INDEX contributions_token ON contributions (token_id);
"#,
        postgres: None,
    },
    // 15: how many times a run's engine started it over on a new machine (a preempted spot
    // instance SkyPilot recovered): the run stays one run, counted once.
    Migration {
        sqlite: "ALTER TABLE runs ADD COLUMN restarts INTEGER NOT NULL DEFAULT 0;",
        postgres: None,
    },
    // 16: arenas (see `arenas.rs`): program.md entries run as programs under one budget, and
    // the hidden truth of the commits they are scored on.
    Migration {
        sqlite: r#"
CREATE TABLE arenas (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    benchmark_dir TEXT NOT NULL,
    budget_kind   TEXT NOT NULL,
    budget        REAL NOT NULL,
    trials        INTEGER NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE TABLE arena_entries (
    id          INTEGER PRIMARY KEY,
    arena_id    INTEGER NOT NULL REFERENCES arenas(id),
    label       TEXT NOT NULL,
    trial       INTEGER NOT NULL,
    program_id  INTEGER NOT NULL UNIQUE REFERENCES programs(id),
    program_md  TEXT NOT NULL,
    UNIQUE (arena_id, label, trial)
);
CREATE TABLE arena_truth (
    id          INTEGER PRIMARY KEY,
    arena_id    INTEGER NOT NULL REFERENCES arenas(id),
    commit_sha  TEXT NOT NULL,
    value       REAL,
    seeds       INTEGER NOT NULL,
    UNIQUE (arena_id, commit_sha)
);
"#,
        postgres: None,
    },
    // 17: an arena's last scored ranking, one row per entry (see `arenas.rs`): what the
    // cockpit's arena page and the memory's program.md results read without measuring.
    Migration {
        sqlite: r#"
CREATE TABLE arena_results (
    id           INTEGER PRIMARY KEY,
    arena_id     INTEGER NOT NULL REFERENCES arenas(id),
    label        TEXT NOT NULL,
    rank         INTEGER NOT NULL,
    entries      INTEGER NOT NULL,
    per          TEXT NOT NULL,
    truth_metric TEXT NOT NULL,
    hidden       INTEGER NOT NULL,
    seeds        INTEGER NOT NULL,
    trials       INTEGER NOT NULL,
    rate         REAL,
    rate_low     REAL,
    rate_high    REAL,
    keeps        INTEGER NOT NULL,
    false_keeps  INTEGER NOT NULL,
    runs         INTEGER NOT NULL,
    gpu_hours    REAL NOT NULL,
    scored_at    INTEGER NOT NULL,
    UNIQUE (arena_id, label)
);
"#,
        postgres: None,
    },
    // 18: per-contributor GPU-hour and money quotas of a program open to contributors.
    Migration {
        sqlite: "ALTER TABLE open_programs ADD COLUMN quota_gpu_hours REAL;
ALTER TABLE open_programs ADD COLUMN quota_usd REAL;",
        postgres: None,
    },
];

/// Migration 3 on PostgreSQL: the same dedup keys, and the memory's full-text index as a
/// weighted `tsvector` (hypothesis A; files, symbols and parameters B; diff and notes C; the
/// program token D, which ranking weighs 0) over one row per attempt.
const MEMORY_POSTGRES: &str = r#"
ALTER TABLE attempts ADD COLUMN norm_hash TEXT;
ALTER TABLE attempts ADD COLUMN params_hash TEXT;
ALTER TABLE attempts ADD COLUMN duplicate_of BIGINT REFERENCES attempts(id);
CREATE INDEX attempts_by_parent_patch ON attempts (parent_commit, patch_hash);
CREATE INDEX attempts_by_parent_norm ON attempts (parent_commit, norm_hash);
CREATE INDEX attempts_by_params_hash ON attempts (params_hash);

-- Tokens are split on anything not alphanumeric, as SQLite's unicode61 does, and stemmed by
-- Snowball's English stemmer with no stop words (FTS5's porter tokenizer drops none either).
CREATE TEXT SEARCH DICTIONARY picidae_stem (TEMPLATE = snowball, Language = english);
CREATE TEXT SEARCH CONFIGURATION picidae (COPY = english);
ALTER TEXT SEARCH CONFIGURATION picidae
    ALTER MAPPING FOR asciiword, asciihword, hword_asciipart, word, hword, hword_part
    WITH picidae_stem;

CREATE TABLE memory_fts (
    attempt_id BIGINT PRIMARY KEY,
    hypothesis TEXT NOT NULL DEFAULT '',
    diff       TEXT NOT NULL DEFAULT '',
    files      TEXT NOT NULL DEFAULT '',
    symbols    TEXT NOT NULL DEFAULT '',
    params     TEXT NOT NULL DEFAULT '',
    notes      TEXT NOT NULL DEFAULT '',
    program    TEXT NOT NULL DEFAULT '',
    doc tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('picidae', regexp_replace(hypothesis, '[^[:alnum:]]+', ' ', 'g')), 'A') ||
        setweight(to_tsvector('picidae', regexp_replace(files, '[^[:alnum:]]+', ' ', 'g')), 'B') ||
        setweight(to_tsvector('picidae', regexp_replace(symbols, '[^[:alnum:]]+', ' ', 'g')), 'B') ||
        setweight(to_tsvector('picidae', regexp_replace(params, '[^[:alnum:]]+', ' ', 'g')), 'B') ||
        setweight(to_tsvector('picidae', regexp_replace(left(diff, 200000), '[^[:alnum:]]+', ' ', 'g')), 'C') ||
        setweight(to_tsvector('picidae', regexp_replace(notes, '[^[:alnum:]]+', ' ', 'g')), 'C') ||
        setweight(to_tsvector('simple', program), 'D')
    ) STORED
);
CREATE INDEX memory_fts_doc ON memory_fts USING GIN (doc);
"#;

/// Migration 12 on PostgreSQL: the memory's document gains two recency tokens of weight D
/// (which ranking weighs 0), `picidaeepoch<id / 4096>` and `picidaeera<id / 65536>`, so a
/// search can ask the GIN index for the matches among the newest attempts only, instead of
/// reading every match to find the newest.
const MEMORY_RECENCY_POSTGRES: &str = r#"
DROP INDEX memory_fts_doc;
ALTER TABLE memory_fts DROP COLUMN doc;
ALTER TABLE memory_fts ADD COLUMN doc tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('picidae', regexp_replace(hypothesis, '[^[:alnum:]]+', ' ', 'g')), 'A') ||
    setweight(to_tsvector('picidae', regexp_replace(files, '[^[:alnum:]]+', ' ', 'g')), 'B') ||
    setweight(to_tsvector('picidae', regexp_replace(symbols, '[^[:alnum:]]+', ' ', 'g')), 'B') ||
    setweight(to_tsvector('picidae', regexp_replace(params, '[^[:alnum:]]+', ' ', 'g')), 'B') ||
    setweight(to_tsvector('picidae', regexp_replace(left(diff, 200000), '[^[:alnum:]]+', ' ', 'g')), 'C') ||
    setweight(to_tsvector('picidae', regexp_replace(notes, '[^[:alnum:]]+', ' ', 'g')), 'C') ||
    setweight(to_tsvector('simple', program), 'D') ||
    setweight(to_tsvector('simple', 'picidaeepoch' || (attempt_id >> 12)::text), 'D') ||
    setweight(to_tsvector('simple', 'picidaeera' || (attempt_id >> 16)::text), 'D')
) STORED;
CREATE INDEX memory_fts_doc ON memory_fts USING GIN (doc);
"#;

/// A migration's text for PostgreSQL.
pub(crate) fn postgres_sql(sqlite: &str) -> String {
    sqlite
        .replace(
            "INTEGER PRIMARY KEY",
            "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
        )
        .replace("INTEGER", "BIGINT")
        .replace("REAL", "DOUBLE PRECISION")
}

/// The number of migrations this build knows.
pub fn latest() -> i64 {
    MIGRATIONS.len() as i64
}

/// The number of migrations applied to `db`.
pub(crate) fn version(db: &Db) -> Result<i64> {
    Ok(match db.backend() {
        Backend::Sqlite => db.query_row("PRAGMA user_version", (), |r| r.get(0))?,
        Backend::Postgres => {
            db.query_row("SELECT version FROM picidae_schema", (), |r| r.get(0))?
        }
    })
}

/// Bring `db` up to the latest schema. Each migration and its version bump commit together,
/// under the write lock, so coordinators starting at once apply each migration exactly once.
pub(crate) fn migrate(db: &Db) -> Result<()> {
    if db.backend() == Backend::Postgres {
        let tx = db.begin()?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS picidae_schema (version BIGINT NOT NULL);
             INSERT INTO picidae_schema (version)
             SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM picidae_schema);",
        )?;
        tx.commit()?;
    }
    loop {
        let tx = db.begin()?;
        let v = version(&tx)?;
        if v > latest() {
            return Err(StoreError::Migration(format!(
                "the store is at schema version {v}, newer than this build's {}; \
                 upgrade Picidae",
                latest()
            )));
        }
        let Some(m) = MIGRATIONS.get(v as usize) else {
            return Ok(());
        };
        let sql = match db.backend() {
            Backend::Sqlite => m.sqlite.to_string(),
            Backend::Postgres => m
                .postgres
                .map(str::to_string)
                .unwrap_or_else(|| postgres_sql(m.sqlite)),
        };
        tx.execute_batch(&sql)
            .map_err(|e| StoreError::Migration(format!("migration {}: {e}", v + 1)))?;
        match db.backend() {
            Backend::Sqlite => tx.execute_batch(&format!("PRAGMA user_version = {}", v + 1))?,
            Backend::Postgres => {
                tx.execute("UPDATE picidae_schema SET version = ?1", [v + 1])?;
            }
        }
        tx.commit()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translation_keeps_sqlite_types_apart() {
        let pg = postgres_sql("id INTEGER PRIMARY KEY, n INTEGER NOT NULL, x REAL");
        assert_eq!(
            pg,
            "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, n BIGINT NOT NULL, \
             x DOUBLE PRECISION"
        );
    }

    #[test]
    fn every_table_is_created() {
        let store = crate::Store::open_in_memory().unwrap();
        for t in TABLES {
            let n: i64 = store
                .db
                .query_row(&format!("SELECT COUNT(*) FROM {t}"), (), |r| r.get(0))
                .unwrap();
            assert_eq!(n, 0, "{t}");
        }
        assert_eq!(store.schema_version().unwrap(), latest());
    }
}
