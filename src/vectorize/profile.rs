//! Profiles: how a set of series becomes one entity's ordered feature vector.

use std::sync::Arc;

use crate::config::{Aggregation, FeatureConfig, FeatureKind, ProfileConfig, VectorizeConfig};

use crate::sample::{LABEL_INSTANCE, LABEL_JOB, Selector, SelectorError};

/// How entities are formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileMode {
    /// Entity labels pick the entity, selectors pick the feature.
    Grouped,
    /// Every series is its own one-feature entity (`per_series`).
    PerSeries,
}

/// One feature: its selectors and how to turn samples into a value.
#[derive(Debug, Clone)]
pub struct Feature {
    /// Name used in output labels.
    pub name: String,
    /// Unit (documentation only).
    pub unit: String,
    /// Numerator selectors.
    pub series: Vec<Selector>,
    /// Optional denominator selector.
    pub per: Option<Selector>,
    /// Gauge or counter.
    pub kind: FeatureKind,
    /// Aggregation across series.
    pub aggregation: Aggregation,
    /// Several series per entity are expected (see `FeatureConfig::merge_series`).
    pub merge_series: bool,
    /// Valid range: expected values and normal bands are clamped to it (`FeatureConfig::min`,
    /// `max`, or the defaults of [`default_range`]).
    pub range: (f64, f64),
    /// Applied after aggregation: `offset + scale * value`.
    pub scale: f64,
    /// See `scale`.
    pub offset: f64,
}

/// A resolved profile.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Profile name (`dwcp`, `node`, `per_series`, or a custom one); the `profile` output label.
    pub name: String,
    /// Grouped or per-series.
    pub mode: ProfileMode,
    /// Labels whose values identify an entity (unused for `per_series`).
    pub entity_labels: Vec<String>,
    /// Ordered features.
    pub features: Vec<Feature>,
}

impl Profile {
    /// Resolves the profile named in `cfg` (built-in or custom), with entity-label overrides.
    pub fn from_config(cfg: &VectorizeConfig) -> Result<Arc<Self>, SelectorError> {
        let mut p = match cfg.profile.as_str() {
            "dwcp" => Self::build("dwcp", &dwcp())?,
            "node" => Self::build("node", &node())?,
            "per_series" => Profile {
                name: "per_series".into(),
                mode: ProfileMode::PerSeries,
                entity_labels: Vec::new(),
                features: vec![Feature {
                    name: "value".into(),
                    unit: String::new(),
                    series: Vec::new(),
                    per: None,
                    kind: FeatureKind::Gauge,
                    aggregation: Aggregation::Sum,
                    merge_series: false,
                    range: (f64::NEG_INFINITY, f64::INFINITY),
                    scale: 1.0,
                    offset: 0.0,
                }],
            },
            other => {
                let custom = cfg.profiles.get(other).ok_or_else(|| SelectorError {
                    selector: other.to_string(),
                    reason: "unknown profile".into(),
                })?;
                Self::build(other, custom)?
            }
        };
        if let Some(labels) = &cfg.entity_labels {
            p.entity_labels = labels.clone();
        }
        Ok(Arc::new(p))
    }

    fn build(name: &str, cfg: &ProfileConfig) -> Result<Self, SelectorError> {
        let features = cfg
            .features
            .iter()
            .map(|f| {
                Ok(Feature {
                    name: f.name.clone(),
                    unit: f.unit.clone(),
                    series: f.series.iter().map(|s| Selector::parse(s)).collect::<Result<_, _>>()?,
                    per: f.per.as_deref().map(Selector::parse).transpose()?,
                    kind: f.kind,
                    aggregation: f.aggregation,
                    merge_series: f.merge_series,
                    range: {
                        let (lo, hi) = default_range(&f.name, &f.unit, f.kind);
                        (f.min.unwrap_or(lo), f.max.unwrap_or(hi))
                    },
                    scale: f.scale,
                    offset: f.offset,
                })
            })
            .collect::<Result<_, SelectorError>>()?;
        Ok(Profile {
            name: name.to_string(),
            mode: ProfileMode::Grouped,
            entity_labels: cfg.entity_labels.clone(),
            features,
        })
    }

    /// Feature names in vector order.
    pub fn feature_names(&self) -> Vec<String> {
        self.features.iter().map(|f| f.name.clone()).collect()
    }
}

