//! k-means on the recent shape of each metric, the way Netdata's ML does it: distance to the
//! nearest cluster of normal behaviour.
//!
//! Features at time t, per metric: the difference `x_t − x_{t−1}` (so levels do not matter,
//! only movement), smoothed by a moving average of `smooth` differences, and the `lag`
//! previous smoothed differences, concatenated metric-major into one vector of
//! `n_metrics × (lag + 1)` dimensions. One such vector needs the last `smooth + lag + 1` raw
//! vectors: the detector keeps `smooth + lag` of them in `update`, and `score` adds the vector
//! it scores. A missing (NaN) value makes its differences 0: "no movement" is the neutral
//! guess, and it never poisons the whole window.
//!
//! Training uses linfa-clustering's k-means (k-means++ init, a fixed number of restarts, a
//! `Xoshiro256Plus` seeded from `seed`, so the same history and seed give the same model) on
//! the history's feature vectors after standardising every dimension by its training mean and
//! standard deviation. The std is floored at 0.1 % of the metric's mean absolute level and at
//! 10 % of the median std of all dimensions, so a metric that was flat in training does not
//! turn noise-level jitter or its next rare step into huge distances.
//! The raw score is the Euclidean distance to the nearest centroid; it is calibrated with
//! [`Calibrator`] on the training distances (a Gaussian tail of the distances' mean and std
//! when there are too few). Contributions are each metric's share of the squared distance.
//!
//! linfa parallelises the assignment step on rayon's global pool; the result does not depend
//! on the thread count.

use linfa::DatasetBase;
use linfa::traits::Fit;
use linfa_clustering::{KMeans, KMeansInit};
use ndarray::Array2;
use rand_xoshiro::Xoshiro256Plus;
use rand_xoshiro::rand_core::SeedableRng;

pub use crate::config::KMeansConfig;

use super::calibrate::{Calibrator, erfc, score_from_tail};
use super::zscore::median_positive;
use super::{DetectError, Detector, FeatureVector, Score, normalise};

const NAME: &str = "kmeans";
/// Fewest training feature vectors `fit` accepts (besides `2k`).
const MIN_VECTORS: usize = 10;
/// k-means restarts (best inertia wins).
const N_RUNS: usize = 3;
/// Relative inertia change at which Lloyd iterations stop.
const TOLERANCE: f64 = 1e-4;
/// Smallest standard deviation of a dimension, as a share of the median standard deviation of
/// all dimensions. A metric that did not move in the fit history (a flag, a rarely stepping
/// counter, or one whose steps were flagged and left out of refits) has a difference spread
/// of 0; floored only by its level it would turn its next ordinary step into a distance of
/// 10⁸. This floor keeps such a step large but finite, comparable with the others.
const TYPICAL_STD_FLOOR: f64 = 0.1;

/// The trained part of the model, as f32 in one allocation (issue 28: a third of the f64
/// vectors it was): per dimension the training mean and (floored) standard deviation, then
/// the centroids in standardised space, one row each.
#[derive(Debug, Clone, PartialEq)]
struct Model {
    dims: usize,
    /// `[mean…, std…, centroid 0…, centroid 1…, …]`.
    params: Vec<f32>,
}

impl Model {
    fn new(mean: &[f64], std: &[f64], centroids: &[Vec<f64>]) -> Self {
        let params = mean.iter().chain(std).chain(centroids.iter().flatten()).map(|&v| v as f32).collect();
        Self { dims: mean.len(), params }
    }

    fn centroids(&self) -> std::slice::ChunksExact<'_, f32> {
        self.params[2 * self.dims..].chunks_exact(self.dims)
    }

    /// `f` in standardised space.
    fn standardise(&self, f: &[f64]) -> Vec<f64> {
        let (mean, std) = self.params[..2 * self.dims].split_at(self.dims);
        f.iter().zip(mean).zip(std).map(|((v, m), s)| (v - f64::from(*m)) / f64::from(*s)).collect()
    }

    /// Squared standardised distance components to the nearest centroid.
    fn nearest(&self, f: &[f64]) -> Vec<f64> {
        let z = self.standardise(f);
        let mut best: Option<(f64, Vec<f64>)> = None;
        for c in self.centroids() {
            let comp: Vec<f64> = z.iter().zip(c).map(|(a, b)| (a - f64::from(*b)).powi(2)).collect();
            let d: f64 = comp.iter().sum();
            if best.as_ref().is_none_or(|(bd, _)| d < *bd) {
                best = Some((d, comp));
            }
        }
        best.map_or_else(|| vec![0.0; z.len()], |(_, comp)| comp)
    }
}

