//! Contract parsing: a good contract loads; each kind of mistake is reported with file, line,
//! column and field.

use std::path::Path;

use picidae_core::{Contract, ContractError, Goal, ParamDomain};

const GOOD: &str = r#"[benchmark]
name = "toy"

[setup]
command = "python3 prepare.py"

[boundary]
editable = ["train.py", "lib/*.py"]

[run]
command = "python3 train.py"
time_budget = "5s"
timeout = 20
grace = 1.5

[metrics.val_loss]
goal = "minimize"
primary = true
min = 0.0

[metrics.acc]
goal = "maximize"
source = "json"

[[param]]
name = "lr"
file = "train.py"
pattern = '^LR = (\S+)$'
min = 0.001
max = 1.0
log = true

[[param]]
name = "width"
file = "train.py"
pattern = '^WIDTH = (\S+)$'
choices = [4, 8, 16]

[policy]
seeds = 3
baseline_seeds = 4
"#;

fn parse(text: &str) -> Result<Contract, ContractError> {
    Contract::parse(text, Path::new("bench/picidae.toml"))
}

fn single_issue(text: &str) -> picidae_core::ContractIssue {
    let err = parse(text).expect_err("contract should be rejected");
    let issues = err.issues();
    assert!(!issues.is_empty(), "no located issues in {err}");
    issues[0].clone()
}

#[test]
fn good_contract_loads_with_defaults() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.name, "toy");
    assert_eq!(c.primary_metric, "val_loss");
    assert_eq!(c.primary().goal, Goal::Minimize);
    assert_eq!(c.run.time_budget.as_secs_f64(), 5.0);
    assert_eq!(c.run.timeout.as_secs_f64(), 20.0);
    assert_eq!(c.run.grace.as_secs_f64(), 1.5);
    assert_eq!(c.run.seed_env, "PICIDAE_SEED");
    assert_eq!(c.params.len(), 2);
    assert!(
        matches!(c.params[1].domain, ParamDomain::Choice { ref values } if values == &["4", "8", "16"])
    );
    assert_eq!(c.policy.seeds, 3);
    assert_eq!(c.policy.baseline_seeds, 4);
    assert!(c.policy.verifies());
    assert_eq!(c.policy.alpha, 0.05);
}

/// Every `[policy]` field the contract page documents is accepted, and each value is read.
#[test]
fn every_policy_field_is_accepted_and_read() {
    let text = GOOD.replace(
        "baseline_seeds = 4\n",
        "baseline_seeds = 4\nmin_improvement = 0.01\nalpha = 0.1\nconfidence = 0.9\n\
         noise_factor = 2.0\nconcurrency = 4\nsequential = false\nmax_seeds = 6\npaired = false\n",
    );
    let c = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    let p = &c.policy;
    assert_eq!((p.min_improvement, p.alpha, p.confidence), (0.01, 0.1, 0.9));
    assert_eq!((p.noise_factor, p.concurrency), (2.0, 4));
    assert_eq!((p.sequential, p.max_seeds, p.paired), (false, 6, false));
    // A wrongly typed one is named where it is.
    let i = single_issue(&GOOD.replace("baseline_seeds = 4\n", "baseline_seeds = 4\npaired = 1\n"));
    assert_eq!(i.field, "policy.paired", "{i}");
}

