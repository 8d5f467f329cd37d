//! The loop's live display: an indicatif bar (attempts, best value, last decision) on a
//! terminal, or one line per event with `--plain` or when stderr is not a terminal.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use picidae_core::AttemptKind;
use picidae_sched::{LoopEvent, LoopSummary};

pub struct Display {
    bar: Option<ProgressBar>,
    metric: String,
    best: Option<f64>,
}

fn fmt_value(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.6}")).unwrap_or_else(|| "-".into())
}

impl Display {
    pub fn new(max: Option<u64>, metric: &str, plain: bool) -> Display {
        let bar = (!plain && std::io::stderr().is_terminal()).then(|| {
            let bar = match max {
                Some(n) => ProgressBar::new(n),
                None => ProgressBar::no_length(),
            };
            let template = if max.is_some() {
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} attempts  {msg}"
            } else {
                "{spinner} [{elapsed_precise}] {pos} attempts  {msg}"
            };
            bar.set_style(
                ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
            bar
        });
        Display {
            bar,
            metric: metric.to_string(),
            best: None,
        }
    }

    fn line(&self, s: String) {
        match &self.bar {
            Some(b) => b.println(s),
            None => eprintln!("{s}"),
        }
    }

    pub fn event(&mut self, e: &LoopEvent) {
        match e {
            LoopEvent::Recovered {
                runs_interrupted,
                runs_readopted,
                attempts_resumed,
                attempts_failed,
            } => self.line(format!(
                "recovered: {runs_readopted} remote run(s) re-adopted, {runs_interrupted} interrupted run(s) closed, {attempts_resumed} attempt(s) resumed, {attempts_failed} marked failed"
            )),
            LoopEvent::Setup { cached, secs } => {
                if !cached {
                    self.line(format!("setup done in {secs:.1}s"));
                }
            }
            LoopEvent::RunStarted { seq, seed, .. } => {
                if let Some(b) = &self.bar {
                    b.set_message(format!(
                        "best {} {} | running #{seq} seed {seed}",
                        self.metric,
                        fmt_value(self.best)
                    ));
                }
            }
            LoopEvent::RunFinished { .. } | LoopEvent::Proposed { .. } => {}
            LoopEvent::Calibrated {
                passed,
                rank_correlation,
                max_error,
            } => self.line(format!(
                "evaluator calibration {}: rank correlation {}, max error {}",
                if *passed { "passed" } else { "FAILED (findings cannot be validated)" },
                fmt_value(*rank_correlation),
                fmt_value(*max_error)
            )),
            LoopEvent::Verifying {
                seq,
                finding_id,
                seeds,
            } => self.line(format!(
                "#{seq:<4} candidate passed the screen on its first seed: finding {finding_id}, verifying over up to {seeds} seeds"
            )),
            LoopEvent::Power(p) => match &p.warning {
                Some(w) => self.line(format!("warning: {w}")),
                None => self.line(format!(
                    "power: with up to {} seed(s), effects of {:.4} or more are found reliably (one run's spread {:.4})",
                    p.seeds, p.min_effect, p.run_sd
                )),
            },
            LoopEvent::Judged {
                seq,
                finding_id,
                state,
                reason,
            } => self.line(format!("#{seq:<4} finding {finding_id} {state}: {reason}")),
            LoopEvent::Rejected {
                seq,
                status,
                reason,
            } => {
                self.line(format!("#{seq:<4} {status:<9} {reason}"));
                self.tick(&format!("#{seq} {status}"));
            }
            LoopEvent::Decided {
                seq,
                kind,
                status,
                value,
                frontier,
                hypothesis,
            } => {
                self.best = *frontier;
                let tag = if *kind == AttemptKind::Baseline {
                    "baseline".to_string()
                } else {
                    status.to_string()
                };
                self.line(format!(
                    "#{seq:<4} {tag:<9} {}={}  {}",
                    self.metric,
                    fmt_value(*value),
                    hypothesis
                ));
                if *kind != AttemptKind::Baseline {
                    self.tick(&format!("#{seq} {status}"));
                } else if let Some(b) = &self.bar {
                    b.set_message(format!("baseline {}", fmt_value(*value)));
                }
            }
        }
    }

    fn tick(&self, last: &str) {
        if let Some(b) = &self.bar {
            b.inc(1);
            b.set_message(format!(
                "best {} {} | last {last}",
                self.metric,
                fmt_value(self.best)
            ));
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

pub fn print_summary(s: &LoopSummary, metric: &str) {
    println!(
        "{} attempts: {} kept, {} discarded, {} rejected, {} failed",
        s.attempts, s.kept, s.discarded, s.rejected, s.failed
    );
    if s.merged > 0 {
        println!(
            "{} merged: won on a frontier that moved while they ran, carried onto the new one",
            s.merged
        );
    }
    if let (Some(b), Some(f)) = (s.baseline, s.frontier) {
        let rel = if b != 0.0 {
            format!(" ({:+.2}%)", (f - b) / b.abs() * 100.0)
        } else {
            String::new()
        };
        println!("{metric}: baseline {b:.6} → frontier {f:.6}{rel}");
    }
    if let Some(why) = &s.stopped {
        println!("stopped: {why}");
    }
}
