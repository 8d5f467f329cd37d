//! Bad input: property tests of the contract parser and the metric-line parsers. Whatever text
//! or bytes they are given, they never panic; every contract error is located (a line of 1 or
//! more and a non-empty field path); guards never keep a non-finite value.

use std::path::Path;

use picidae_core::metrics::{
    check_guards, parse_json_lines, parse_stdout, MetricSource, MetricSpec,
};
use picidae_core::Contract;
use proptest::prelude::*;

const VALID: &str = r#"[benchmark]
name = "fuzz"

[boundary]
editable = ["train.py", "src/**"]

[run]
command = "python train.py"
time_budget = 60
timeout = 90
grace = 5
log_cap_bytes = 1048576

[run.resources]
cpus = 2
gpus = 0
memory_mb = 512
max_processes = 64

[metrics.val_loss]
goal = "minimize"
primary = true
min = 0.0

[metrics.acc]
goal = "maximize"
source = "json"

[policy]
seeds = 3
baseline_seeds = 3
"#;

fn check(text: &str) -> Result<(), TestCaseError> {
    if let Err(e) = Contract::parse(text, Path::new("picidae.toml")) {
        for issue in e.issues() {
            prop_assert!(issue.line >= 1, "line {} in {issue:?}", issue.line);
            prop_assert!(!issue.field.is_empty(), "no field path in {issue:?}");
        }
        prop_assert!(!e.to_string().is_empty());
    }
    Ok(())
}

fn specs() -> Vec<MetricSpec> {
    ["val_loss", "acc", "score"]
        .iter()
        .enumerate()
        .map(|(i, n)| MetricSpec {
            name: n.to_string(),
            goal: if i == 1 {
                picidae_core::Goal::Maximize
            } else {
                picidae_core::Goal::Minimize
            },
            source: if i == 1 {
                MetricSource::Json
            } else {
                MetricSource::Stdout
            },
            min: Some(0.0),
            max: Some(1000.0),
        })
        .collect()
}

/// One mutation of a contract's text.
#[derive(Debug, Clone)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, String),
    DropLine(usize),
    DupLine(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let token = prop_oneof![
        Just("=".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just("\"".to_string()),
        Just("\n".to_string()),
        Just("-1".to_string()),
        Just("1e400".to_string()),
        Just("nan".to_string()),
        Just("[run.resources]\n".to_string()),
        Just("[[param]]\n".to_string()),
        Just("x = ".to_string()),
        "\\PC{0,8}",
    ];
    prop_oneof![
        (0..VALID.len(), 1..20usize).prop_map(|(a, n)| Edit::Delete(a, n)),
        (0..VALID.len(), token).prop_map(|(a, t)| Edit::Insert(a, t)),
        (0..40usize).prop_map(Edit::DropLine),
        (0..40usize).prop_map(Edit::DupLine),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut s = text.to_string();
    let floor = |s: &str, mut i: usize| {
        i = i.min(s.len());
        while !s.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    for e in edits {
        match e {
            Edit::Delete(a, n) => {
                let a = floor(&s, *a);
                let b = floor(&s, a + n);
                s.replace_range(a..b, "");
            }
            Edit::Insert(a, t) => {
                let a = floor(&s, *a);
                s.insert_str(a, t);
            }
            Edit::DropLine(i) | Edit::DupLine(i) => {
                let mut lines: Vec<&str> = s.lines().collect();
                if lines.is_empty() {
                    continue;
                }
                let i = i % lines.len();
                if matches!(e, Edit::DropLine(_)) {
                    lines.remove(i);
                } else {
                    lines.insert(i, lines[i]);
                }
                s = lines.join("\n");
            }
        }
    }
    s
}

#[test]
fn the_reference_contract_parses() {
    Contract::parse(VALID, Path::new("picidae.toml")).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn contract_parser_never_panics_on_arbitrary_text(text in "\\PC{0,400}") {
        check(&text)?;
    }

    #[test]
    fn contract_parser_locates_every_error_in_mutated_contracts(
        edits in proptest::collection::vec(edit(), 1..6)
    ) {
        check(&apply(VALID, &edits))?;
    }

    #[test]
    fn stdout_metrics_never_panic_and_guards_drop_non_finite(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let specs = specs();
        let text = String::from_utf8_lossy(&bytes);
        let (values, _) = parse_stdout(&text, specs.iter());
        for name in values.keys() {
            prop_assert!(specs.iter().any(|s| &s.name == name));
        }
        let violations = check_guards(&values, specs.iter(), "val_loss");
        if values.get("val_loss").is_some_and(|v| !v.is_finite() || *v > 1000.0 || *v < 0.0) {
            prop_assert!(!violations.is_empty(), "{values:?} passed the guards");
        }
    }

    #[test]
    fn stdout_metric_lines_with_odd_values_never_panic(
        name in prop_oneof![Just("val_loss".to_string()), "[a-z_]{1,8}"],
        value in prop_oneof![
            Just("nan".to_string()), Just("1e308".to_string()), Just("-inf".to_string()),
            Just("1e999".to_string()), "\\PC{0,20}", any::<f64>().prop_map(|v| v.to_string()),
        ],
        form in 0..2u8,
    ) {
        let specs = specs();
        let line = if form == 0 { format!("{name}: {value}") } else { format!("METRIC {name}={value}") };
        let (values, _) = parse_stdout(&line, specs.iter());
        let violations = check_guards(&values, specs.iter(), "val_loss");
        if let Some(v) = values.get("val_loss") {
            if !v.is_finite() || *v > 1000.0 {
                prop_assert!(!violations.is_empty(), "{line:?} passed the guards");
            }
        }
    }

    #[test]
    fn json_lines_never_panic(text in "\\PC{0,400}") {
        let specs = specs();
        let (values, errors) = parse_json_lines(&text, specs.iter());
        for e in &errors {
            prop_assert!(e.line >= 1);
        }
        for name in values.keys() {
            prop_assert!(specs.iter().any(|s| &s.name == name));
        }
    }

    #[test]
    fn json_lines_of_json_shaped_input_never_panic(
        lines in proptest::collection::vec(
            prop_oneof![
                Just(r#"{"acc": 0.5}"#.to_string()),
                Just(r#"{"acc": 1e308}"#.to_string()),
                Just(r#"{"acc": "nan"}"#.to_string()),
                Just(r#"{"acc": null}"#.to_string()),
                Just(r#"{"acc": [1, 2]}"#.to_string()),
                Just(r#"[1, 2, 3]"#.to_string()),
                Just(r#"{"acc": 1e999}"#.to_string()),
                "\\{\"[a-z]{1,5}\": -?[0-9]{1,4}(\\.[0-9]{1,4})?\\}",
                "\\PC{0,30}",
            ],
            0..20,
        )
    ) {
        let specs = specs();
        let (values, _errors) = parse_json_lines(&lines.join("\n"), specs.iter());
        let _ = check_guards(&values, specs.iter(), "acc");
    }

    #[test]
    fn json_lines_of_arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let specs = specs();
        let _ = parse_json_lines(&String::from_utf8_lossy(&bytes), specs.iter());
    }
}