/// `[screen]`: read with its defaults; a screen no cheaper than a full run, a negative margin
/// and an unknown field are each named where they are written.
#[test]
fn a_screen_stage_is_read_and_checked() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.screen, None);
    let with = |table: &str| format!("{GOOD}\n[screen]\n{table}");
    let c = parse(&with("time_budget = \"2s\"\n")).unwrap_or_else(|e| panic!("{e}"));
    let s = c.screen.expect("a [screen] table");
    assert_eq!(s.time_budget.as_secs_f64(), 2.0);
    // Twice the budget and 10 s, capped at the run's hard timeout (20 s).
    assert_eq!(s.timeout.as_secs_f64(), 14.0);
    assert_eq!(s.margin, 0.0);
    let c = parse(&with("time_budget = 1\ntimeout = 3\nmargin = 0.25\n")).unwrap();
    let s = c.screen.unwrap();
    assert_eq!((s.timeout.as_secs_f64(), s.margin), (3.0, 0.25));

    let lines = GOOD.lines().count();
    let i = single_issue(&with("time_budget = \"5s\"\n"));
    assert_eq!(
        (i.field.as_str(), i.line),
        ("screen.time_budget", lines + 3),
        "{i}"
    );
    assert!(i.message.contains("cheaper than a full run"), "{i}");
    let i = single_issue(&with("time_budget = 1\nmargin = -1\n"));
    assert_eq!(
        (i.field.as_str(), i.line),
        ("screen.margin", lines + 4),
        "{i}"
    );
    let i = single_issue(&with("time_budget = 1\ntimeout = 0.5\n"));
    assert_eq!(i.field, "screen.timeout", "{i}");
    let i = single_issue(&with("time_budget = 1\nseeds = 2\n"));
    assert_eq!(i.field, "screen.seeds", "{i}");
    let i = single_issue(&with("margin = 1\n"));
    assert_eq!(i.field, "screen.time_budget", "{i}");
}

#[test]
fn bad_goal_names_line_and_field() {
    let text = GOOD.replace("goal = \"minimize\"", "goal = \"smaller\"");
    let i = single_issue(&text);
    assert_eq!(i.line, 17, "{i}");
    assert_eq!(i.field, "metrics.val_loss.goal", "{i}");
    assert!(i.message.contains("minimize"), "{i}");
    assert_eq!(i.file, Path::new("bench/picidae.toml"));
    let shown = i.to_string();
    assert!(shown.starts_with("bench/picidae.toml:17:"), "{shown}");
}

#[test]
fn unknown_field_is_reported_where_it_is() {
    let text = GOOD.replace("grace = 1.5", "grace = 1.5\ntimout = 3");
    let i = single_issue(&text);
    assert_eq!(i.line, 15, "{i}");
    assert_eq!(i.field, "run.timout", "{i}");
    assert!(i.message.contains("timout"), "{i}");
}

#[test]
fn syntax_error_has_a_line() {
    let text = GOOD.replace("timeout = 20", "timeout = = 20");
    let i = single_issue(&text);
    assert_eq!(i.line, 13, "{i}");
}

#[test]
fn semantic_errors_are_all_reported_with_fields() {
    let text = GOOD
        .replace("timeout = 20", "timeout = 2")
        .replace("'^LR = (\\S+)$'", "'^LR = \\S+$'")
        .replace("seeds = 3", "seeds = 0");
    let err = parse(&text).unwrap_err();
    let fields: Vec<(&str, usize)> = err
        .issues()
        .iter()
        .map(|i| (i.field.as_str(), i.line))
        .collect();
    assert!(fields.contains(&("run.timeout", 13)), "{err}");
    assert!(fields.contains(&("param[0].pattern", 28)), "{err}");
    assert!(fields.contains(&("policy.seeds", 40)), "{err}");
}

#[test]
fn invalid_glob_and_param_outside_boundary() {
    let text = GOOD.replace("\"lib/*.py\"", "\"lib/[.py\"");
    let i = single_issue(&text);
    assert_eq!(
        (i.field.as_str(), i.line, i.column),
        ("boundary.editable", 8, 25),
        "{i}"
    );
    let text = GOOD.replace(
        "file = \"train.py\"\npattern = '^WIDTH",
        "file = \"prepare.py\"\npattern = '^WIDTH",
    );
    let i = single_issue(&text);
    assert_eq!((i.field.as_str(), i.line), ("param[1].file", 35), "{i}");
}

