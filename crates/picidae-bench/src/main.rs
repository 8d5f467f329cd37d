//! `picidae-bench`: Picidae's performance and integrity claims, each measured side by side with
//! a peer (plain keep/revert, Optuna, MLflow, a serial autoresearch-style loop, N = 1 against
//! N) and printed as ratios. Built with `cargo build --release -p picidae-bench`; it is not part
//! of the `picidae` binary users install.
//!
//! One module per bench: [`integrity`], [`memory`], [`dispatch`], [`utilisation`],
//! [`cockpit`], [`agents`], [`store`], [`parallel`], [`workers`], [`fleet`]; [`peer`] runs the Python peers (their scripts are files
//! under `peers/`) and [`mlflow`] starts an MLflow tracking server.

mod agents;
mod cockpit;
mod contributors;
mod dispatch;
mod fleet;
// The bundled example benchmark, the same source file the `picidae` binary compiles.
#[path = "../../picidae/src/example.rs"]
mod example;
mod integrity;
mod memory;
mod mlflow;
mod noisy;
mod parallel;
mod peer;
mod store;
mod utilisation;
mod workers;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "picidae-bench",
    version,
    about = "Picidae's claims, measured beside a peer"
)]
struct Cli {
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// False-keep rate and true improvement: Picidae's policy vs `seeds = 1` keep/revert.
    Integrity(integrity::IntegrityArgs),
    /// Memory query latency, index size and dedup cost at 10k, 100k and 1M attempts.
    Memory(memory::MemoryArgs),
    /// Attempts dispatched per second and the harness's overhead per attempt, beside Optuna.
    Dispatch(dispatch::DispatchArgs),
    /// Slot utilisation with a slow agent, beside a serial autoresearch-style loop.
    Utilisation(utilisation::UtilisationArgs),
    /// Server time of the cockpit's heaviest requests on a program with many attempts.
    Cockpit(cockpit::CockpitArgs),
    /// Sweep samplers compared at equal run budget: random search vs TPE on the example.
    Agents(agents::AgentsArgs),
    /// N attempts of one program in flight against N = 1: time to a known true improvement.
    Parallel(parallel::ParallelArgs),
    /// Attempt writes and metric points per second on SQLite and PostgreSQL, beside MLflow.
    Store(store::StoreArgs),
    /// Runs on N remote workers against one, and the remote path against the local executor.
    Workers(workers::WorkersArgs),
    /// Many simulated workers against one coordinator's API on PostgreSQL: call latencies.
    Fleet(fleet::FleetArgs),
    /// A hub's verification cost against its contributors' compute, and fake claims caught.
    Contributors(contributors::ContributorsArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if std::env::var_os("PICIDAE_CHECK_ARGS").is_some() {
        // The command line parsed: that is all that was asked (how the docs are checked).
        return ExitCode::SUCCESS;
    }
    let result = match cli.bench {
        Bench::Integrity(args) => integrity::run(args),
        Bench::Memory(args) => memory::run(args),
        Bench::Dispatch(args) => dispatch::run(args),
        Bench::Utilisation(args) => utilisation::run(args),
        Bench::Parallel(args) => parallel::run(args),
        Bench::Cockpit(args) => cockpit::run(args),
        Bench::Agents(args) => agents::run(args),
        Bench::Store(args) => store::run(args),
        Bench::Workers(args) => workers::run(args),
        Bench::Fleet(args) => fleet::run(args),
        Bench::Contributors(args) => contributors::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
