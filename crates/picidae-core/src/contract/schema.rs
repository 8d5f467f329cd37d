//! The shape of a contract: which tables and fields exist and what each holds.
//!
//! The parsed document is checked against this before it is deserialised, so every unknown
//! field and every wrongly typed value is reported in one pass, each where it is written. A bad
//! value is then taken out of the document (an optional field) or replaced by a neutral one (a
//! required field), so the semantic checks still run on everything else; their issues about a
//! field already reported here are dropped by the caller ([`related`]).

use std::borrow::Cow;

use toml::de::{DeArray, DeFloat, DeInteger, DeTable, DeValue};
use toml::Spanned;

use super::{ContractIssue, Locator};

#[derive(Clone, Copy)]
enum Ty {
    Str,
    Int,
    /// An integer or a float.
    Num,
    Bool,
    /// Seconds (a number) or a duration string.
    Duration,
    Any,
    /// An array of anything (checked later).
    Array,
    StrArray,
    /// A string, one of these.
    OneOf(&'static [&'static str]),
    Table(&'static [Field]),
    /// A table of named tables, e.g. `[metrics.NAME]`.
    Tables(&'static [Field]),
    /// An array of tables, e.g. `[[param]]`.
    List(&'static [Field]),
}

impl Ty {
    fn describe(self) -> String {
        match self {
            Ty::Str => "a string".into(),
            Ty::Int => "an integer".into(),
            Ty::Num => "a number".into(),
            Ty::Bool => "a boolean (true or false)".into(),
            Ty::Duration => "a number of seconds or a duration like \"30s\" or \"5m\"".into(),
            Ty::Any => "a value".into(),
            Ty::Array => "an array".into(),
            Ty::StrArray => "an array of strings".into(),
            Ty::OneOf(options) => one_of(options),
            Ty::Table(_) => "a table".into(),
            Ty::Tables(_) => "a table of tables".into(),
            Ty::List(_) => "an array of tables".into(),
        }
    }

    fn accepts(self, v: &DeValue<'_>) -> bool {
        match self {
            Ty::Str => v.is_str(),
            Ty::Int => v.is_integer(),
            Ty::Num => v.is_integer() || v.is_float(),
            Ty::Bool => v.is_bool(),
            Ty::Duration => v.is_integer() || v.is_float() || v.is_str(),
            Ty::Any => true,
            Ty::Array | Ty::StrArray | Ty::List(_) => v.is_array(),
            Ty::OneOf(options) => v.as_str().is_some_and(|s| options.contains(&s)),
            Ty::Table(_) | Ty::Tables(_) => v.is_table(),
        }
    }

    /// A value of this type that passes the shape check, for a required field written wrongly.
    fn placeholder<'i>(self) -> DeValue<'i> {
        match self {
            Ty::Str => DeValue::String(Cow::Borrowed("")),
            Ty::Int | Ty::Duration => DeValue::Integer(DeInteger::default()),
            Ty::Num => DeValue::Float(DeFloat::default()),
            Ty::Bool => DeValue::Boolean(false),
            Ty::Any | Ty::Array | Ty::StrArray | Ty::List(_) => DeValue::Array(DeArray::new()),
            Ty::OneOf(options) => DeValue::String(Cow::Borrowed(options[0])),
            Ty::Table(_) | Ty::Tables(_) => DeValue::Table(DeTable::new()),
        }
    }
}

struct Field {
    key: &'static str,
    ty: Ty,
    required: bool,
}

const fn opt(key: &'static str, ty: Ty) -> Field {
    Field {
        key,
        ty,
        required: false,
    }
}

const fn req(key: &'static str, ty: Ty) -> Field {
    Field {
        key,
        ty,
        required: true,
    }
}

const GOALS: &[&str] = &["minimize", "maximize"];
const SOURCES: &[&str] = &["stdout", "json"];

const BENCHMARK: &[Field] = &[opt("name", Ty::Str), opt("description", Ty::Str)];
const SETUP: &[Field] = &[req("command", Ty::Str)];
const BOUNDARY: &[Field] = &[
    req("editable", Ty::StrArray),
    opt("sandbox_agents", Ty::Bool),
];
const RESOURCES: &[Field] = &[
    opt("cpus", Ty::Int),
    opt("gpus", Ty::Int),
    opt("memory_mb", Ty::Int),
    opt("max_processes", Ty::Int),
];
const RUN: &[Field] = &[
    req("command", Ty::Str),
    req("time_budget", Ty::Duration),
    opt("timeout", Ty::Duration),
    opt("grace", Ty::Duration),
    opt("seed_env", Ty::Str),
    opt("artifacts", Ty::StrArray),
    opt("log_cap_bytes", Ty::Int),
    opt("resources", Ty::Table(RESOURCES)),
    opt("reuse_checkout", Ty::Bool),
    opt("sandbox", Ty::Bool),
    opt("network", Ty::Bool),
    opt("budget_metric", Ty::Str),
];
const METRIC: &[Field] = &[
    req("goal", Ty::OneOf(GOALS)),
    opt("source", Ty::OneOf(SOURCES)),
    opt("primary", Ty::Bool),
    opt("min", Ty::Num),
    opt("max", Ty::Num),
];
const PARAM: &[Field] = &[
    req("name", Ty::Str),
    opt("file", Ty::Str),
    opt("pattern", Ty::Str),
    opt("env", Ty::Str),
    opt("default", Ty::Any),
    opt("min", Ty::Num),
    opt("max", Ty::Num),
    opt("log", Ty::Bool),
    opt("integer", Ty::Bool),
    opt("choices", Ty::Array),
];
const POLICY: &[Field] = &[
    opt("seeds", Ty::Int),
    opt("baseline_seeds", Ty::Int),
    opt("min_improvement", Ty::Num),
    opt("alpha", Ty::Num),
    opt("confidence", Ty::Num),
    opt("noise_factor", Ty::Num),
    opt("concurrency", Ty::Int),
    opt("sequential", Ty::Bool),
    opt("max_seeds", Ty::Int),
    opt("paired", Ty::Bool),
];
const HIDDEN: &[Field] = &[
    req("command", Ty::Str),
    opt("files", Ty::StrArray),
    opt("metrics", Ty::StrArray),
    opt("tolerance", Ty::Num),
    opt("goal", Ty::OneOf(GOALS)),
    opt("min_rank_correlation", Ty::Num),
    opt("max_error", Ty::Num),
];
const SCREEN: &[Field] = &[
    req("time_budget", Ty::Duration),
    opt("timeout", Ty::Duration),
    opt("margin", Ty::Num),
];
const GOLD: &[Field] = &[
    req("name", Ty::Str),
    req("path", Ty::Str),
    req("score", Ty::Num),
];
const CONTRACT: &[Field] = &[
    opt("benchmark", Ty::Table(BENCHMARK)),
    opt("setup", Ty::Table(SETUP)),
    opt("boundary", Ty::Table(BOUNDARY)),
    opt("run", Ty::Table(RUN)),
    opt("metrics", Ty::Tables(METRIC)),
    opt("param", Ty::List(PARAM)),
    opt("policy", Ty::Table(POLICY)),
    opt("hidden", Ty::Table(HIDDEN)),
    opt("screen", Ty::Table(SCREEN)),
    opt("gold", Ty::List(GOLD)),
];

/// Check the whole document, fixing it up so that it deserialises; every problem goes to
/// `issues`.
pub(super) fn check(
    root: &mut Spanned<DeTable<'_>>,
    loc: &Locator,
    issues: &mut Vec<ContractIssue>,
) {
    let at = root.span().start;
    check_table(root.get_mut(), at, CONTRACT, "", loc, issues);
}

/// Whether an issue about field `a` and one about field `b` concern the same value: equal, or
/// one inside the other (`param[0]` and `param[0].min`, `boundary.editable[1]`).
pub(super) fn related(a: &str, b: &str) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    long.strip_prefix(short)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn one_of(options: &[&str]) -> String {
    let quoted: Vec<String> = options.iter().map(|o| format!("\"{o}\"")).collect();
    format!("one of {}", quoted.join(", "))
}

fn check_table(
    table: &mut DeTable<'_>,
    at: usize,
    fields: &[Field],
    path: &str,
    loc: &Locator,
    issues: &mut Vec<ContractIssue>,
) {
    let unknown: Vec<(String, usize)> = table
        .keys()
        .filter(|k| !fields.iter().any(|f| f.key == k.get_ref().as_ref()))
        .map(|k| (k.get_ref().to_string(), k.span().start))
        .collect();
    for (key, start) in unknown {
        issues.push(loc.issue(start, &join(path, &key), unknown_message(&key, fields)));
        table.remove(key.as_str());
    }
    for f in fields {
        let field = join(path, f.key);
        let Some(v) = table.get_mut(f.key) else {
            if f.required {
                issues.push(loc.issue(at, &field, format!("missing field `{}`", f.key)));
                let span = at..at;
                table.insert(
                    Spanned::new(span.clone(), Cow::Borrowed(f.key)),
                    Spanned::new(span, f.ty.placeholder()),
                );
            }
            continue;
        };
        if check_value(v, f.ty, &field, loc, issues) {
            continue;
        }
        if f.required {
            let span = v.span();
            *v = Spanned::new(span, f.ty.placeholder());
        } else {
            table.remove(f.key);
        }
    }
}

/// Check one value; false when it is unusable (reported).
fn check_value(
    v: &mut Spanned<DeValue<'_>>,
    ty: Ty,
    field: &str,
    loc: &Locator,
    issues: &mut Vec<ContractIssue>,
) -> bool {
    let at = v.span().start;
    if let DeValue::Integer(i) = v.get_ref() {
        if i64::from_str_radix(i.as_str(), i.radix()).is_err() {
            issues.push(loc.issue(at, field, "integer out of range (more than 64 bits)"));
            return false;
        }
    }
    if !ty.accepts(v.get_ref()) {
        let message = match (ty, v.get_ref()) {
            (Ty::OneOf(options), DeValue::String(s)) => {
                format!("expected {}, found \"{s}\"", one_of(options))
            }
            (Ty::List(_), DeValue::Table(_)) => {
                let key = field.rsplit('.').next().unwrap_or(field);
                format!("expected an array of tables: write each entry as [[{key}]]")
            }
            (ty, found) => format!("expected {}, found {}", ty.describe(), found.type_str()),
        };
        issues.push(loc.issue(at, field, message));
        return false;
    }
    match (ty, v.get_mut()) {
        (Ty::StrArray, DeValue::Array(items)) => {
            let mut bad = Vec::new();
            for (i, item) in items.iter().enumerate() {
                if !item.get_ref().is_str() {
                    issues.push(loc.issue(
                        item.span().start,
                        &format!("{field}[{i}]"),
                        format!("expected a string, found {}", item.get_ref().type_str()),
                    ));
                    bad.push(i);
                }
            }
            if !bad.is_empty() {
                let old = std::mem::replace(items, DeArray::new());
                *items = old
                    .into_iter()
                    .enumerate()
                    .filter(|(i, _)| !bad.contains(i))
                    .map(|(_, item)| item)
                    .collect();
            }
        }
        (Ty::Table(fields), DeValue::Table(t)) => check_table(t, at, fields, field, loc, issues),
        (Ty::Tables(fields), DeValue::Table(t)) => {
            let mut bad = Vec::new();
            for (name, entry) in t.iter_mut() {
                let path = format!("{field}.{}", name.get_ref());
                let entry_at = entry.span().start;
                match entry.get_mut() {
                    DeValue::Table(inner) => {
                        check_table(inner, entry_at, fields, &path, loc, issues)
                    }
                    other => {
                        issues.push(loc.issue(
                            entry_at,
                            &path,
                            format!("expected a table, found {}", other.type_str()),
                        ));
                        bad.push(name.get_ref().to_string());
                    }
                }
            }
            for name in bad {
                t.remove(name.as_str());
            }
        }
        (Ty::List(fields), DeValue::Array(items)) => {
            let mut bad = Vec::new();
            for (i, entry) in items.iter_mut().enumerate() {
                let path = format!("{field}[{i}]");
                let entry_at = entry.span().start;
                match entry.get_mut() {
                    DeValue::Table(inner) => {
                        check_table(inner, entry_at, fields, &path, loc, issues)
                    }
                    other => {
                        issues.push(loc.issue(
                            entry_at,
                            &path,
                            format!("expected a table, found {}", other.type_str()),
                        ));
                        bad.push(i);
                    }
                }
            }
            if !bad.is_empty() {
                let old = std::mem::replace(items, DeArray::new());
                *items = old
                    .into_iter()
                    .enumerate()
                    .filter(|(i, _)| !bad.contains(i))
                    .map(|(_, item)| item)
                    .collect();
            }
        }
        _ => {}
    }
    true
}

fn unknown_message(key: &str, fields: &[Field]) -> String {
    let known: Vec<String> = fields.iter().map(|f| format!("`{}`", f.key)).collect();
    let close = fields
        .iter()
        .map(|f| (edit_distance(key, f.key), f.key))
        .filter(|(d, k)| *d <= 2 && *d < k.len())
        .min_by_key(|(d, _)| *d);
    match close {
        Some((_, k)) => format!("unknown field `{key}`; did you mean `{k}`?"),
        None => format!(
            "unknown field `{key}`; expected one of {}",
            known.join(", ")
        ),
    }
}

/// Levenshtein distance, for suggesting the field a typo meant.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
