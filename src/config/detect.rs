//! `detect`: the ensemble, its thresholds and the z-score.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{
    ConfigErrors, FprControlConfig, IsolationForestConfig, KMeansConfig, LstmAeConfig, RecalibrateConfig,
    SeasonalEsdConfig, duration, recalibrate,
};

/// Detectors and how their scores combine.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DetectConfig {
    /// Ensemble confidence at or above which a vector is anomalous (`anomaly_flag` = 1).
    pub threshold: f64,
    /// When set, overrides `threshold` with the confidence whose normal tail probability is
    /// this false-positive rate (e.g. 0.001).
    pub target_fpr: Option<f64>,
    /// Calibration range: a score of 1.0 means a tail probability of `10^-decades` among
    /// normal training scores, 0.5 means `10^-(decades/2)`.
    pub calibration_decades: f64,
    /// Confidence from which an anomaly is a warning (seed: 0.7).
    pub severity_warning: f64,
    /// Confidence above which an anomaly is critical (seed: 0.9).
    pub severity_critical: f64,
    /// How often each entity's models are refitted on its buffered history.
    #[serde(with = "duration")]
    pub fit_every: Duration,
    /// How many recent vectors per entity are kept for (re)fitting.
    pub fit_window: usize,
    /// Vectors an entity needs before its first fit; until then it is `warming`.
    pub min_fit_points: usize,
    /// Share of `check_interval` that `serve` may spend on (re)fits after each check (and
    /// never into the next one): a check only scores and leaves the fits that fall due to
    /// the time after it, so thousands of entities warming or due together do not stall a
    /// check; fits still due past it wait for the next interval (the entities score
    /// meanwhile with the models they have). Replay and `eval` always fit on time.
    pub fit_share: f64,
    /// Online recalibration of every detector on its recent scores (ensemble).
    pub recalibrate: RecalibrateConfig,
    /// Live correction of the vote's threshold to its promised rate (ensemble).
    pub fpr_control: FprControlConfig,
    /// Detectors that flag a vector on their own, beside the vote, when their tail probability
    /// is at most this rate (e.g. `kmeans: 0.02`); see docs/configuration.md. Unset: chosen per
    /// entity by its shape with `shape_rules`, else none.
    pub alone_fpr: Option<BTreeMap<String, f64>>,
    /// Hysteresis: once a vector is flagged, the entity's next ones stay flagged while their
    /// confidence is at least `hold_ratio × threshold` (1 = off). Unset: chosen per entity by
    /// its shape with `shape_rules`, else 1.
    pub hold_ratio: Option<f64>,
    /// `alone_fpr` and `hold_ratio`, where unset, are chosen per entity at its first fit from
    /// its shape (several moving features or one; see `detect::Shape`).
    pub shape_rules: bool,
    /// Rolling z-score detector.
    pub zscore: ZScoreConfig,
    /// Isolation forest detector.
    pub iforest: IsolationForestConfig,
    /// Seasonal hybrid ESD detector.
    pub sesd: SeasonalEsdConfig,
    /// k-means detector on feature windows.
    pub kmeans: KMeansConfig,
    /// LSTM autoencoder (ONNX).
    pub lstm_ae: LstmAeConfig,
}

impl Default for DetectConfig {
    fn default() -> Self {
        Self {
            threshold: 0.5,
            target_fpr: None,
            calibration_decades: 6.0,
            severity_warning: 0.7,
            severity_critical: 0.9,
            fit_every: Duration::from_secs(3600),
            fit_window: 360,
            min_fit_points: 30,
            fit_share: 0.25,
            recalibrate: RecalibrateConfig::default(),
            fpr_control: FprControlConfig::default(),
            alone_fpr: None,
            hold_ratio: None,
            shape_rules: false,
            zscore: ZScoreConfig::default(),
            iforest: IsolationForestConfig::default(),
            sesd: SeasonalEsdConfig::default(),
            kmeans: KMeansConfig::default(),
            lstm_ae: LstmAeConfig::default(),
        }
    }
}

/// Detector names, as in the `detector` label and the `detect.<name>` keys.
pub const DETECTORS: [&str; 5] = ["zscore", "iforest", "sesd", "kmeans", "lstm_ae"];

impl DetectConfig {
    /// The best general ensemble measured on every family of `../shared/datasets`
    /// (docs/accuracy.md), what `eval` runs without `--config` and `examples/ensemble.yaml`
    /// spells out: all five detectors (the LSTM where a model matches the features), the vote's
    /// 0.5 % tail, a 5000-vector history, online recalibration, and the vote rules chosen per
    /// entity from its shape.
    pub fn ensemble() -> Self {
        let mut c = Self { target_fpr: Some(0.005), fit_window: 5000, shape_rules: true, ..Self::default() };
        c.enable_only(&DETECTORS).expect("every detector is known");
        c.recalibrate.enabled = true;
        c.fpr_control.enabled = true;
        c
    }

    /// Enables exactly the named detectors (e.g. from `eval --detectors`).
    pub fn enable_only(&mut self, names: &[&str]) -> Result<(), String> {
        if let Some(bad) = names.iter().find(|n| !DETECTORS.contains(n)) {
            return Err(format!("unknown detector {bad:?}, expected one of {}", DETECTORS.join(", ")));
        }
        self.zscore.enabled = names.contains(&"zscore");
        self.iforest.enabled = names.contains(&"iforest");
        self.sesd.enabled = names.contains(&"sesd");
        self.kmeans.enabled = names.contains(&"kmeans");
        self.lstm_ae.enabled = names.contains(&"lstm_ae");
        Ok(())
    }

