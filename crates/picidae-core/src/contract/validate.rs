//! Validating a contract as written into a [`Contract`]: every semantic problem, located.

use super::locate::*;
use super::raw::*;
use super::*;

pub(super) fn duration(
    raw: &Spanned<RawDuration>,
    field: &str,
    loc: &Locator,
    issues: &mut Vec<ContractIssue>,
) -> Option<Duration> {
    let at = raw.span().start;
    let d = match raw.get_ref() {
        RawDuration::Secs(s) if s.is_finite() && *s > 0.0 => Duration::try_from_secs_f64(*s).ok(),
        RawDuration::Secs(_) => None,
        RawDuration::Text(t) => humantime::parse_duration(t.trim()).ok(),
    };
    match d {
        Some(d) if !d.is_zero() => Some(d),
        _ => {
            issues.push(loc.issue(
                at,
                field,
                "expected a positive number of seconds or a duration like \"30s\" or \"5m\"",
            ));
            None
        }
    }
}

/// A parameter's pattern: a valid regular expression with a capture group around the value.
pub(super) fn check_pattern(
    pat: &Spanned<String>,
    field: &str,
    loc: &Locator,
    issues: &mut Vec<ContractIssue>,
) -> String {
    match regex::RegexBuilder::new(pat.get_ref())
        .multi_line(true)
        .build()
    {
        Ok(re) if re.captures_len() < 2 => issues.push(loc.issue(
            pat.span().start,
            field,
            "pattern needs one capture group around the value, e.g. '^LR = (\\S+)$'",
        )),
        Ok(_) => {}
        Err(e) => issues.push(loc.issue(
            pat.span().start,
            field,
            format!("invalid regular expression: {e}"),
        )),
    }
    pat.get_ref().clone()
}

pub(super) fn non_negative(
    v: &Option<Spanned<i64>>,
    default: i64,
    field: &str,
    loc: &Locator,
    issues: &mut Vec<ContractIssue>,
) -> i64 {
    match v {
        Some(s) if *s.get_ref() < 0 => {
            issues.push(loc.issue(s.span().start, field, "must not be negative"));
            default
        }
        Some(s) => *s.get_ref(),
        None => default,
    }
}

