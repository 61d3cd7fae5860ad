//! Detect: scores feature vectors. Pure CPU: no I/O, no async, no clock, no global state.
//!
//! Third stage of the flow (vectorize → **detect** → pipeline). Every detector implements
//! [`Detector`] and returns a [`Score`] whose `value` is calibrated to [0, 1] (see
//! [`calibrate`]) with per-feature contributions; the [`Ensemble`] combines them by weighted
//! vote into a confidence and a [`Severity`]. [`EntityModel`] wraps one entity's ensemble with
//! its history buffer, warm-up and refit schedule, so `serve` and `eval` step entities the
//! same way.

pub mod calibrate;
mod ensemble;
mod error;
mod history;
mod isolation_forest;
mod kmeans;
pub mod lstm_ae;
mod model;
mod seasonal_esd;
mod stats;
mod zscore;

pub use ensemble::{DetectorScore, Ensemble, EnsembleScore, Member, Severity};
pub use error::DetectError;
pub use history::History;
pub use isolation_forest::{
    Forest, ForestError, ForestParams, IsolationForestConfig, IsolationForestDetector, MAX_FEATURES,
    PretrainedForest, TreeNode, average_path_length,
};
pub use kmeans::{KMeansConfig, KMeansDetector};
pub use lstm_ae::{LstmAeDetector, LstmModel, Scaling, SequenceModel};
pub use model::{EntityModel, ModelSpec, ModelState, Shape, Step};
pub use seasonal_esd::{SeasonalEsdConfig, SeasonalEsdDetector, detect_period};
pub use zscore::ZScoreDetector;

/// One entity's feature values at one time.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureVector {
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// Values in profile order; NaN where a feature is missing.
    pub values: Vec<f64>,
}

/// What a model expected for one feature: a value and a band.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Expected {
    /// Expected value.
    pub value: f64,
    /// Lower edge of the normal band.
    pub lower: f64,
    /// Upper edge of the normal band.
    pub upper: f64,
}

/// A detector's verdict on one vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    /// Calibrated score in [0, 1]; higher is more anomalous.
    pub value: f64,
    /// Uncalibrated detector output (detector-specific scale).
    pub raw: f64,
    /// Per-feature share of the anomaly, each in [0, 1], summing to 1 when any is non-zero.
    pub contributions: Vec<f64>,
    /// Expected value and band per feature, when the detector models them (else empty).
    pub expected: Vec<Expected>,
}

/// Scores feature vectors of one entity.
pub trait Detector: Send + std::any::Any {
    /// Short name, the `detector` label of `anomaly_score`.
    fn name(&self) -> &'static str;
    /// Trains on history (mostly normal vectors, oldest first). Called once the entity has
    /// `min_fit_points` vectors and again every `fit_every`; replaces previous state.
    fn fit(&mut self, history: &[FeatureVector]) -> Result<(), DetectError>;
    /// Scores one vector: higher = more anomalous, in [0, 1]. `NotFitted` before `fit`.
    fn score(&self, x: &FeatureVector) -> Result<Score, DetectError>;
    /// Scores like [`score`](Self::score) into `out`, reusing the capacity of its vectors,
    /// for callers that score many vectors (detectors with a native path do not allocate
    /// once `out` has held one score). On error `out` is unspecified.
    fn score_into(&self, x: &FeatureVector, out: &mut Score) -> Result<(), DetectError> {
        *out = self.score(x)?;
        Ok(())
    }
    /// Cheap online update after scoring (rolling statistics, ...).
    fn update(&mut self, x: &FeatureVector);
    /// [`fit`](Self::fit) inside an entity model, which also hands over its buffered history
    /// (`all`: every vector, flagged ones included, that `history` was taken from), so a
    /// detector that needs a window of recent values reads it there instead of keeping its
    /// own copy (issue 28).
    fn fit_in(&mut self, history: &[FeatureVector], all: &History) -> Result<(), DetectError> {
        let _ = all;
        self.fit(history)
    }
    /// [`update`](Self::update) inside an entity model; `all` does not hold `x` yet.
    fn update_in(&mut self, x: &FeatureVector, all: &History) {
        let _ = all;
        self.update(x);
    }
}

/// Shares of `weights` (non-negative), normalised to sum to 1; all zero stays all zero.
pub fn normalise(weights: &mut [f64]) {
    let total: f64 = weights.iter().filter(|w| w.is_finite()).sum();
    for w in weights.iter_mut() {
        *w = if total > 0.0 && w.is_finite() { *w / total } else { 0.0 };
    }
}