/// The k-means detector for one entity.
#[derive(Debug, Clone)]
pub struct KMeansDetector {
    cfg: KMeansConfig,
    decades: f64,
    n_metrics: usize,
    /// The last `smooth + lag` raw vectors, oldest first, flat (`n_metrics` values each) and
    /// contiguous, so scoring reads them as rows without copying.
    recent: Vec<f64>,
    model: Option<Model>,
    calibrator: Option<Calibrator>,
    /// Mean and std of the training distances (fallback calibration).
    dist_mean_std: (f64, f64),
}

impl KMeansDetector {
    /// A detector for `n_features` metrics; `decades` is the calibration range (see
    /// [`super::calibrate`]).
    pub fn new(cfg: &KMeansConfig, n_features: usize, decades: f64) -> Self {
        Self {
            cfg: cfg.clone(),
            decades,
            n_metrics: n_features,
            recent: Vec::with_capacity((cfg.span() - 1) * n_features),
            model: None,
            calibrator: None,
            dist_mean_std: (0.0, 1.0),
        }
    }

    /// Dimensions of one feature vector: `n_metrics × (lag + 1)`.
    pub fn dims(&self) -> usize {
        self.n_metrics * (self.cfg.lag + 1)
    }

    /// Centroids in standardised feature space (empty before `fit`), for inspection.
    pub fn centroids(&self) -> Vec<Vec<f64>> {
        self.model.as_ref().map_or_else(Vec::new, |m| {
            m.centroids().map(|c| c.iter().map(|&v| f64::from(v)).collect()).collect()
        })
    }

    /// Appends the feature vector of the last raw vector in `raw` (`span` rows, oldest
    /// first) to `out`, metric-major.
    fn features_into(&self, raw: &[&[f64]], out: &mut Vec<f64>) {
        let (smooth, lag) = (self.cfg.smooth.max(1), self.cfg.lag);
        let mut diffs = vec![0.0; smooth + lag];
        // j picks the column of every row, so a range is clearer than an iterator here.
        #[allow(clippy::needless_range_loop)]
        for j in 0..self.n_metrics {
            for (k, d) in diffs.iter_mut().enumerate() {
                let v = raw[k + 1][j] - raw[k][j];
                *d = if v.is_finite() { v } else { 0.0 };
            }
            // Smoothed differences, newest first: l = 0 ends at the last difference.
            for l in 0..=lag {
                let end = smooth + lag - l;
                out.push(diffs[end - smooth..end].iter().sum::<f64>() / smooth as f64);
            }
        }
    }

    fn calibrated(&self, raw: f64) -> f64 {
        match &self.calibrator {
            Some(c) => c.score(raw),
            None => {
                let (m, s) = self.dist_mean_std;
                let z = (raw - m) / s.max(1e-12);
                score_from_tail(0.5 * erfc(z / std::f64::consts::SQRT_2), self.decades)
            }
        }
    }
}

