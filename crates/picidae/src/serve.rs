//! `picidae serve` (the coordinator, with the HTTP API when it is built in) and the steering
//! commands that change a program while it runs. Steering goes through the store, which the
//! coordinator reads between attempts, so the same commands work with or without a server.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use picidae_sched::coordinator::{serve as coordinate, CoordinatorEvent, CoordinatorOptions};
use picidae_sched::{LoopEvent, Project, SlotPool};

/// Serve the HTTP API on `listen` until `stop` is set; runs on its own thread and runtime.
fn start_api(
    root: &Path,
    listen: &str,
    pool: Arc<SlotPool>,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>> {
    let listener = std::net::TcpListener::bind(listen)
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    println!("picidae serve: HTTP API on http://{addr} (OpenAPI at /openapi.json)");
    let mut state = picidae_server::api::ApiState::new(root.join(".picidae").join("store.sqlite"));
    let capacity = pool.capacity();
    state.metrics = Arc::new(move || {
        let in_use = pool.in_use();
        let mut out = format!(
            "# TYPE picidae_slots_capacity gauge\npicidae_slots_capacity {capacity}\n# TYPE picidae_slots_in_use gauge\npicidae_slots_in_use {}\n# TYPE picidae_slot_utilisation gauge\npicidae_slot_utilisation {}\n",
            in_use.values().sum::<usize>(),
            in_use.values().sum::<usize>() as f64 / capacity as f64
        );
        out.push_str("# TYPE picidae_program_slots_in_use gauge\n");
        for (p, n) in in_use {
            out.push_str(&format!(
                "picidae_program_slots_in_use{{program=\"{p}\"}} {n}\n"
            ));
        }
        out
    });
    Ok(std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("picidae serve: cannot start the HTTP runtime: {e}");
                return;
            }
        };
        rt.block_on(async move {
            let listener = match tokio::net::TcpListener::from_std(listener) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("picidae serve: {e}");
                    return;
                }
            };
            let shutdown = async move {
                while !stop.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            };
            if let Err(e) = picidae_server::api::serve(listener, state, shutdown).await {
                eprintln!("picidae serve: HTTP API stopped: {e}");
            }
        });
    }))
}

pub fn run(root: &Path, slots: usize, pipeline: usize, listen: Option<&str>) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let cancel = Arc::new(AtomicBool::new(false));
    {
        let (stop, cancel) = (stop.clone(), cancel.clone());
        let _ = ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                cancel.store(true, Ordering::SeqCst);
                eprintln!("\npicidae serve: cancelling runs in flight");
            } else {
                eprintln!("\npicidae serve: stopping after the attempts in flight (Ctrl-C again to cancel them)");
            }
        });
    }
    let pool = Arc::new(SlotPool::new(slots));
    let api_stop = Arc::new(AtomicBool::new(false));
    let api = match listen {
        Some(addr) => Some(start_api(root, addr, pool.clone(), api_stop.clone())?),
        None => None,
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let printer = std::thread::spawn(move || {
        for e in rx {
            print_event(&e);
        }
    });
    eprintln!("picidae serve: {slots} slot(s)");
    let opts = CoordinatorOptions {
        slots,
        stop,
        cancel,
        poll: Duration::from_millis(300),
        pipeline,
    };
    let result = coordinate(root, &opts, pool, tx);
    let _ = printer.join();
    api_stop.store(true, Ordering::SeqCst);
    if let Some(api) = api {
        let _ = api.join();
    }
    result?;
    Ok(())
}

fn print_event(e: &CoordinatorEvent) {
    match e {
        CoordinatorEvent::Started { program } => println!("[{program}] loop started"),
        CoordinatorEvent::Ended { program, summary } => match summary {
            Ok(s) => println!(
                "[{program}] loop ended ({}): {} attempts, {} kept",
                s.stopped.as_deref().unwrap_or("finished"),
                s.attempts,
                s.kept
            ),
            Err(e) => println!("[{program}] loop failed: {e}"),
        },
        CoordinatorEvent::Loop { program, event } => match event {
            LoopEvent::Decided {
                seq,
                status,
                value,
                hypothesis,
                ..
            } => println!(
                "[{program}] #{seq} {status} {} {hypothesis}",
                value.map(|v| format!("{v:.6}")).unwrap_or_else(|| "-".into())
            ),
            LoopEvent::Rejected {
                seq,
                status,
                reason,
            } => println!("[{program}] #{seq} {status} {reason}"),
            LoopEvent::Judged {
                seq,
                finding_id,
                state,
                reason,
            } => println!("[{program}] #{seq} finding {finding_id} {state}: {reason}"),
            LoopEvent::Recovered {
                runs_interrupted,
                attempts_resumed,
                attempts_failed,
            } => println!(
                "[{program}] recovered: {runs_interrupted} interrupted run(s), {attempts_resumed} attempt(s) resumed, {attempts_failed} failed"
            ),
            _ => {}
        },
    }
}

pub fn pause(project: &mut Project, program: &str, active: bool) -> Result<()> {
    project.store.set_program_active(program, active)?;
    println!(
        "{program} {}",
        if active {
            "resumed"
        } else {
            "paused (the attempt in flight finishes)"
        }
    );
    Ok(())
}

pub fn set(
    project: &mut Project,
    program: &str,
    weight: Option<f64>,
    max_runs: Option<i64>,
    no_max_runs: bool,
) -> Result<()> {
    if let Some(w) = weight {
        anyhow::ensure!(
            w.is_finite() && w > 0.0,
            "--weight must be a positive number, got {w}"
        );
        project.store.set_program_weight(program, w)?;
    }
    if no_max_runs {
        project.store.set_program_max_runs(program, None)?;
    } else if let Some(m) = max_runs {
        anyhow::ensure!(m >= 0, "--max-runs must not be negative, got {m}");
        project.store.set_program_max_runs(program, Some(m))?;
    }
    let p = project.store.program(program)?;
    println!(
        "{}: {}, weight {}, run budget {}",
        p.name,
        p.status,
        p.weight,
        p.max_runs
            .map(|m| m.to_string())
            .unwrap_or_else(|| "none".into())
    );
    Ok(())
}
