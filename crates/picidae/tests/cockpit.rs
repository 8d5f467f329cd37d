//! The cockpit in a real headless Chromium against `picidae serve` running a real small program:
//! the overview follows runs live (and the program page's chart switches its x axis between
//! attempts, time of day and elapsed time; the attempt page downloads a run's artifacts), a
//! follow-up typed in the UI reaches the agent, pausing from the UI stops dispatch, a finding is
//! approved, retracted and followed up from the findings board (and the report exported), and
//! a running run is cancelled from its attempt's page, the overview lists the remote workers
//! with their capacity, heartbeat and the runs they hold, and the arena page overlays each
//! entry's progress over spend and ranks the entries (with a write token only).
//!
//! The browser (`common/browser.rs`) is driven by `tests/cockpit/driver.js`; the tests skip
//! (saying why) when node, npm or Chromium is missing, unless `PICIDAE_REQUIRE_BROWSER=1`.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::browser::{browser, drive};
use common::{bin, serial, serve_address, value_contract, wait_until, Env};
use picidae_core::RunStatus;

/// One program `a` whose runs take `secs` and whose agent lowers the value by one per attempt;
/// with `seeds` > 1 each seed adds a little noise and kept attempts become findings.
fn one_program(secs: f64, seeds: u32) -> Env {
    let run = format!(
        "sleep {secs}\nawk -v v=\"$(cat value.txt)\" -v s=\"$PICIDAE_SEED\" \
         'BEGIN {{ printf \"score: %.3f\\n\", v + (s % 3) * 0.1 }}'\necho done >&2\n\
         cat value.txt > \"$PICIDAE_ARTIFACTS/model.txt\"\n"
    );
    let mut contract = value_contract("sh run.sh", 30.0);
    if seeds > 1 {
        contract.push_str(&format!(
            "\n[policy]\nseeds = {seeds}\nbaseline_seeds = {seeds}\n"
        ));
    }
    let env = Env::new(&[
        ("picidae.toml", &contract),
        ("run.sh", &run),
        ("value.txt", "1000\n"),
    ]);
    let agent = env.path("down.sh");
    std::fs::write(
        &agent,
        "v=$(cat value.txt); v=$((v - 1)); echo $v > value.txt; echo \"HYPOTHESIS: value $v\"\n",
    )
    .unwrap();
    let cmd = format!("sh {}", agent.display());
    env.ok(&[
        "program",
        "create",
        "a",
        "--benchmark",
        env.bench.to_str().unwrap(),
        "--agent",
        "command",
        "--agent-command",
        &cmd,
    ]);
    env
}

/// `picidae serve` on a free port, and its URL. Its output is drained so it never blocks.
struct Serve {
    child: Option<Child>,
    url: String,
}

