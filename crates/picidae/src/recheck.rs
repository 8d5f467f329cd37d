//! `picidae findings recheck`: the chain check's report (the measuring is
//! `picidae_sched::recheck`).

use anyhow::Result;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use picidae_sched::recheck::{Ablation, Effect, Holds, Recheck, RecheckOptions};
use picidae_sched::{Project, Runner};

pub fn run(project: &mut Project, program: &str, opts: &RecheckOptions, json: bool) -> Result<()> {
    {
        let shutdown = opts.run.shutdown.clone();
        let _ = ctrlc::set_handler(move || {
            shutdown.escalate();
            eprintln!("\npicidae: stopping the recheck");
        });
    }
    let mut runner = Runner::new(project, program)?;
    let report = runner.recheck(opts, &mut |line| eprintln!("picidae: {line}"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(())
}

fn render(r: &Recheck) -> String {
    let mut out = format!(
        "recheck of {}: {} ({}) on {} fresh seeds ({}..{}), {:.0}% intervals, positive = better\n",
        r.program,
        r.metric,
        serde_json::to_value(r.goal)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        r.seeds.len(),
        r.seeds.first().unwrap_or(&0),
        r.seeds.last().unwrap_or(&0),
        r.confidence * 100.0
    );
    if r.steps.is_empty() {
        out.push_str("nothing was kept: the frontier is the base\n");
        return out;
    }
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header([
        "#",
        "hypothesis",
        "claimed",
        "step on fresh seeds",
        "holds",
        "frontier without it loses",
        "carries",
    ]);
    for s in &r.steps {
        let (loses, carries) = match &s.ablation {
            Ablation::NotRun => ("-".to_string(), "-".to_string()),
            Ablation::Conflict { files } => (
                format!("cannot be removed (conflicts in {})", files.join(", ")),
                "-".to_string(),
            ),
            Ablation::Measured { carries, .. } => {
                (effect(*carries), holds(Holds::of(*carries)).into())
            }
        };
        t.add_row([
            format!("#{}", s.seq),
            s.hypothesis.chars().take(40).collect(),
            s.claimed.map(|c| format!("{c:+.4}")).unwrap_or("-".into()),
            effect(s.effect),
            holds(Holds::of(s.effect)).into(),
            loses,
            carries,
        ]);
    }
    out.push_str(&format!("{t}\n"));
    out.push_str(&format!(
        "frontier against base: {} ({})\n",
        effect(r.total),
        holds(Holds::of(r.total))
    ));
    out.push_str(&summary(r));
    out
}

/// Which changes carry the gain, in a sentence (from the ablation where it ran, else from
/// each step).
fn summary(r: &Recheck) -> String {
    let mut yes = Vec::new();
    let mut no = Vec::new();
    for s in &r.steps {
        let h = match &s.ablation {
            Ablation::Measured { carries, .. } => Holds::of(*carries),
            Ablation::Conflict { .. } => continue,
            Ablation::NotRun => Holds::of(s.effect),
        };
        let name = format!("#{}", s.seq);
        if h == Holds::Yes {
            yes.push(name)
        } else {
            no.push(name)
        }
    }
    let list = |v: &[String]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    format!(
        "carry the gain: {}; do not (or not shown on these seeds): {}\n",
        list(&yes),
        list(&no)
    )
}

fn effect(e: Option<Effect>) -> String {
    match e {
        Some(e) => format!("{:+.4} [{:+.4}, {:+.4}]", e.mean, e.low, e.high),
        None => "-".into(),
    }
}

fn holds(h: Holds) -> &'static str {
    match h {
        Holds::Yes => "yes",
        Holds::Unclear => "unclear",
        Holds::Reversed => "reversed",
        Holds::Unknown => "unknown",
    }
}