    /// Names of the enabled detectors, in ensemble order.
    pub fn enabled(&self) -> Vec<&'static str> {
        let on = [
            self.zscore.enabled,
            self.iforest.enabled,
            self.sesd.enabled,
            self.kmeans.enabled,
            self.lstm_ae.enabled,
        ];
        DETECTORS.iter().zip(on).filter(|(_, on)| *on).map(|(d, _)| *d).collect()
    }

    /// The effective ensemble threshold (from `target_fpr` when set).
    pub fn effective_threshold(&self) -> f64 {
        match self.target_fpr {
            Some(fpr) => (-fpr.log10() / self.calibration_decades).clamp(0.0, 1.0),
            None => self.threshold,
        }
    }
}

/// Rolling z-score: online mean and standard deviation over a window, per feature.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ZScoreConfig {
    /// Whether the detector runs.
    pub enabled: bool,
    /// Weight in the ensemble vote.
    pub weight: f64,
    /// Number of points in the rolling window.
    pub window: usize,
    /// Width of the expected band in standard deviations (`anomaly_expected_lower/upper`).
    pub band: f64,
    /// Values further than `clip` standard deviations from the mean are held back from the
    /// window (so an outlier cannot inflate the spread and mask the ones after it) until they
    /// persist for half a window, when they are accepted as the new level.
    pub clip: f64,
    /// Floor of the rolling standard deviation as a share of the feature's spread over the
    /// fit history, so a feature that is flat for a window does not turn noise into huge z.
    pub min_std_ratio: f64,
}

impl Default for ZScoreConfig {
    fn default() -> Self {
        Self { enabled: true, weight: 1.0, window: 60, band: 3.0, clip: 4.0, min_std_ratio: 0.05 }
    }
}

impl DetectConfig {
    pub(super) fn validate(&self, e: &mut ConfigErrors) {
        let unit = |e: &mut ConfigErrors, key: &str, v: f64| {
            if !(0.0..=1.0).contains(&v) {
                e.invalid(key, format!("must be within [0, 1], got {v}"));
            }
        };
        unit(e, "threshold", self.threshold);
        unit(e, "severity_warning", self.severity_warning);
        unit(e, "severity_critical", self.severity_critical);
        if self.severity_warning > self.severity_critical {
            e.invalid(
                "severity_warning",
                format!("must be <= severity_critical ({})", self.severity_critical),
            );
        }
        if let Some(fpr) = self.target_fpr
            && !(fpr > 0.0 && fpr < 1.0)
        {
            e.invalid("target_fpr", format!("must be within (0, 1), got {fpr}"));
        }
        if !(self.calibration_decades >= 1.0 && self.calibration_decades <= 12.0) {
            e.invalid(
                "calibration_decades",
                format!("must be within [1, 12], got {}", self.calibration_decades),
            );
        }
        if self.min_fit_points < 2 {
            e.invalid("min_fit_points", format!("must be >= 2, got {}", self.min_fit_points));
        }
        if self.fit_window < self.min_fit_points {
            e.invalid("fit_window", format!("must be >= min_fit_points ({})", self.min_fit_points));
        }
        if !(self.fit_share > 0.0 && self.fit_share <= 1.0) {
            e.invalid("fit_share", format!("must be within (0, 1], got {}", self.fit_share));
        }
        if self.fit_every < Duration::from_secs(1) {
            e.invalid("fit_every", format!("must be >= 1s, got {:?}", self.fit_every));
        }
        e.scope("recalibrate", |e| self.recalibrate.validate(e));
        e.scope("fpr_control", |e| self.fpr_control.validate(e));
        if let Some(alone) = &self.alone_fpr {
            e.scope("alone_fpr", |e| recalibrate::validate_alone(alone, e));
        }
        if let Some(hold) = self.hold_ratio.filter(|h| !(*h > 0.0 && *h <= 1.0)) {
            e.invalid("hold_ratio", format!("must be within (0, 1], got {hold}"));
        }
        e.scope("zscore", |e| {
            let z = &self.zscore;
            if z.window < 2 {
                e.invalid("window", format!("must be >= 2, got {}", z.window));
            }
            if !(z.weight >= 0.0 && z.weight.is_finite()) {
                e.invalid("weight", format!("must be >= 0, got {}", z.weight));
            }
            if z.band.is_nan() || z.band <= 0.0 {
                e.invalid("band", format!("must be > 0, got {}", z.band));
            }
            if !(0.0..=1.0).contains(&z.min_std_ratio) {
                e.invalid("min_std_ratio", format!("must be within [0, 1], got {}", z.min_std_ratio));
            }
            if z.clip.is_nan() || z.clip < 1.0 {
                e.invalid("clip", format!("must be >= 1, got {}", z.clip));
            }
        });
        e.scope("iforest", |e| self.iforest.validate(e));
        e.scope("sesd", |e| self.sesd.validate(e));
        e.scope("kmeans", |e| self.kmeans.validate(e));
        e.scope("lstm_ae", |e| self.lstm_ae.validate(e));
        let enabled = [
            (self.zscore.enabled, self.zscore.weight),
            (self.iforest.enabled, self.iforest.weight),
            (self.sesd.enabled, self.sesd.weight),
            (self.kmeans.enabled, self.kmeans.weight),
            (self.lstm_ae.enabled, self.lstm_ae.weight),
        ];
        if !enabled.iter().any(|&(on, w)| on && w > 0.0) {
            e.invalid("", "at least one detector must be enabled with a weight > 0");
        }
    }
}