impl Serve {
    fn start(env: &Env) -> Serve {
        let mut child = bin()
            .arg("--project")
            .arg(&env.project)
            .args(["serve", "--slots", "1", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let url = format!("http://{}", serve_address(&mut child));
        Serve {
            child: Some(child),
            url,
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe {
                libc::kill(child.id() as i32, libc::SIGINT);
            }
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The oldest follow-up of the project whose text satisfies `matches`.
fn followup(env: &Env, matches: impl Fn(&str) -> bool) -> picidae_store::Followup {
    env.store()
        .followups(None)
        .unwrap()
        .into_iter()
        .find(|f| matches(&f.text))
        .expect("no such follow-up")
}

fn attempts(env: &Env) -> i64 {
    let s = env.store();
    let p = s.program("a").unwrap();
    s.attempt_counts(p.id).unwrap().iter().map(|(_, n)| n).sum()
}

fn write_token(env: &Env, name: &str) -> String {
    let out = env.ok(&["token", "create", name]);
    out.lines().nth(1).unwrap().trim().to_string()
}

#[test]
fn the_overview_follows_runs_live() {
    let _serial = serial();
    let Some(b) = browser() else { return };
    let env = one_program(0.5, 3);
    let serve = Serve::start(&env);
    // Wait for a kept attempt besides the baseline (with its finding), so every page has
    // something to show.
    wait_until(
        Duration::from_secs(90),
        || {
            let s = env.store();
            let p = s.program("a").unwrap();
            s.attempt_counts(p.id)
                .unwrap()
                .iter()
                .any(|(st, n)| *st == picidae_core::AttemptStatus::Kept && *n >= 2)
        },
        "a kept attempt",
    );
    let out = drive(b, "live", &serve.url, &[]);
    assert!(out.contains("OK live runs"), "{out}");
    assert!(out.contains("OK chart points"), "{out}");
    assert!(out.contains("OK chart axes"), "{out}");
    assert!(out.contains("OK artifact model.txt"), "{out}");
    assert!(out.contains("OK attempt"), "{out}");
    assert!(out.contains("OK findings"), "{out}");
}

#[test]
fn a_followup_entered_in_the_ui_reaches_the_agent() {
    let _serial = serial();
    let Some(b) = browser() else { return };
    let env = one_program(0.3, 1);
    let token = write_token(&env, "cockpit-lead");
    let serve = Serve::start(&env);
    wait_until(
        Duration::from_secs(60),
        || attempts(&env) >= 2,
        "the loop to start",
    );
    let idea = "try a cosine schedule from the cockpit";
    let out = drive(
        b,
        "followup",
        &serve.url,
        &[("COCKPIT_TOKEN", &token), ("COCKPIT_TEXT", idea)],
    );
    assert!(out.contains("OK queued follow-up"), "{out}");
    // In the store, authored by the token the UI sent (the API, not a side door) ...
    assert_eq!(followup(&env, |t| t == idea).author, "cockpit-lead");
    assert!(
        out.contains("OK concurrency: 3 attempts in flight"),
        "{out}"
    );
    assert!(out.contains("OK budgets: 500 runs"), "{out}");
    let p = env.store().program("a").unwrap();
    assert_eq!((p.weight, p.max_runs), (2.5, Some(500)));
    assert_eq!(p.policy["concurrency"], 3, "{}", p.policy);
    // ... and in the next agent prompt.
    let prompts = env.project.join(".picidae/attempts/a");
    wait_until(
        Duration::from_secs(60),
        || {
            std::fs::read_dir(&prompts)
                .map(|d| {
                    d.flatten().any(|e| {
                        std::fs::read_to_string(e.path().join("prompt.md"))
                            .map(|t| t.contains(idea))
                            .unwrap_or(false)
                    })
                })
                .unwrap_or(false)
        },
        "an agent prompt carrying the follow-up",
    );
    let consumed = followup(&env, |t| t == idea).consumed_by;
    assert!(consumed.is_some(), "the follow-up was not consumed");
    drop(serve);
}

#[test]
fn pausing_from_the_ui_stops_dispatch() {
    let _serial = serial();
    let Some(b) = browser() else { return };
    let env = one_program(0.3, 1);
    let token = write_token(&env, "cockpit-pauser");
    let serve = Serve::start(&env);
    wait_until(
        Duration::from_secs(60),
        || attempts(&env) >= 2,
        "the loop to start",
    );
    let out = drive(b, "pause", &serve.url, &[("COCKPIT_TOKEN", &token)]);
    assert!(out.contains("OK paused"), "{out}");
    assert_eq!(
        env.store().program("a").unwrap().status,
        picidae_core::ProgramStatus::Paused
    );
    // The attempt in flight finishes; after that no new attempt or run starts.
    std::thread::sleep(Duration::from_millis(2500));
    let runs = |env: &Env| -> i64 { env.store().run_count(None).unwrap() };
    let running = |env: &Env| -> usize { env.store().unfinished_runs(None).unwrap().len() };
    let (frozen_attempts, frozen_runs) = (attempts(&env), runs(&env));
    std::thread::sleep(Duration::from_millis(3000));
    assert_eq!(
        attempts(&env),
        frozen_attempts,
        "an attempt started after the pause"
    );
    assert_eq!(runs(&env), frozen_runs, "a run started after the pause");
    assert_eq!(running(&env), 0, "a run is still going after the pause");
    drop(serve);
}

/// The number after `prefix` in the driver's output.
fn number_after(out: &str, prefix: &str) -> i64 {
    let at = out
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix:?} in {out}"))
        + prefix.len();
    out[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("no number after {prefix:?} in {out}"))
}

#[test]
fn a_finding_is_approved_retracted_and_followed_up_from_the_board() {
    let _serial = serial();
    let Some(b) = browser() else { return };
    let env = one_program(0.3, 3);
    let token = write_token(&env, "cockpit-reviewer");
    let serve = Serve::start(&env);
    wait_until(
        Duration::from_secs(120),
        || {
            !env.store()
                .findings(None, Some(picidae_core::domain::FindingState::Validated))
                .unwrap()
                .is_empty()
        },
        "a validated finding",
    );
    let out = drive(
        b,
        "findings",
        &serve.url,
        &[
            ("COCKPIT_TOKEN", &token),
            ("COCKPIT_TEXT", "reproduced by hand"),
        ],
    );
    let id = number_after(&out, "OK approved ");
    assert_eq!(number_after(&out, "OK retracted "), id, "{out}");
    assert!(out.contains("OK queued follow-up"), "{out}");
    assert!(out.contains("OK report"), "{out}");
    drop(serve);
    // All of it in the store, authored by the token the page sent.
    let store = env.store();
    assert_eq!(
        store.finding(id).unwrap().state,
        picidae_core::domain::FindingState::Retracted
    );
    let events = store.finding_events(id).unwrap();
    let approved: Vec<_> = events.iter().filter(|e| e.to == "approved").collect();
    assert_eq!(approved.len(), 1, "{events:?}");
    assert_eq!(
        approved[0].reason,
        "approved by cockpit-reviewer: reproduced by hand"
    );
    assert_eq!(approved[0].from.as_deref(), Some("validated"));
    let last = events.last().unwrap();
    assert_eq!(
        (last.to.as_str(), last.reason.as_str()),
        (
            "retracted",
            "retracted by cockpit-reviewer: the gain came from a warm cache"
        )
    );
    let picidae_store::Followup { author, text, .. } =
        followup(&env, |t| t.contains("without the cache"));
    assert_eq!(author, "cockpit-reviewer");
    assert!(text.contains(&format!("finding {id} (attempt #")), "{text}");
}

#[test]
fn a_running_run_is_cancelled_from_its_attempt_page() {
    let _serial = serial();
    let Some(b) = browser() else { return };
    // Attempt #2 (value 999) runs for a minute; its shell and its sleep record their pids.
    let pids = tempfile::tempdir().unwrap().keep().join("pids");
    let run = format!(
        "echo $$ >> '{p}'\nif [ \"$(cat value.txt)\" = 999 ]; then sleep 60 & echo $! >> '{p}'; \
         wait; fi\necho \"score: $(cat value.txt)\"\n",
        p = pids.display()
    );
    let env = Env::new(&[
        ("picidae.toml", &value_contract("sh run.sh", 120.0)),
        ("run.sh", &run),
        ("value.txt", "1000\n"),
    ]);
    let cmd = env.down_agent("down.sh");
    env.command_program("a", &env.bench.clone(), &cmd);
    let token = write_token(&env, "cockpit-canceller");
    let serve = Serve::start(&env);
    let attempt_runs = |env: &Env| {
        let s = env.store();
        let p = s.program("a").unwrap();
        s.attempt_by_seq(p.id, 2)
            .unwrap()
            .map(|a| (a.clone(), s.runs_of_attempt(a.id).unwrap()))
    };
    wait_until(
        Duration::from_secs(60),
        || {
            attempt_runs(&env)
                .is_some_and(|(_, r)| r.len() == 1 && r[0].status == RunStatus::Running)
                && common::read_pids(&pids).len() >= 3
        },
        "attempt #2's run to start",
    );
    let procs: Vec<i32> = common::read_pids(&pids)[1..3].to_vec();
    assert!(procs.iter().all(|p| common::pid_alive(*p)), "{procs:?}");
    let started = Instant::now();
    let out = drive(
        b,
        "cancel",
        &serve.url,
        &[("COCKPIT_TOKEN", &token), ("COCKPIT_SEQ", "2")],
    );
    let run_id = number_after(&out, "OK cancelled run ");
    println!("cancelled from the page in {:?}", started.elapsed());
    // The run's processes are gone, and it is recorded cancelled by the user, once.
    wait_until(
        Duration::from_secs(5),
        || procs.iter().all(|p| !common::pid_alive(*p)),
        "the run's processes to end",
    );
    wait_until(
        Duration::from_secs(30),
        || attempt_runs(&env).is_some_and(|(a, _)| a.status.is_final()),
        "attempt #2 to be decided",
    );
    drop(serve);
    let (a, runs) = attempt_runs(&env).unwrap();
    assert_eq!(runs.len(), 1, "the cancelled seed ran again: {runs:?}");
    assert_eq!(runs[0].id, run_id);
    assert_eq!(runs[0].status, RunStatus::Cancelled);
    assert_eq!(runs[0].error.as_deref(), Some("cancelled by user"));
    assert_eq!(a.status, picidae_core::AttemptStatus::Failed);
    assert!(
        a.note
            .as_deref()
            .unwrap_or_default()
            .contains("cancelled by user"),
        "{:?}",
        a.note
    );
    let cancelled = env
        .store()
        .runs(None)
        .unwrap()
        .iter()
        .filter(|r| r.status == RunStatus::Cancelled)
        .count();
    assert_eq!(cancelled, 1, "only the one run was stopped");
}

/// A discarded attempt is sent to be verified again from its page: the request is recorded for
/// the program's next proposal, authored by the token.
#[test]
fn a_discarded_attempt_is_sent_for_verification_again_from_its_page() {
    let _serial = serial();
    let Some(b) = browser() else { return };
    let env = Env::new(&[
        ("picidae.toml", &value_contract("sh run.sh", 30.0)),
        ("run.sh", common::VALUE_RUN),
        ("value.txt", "10\n"),
    ]);
    env.queue_program("a", &["12"], &[]);
    env.ok(&["run", "a", "-n", "1", "--plain"]);
    // Paused, so `serve` takes the request without acting on it before the test reads it.
    env.ok(&["program", "pause", "a"]);
    let token = write_token(&env, "cockpit-retry");
    let serve = Serve::start(&env);
    let out = drive(
        b,
        "retry",
        &serve.url,
        &[("COCKPIT_TOKEN", &token), ("COCKPIT_SEQ", "2")],
    );
    assert!(out.contains("OK retry of #2 requested"), "{out}");
    drop(serve);
    let s = env.store();
    let p = s.program("a").unwrap();
    let open = s.open_retries(p.id).unwrap();
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(s.attempt(open[0].attempt_id).unwrap().seq, 2);
    assert_eq!(open[0].author, "cockpit-retry");
}

/// A worker registered in the store shows on the overview with its capacity and heartbeat; a
/// run it claims is listed on its row, linked to the run's attempt.
#[test]
fn the_overview_lists_workers_and_the_runs_they_hold() {
    let _serial = serial();
    let Some(b) = browser() else { return };
    let env = Env::new(&[
        ("picidae.toml", &value_contract("sh run.sh", 30.0)),
        ("run.sh", common::VALUE_RUN),
        ("value.txt", "10\n"),
    ]);
    let agent = env.down_agent("down.sh");
    env.ok(&[
        "program",
        "create",
        "a",
        "--benchmark",
        env.bench.to_str().unwrap(),
        "--agent",
        "command",
        "--agent-command",
        &agent,
        "--executor",
        "workers",
    ]);
    let mut store = env.store();
    let (token, secret) = store.create_worker_token("cockpit-worker").unwrap();
    let worker = store
        .register_worker(
            token.id,
            "gpu-box-1",
            "",
            ("abcd1234", "{}"),
            &serde_json::json!({"gpus": [0, 1], "cpus": 8, "memory_mb": 64000}),
        )
        .unwrap();
    drop(store);
    let serve = Serve::start(&env);
    let out = drive(
        b,
        "workers",
        &serve.url,
        &[
            ("COCKPIT_WORKER", "gpu-box-1"),
            ("COCKPIT_WORKER_ID", &worker.id.to_string()),
            ("COCKPIT_WORKER_TOKEN", &secret),
        ],
    );
    assert!(out.contains("OK worker gpu-box-1 gpus 2 cpus 8"), "{out}");
    let run = number_after(&out, "OK worker run ");
    assert!(out.contains("OK lost worker marked"), "{out}");
    drop(serve);
    let s = env.store();
    let r = s.run(run).unwrap();
    assert_eq!(s.attempt(r.attempt_id).unwrap().seq, 1, "{r:?}");
}

/// The arena page: two program.md entries ("big steps" lowers the value by 3 per attempt,
/// "small steps" by 1), two trials each, run and ranked; the page overlays the four programs'
/// progress over spend in one colour per entry and shows the ranking only with a write token.
#[test]
fn the_arena_page_overlays_each_entrys_progress_and_ranks_them_with_a_token() {
    let _serial = serial();
    let Some(b) = browser() else { return };
    let env = Env::new(&[
        ("picidae.toml", &value_contract("sh run.sh", 30.0)),
        ("run.sh", common::VALUE_RUN),
        ("value.txt", "100\n"),
    ]);
    let agent = env.path("steps.sh");
    std::fs::write(
        &agent,
        "cat > /dev/null\nv=$(cat value.txt)\ncase \"$(cat \"$PICIDAE_PROGRAM_MD\")\" in\n  \
         *big*) v=$((v - 3)) ;;\n  *) v=$((v - 1)) ;;\nesac\necho $v > value.txt\n\
         echo \"HYPOTHESIS: value $v\"\n",
    )
    .unwrap();
    for (label, text) in [
        ("big", "Take big steps.\n"),
        ("small", "Take small steps.\n"),
    ] {
        std::fs::write(env.path(&format!("{label}.md")), text).unwrap();
    }
    let md = |l: &str| env.path(&format!("{l}.md"));
    env.arena_create(
        "pages",
        &[("big", &md("big")), ("small", &md("small"))],
        &format!("sh {}", agent.display()),
        &[
            "--budget-runs",
            "4",
            "--trials",
            "2",
            "--seeds",
            "1",
            "--baseline-seeds",
            "1",
        ],
    );
    env.ok(&["arena", "run", "pages"]);
    env.ok(&["arena", "show", "pages", "--seeds", "1"]);
    let serve = Serve::start(&env);
    let token = write_token(&env, "arena-page");
    let out = drive(
        b,
        "arena",
        &serve.url,
        &[("COCKPIT_ARENA", "pages"), ("COCKPIT_TOKEN", &token)],
    );
    let line = |prefix: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in {out}"))
            .to_string()
    };
    // One line per program; an entry's trials share a colour, the entries' colours differ.
    let lines = line("OK arena lines ");
    let mut programs: Vec<(String, String, String)> = lines
        .split(' ')
        .map(|l| {
            let mut p = l.splitn(3, ':');
            let mut next = || p.next().unwrap().to_string();
            (next(), next(), next())
        })
        .collect();
    programs.sort();
    let names: Vec<(&str, &str)> = programs
        .iter()
        .map(|(l, t, _)| (l.as_str(), t.as_str()))
        .collect();
    assert_eq!(
        names,
        [("big", "1"), ("big", "2"), ("small", "1"), ("small", "2")],
        "{out}"
    );
    assert_eq!(programs[0].2, programs[1].2, "{out}");
    assert_eq!(programs[2].2, programs[3].2, "{out}");
    assert_ne!(programs[0].2, programs[2].2, "{out}");
    let axis = line("OK arena axis ");
    assert!(
        axis.contains("runs used") && axis.contains("frontier score (lower is better)"),
        "{out}"
    );
    assert!(line("OK arena legend ").starts_with("big,small "), "{out}");
    assert_eq!(line("OK arena texts "), "big,small", "{out}");
    assert!(
        line("OK arena without token: ").contains("write token"),
        "{out}"
    );
    // The ranking, as `arena show` stored it: big steps found more per run.
    let ranking = line("OK arena ranking ");
    let rates: Vec<(&str, f64)> = ranking
        .split(' ')
        .map(|r| {
            let (l, v) = r.split_once('=').unwrap();
            (l, v.parse().unwrap())
        })
        .collect();
    assert_eq!(rates.len(), 2, "{out}");
    assert_eq!(rates[0].0, "big", "{out}");
    assert!(rates[0].1 > rates[1].1 && rates[1].1 > 0.0, "{out}");
    // These runs used no GPU: nothing to draw against GPU-hours, and runs are whole.
    assert!(line("OK arena gpu disabled: ").contains("no GPU"), "{out}");
    let ticks = line("OK arena x ticks ");
    assert!(
        ticks.split(',').all(|t| t.parse::<i64>().is_ok()),
        "{ticks}"
    );
}
