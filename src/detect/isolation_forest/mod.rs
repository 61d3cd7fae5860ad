//! Isolation forest (Liu, Ting & Zhou 2008), trained natively and scored allocation-free.
//!
//! A detector in the detect stage beside the z-score: where the z-score looks at one feature
//! at a time, the forest scores the joint distribution, so a combination of individually
//! plausible values can still stand out. Each tree splits a random sub-sample of the history
//! on random features at random thresholds; outliers end up alone after few splits, so a
//! short mean path length means anomalous.
//!
//! - [`Forest`] (`tree.rs`) is the model: one flat node array for all trees, branch-free
//!   lockstep walks, per-feature contributions, a batch path, and [`Forest::from_trees`] for
//!   trees trained elsewhere (scikit-learn's semantics, documented there).
//! - A scikit-learn `IsolationForest` exported to ONNX is read into a [`Forest`] by
//!   `crate::onnx::forest` (this stage knows no file format).
//! - [`IsolationForestDetector`] wraps it as a [`Detector`]: refit on schedule, no online
//!   update, and raw scores calibrated on the training data's own scores (see below).
//!
//! NaN features never panic: each split sends NaN to the side of the feature's training
//! median (training rows are median-imputed the same way), so a missing value is scored as
//! an ordinary one rather than as an extreme. A vector that is entirely NaN scores 0.

mod error;
mod tree;

#[cfg(test)]
mod tests;

pub use crate::config::IsolationForestConfig;
use crate::config::iforest as config;
pub use error::ForestError;
pub use tree::{Forest, ForestParams, MAX_FEATURES, TreeNode, average_path_length};

use super::calibrate::Calibrator;
use super::{DetectError, Detector, FeatureVector, Score};

/// Detector name, the `detector` label of `anomaly_score`.
const NAME: &str = "iforest";
/// Fewest usable (not all-NaN) history vectors `fit` accepts.
pub const MIN_FIT_VECTORS: usize = 16;
/// Raw score mapped to calibrated 0 by the fallback mapping (a typical point scores ≈ 0.5).
const FALLBACK_ZERO: f64 = 0.5;
/// Raw score mapped to calibrated 1 by the fallback mapping.
const FALLBACK_ONE: f64 = 1.0;

/// The isolation forest detector for one entity.
///
/// Calibration: after training, the forest scores the training history itself and a
/// [`Calibrator`] is fitted on those raw scores. With fewer than
/// [`calibrate::MIN_EMPIRICAL`](super::calibrate::MIN_EMPIRICAL) usable vectors that is not
/// possible and a fixed linear map is used instead: raw 0.5 (an ordinary point) → 0,
/// raw 1.0 → 1, so raw 0.75, the usual "clearly anomalous" mark, lands on 0.5.
#[derive(Debug, Clone)]
pub struct IsolationForestDetector {
    cfg: IsolationForestConfig,
    n_features: usize,
    decades: f64,
    forest: Option<Forest>,
    calibrator: Option<Calibrator>,
    pretrained: Option<std::sync::Arc<PretrainedForest>>,
    /// `fit` succeeded at least once (with shared trees there is no forest of its own to tell).
    fitted: bool,
}

/// A forest trained elsewhere (scikit-learn, imported from ONNX by `crate::onnx::forest`)
/// on standardised vectors, shared by every entity. Entities keep their own calibration.
#[derive(Debug, Clone)]
pub struct PretrainedForest {
    /// The imported trees.
    pub forest: Forest,
    /// Scaler means, per feature.
    pub mean: Vec<f64>,
    /// Scaler standard deviations, per feature.
    pub std: Vec<f64>,
}

impl PretrainedForest {
    /// `values` standardised and rounded to f32 as the ONNX input (and scikit-learn) sees them.
    fn standardise(&self, values: &[f64], out: &mut Vec<f64>) {
        out.extend(
            values.iter().zip(self.mean.iter().zip(&self.std)).map(|(v, (m, s))| ((v - m) / s) as f32 as f64),
        );
    }
}

impl IsolationForestDetector {
    /// A detector for `n_features` features; `decades` is the calibration range (see
    /// [`calibrate`](super::calibrate)).
    pub fn new(cfg: &IsolationForestConfig, n_features: usize, decades: f64) -> Self {
        Self {
            cfg: cfg.clone(),
            n_features,
            decades,
            forest: None,
            calibrator: None,
            pretrained: None,
            fitted: false,
        }
    }

