//! `vectorize`: profiles, features and entity limits.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigErrors, DEFAULT_PROFILE, duration};

/// How incoming series are grouped into per-entity feature vectors.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct VectorizeConfig {
    /// Profile to use: `dwcp`, `node`, `per_series`, or a name under `profiles`.
    pub profile: String,
    /// Overrides the profile's entity labels (e.g. `[instance]`).
    pub entity_labels: Option<Vec<String>>,
    /// A feature's newest sample counts for this long; an entity silent this long is dropped.
    #[serde(with = "duration")]
    pub staleness: Duration,
    /// Upper bound on live entities; samples of further new entities are rejected and counted.
    pub max_entities: usize,
    /// New entities created per second at most, in bursts of as many (0: unlimited). Samples
    /// of further new entities are refused as retryable (`new_entity_rate`; remote-write and
    /// OTLP/HTTP 503 with `Retry-After`, OTLP/gRPC `UNAVAILABLE`) while the rest of the request
    /// is stored, so a burst of new series cannot take the memory the existing entities need.
    pub max_new_entities_per_second: u32,
    /// User-defined profiles by name.
    pub profiles: BTreeMap<String, ProfileConfig>,
}

impl Default for VectorizeConfig {
    fn default() -> Self {
        Self {
            profile: DEFAULT_PROFILE.to_string(),
            entity_labels: None,
            staleness: Duration::from_secs(300),
            max_entities: 10_000,
            max_new_entities_per_second: 10_000,
            profiles: BTreeMap::new(),
        }
    }
}

/// A user-defined profile: entity labels and ordered features.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProfileConfig {
    /// Labels whose values identify one entity.
    pub entity_labels: Vec<String>,
    /// Ordered features of the vector.
    pub features: Vec<FeatureConfig>,
}

/// One feature of a profile.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FeatureConfig {
    /// Feature name, used in the `feature` label of the output.
    pub name: String,
    /// Unit, for documentation and dashboards.
    #[serde(default)]
    pub unit: String,
    /// Series selectors (`metric{label="v",label!="v"}`); every match is aggregated.
    pub series: Vec<String>,
    /// Optional denominator selector: the feature becomes `series / per`.
    #[serde(default)]
    pub per: Option<String>,
    /// `gauge` (value as is) or `counter` (reset-aware per-second rate).
    #[serde(default)]
    pub kind: FeatureKind,
    /// How several matching series of one entity combine.
    #[serde(default)]
    pub aggregation: Aggregation,
    /// Several series of one entity feed this feature on purpose (one per interface, CPU,
    /// disk, ...) and are combined by `aggregation`. Off (the default), several series of one
    /// entity in a feature mean the entity labels do not separate what should be entities
    /// (`honor_labels` missing on a scrape job, say): they are still combined, but warned about
    /// and counted in `dwcp_anomaly_vectorize_merged_series_total`.
    #[serde(default)]
    pub merge_series: bool,
    /// Smallest valid value: expected values and normal bands never go below it. Default: 0
    /// for percentages (unit `%`, names ending in `_pct` or holding `percent`), counters'
    /// rates, and bandwidth, latency, jitter, error and byte metrics; none otherwise.
    #[serde(default)]
    pub min: Option<f64>,
    /// Largest valid value: expected values and bands never go above it. Default: 100 for
    /// percentages; none otherwise.
    #[serde(default)]
    pub max: Option<f64>,
    /// Multiplier applied after aggregation.
    #[serde(default = "one")]
    pub scale: f64,
    /// Offset added after scaling.
    #[serde(default)]
    pub offset: f64,
}

fn one() -> f64 {
    1.0
}

/// How a feature's samples are read.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FeatureKind {
    /// The newest value.
    #[default]
    Gauge,
    /// Per-second rate between the two newest samples; a decrease is a counter reset.
    Counter,
}

/// How several series of one entity and feature combine.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// Sum of the series.
    #[default]
    Sum,
    /// Mean of the series.
    Avg,
    /// Largest value.
    Max,
    /// Smallest value.
    Min,
}

impl VectorizeConfig {
    pub(super) fn validate(&self, e: &mut ConfigErrors) {
        const BUILTIN: [&str; 3] = ["dwcp", "node", "per_series"];
        if !BUILTIN.contains(&self.profile.as_str()) && !self.profiles.contains_key(&self.profile) {
            let mut known: Vec<&str> = BUILTIN.to_vec();
            known.extend(self.profiles.keys().map(String::as_str));
            e.invalid(
                "profile",
                format!("unknown profile {:?}, expected one of {}", self.profile, known.join(", ")),
            );
        }
        if self.max_entities == 0 {
            e.invalid("max_entities", "must be >= 1");
        }
        if self.staleness < Duration::from_secs(1) {
            e.invalid("staleness", format!("must be >= 1s, got {:?}", self.staleness));
        }
        if self.entity_labels.as_ref().is_some_and(Vec::is_empty) {
            e.invalid("entity_labels", "must name at least one label");
        }
        for (name, p) in &self.profiles {
            e.scope(&format!("profiles.{name}"), |e| {
                if BUILTIN.contains(&name.as_str()) {
                    e.invalid("", "a custom profile cannot reuse a built-in name");
                }
                if p.features.is_empty() {
                    e.invalid("features", "must list at least one feature");
                }
                for (i, f) in p.features.iter().enumerate() {
                    e.scope(&format!("features[{i}]"), |e| {
                        if f.series.is_empty() {
                            e.invalid("series", "must list at least one selector");
                        }
                        for (j, s) in f.series.iter().chain(f.per.iter()).enumerate() {
                            if let Err(err) = crate::sample::Selector::parse(s) {
                                e.invalid(&format!("series[{j}]"), err.to_string());
                            }
                        }
                        if !f.scale.is_finite() || !f.offset.is_finite() {
                            e.invalid("scale", "scale and offset must be finite");
                        }
                    });
                }
            });
        }
    }
}
