//! Export: the score series written back for Grafana and alerting rules.
//!
//! Last stage of the flow (pipeline → **export**). Every check produces one [`CheckScores`];
//! [`for_each_series`] turns it into the product series documented below, used by both the
//! `/metrics` exposition ([`prometheus`]), remote-write out ([`remote_write`]) and OTLP out
//! ([`otlp`]), so they always carry the same names and labels. Entity labels are copied and `profile` added:
//!
//! | series | extra labels | value |
//! |---|---|---|
//! | `anomaly_score` | `detector` (`ensemble`, `zscore`, …) | calibrated score in [0, 1] |
//! | `anomaly_flag` | | 1 when the ensemble confidence ≥ threshold |
//! | `anomaly_severity` | | 0 none, 1 info, 2 warning, 3 critical |
//! | `anomaly_feature_score` | `feature` | the feature's share of the anomaly |
//! | `anomaly_expected`, `_lower`, `_upper` | `feature` | expected value and normal band |
//! | `anomaly_model_state` | `state` (`warming`, `ready`, `stale`) | 1 for the current state |
//! | `anomaly_threshold` | `detector` (`ensemble`) | the confidence that flags: the live threshold, hysteresis included |
//! | `anomaly_flag_rate` | | share of the entity's recent vectors flagged (`detect.fpr_control`) |

pub mod otlp;
pub mod prometheus;
pub mod remote_write;

use std::sync::Arc;

use crate::check::CheckScores;
use crate::detect::ModelState;

/// `profile` label key.
pub const LABEL_PROFILE: &str = "profile";
/// `detector` label key.
pub const LABEL_DETECTOR: &str = "detector";
/// `feature` label key.
pub const LABEL_FEATURE: &str = "feature";
/// `state` label key.
pub const LABEL_STATE: &str = "state";
/// Label of `anomaly_model_info`: the vote rules an entity runs.
pub const LABEL_RULES: &str = "rules";
/// The ensemble's `detector` label value.
pub const ENSEMBLE: &str = "ensemble";

/// A running exporter (remote-write or OTLP): its queue of checks and its task.
pub struct ExporterHandle {
    /// Queue of checks to write.
    pub queue: tokio::sync::mpsc::Sender<Arc<CheckScores>>,
    /// The exporter task; ends when the queue is closed and drained.
    pub task: tokio::task::JoinHandle<()>,
    /// The `exporter` label value.
    pub id: String,
}

/// An exporter client: writes one check to its target, counting what fails.
pub trait ScoreWriter: Send + Sync + 'static {
    /// Writes `check`; gives up (counted) on `shutdown`.
    fn write(
        &self,
        check: &CheckScores,
        shutdown: &mut tokio::sync::watch::Receiver<bool>,
    ) -> impl std::future::Future<Output = ()> + Send;
}

impl ExporterHandle {
    /// Starts the task that feeds `writer` from a queue of `capacity` checks.
    pub fn spawn(
        id: String,
        writer: impl ScoreWriter,
        capacity: usize,
        telemetry: &crate::telemetry::Telemetry,
        shutdown: &tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        let (queue, mut rx) = tokio::sync::mpsc::channel::<Arc<CheckScores>>(capacity);
        let mut shutdown = shutdown.clone();
        let queue_gauge = telemetry.export_queue.with(&[&id]);
        let task = tokio::spawn(async move {
            while let Some(check) = rx.recv().await {
                queue_gauge.set(rx.len() as f64);
                writer.write(&check, &mut shutdown).await;
            }
        });
        Self { queue, task, id }
    }
}

/// A product metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Series {
    /// `anomaly_score`.
    Score,
    /// `anomaly_flag`.
    Flag,
    /// `anomaly_severity`.
    Severity,
    /// `anomaly_feature_score`.
    FeatureScore,
    /// `anomaly_expected`.
    Expected,
    /// `anomaly_expected_lower`.
    ExpectedLower,
    /// `anomaly_expected_upper`.
    ExpectedUpper,
    /// `anomaly_model_state`.
    ModelState,
    /// `anomaly_threshold`.
    Threshold,
    /// `anomaly_model_info`.
    ModelInfo,
    /// `anomaly_flag_rate`.
    FlagRate,
}

impl Series {
    /// All families, in exposition order.
    pub const ALL: [Series; 11] = [
        Series::Score,
        Series::Flag,
        Series::Severity,
        Series::FeatureScore,
        Series::Expected,
        Series::ExpectedLower,
        Series::ExpectedUpper,
        Series::ModelState,
        Series::Threshold,
        Series::ModelInfo,
        Series::FlagRate,
    ];