pub(super) fn validate(
    raw: Raw,
    loc: &Locator,
    dir_name: Option<String>,
) -> Result<Contract, ContractError> {
    let mut issues = Vec::new();
    let name = raw
        .benchmark
        .as_ref()
        .and_then(|b| b.name.clone())
        .or(dir_name)
        .unwrap_or_else(|| "benchmark".into());
    let description = raw
        .benchmark
        .as_ref()
        .and_then(|b| b.description.clone())
        .unwrap_or_default();

    let setup = raw.setup.map(|s| {
        if s.command.get_ref().trim().is_empty() {
            issues.push(loc.issue(s.command.span().start, "setup.command", "must not be empty"));
        }
        SetupSpec {
            command: s.command.into_inner(),
        }
    });

    // boundary
    let boundary = match raw.boundary {
        None => {
            issues.push(loc.issue(
                0,
                "boundary",
                "missing table [boundary] with `editable = [...]`: the harness needs to know which files an agent may change",
            ));
            BoundarySpec {
                editable: vec![],
                sandbox_agents: false,
                sandbox_agents_unset: true,
            }
        }
        Some(b) => {
            let b = b.into_inner();
            let sandbox_agents = b.sandbox_agents;
            let sandbox_agents_unset = sandbox_agents.is_none();
            let sandbox_agents = sandbox_agents.unwrap_or(false);
            let span = b.editable.span();
            let globs = b.editable.into_inner();
            if globs.is_empty() {
                issues.push(loc.issue(
                    span.start,
                    "boundary.editable",
                    "must list at least one glob",
                ));
            }
            let mut editable = Vec::new();
            for g in globs {
                if let Err(e) = Glob::new(g.get_ref()) {
                    issues.push(loc.issue(
                        g.span().start,
                        "boundary.editable",
                        format!("invalid glob {:?}: {}", g.get_ref(), e.kind()),
                    ));
                }
                if g.get_ref().starts_with('/') || g.get_ref().split('/').any(|c| c == "..") {
                    issues.push(loc.issue(
                        g.span().start,
                        "boundary.editable",
                        "globs are relative to the benchmark directory and may not leave it",
                    ));
                }
                if g.get_ref() == CONTRACT_FILE {
                    issues.push(loc.issue(
                        g.span().start,
                        "boundary.editable",
                        "the contract itself cannot be editable",
                    ));
                }
                editable.push(g.into_inner());
            }
            BoundarySpec {
                editable,
                sandbox_agents,
                sandbox_agents_unset,
            }
        }
    };

    // run
    let mut budget_metric_at = None;
    let run = match raw.run {
        None => {
            issues.push(loc.issue(
                0,
                "run",
                "missing table [run] with `command` and `time_budget`",
            ));
            None
        }
        Some(r) => {
            let r = r.into_inner();
            if r.command.get_ref().trim().is_empty() {
                issues.push(loc.issue(r.command.span().start, "run.command", "must not be empty"));
            }
            let budget = duration(&r.time_budget, "run.time_budget", loc, &mut issues);
            let timeout = match &r.timeout {
                Some(t) => duration(t, "run.timeout", loc, &mut issues),
                None => budget.map(|b| b * 2 + Duration::from_secs(10)),
            };
            let grace = match &r.grace {
                Some(g) => duration(g, "run.grace", loc, &mut issues),
                None => Some(Duration::from_secs(5)),
            };
            if let (Some(b), Some(t), Some(span)) = (budget, timeout, r.timeout.as_ref()) {
                if t < b {
                    issues.push(loc.issue(
                        span.span().start,
                        "run.timeout",
                        format!(
                            "hard timeout ({:.3}s) is shorter than the time budget ({:.3}s)",
                            t.as_secs_f64(),
                            b.as_secs_f64()
                        ),
                    ));
                }
            }
            let seed_env = match r.seed_env {
                Some(s) => {
                    let v = s.get_ref();
                    let ok = !v.is_empty()
                        && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        && !v.starts_with(|c: char| c.is_ascii_digit());
                    if !ok {
                        issues.push(loc.issue(
                            s.span().start,
                            "run.seed_env",
                            "must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*)",
                        ));
                    }
                    s.into_inner()
                }
                None => "PICIDAE_SEED".into(),
            };
            let log_cap = non_negative(
                &r.log_cap_bytes,
                16 * 1024 * 1024,
                "run.log_cap_bytes",
                loc,
                &mut issues,
            );
            let resources = match r.resources {
                Some(res) => Resources {
                    cpus: non_negative(&res.cpus, 1, "run.resources.cpus", loc, &mut issues) as u32,
                    gpus: non_negative(&res.gpus, 0, "run.resources.gpus", loc, &mut issues) as u32,
                    memory_mb: res.memory_mb.as_ref().map(|_| {
                        non_negative(
                            &res.memory_mb,
                            0,
                            "run.resources.memory_mb",
                            loc,
                            &mut issues,
                        ) as u64
                    }),
                    max_processes: res.max_processes.as_ref().map(|_| {
                        non_negative(
                            &res.max_processes,
                            0,
                            "run.resources.max_processes",
                            loc,
                            &mut issues,
                        ) as u64
                    }),
                },
                None => Resources {
                    cpus: 1,
                    gpus: 0,
                    memory_mb: None,
                    max_processes: None,
                },
            };
            match (budget, timeout, grace) {
                (Some(time_budget), Some(timeout), Some(grace)) => Some(RunSpec {
                    command: r.command.into_inner(),
                    time_budget,
                    timeout,
                    grace,
                    seed_env,
                    artifacts: r.artifacts,
                    log_cap_bytes: log_cap as u64,
                    resources,
                    reuse_checkout: r.reuse_checkout,
                    sandbox: r.sandbox.unwrap_or(false),
                    sandbox_unset: r.sandbox.is_none(),
                    network: r.network.as_ref().map(|n| *n.get_ref()),
                    budget_metric: r.budget_metric.map(|m| {
                        budget_metric_at = Some((m.get_ref().clone(), m.span().start));
                        m.into_inner()
                    }),
                }),
                _ => None,
            }
        }
    };

    // metrics
    let mut metrics = BTreeMap::new();
    let mut primaries = Vec::new();
    // Where the metrics are declared: the first `[metrics...]` line.
    let metrics_at = raw.metrics.as_ref().map(|m| {
        m.get_ref()
            .values()
            .map(|v| v.span().start)
            .min()
            .unwrap_or(m.span().start)
    });
    for (name, m) in raw.metrics.map(Spanned::into_inner).unwrap_or_default() {
        let at = m.span().start;
        let m = m.into_inner();
        let field = format!("metrics.{name}");
        if !valid_metric_name(&name) {
            issues.push(loc.issue(
                at,
                &field,
                "metric names may contain letters, digits, '_', '-', '.' and '/' only",
            ));
        }
        if let (Some(lo), Some(hi)) = (m.min, m.max) {
            if lo > hi {
                issues.push(loc.issue(
                    at,
                    &field,
                    format!("min ({lo}) is greater than max ({hi})"),
                ));
            }
        }
        if m.primary {
            primaries.push((name.clone(), at));
        }
        metrics.insert(
            name.clone(),
            MetricSpec {
                name,
                goal: m.goal,
                source: m.source,
                min: m.min,
                max: m.max,
            },
        );
    }
    let primary_metric = if metrics.is_empty() {
        issues.push(loc.issue(
            metrics_at.unwrap_or(0),
            "metrics",
            "no metrics declared: add a table like [metrics.val_loss] with goal = \"minimize\"",
        ));
        String::new()
    } else if primaries.len() > 1 {
        let (n, at) = &primaries[1];
        issues.push(loc.issue(
            *at,
            &format!("metrics.{n}.primary"),
            format!(
                "only one metric may be primary, but {} are",
                primaries.len()
            ),
        ));
        primaries[0].0.clone()
    } else if let Some((n, _)) = primaries.first() {
        n.clone()
    } else if metrics.len() == 1 {
        metrics.keys().next().cloned().unwrap_or_default()
    } else {
        issues.push(loc.issue(
            metrics_at.unwrap_or(0),
            "metrics",
            "several metrics but none is marked `primary = true`",
        ));
        String::new()
    };

    if let Some((name, at)) = &budget_metric_at {
        if !metrics.contains_key(name) {
            issues.push(loc.issue(
                *at,
                "run.budget_metric",
                format!(
                    "{name:?} is not a declared metric: declare it (e.g. [metrics.{name}] with goal = \"minimize\") so runs can report it"
                ),
            ));
        } else if *name == primary_metric {
            issues.push(loc.issue(
                *at,
                "run.budget_metric",
                "the budget metric must not be the primary metric",
            ));
        }
    }

    // params
    let boundary_set = boundary.globset().ok();
    let mut params: Vec<ParamSpec> = Vec::new();
    for (i, p) in raw.param.into_iter().enumerate() {
        let at = p.span().start;
        let p = p.into_inner();
        let field = |k: &str| format!("param[{i}].{k}");
        if params.iter().any(|q| q.name == *p.name.get_ref()) {
            issues.push(loc.issue(
                p.name.span().start,
                &field("name"),
                format!("duplicate parameter name {:?}", p.name.get_ref()),
            ));
        }
        // Where the value lives: a file (with a pattern) or an environment variable.
        let (file, pattern) = match (&p.env, &p.file, &p.pattern) {
            (Some(env), None, None) => {
                let ok = !env.get_ref().is_empty()
                    && env
                        .get_ref()
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !env.get_ref().starts_with(|c: char| c.is_ascii_digit());
                if !ok {
                    issues.push(loc.issue(
                        env.span().start,
                        &field("env"),
                        format!("{:?} is not an environment variable name", env.get_ref()),
                    ));
                }
                if p.default.is_none() {
                    issues.push(loc.issue(
                        env.span().start,
                        &field("default"),
                        "an environment parameter needs a `default` value (what runs get before any attempt sets it)",
                    ));
                }
                (String::new(), String::new())
            }
            (Some(env), _, _) => {
                issues.push(loc.issue(
                    env.span().start,
                    &field("env"),
                    "give either `env` or `file` and `pattern`, not both",
                ));
                (String::new(), String::new())
            }
            (None, Some(file), Some(pat)) => {
                if p.default.is_some() {
                    issues.push(loc.issue(
                        at,
                        &field("default"),
                        "`default` is for environment parameters; a file parameter's value is read from its file",
                    ));
                }
                if let Some(set) = &boundary_set {
                    if !set.is_match(file.get_ref()) {
                        issues.push(loc.issue(
                            file.span().start,
                            &field("file"),
                            format!(
                                "{:?} is not inside the boundary's editable globs, so the sweep agent could never change it",
                                file.get_ref()
                            ),
                        ));
                    }
                }
                (
                    file.get_ref().clone(),
                    check_pattern(pat, &field("pattern"), loc, &mut issues),
                )
            }
            (None, file, _) => {
                let missing = if file.is_none() { "file" } else { "pattern" };
                issues.push(loc.issue(
                    at,
                    &field(missing),
                    "needs `file` and `pattern` (a value written in a file) or `env` and `default` (a value passed as an environment variable)",
                ));
                (String::new(), String::new())
            }
        };
        let domain = match (&p.choices, &p.min, &p.max) {
            (Some(c), None, None) => {
                let mut values = Vec::new();
                for v in c.get_ref() {
                    match v {
                        toml::Value::String(s) => values.push(s.clone()),
                        toml::Value::Integer(n) => values.push(n.to_string()),
                        toml::Value::Float(f) => values.push(format!("{f:?}")),
                        toml::Value::Boolean(b) => {
                            values.push(if *b { "True".into() } else { "False".into() })
                        }
                        _ => issues.push(loc.issue(
                            c.span().start,
                            &field("choices"),
                            "choices must be strings, numbers or booleans",
                        )),
                    }
                }
                if values.len() < 2 {
                    issues.push(loc.issue(
                        c.span().start,
                        &field("choices"),
                        "need at least two choices",
                    ));
                }
                Some(ParamDomain::Choice { values })
            }
            (None, Some(lo), Some(hi)) => {
                let (l, h) = (*lo.get_ref(), *hi.get_ref());
                if !(l.is_finite() && h.is_finite()) || l >= h {
                    issues.push(loc.issue(
                        lo.span().start,
                        &field("min"),
                        format!("need finite min < max, got min = {l}, max = {h}"),
                    ));
                } else if p.log && l <= 0.0 {
                    issues.push(loc.issue(
                        lo.span().start,
                        &field("min"),
                        "a log-scale range needs min > 0",
                    ));
                }
                Some(ParamDomain::Range {
                    min: l,
                    max: h,
                    log: p.log,
                    integer: p.integer,
                })
            }
            (Some(c), _, _) => {
                issues.push(loc.issue(
                    c.span().start,
                    &field("choices"),
                    "give either `choices` or `min`/`max`, not both",
                ));
                None
            }
            _ => {
                issues.push(loc.issue(
                    at,
                    &format!("param[{i}]"),
                    "needs either `choices = [...]` or both `min` and `max`",
                ));
                None
            }
        };
        if let Some(domain) = domain {
            let default = p.default.as_ref().map(|d| match d.get_ref() {
                toml::Value::String(s) => s.clone(),
                toml::Value::Float(f) => format!("{f:?}"),
                other => other.to_string(),
            });
            if let (Some(d), Some(v)) = (&p.default, &default) {
                if matches!(domain, ParamDomain::Choice { ref values } if !values.contains(v)) {
                    issues.push(loc.issue(
                        d.span().start,
                        &field("default"),
                        format!("default {v:?} is not one of the choices"),
                    ));
                }
            }
            params.push(ParamSpec {
                name: p.name.into_inner(),
                file,
                pattern,
                domain,
                env: p.env.map(|e| e.into_inner()),
                default,
            });
        }
    }

    // policy
    let policy = match raw.policy {
        None => PolicySpec::default(),
        Some(p) => {
            let mut pol = PolicySpec::default();
            for (v, f, dst) in [
                (&p.seeds, "policy.seeds", &mut pol.seeds),
                (
                    &p.baseline_seeds,
                    "policy.baseline_seeds",
                    &mut pol.baseline_seeds,
                ),
                (&p.concurrency, "policy.concurrency", &mut pol.concurrency),
                (&p.max_seeds, "policy.max_seeds", &mut pol.max_seeds),
            ] {
                if let Some(s) = v {
                    if *s.get_ref() < 1 || *s.get_ref() > 1000 {
                        issues.push(loc.issue(s.span().start, f, "must be between 1 and 1000"));
                    } else {
                        *dst = *s.get_ref() as u32;
                    }
                }
            }
            for (v, f, lo, hi, dst) in [
                (
                    &p.min_improvement,
                    "policy.min_improvement",
                    0.0,
                    f64::MAX,
                    &mut pol.min_improvement,
                ),
                (&p.alpha, "policy.alpha", 1e-9, 0.5, &mut pol.alpha),
                (
                    &p.confidence,
                    "policy.confidence",
                    0.5,
                    0.999_999,
                    &mut pol.confidence,
                ),
                (
                    &p.noise_factor,
                    "policy.noise_factor",
                    0.0,
                    100.0,
                    &mut pol.noise_factor,
                ),
            ] {
                if let Some(m) = v {
                    let x = *m.get_ref();
                    if !x.is_finite() || x < lo || x > hi {
                        issues.push(loc.issue(
                            m.span().start,
                            f,
                            if hi == f64::MAX {
                                format!("must be a finite number >= {lo}")
                            } else {
                                format!("must be between {lo} and {hi}")
                            },
                        ));
                    } else {
                        *dst = x;
                    }
                }
            }
            if let Some(b) = p.sequential {
                pol.sequential = b;
            }
            if let Some(b) = p.paired {
                pol.paired = b;
            }
            if let (Some(m), true) = (&p.max_seeds, pol.max_seeds < pol.seeds) {
                issues.push(loc.issue(
                    m.span().start,
                    "policy.max_seeds",
                    format!("must be at least policy.seeds ({})", pol.seeds),
                ));
            }
            if pol.seeds > 1 && pol.baseline_seeds < 2 {
                let at = p
                    .baseline_seeds
                    .as_ref()
                    .or(p.seeds.as_ref())
                    .map(|s| s.span().start)
                    .unwrap_or(0);
                issues.push(loc.issue(
                    at,
                    "policy.baseline_seeds",
                    "verifying candidates over several seeds needs a baseline of at least 2 seeds to compare against",
                ));
            }
            pol
        }
    };

    let hidden = raw.hidden.map(|h| {
        let h = h.into_inner();
        if h.command.get_ref().trim().is_empty() {
            issues.push(loc.issue(
                h.command.span().start,
                "hidden.command",
                "must not be empty",
            ));
        }
        let tolerance = match h.tolerance {
            Some(t) if !t.get_ref().is_finite() || *t.get_ref() < 0.0 => {
                issues.push(loc.issue(
                    t.span().start,
                    "hidden.tolerance",
                    "must be a finite number >= 0",
                ));
                None
            }
            Some(t) => Some(*t.get_ref()),
            None => None,
        };
        for m in &h.metrics {
            if metrics.contains_key(m.get_ref()) {
                issues.push(loc.issue(
                    m.span().start,
                    "hidden.metrics",
                    format!(
                        "{:?} is also a visible metric; hidden metrics must have their own names",
                        m.get_ref()
                    ),
                ));
            }
        }
        if h.metrics.is_empty() {
            issues.push(loc.issue(
                h.command.span().start,
                "hidden.metrics",
                "name at least one metric the evaluator prints, e.g. metrics = [\"test_loss\"]",
            ));
        }
        let min_rank_correlation = match h.min_rank_correlation {
            Some(r) if !(-1.0..=1.0).contains(r.get_ref()) => {
                issues.push(loc.issue(
                    r.span().start,
                    "hidden.min_rank_correlation",
                    "must be between -1 and 1",
                ));
                0.9
            }
            Some(r) => *r.get_ref(),
            None => 0.9,
        };
        let max_error = match h.max_error {
            Some(e) if !e.get_ref().is_finite() || *e.get_ref() < 0.0 => {
                issues.push(loc.issue(
                    e.span().start,
                    "hidden.max_error",
                    "must be a finite number >= 0",
                ));
                None
            }
            e => e.map(|e| *e.get_ref()),
        };
        let goal = h
            .goal
            .or_else(|| metrics.get(&primary_metric).map(|m| m.goal))
            .unwrap_or(Goal::Minimize);
        HiddenSpec {
            command: h.command.into_inner(),
            files: h.files,
            metrics: h.metrics.into_iter().map(|m| m.into_inner()).collect(),
            tolerance,
            goal,
            min_rank_correlation,
            max_error,
        }
    });

    let screen = raw
        .screen
        .and_then(|sc| super::screen::validate(sc, run.as_ref(), loc, &mut issues));

    let gold = raw
        .gold
        .into_iter()
        .map(|g| {
            let g = g.into_inner();
            if hidden.is_none() {
                issues.push(loc.issue(
                    g.path.span().start,
                    "gold.path",
                    "gold cases need a [hidden] evaluator to score them",
                ));
            }
            GoldCase {
                name: g.name,
                path: g.path.into_inner(),
                score: g.score,
            }
        })
        .collect();

    if !issues.is_empty() {
        issues.sort_by_key(|i| (i.line, i.column));
        return Err(ContractError::Invalid(issues));
    }
    let run = run.expect("run is Some when no issues were found");
    Ok(Contract {
        name,
        description,
        setup,
        boundary,
        run,
        metrics,
        primary_metric,
        params,
        policy,
        hidden,
        screen,
        gold,
    })
}

pub(super) fn valid_metric_name(n: &str) -> bool {
    !n.is_empty()
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
}
