//! Opening a store and what concerns its connection as a whole: a SQLite file (WAL, busy
//! timeout, foreign keys) or a PostgreSQL URL, the schema brought up to date on open, the
//! database's own integrity check, the query planner's statistics, and the URL handling that
//! PostgreSQL locations need (naming another database, hiding a password in messages).
//!
//! Every query about programs, attempts and runs lives elsewhere; this module owns only the
//! [`Store`] handle's connection.

use std::path::Path;

use crate::db::{Backend, Db, DbError};
use crate::{schema, Result, Store, StoreError};

/// The schema version this build creates (the number of migrations it knows).
pub fn latest_schema() -> i64 {
    schema::latest()
}

/// Whether `location` names a PostgreSQL database rather than a SQLite file.
pub fn is_postgres_url(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

impl Store {
    /// Open (creating if needed) the SQLite database at `path` and bring its schema up to date.
    pub fn open(path: &Path) -> Result<Store> {
        let open_err = |source: DbError| StoreError::Open {
            location: path.display().to_string(),
            source,
        };
        let conn = rusqlite::Connection::open(path).map_err(|e| open_err(e.into()))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|e| open_err(e.into()))?;
        for (k, v) in [
            ("journal_mode", "WAL"),
            ("synchronous", "NORMAL"),
            ("foreign_keys", "ON"),
        ] {
            conn.pragma_update(None, k, v)
                .map_err(|e| open_err(e.into()))?;
        }
        Self::ready(Db::sqlite(conn))
    }

    /// Connect to the PostgreSQL database at `url` (`postgres://user@host:port/db`) and bring
    /// its schema up to date. Several coordinators may do this at once.
    pub fn connect(url: &str) -> Result<Store> {
        let client =
            postgres::Client::connect(url, postgres::NoTls).map_err(|e| StoreError::Open {
                location: redact_url(url),
                source: e.into(),
            })?;
        Self::ready(Db::postgres(client, url))
    }

    /// Open a store by location: a `postgres://` URL, or else a SQLite file path.
    pub fn open_location(location: &str) -> Result<Store> {
        if is_postgres_url(location) {
            Self::connect(location)
        } else if location.is_empty() {
            Err(StoreError::BadLocation(location.to_string()))
        } else {
            Self::open(Path::new(location))
        }
    }

    /// An in-memory SQLite store for tests.
    pub fn open_in_memory() -> Result<Store> {
        let conn = rusqlite::Connection::open_in_memory().map_err(DbError::from)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(DbError::from)?;
        Self::ready(Db::sqlite(conn))
    }

    fn ready(db: Db) -> Result<Store> {
        schema::migrate(&db)?;
        Ok(Store { db })
    }

    /// Which engine holds this store.
    pub fn backend(&self) -> Backend {
        self.db.backend()
    }

    /// Schema version: the number of migrations applied.
    pub fn schema_version(&self) -> Result<i64> {
        schema::version(&self.db)
    }

    /// Check the database's own consistency: SQLite's integrity check, or on PostgreSQL that
    /// every table the schema names is present and readable.
    pub fn integrity_check(&self) -> Result<()> {
        match self.db.backend() {
            Backend::Sqlite => {
                let s: String = self
                    .db
                    .query_row("PRAGMA integrity_check", (), |r| r.get(0))?;
                if s == "ok" {
                    Ok(())
                } else {
                    Err(StoreError::Corrupt(s))
                }
            }
            Backend::Postgres => {
                for table in schema::TABLES {
                    self.db
                        .query_row(&format!("SELECT COUNT(*) FROM {table}"), (), |r| {
                            r.get::<i64>(0)
                        })
                        .map_err(|e| StoreError::Corrupt(format!("table {table}: {e}")))?;
                }
                Ok(())
            }
        }
    }

    /// Refresh the query planner's statistics (SQLite's `PRAGMA optimize`, PostgreSQL's
    /// `ANALYZE`), as after a bulk fill.
    pub fn analyze(&self) -> Result<()> {
        self.db.execute_batch(match self.db.backend() {
            Backend::Sqlite => "PRAGMA optimize",
            Backend::Postgres => "ANALYZE",
        })?;
        Ok(())
    }

    /// The raw connection, for this crate's own tests only: every query Picidae makes is a
    /// function of this crate, and other crates' benchmarks and tests write what Picidae never
    /// would (bulk fills, planted corruption) through [`crate::testing`].
    #[cfg(feature = "testing")]
    pub fn db(&self) -> &Db {
        &self.db
    }
}

/// The PostgreSQL URL `url` with its database name replaced by `db`.
pub fn url_with_database(url: &str, db: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (url, None),
    };
    let scheme_end = head.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match head[scheme_end..].find('/') {
        Some(i) => &head[..scheme_end + i],
        None => head,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

/// `url` with any password replaced, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_names_replace_the_path() {
        assert_eq!(
            super::url_with_database("postgres://u@h:5/postgres", "t1"),
            "postgres://u@h:5/t1"
        );
        assert_eq!(
            super::url_with_database("postgres://u@h:5?sslmode=disable", "t1"),
            "postgres://u@h:5/t1?sslmode=disable"
        );
    }
}