#[test]
fn missing_sections_are_named() {
    let err = parse("[run]\ncommand = \"x\"\ntime_budget = 1\n").unwrap_err();
    let fields: Vec<&str> = err.issues().iter().map(|i| i.field.as_str()).collect();
    assert!(fields.contains(&"boundary"), "{err}");
    assert!(fields.contains(&"metrics"), "{err}");
}

#[test]
fn two_primaries_and_bad_duration() {
    let text = GOOD
        .replace("source = \"json\"", "source = \"json\"\nprimary = true")
        .replace("time_budget = \"5s\"", "time_budget = \"soon\"");
    let err = parse(&text).unwrap_err();
    let fields: Vec<&str> = err.issues().iter().map(|i| i.field.as_str()).collect();
    assert!(fields.contains(&"run.time_budget"), "{err}");
    assert!(fields.iter().any(|f| f.ends_with(".primary")), "{err}");
}

#[test]
fn load_names_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = Contract::load(dir.path()).unwrap_err();
    assert!(err.to_string().contains("picidae.toml"), "{err}");
}

#[test]
fn verification_needs_a_multi_seed_baseline() {
    let text = GOOD.replace("baseline_seeds = 4\n", "");
    let i = single_issue(&text);
    assert_eq!(i.field, "policy.baseline_seeds", "{i}");
    let text = GOOD.replace("baseline_seeds = 4", "baseline_seeds = 4\nalpha = 2.0");
    let i = single_issue(&text);
    assert_eq!((i.field.as_str(), i.line), ("policy.alpha", 42), "{i}");
}

#[test]
fn environment_parameters_need_a_default_and_exclude_files() {
    let env_param =
        "\n[[param]]\nname = \"dropout\"\nenv = \"DROPOUT\"\ndefault = 0.1\nmin = 0.0\nmax = 0.5\n";
    let c = parse(&format!("{GOOD}{env_param}")).unwrap();
    let p = c.params.iter().find(|p| p.name == "dropout").unwrap();
    assert_eq!(
        (p.env.as_deref(), p.default.as_deref()),
        (Some("DROPOUT"), Some("0.1"))
    );
    assert!(p.is_env() && p.file.is_empty());

    let no_default = env_param.replace("default = 0.1\n", "");
    let i = single_issue(&format!("{GOOD}{no_default}"));
    assert_eq!(i.field, "param[2].default", "{i}");

    let both = env_param.replace(
        "env = \"DROPOUT\"",
        "env = \"DROPOUT\"\nfile = \"train.py\"",
    );
    let i = single_issue(&format!("{GOOD}{both}"));
    assert_eq!(i.field, "param[2].env", "{i}");

    let bad_name = env_param.replace("\"DROPOUT\"", "\"1-BAD\"");
    let i = single_issue(&format!("{GOOD}{bad_name}"));
    assert_eq!(i.field, "param[2].env", "{i}");

    let neither = "\n[[param]]\nname = \"x\"\nmin = 0.0\nmax = 1.0\n";
    let i = single_issue(&format!("{GOOD}{neither}"));
    assert_eq!(i.field, "param[2].file", "{i}");
}

#[test]
fn every_shape_and_semantic_mistake_is_reported_in_one_pass() {
    let text = GOOD
        .replace("grace = 1.5", "grace = 1.5\ntimout = 3")
        .replace("seeds = 3", "seeds = \"three\"")
        .replace("goal = \"maximize\"", "goal = \"bigger\"")
        .replace("\"lib/*.py\"", "\"lib/[.py\"");
    let err = parse(&text).unwrap_err();
    let got: Vec<(&str, usize)> = err
        .issues()
        .iter()
        .map(|i| (i.field.as_str(), i.line))
        .collect();
    for want in [
        ("boundary.editable", 8),
        ("run.timout", 15),
        ("metrics.acc.goal", 23),
        ("policy.seeds", 41),
    ] {
        assert!(got.contains(&want), "{want:?} missing from {got:?}:\n{err}");
    }
    assert_eq!(got.len(), 4, "{err}");
    let timout = &err.issues()[1];
    assert!(
        timout.message.contains("did you mean `timeout`"),
        "{timout}"
    );
    assert_eq!(timout.column, 1, "{timout}");
    let seeds = err
        .issues()
        .iter()
        .find(|i| i.field == "policy.seeds")
        .unwrap();
    assert!(seeds.message.contains("integer"), "{seeds}");
    assert_eq!(seeds.column, 9, "{seeds}");
}