impl Detector for KMeansDetector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn fit(&mut self, history: &[FeatureVector]) -> Result<(), DetectError> {
        let nm = self.n_metrics;
        if let Some(x) = history.iter().find(|x| x.values.len() != nm) {
            return Err(DetectError::Shape { expected: nm, found: x.values.len() });
        }
        let span = self.cfg.span();
        let k = self.cfg.k.max(1);
        let needed = span - 1 + MIN_VECTORS.max(2 * k);
        if history.len() < needed {
            return Err(DetectError::NotEnoughData { detector: NAME, needed, found: history.len() });
        }
        let dims = self.dims();
        let n = history.len() + 1 - span;
        let rows: Vec<&[f64]> = history.iter().map(|x| x.values.as_slice()).collect();
        let mut flat = Vec::with_capacity(n * dims);
        for w in rows.windows(span) {
            self.features_into(w, &mut flat);
        }
        // The raw features again after standardising: the training distances are measured
        // with the model as stored (f32), as scores will see it.
        let raw = flat.clone();
        // Standardise: mean/std per dimension, std floored by the metric's level.
        let mut level = vec![0.0; nm];
        for (j, l) in level.iter_mut().enumerate() {
            let finite = history.iter().map(|x| x.values[j]).filter(|v| v.is_finite());
            let (s, c) = finite.fold((0.0, 0usize), |(s, c), v| (s + v.abs(), c + 1));
            *l = if c > 0 { s / c as f64 } else { 0.0 };
        }
        let per = self.cfg.lag + 1;
        let mut mean = vec![0.0; dims];
        let mut std = vec![0.0; dims];
        for row in flat.chunks_exact(dims) {
            mean.iter_mut().zip(row).for_each(|(m, v)| *m += v / n as f64);
        }
        for row in flat.chunks_exact(dims) {
            for (i, v) in row.iter().enumerate() {
                std[i] += (v - mean[i]).powi(2) / n as f64;
            }
        }
        std.iter_mut().for_each(|s| *s = s.sqrt());
        let typical = median_positive(&std);
        for (i, s) in std.iter_mut().enumerate() {
            *s = s.max(1e-3 * level[i / per] + 1e-9).max(TYPICAL_STD_FLOOR * typical);
        }
        for row in flat.chunks_exact_mut(dims) {
            for (i, v) in row.iter_mut().enumerate() {
                *v = (*v - mean[i]) / std[i];
            }
        }
        let data = Array2::from_shape_vec((n, dims), flat)
            .map_err(|_| DetectError::Shape { expected: dims, found: 0 })?;
        let params = KMeans::params_with_rng(k, Xoshiro256Plus::seed_from_u64(self.cfg.seed))
            .max_n_iterations(self.cfg.max_iterations.max(1))
            .n_runs(N_RUNS)
            .tolerance(TOLERANCE)
            .init_method(KMeansInit::KMeansPlusPlus);
        let dataset = DatasetBase::from(data);
        let centroids: Vec<Vec<f64>> = match params.fit(&dataset) {
            Ok(model) => model.centroids().rows().into_iter().map(|r| r.to_vec()).collect(),
            Err(e) => {
                // Degenerate history (e.g. every vector identical): one centroid at the mean
                // (the origin after standardising) is the k = 1 solution.
                tracing::warn!(detector = NAME, error = %e, "k-means failed; using one centroid");
                vec![vec![0.0; dims]]
            }
        };
        let model = Model::new(&mean, &std, &centroids);
        let dists: Vec<f64> =
            raw.chunks_exact(dims).map(|f| model.nearest(f).iter().sum::<f64>().sqrt()).collect();
        let m = dists.iter().sum::<f64>() / n as f64;
        let s = (dists.iter().map(|d| (d - m).powi(2)).sum::<f64>() / n as f64).sqrt();
        self.dist_mean_std = (m, s);
        self.calibrator = Calibrator::fit(&dists, self.decades);
        self.model = Some(model);
        self.recent =
            history[history.len() + 1 - span..].iter().flat_map(|x| x.values.iter().copied()).collect();
        Ok(())
    }

    fn score(&self, x: &FeatureVector) -> Result<Score, DetectError> {
        let Some(model) = &self.model else {
            return Err(DetectError::NotFitted(NAME));
        };
        if x.values.len() != self.n_metrics {
            return Err(DetectError::Shape { expected: self.n_metrics, found: x.values.len() });
        }
        let span = self.cfg.span();
        let nm = self.n_metrics;
        if self.recent.len() / nm + 1 < span {
            return Ok(Score {
                value: 0.0,
                raw: 0.0,
                contributions: vec![0.0; self.n_metrics],
                expected: Vec::new(),
            });
        }
        let mut rows: Vec<&[f64]> = self.recent.chunks_exact(nm).collect();
        rows.push(&x.values);
        let mut f = Vec::with_capacity(self.dims());
        self.features_into(&rows[rows.len() - span..], &mut f);
        let comp = model.nearest(&f);
        let raw = comp.iter().sum::<f64>().sqrt();
        let per = self.cfg.lag + 1;
        let mut contributions: Vec<f64> = comp.chunks(per).map(|c| c.iter().sum()).collect();
        normalise(&mut contributions);
        Ok(Score { value: self.calibrated(raw), raw, contributions, expected: Vec::new() })
    }

    fn update(&mut self, x: &FeatureVector) {
        if x.values.len() != self.n_metrics {
            return;
        }
        // span >= 2, so at least one raw vector is kept.
        if self.recent.len() / self.n_metrics + 1 >= self.cfg.span() {
            self.recent.drain(..self.n_metrics);
        }
        self.recent.extend(&x.values);
    }
}

#[cfg(test)]
#[path = "kmeans_tests.rs"]
mod tests;
