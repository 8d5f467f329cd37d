//! `picidae migrate sqlite-to-postgres`: move a project's store from its embedded SQLite file
//! into a PostgreSQL database, check that nothing was lost, and point the project at it.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use picidae_sched::project::{STORE_FILE, STORE_URL_FILE};
use picidae_sched::Project;
use picidae_store::Store;

#[derive(Subcommand)]
pub enum MigrateCmd {
    /// Copy this project's SQLite store into an empty PostgreSQL database, verify every
    /// table's row count and checksum, and switch the project to it. The SQLite file is kept,
    /// renamed to `store.sqlite.before-postgres`. Stop every coordinator of the project first.
    SqliteToPostgres(ToPostgresArgs),
}

#[derive(Args)]
pub struct ToPostgresArgs {
    /// The PostgreSQL database (`postgres://user@host:port/db`); its schema is created.
    pub url: String,
    /// Copy and verify only; leave the project on SQLite.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(project: Project, cmd: MigrateCmd) -> Result<()> {
    match cmd {
        MigrateCmd::SqliteToPostgres(args) => to_postgres(project, &args),
    }
}

fn to_postgres(project: Project, args: &ToPostgresArgs) -> Result<()> {
    let dir = project.dir();
    if project.store.backend() != picidae_store::Backend::Sqlite {
        bail!(
            "this project's store is already {} (see {})",
            picidae_store::redact_url(&project.store_location()),
            dir.join(STORE_URL_FILE).display()
        );
    }
    if !picidae_store::is_postgres_url(&args.url) {
        bail!("{:?} is not a postgres:// URL", args.url);
    }
    if dir.join("serve.json").exists() {
        bail!(
            "a coordinator may be running on this project ({} exists): stop it first",
            dir.join("serve.json").display()
        );
    }
    let from = project.store;
    let mut to = Store::connect(&args.url)
        .with_context(|| format!("connecting to {}", picidae_store::redact_url(&args.url)))?;
    eprintln!(
        "migrate: copying {} into {}",
        dir.join(STORE_FILE).display(),
        picidae_store::redact_url(&args.url)
    );
    let tables = picidae_store::migrate::copy_store(&from, &mut to)?;
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "table",
        "rows (SQLite)",
        "rows (PostgreSQL)",
        "checksum",
    ]);
    let mut all = true;
    for t in &tables {
        all &= t.matches();
        table.add_row([
            t.table.clone(),
            t.rows_from.to_string(),
            t.rows_to.to_string(),
            if t.checksum_from == t.checksum_to {
                format!("equal ({}…)", &t.checksum_from[..12])
            } else {
                format!(
                    "DIFFERS {} / {}",
                    &t.checksum_from[..12],
                    &t.checksum_to[..12]
                )
            },
        ]);
    }
    println!("{table}");
    if !all {
        bail!("the copy differs from the original; the project stays on SQLite");
    }
    let rows: i64 = tables.iter().map(|t| t.rows_from).sum();
    if args.dry_run {
        println!(
            "verified {rows} rows in {} tables; --dry-run: the project stays on SQLite",
            tables.len()
        );
        return Ok(());
    }
    drop(from);
    drop(to);
    // Point the project at PostgreSQL first, then move the SQLite file aside: a failure between
    // the two leaves both stores, with the project on the verified copy.
    let root = project_root(&dir)?;
    Project::init_with_store_after_migration(&root, &args.url)?;
    for suffix in ["", "-wal", "-shm"] {
        let f = dir.join(format!("{STORE_FILE}{suffix}"));
        if f.exists() {
            let to = dir.join(format!("{STORE_FILE}{suffix}.before-postgres"));
            std::fs::rename(&f, &to)
                .with_context(|| format!("moving {} to {}", f.display(), to.display()))?;
        }
    }
    println!(
        "verified {rows} rows in {} tables; the project now uses {} ({})",
        tables.len(),
        picidae_store::redact_url(&args.url),
        dir.join(STORE_URL_FILE).display()
    );
    Ok(())
}

fn project_root(dir: &std::path::Path) -> Result<std::path::PathBuf> {
    dir.parent()
        .map(|p| p.to_path_buf())
        .context("the project directory has no parent")
}