#[test]
fn a_wrongly_typed_required_field_is_reported_once() {
    let text = GOOD.replace("command = \"python3 train.py\"", "command = 3");
    let err = parse(&text).unwrap_err();
    assert_eq!(err.issues().len(), 1, "{err}");
    let i = &err.issues()[0];
    assert_eq!((i.field.as_str(), i.line), ("run.command", 11), "{i}");
    assert!(i.message.contains("string"), "{i}");

    let text = GOOD.replace("time_budget = \"5s\"\n", "");
    let err = parse(&text).unwrap_err();
    assert_eq!(err.issues().len(), 1, "{err}");
    let i = &err.issues()[0];
    assert_eq!((i.field.as_str(), i.line), ("run.time_budget", 10), "{i}");
    assert!(i.message.contains("missing"), "{i}");
}

#[test]
fn wrong_elements_and_wrong_tables_are_named() {
    let text = GOOD
        .replace("\"lib/*.py\"", "3")
        .replace("[[param]]\nname = \"width\"", "[[param]]\nname = 4")
        .replace("min = 0.0\n", "min = \"zero\"\n");
    let err = parse(&text).unwrap_err();
    let got: Vec<(&str, usize)> = err
        .issues()
        .iter()
        .map(|i| (i.field.as_str(), i.line))
        .collect();
    assert_eq!(
        got,
        [
            ("boundary.editable[1]", 8),
            ("metrics.val_loss.min", 19),
            ("param[1].name", 34)
        ],
        "{err}"
    );

    let width = "[[param]]\nname = \"width\"\nfile = \"train.py\"\npattern = '^WIDTH = (\\S+)$'\nchoices = [4, 8, 16]\n";
    assert!(GOOD.contains(width));
    let text = GOOD.replace(width, "").replace("[[param]]", "[param]");
    let err = parse(&text).unwrap_err();
    assert!(
        err.issues()
            .iter()
            .any(|i| i.field == "param" && i.message.contains("[[param]]")),
        "{err}"
    );
}

#[test]
fn no_primary_metric_is_located_at_the_metrics() {
    let text = GOOD.replace("primary = true\n", "");
    let err = parse(&text).unwrap_err();
    let i = &err.issues()[0];
    assert_eq!((i.field.as_str(), i.line), ("metrics", 16), "{i}");
}

#[test]
fn an_integer_beyond_64_bits_does_not_stop_the_other_checks() {
    let text = GOOD
        .replace("timeout = 20", "timeout = 99999999999999999999")
        .replace("seeds = 3", "seeds = 0");
    let err = parse(&text).unwrap_err();
    let got: Vec<(&str, usize)> = err
        .issues()
        .iter()
        .map(|i| (i.field.as_str(), i.line))
        .collect();
    assert_eq!(got, [("run.timeout", 13), ("policy.seeds", 40)], "{err}");
    assert!(err.issues()[0].message.contains("out of range"), "{err}");
}

#[test]
fn several_syntax_errors_are_reported_together() {
    let text = GOOD
        .replace("timeout = 20", "timeout = = 20")
        .replace("seeds = 3", "seeds = 3 3");
    let err = parse(&text).unwrap_err();
    let lines: Vec<usize> = err.issues().iter().map(|i| i.line).collect();
    assert_eq!(lines, [13, 40], "{err}");
}