    /// A detector scoring with `pretrained` trees instead of growing its own; `fit` only
    /// calibrates on the entity's history.
    pub fn pretrained(model: std::sync::Arc<PretrainedForest>, decades: f64) -> Self {
        let n_features = model.forest.n_features();
        let mut d = Self::new(&IsolationForestConfig::default(), n_features, decades);
        d.pretrained = Some(model);
        d
    }

    /// The trained forest, once fitted.
    pub fn forest(&self) -> Option<&Forest> {
        self.pretrained.as_ref().map(|p| &p.forest).or(self.forest.as_ref())
    }

    /// Calibrated score of a raw forest score.
    pub fn calibrated(&self, raw: f64) -> f64 {
        match &self.calibrator {
            Some(c) => c.score(raw),
            None => ((raw - FALLBACK_ZERO) / (FALLBACK_ONE - FALLBACK_ZERO)).clamp(0.0, 1.0),
        }
    }
}

impl Detector for IsolationForestDetector {
    fn name(&self) -> &'static str {
        NAME
    }

    /// Trains a new forest on the history (all-NaN vectors skipped) and calibrates on the
    /// training vectors' raw scores. On error the previous model is kept.
    fn fit(&mut self, history: &[FeatureVector]) -> Result<(), DetectError> {
        let nf = self.n_features;
        if let Some(x) = history.iter().find(|x| x.values.len() != nf) {
            return Err(DetectError::Shape { expected: nf, found: x.values.len() });
        }
        let rows: Vec<&[f64]> =
            history.iter().map(|x| x.values.as_slice()).filter(|v| v.iter().any(|v| !v.is_nan())).collect();
        if rows.len() < MIN_FIT_VECTORS {
            let (needed, found) = (MIN_FIT_VECTORS, rows.len());
            return Err(DetectError::NotEnoughData { detector: NAME, needed, found });
        }
        // Out-of-range values are rejected by `validate`; clamp so an unvalidated config
        // cannot make training fail. After that only an absurd feature count (> 2^30) can.
        let params = ForestParams {
            trees: self.cfg.trees.clamp(1, config::MAX_TREES),
            sample_size: self.cfg.sample_size.clamp(2, config::MAX_SAMPLE_SIZE),
            seed: self.cfg.seed,
        };
        if let Some(p) = &self.pretrained {
            let mut flat = Vec::with_capacity(rows.len() * nf);
            rows.iter().for_each(|r| p.standardise(r, &mut flat));
            let mut raw = vec![0.0; rows.len()];
            p.forest.score_batch(&flat, &mut raw)?;
            // Fewer than MIN_EMPIRICAL vectors (a first fit at min_fit_points): the fixed
            // mapping, as for a forest of its own, until a refit has enough.
            self.calibrator = Calibrator::fit(&raw, self.decades);
            self.fitted = true;
            return Ok(());
        }
        let forest = Forest::train(&rows, nf, &params)
            .map_err(|_| DetectError::Shape { expected: MAX_FEATURES, found: nf })?;
        let mut raw = vec![0.0; rows.len()];
        let flat: Vec<f64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
        forest.score_batch(&flat, &mut raw)?;
        self.calibrator = Calibrator::fit(&raw, self.decades);
        self.forest = Some(forest);
        Ok(())
    }

    fn score(&self, x: &FeatureVector) -> Result<Score, DetectError> {
        let mut out = Score {
            value: 0.0,
            raw: f64::NAN,
            contributions: vec![0.0; self.n_features],
            expected: Vec::new(),
        };
        self.score_into(x, &mut out)?;
        Ok(out)
    }

    /// Allocation-free once `out.contributions` has grown to the feature count.
    fn score_into(&self, x: &FeatureVector, out: &mut Score) -> Result<(), DetectError> {
        if self.pretrained.is_some() && !self.fitted {
            return Err(DetectError::NotFitted(NAME));
        }
        let forest = self.forest().ok_or(DetectError::NotFitted(NAME))?;
        out.expected.clear();
        out.contributions.clear();
        out.contributions.resize(self.n_features, 0.0);
        if x.values.len() == self.n_features && x.values.iter().all(|v| v.is_nan()) {
            (out.value, out.raw) = (0.0, f64::NAN);
            return Ok(());
        }
        let raw = match &self.pretrained {
            Some(p) if x.values.len() == self.n_features => {
                let mut z = Vec::with_capacity(self.n_features);
                p.standardise(&x.values, &mut z);
                forest.score_into(&z, &mut out.contributions)?
            }
            _ => forest.score_into(&x.values, &mut out.contributions)?,
        };
        (out.value, out.raw) = (self.calibrated(raw), raw);
        Ok(())
    }

    /// No-op: the forest is refitted on the model's schedule instead.
    fn update(&mut self, _x: &FeatureVector) {}
}