fn feature(
    name: &str,
    unit: &str,
    series: &[&str],
    kind: FeatureKind,
    aggregation: Aggregation,
) -> FeatureConfig {
    FeatureConfig {
        name: name.into(),
        unit: unit.into(),
        series: series.iter().map(|s| s.to_string()).collect(),
        per: None,
        kind,
        aggregation,
        merge_series: false,
        min: None,
        max: None,
        scale: 1.0,
        offset: 0.0,
    }
}

/// The valid range of a feature the profile gives none: `[0, 100]` for percentages (unit `%`,
/// a name ending in `_pct` or holding `percent`), `[0, ∞)` for counters' rates and for
/// bandwidth, latency, jitter, error, byte and load metrics, unbounded otherwise.
pub fn default_range(name: &str, unit: &str, kind: FeatureKind) -> (f64, f64) {
    let name = name.to_ascii_lowercase();
    if unit == "%" || name.ends_with("_pct") || name.contains("percent") {
        return (0.0, 100.0);
    }
    const NON_NEGATIVE: [&str; 9] =
        ["bandwidth", "latency", "jitter", "error", "bytes", "mbps", "_ms", "_per_s", "load"];
    if kind == FeatureKind::Counter || NON_NEGATIVE.iter().any(|w| name.contains(w)) {
        return (0.0, f64::INFINITY);
    }
    (f64::NEG_INFINITY, f64::INFINITY)
}

/// [`feature`] whose several series per entity are meant (one per CPU, interface, disk).
fn merged(mut f: FeatureConfig) -> FeatureConfig {
    f.merge_series = true;
    f
}

/// The DWCP link/host profile (default): the seed's seven metrics.
pub fn dwcp() -> ProfileConfig {
    use Aggregation::*;
    use FeatureKind::Gauge;
    ProfileConfig {
        entity_labels: vec![LABEL_JOB.into(), LABEL_INSTANCE.into()],
        features: vec![
            feature("bandwidth_mbps", "Mbps", &["dwcp_bandwidth_mbps"], Gauge, Sum),
            feature("latency_ms", "ms", &["dwcp_latency_ms"], Gauge, Avg),
            feature("packet_loss_pct", "%", &["dwcp_packet_loss_percent"], Gauge, Avg),
            feature("jitter_ms", "ms", &["dwcp_jitter_ms"], Gauge, Avg),
            feature("cpu_pct", "%", &["dwcp_cpu_usage_percent"], Gauge, Avg),
            feature("memory_pct", "%", &["dwcp_memory_usage_percent"], Gauge, Avg),
            feature("error_rate_pct", "%", &["dwcp_error_rate_percent"], Gauge, Avg),
        ],
    }
}

/// A Linux host from node_exporter series.
pub fn node() -> ProfileConfig {
    use Aggregation::*;
    use FeatureKind::{Counter, Gauge};
    let mut cpu =
        merged(feature("cpu_busy_pct", "%", &[r#"node_cpu_seconds_total{mode="idle"}"#], Counter, Avg));
    (cpu.scale, cpu.offset) = (-100.0, 100.0);
    let mut mem = feature("memory_used_pct", "%", &["node_memory_MemAvailable_bytes"], Gauge, Sum);
    mem.per = Some("node_memory_MemTotal_bytes".into());
    (mem.scale, mem.offset) = (-100.0, 100.0);
    let mut rx = merged(feature(
        "network_receive_mbps",
        "Mbps",
        &[r#"node_network_receive_bytes_total{device!="lo"}"#],
        Counter,
        Sum,
    ));
    rx.scale = 8e-6;
    let mut tx = merged(feature(
        "network_transmit_mbps",
        "Mbps",
        &[r#"node_network_transmit_bytes_total{device!="lo"}"#],
        Counter,
        Sum,
    ));
    tx.scale = 8e-6;
    let errs = merged(feature(
        "network_errors_per_s",
        "1/s",
        &[
            r#"node_network_receive_errs_total{device!="lo"}"#,
            r#"node_network_transmit_errs_total{device!="lo"}"#,
        ],
        Counter,
        Sum,
    ));
    let mut disk = merged(feature("disk_busy_pct", "%", &["node_disk_io_time_seconds_total"], Counter, Max));
    disk.scale = 100.0;
    ProfileConfig {
        entity_labels: vec![LABEL_JOB.into(), LABEL_INSTANCE.into()],
        features: vec![cpu, mem, feature("load1", "", &["node_load1"], Gauge, Max), rx, tx, errs, disk],
    }
}