    /// Metric name.
    pub fn name(self) -> &'static str {
        match self {
            Series::Score => "anomaly_score",
            Series::Flag => "anomaly_flag",
            Series::Severity => "anomaly_severity",
            Series::FeatureScore => "anomaly_feature_score",
            Series::Expected => "anomaly_expected",
            Series::ExpectedLower => "anomaly_expected_lower",
            Series::ExpectedUpper => "anomaly_expected_upper",
            Series::ModelState => "anomaly_model_state",
            Series::Threshold => "anomaly_threshold",
            Series::ModelInfo => "anomaly_model_info",
            Series::FlagRate => "anomaly_flag_rate",
        }
    }

    /// HELP text.
    pub fn help(self) -> &'static str {
        match self {
            Series::Score => "Calibrated anomaly score in [0, 1] per detector (ensemble = weighted vote).",
            Series::Flag => "1 when the ensemble confidence is at or above the threshold.",
            Series::Severity => "Anomaly severity: 0 none, 1 info, 2 warning, 3 critical.",
            Series::FeatureScore => "Share of the anomaly attributed to each feature, in [0, 1].",
            Series::Expected => "Value the models expected for the feature.",
            Series::ExpectedLower => "Lower edge of the feature's expected band.",
            Series::ExpectedUpper => "Upper edge of the feature's expected band.",
            Series::ModelState => "1 for the entity's current model state (warming, ready, stale).",
            Series::ModelInfo => {
                "Constant 1 per fitted entity; `rules` says which vote rules it runs (multivariate, univariate, configured)."
            }
            Series::Threshold => {
                "Confidence the entity's vector had to reach to be flagged (the live threshold, hysteresis included)."
            }
            Series::FlagRate => {
                "Share of the entity's recent vectors (detect.fpr_control.window) that were flagged."
            }
        }
    }
}

/// Calls `f(labels, value)` for every series of family `which` in `check`; labels are sorted
/// by name with `__name__` first, as remote-write requires.
pub fn for_each_series(check: &CheckScores, which: Series, mut f: impl FnMut(&[(&str, &str)], f64)) {
    let mut labels: Vec<(&str, &str)> = Vec::with_capacity(8);
    for e in &check.entities {
        macro_rules! emit {
            ($extra:expr, $value:expr) => {
                emit_one(&mut labels, which, &e.labels, &check.profile, $extra, $value, &mut f)
            };
        }
        if which == Series::ModelState {
            for s in ModelState::ALL {
                emit!(Some((LABEL_STATE, s.as_str())), f64::from(u8::from(s == e.state)));
            }
            continue;
        }
        if which == Series::ModelInfo {
            if let Some(rules) = e.rules {
                emit!(Some((LABEL_RULES, rules)), 1.0);
            }
            continue;
        }
        let Some(score) = &e.score else { continue };
        match which {
            Series::Score => {
                emit!(Some((LABEL_DETECTOR, ENSEMBLE)), score.confidence);
                for d in &score.detectors {
                    emit!(Some((LABEL_DETECTOR, d.detector)), d.score.value);
                }
            }
            Series::Flag => emit!(None, f64::from(u8::from(score.anomalous))),
            Series::Threshold => emit!(Some((LABEL_DETECTOR, ENSEMBLE)), score.threshold),
            Series::FlagRate => {
                if let Some(rate) = score.flag_rate {
                    emit!(None, rate);
                }
            }
            Series::Severity => emit!(None, score.severity as u8 as f64),
            Series::FeatureScore => {
                for (name, c) in check.features.iter().zip(&score.contributions) {
                    emit!(Some((LABEL_FEATURE, name)), *c);
                }
            }
            Series::Expected | Series::ExpectedLower | Series::ExpectedUpper => {
                for (name, x) in check.features.iter().zip(&score.expected) {
                    let v = match which {
                        Series::Expected => x.value,
                        Series::ExpectedLower => x.lower,
                        _ => x.upper,
                    };
                    if v.is_finite() {
                        emit!(Some((LABEL_FEATURE, name)), v);
                    }
                }
            }
            Series::ModelState | Series::ModelInfo => {}
        }
    }
}

fn emit_one<'a>(
    labels: &mut Vec<(&'a str, &'a str)>,
    which: Series,
    entity: &'a [(String, String)],
    profile: &'a str,
    extra: Option<(&'static str, &'a str)>,
    value: f64,
    f: &mut impl FnMut(&[(&str, &str)], f64),
) {
    labels.clear();
    labels.push(("__name__", which.name()));
    labels.extend(entity.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    labels.push((LABEL_PROFILE, profile));
    labels.extend(extra);
    labels[1..].sort_unstable_by(|a, b| a.0.cmp(b.0));
    f(labels, value);
}
