//! The contract as written: the TOML document deserialized with spans, before validation.

use super::*;
// ---------------------------------------------------------------------------------------------
// Raw (as written) form.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    pub(super) benchmark: Option<RawBenchmark>,
    pub(super) setup: Option<RawSetup>,
    pub(super) boundary: Option<Spanned<RawBoundary>>,
    pub(super) run: Option<Spanned<RawRun>>,
    pub(super) metrics: Option<Spanned<BTreeMap<String, Spanned<RawMetric>>>>,
    #[serde(default)]
    pub(super) param: Vec<Spanned<RawParam>>,
    pub(super) policy: Option<RawPolicy>,
    pub(super) hidden: Option<Spanned<RawHidden>>,
    pub(super) screen: Option<Spanned<RawScreen>>,
    #[serde(default)]
    pub(super) gold: Vec<Spanned<RawGold>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBenchmark {
    pub(super) name: Option<String>,
    pub(super) description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSetup {
    pub(super) command: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBoundary {
    pub(super) editable: Spanned<Vec<Spanned<String>>>,
    pub(super) sandbox_agents: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRun {
    pub(super) command: Spanned<String>,
    pub(super) time_budget: Spanned<RawDuration>,
    pub(super) timeout: Option<Spanned<RawDuration>>,
    pub(super) grace: Option<Spanned<RawDuration>>,
    pub(super) seed_env: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) artifacts: Vec<String>,
    pub(super) log_cap_bytes: Option<Spanned<i64>>,
    pub(super) resources: Option<RawResources>,
    #[serde(default)]
    pub(super) reuse_checkout: bool,
    pub(super) sandbox: Option<bool>,
    pub(super) network: Option<Spanned<bool>>,
    pub(super) budget_metric: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawDuration {
    Secs(f64),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawResources {
    pub(super) cpus: Option<Spanned<i64>>,
    pub(super) gpus: Option<Spanned<i64>>,
    pub(super) memory_mb: Option<Spanned<i64>>,
    pub(super) max_processes: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetric {
    pub(super) goal: Goal,
    #[serde(default)]
    pub(super) source: MetricSource,
    #[serde(default)]
    pub(super) primary: bool,
    pub(super) min: Option<f64>,
    pub(super) max: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawParam {
    pub(super) name: Spanned<String>,
    pub(super) file: Option<Spanned<String>>,
    pub(super) pattern: Option<Spanned<String>>,
    pub(super) env: Option<Spanned<String>>,
    pub(super) default: Option<Spanned<toml::Value>>,
    pub(super) min: Option<Spanned<f64>>,
    pub(super) max: Option<Spanned<f64>>,
    #[serde(default)]
    pub(super) log: bool,
    #[serde(default)]
    pub(super) integer: bool,
    pub(super) choices: Option<Spanned<Vec<toml::Value>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    pub(super) seeds: Option<Spanned<i64>>,
    pub(super) baseline_seeds: Option<Spanned<i64>>,
    pub(super) min_improvement: Option<Spanned<f64>>,
    pub(super) alpha: Option<Spanned<f64>>,
    pub(super) confidence: Option<Spanned<f64>>,
    pub(super) noise_factor: Option<Spanned<f64>>,
    pub(super) concurrency: Option<Spanned<i64>>,
    pub(super) sequential: Option<bool>,
    pub(super) max_seeds: Option<Spanned<i64>>,
    pub(super) paired: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHidden {
    pub(super) command: Spanned<String>,
    #[serde(default)]
    pub(super) files: Vec<String>,
    #[serde(default)]
    pub(super) metrics: Vec<Spanned<String>>,
    pub(super) tolerance: Option<Spanned<f64>>,
    pub(super) goal: Option<Goal>,
    pub(super) min_rank_correlation: Option<Spanned<f64>>,
    pub(super) max_error: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScreen {
    pub(super) time_budget: Spanned<RawDuration>,
    pub(super) timeout: Option<Spanned<RawDuration>>,
    pub(super) margin: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGold {
    pub(super) name: String,
    pub(super) path: Spanned<String>,
    pub(super) score: f64,
}
