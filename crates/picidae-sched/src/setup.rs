//! The contract's optional setup step, run once per base commit and environment (its data
//! cached under `.picidae/cache/`): a `impl Runner` block.

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use picidae_exec::{LocalExecutor, RunOutcome, RunRequest};

use crate::runner::{Events, LoopEvent, Runner};
use crate::SchedError;

/// How long the optional setup step may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(3600);

impl Runner<'_> {
    pub(crate) fn setup(&mut self, events: Events<'_>) -> Result<(), SchedError> {
        let cache = self
            .data_dir
            .parent()
            .unwrap_or(&self.data_dir)
            .to_path_buf();
        let hidden = cache.join("hidden");
        for d in [&self.data_dir, &hidden] {
            std::fs::create_dir_all(d).map_err(|e| SchedError::io(d, e))?;
        }
        let Some(setup) = self.contract.setup.clone() else {
            return Ok(());
        };
        let marker = cache.join(".setup-done");
        let stamp = format!("{}\n{}\n", self.program.base_commit, setup.command);
        if std::fs::read_to_string(&marker).ok().as_deref() == Some(stamp.as_str()) {
            events(&LoopEvent::Setup {
                cached: true,
                secs: 0.0,
            });
            return Ok(());
        }
        let started = Instant::now();
        let wt_path = self.project.worktree_dir(&self.program.name, "setup");
        let _ = self.repo.remove_worktree(&wt_path);
        let wt = self
            .repo
            .add_worktree(&wt_path, &self.program.base_commit)?;
        let log = cache.join("setup.log");
        let req = RunRequest {
            command: setup.command.clone(),
            cwd: wt.bench_dir(),
            env: vec![
                ("PICIDAE_DATA".into(), self.data_dir.display().to_string()),
                ("PICIDAE_HIDDEN".into(), hidden.display().to_string()),
            ],
            time_budget: SETUP_TIMEOUT,
            timeout: SETUP_TIMEOUT,
            grace: self.contract.run.grace,
            stdout_path: log.clone(),
            stderr_path: log.clone(),
            log_cap_bytes: self.contract.run.log_cap_bytes,
        };
        let cancel = AtomicBool::new(false);
        let outcome = LocalExecutor::new().spawn(&req)?.wait(&cancel);
        let _ = self.repo.remove_worktree(&wt_path);
        let outcome = outcome?;
        if !outcome.succeeded() {
            return Err(SchedError::SetupFailed {
                status: describe_exit(&outcome),
                log,
            });
        }
        std::fs::write(&marker, stamp).map_err(|e| SchedError::io(&marker, e))?;
        events(&LoopEvent::Setup {
            cached: false,
            secs: started.elapsed().as_secs_f64(),
        });
        Ok(())
    }

    /// Run the setup step if needed (exposed for `picidae evaluator calibrate`).
    pub fn prepare(&mut self, events: Events<'_>) -> Result<(), SchedError> {
        self.setup(events)
    }
}

fn describe_exit(o: &RunOutcome) -> String {
    if o.timed_out {
        "timed out".into()
    } else if let Some(s) = o.signal {
        format!("killed by signal {s}")
    } else {
        format!("exit code {}", o.exit_code.unwrap_or(-1))
    }
}
