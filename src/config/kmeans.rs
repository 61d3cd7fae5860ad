//! Configuration of the `kmeans` detector (`detect.kmeans`).

use serde::{Deserialize, Serialize};

use super::ConfigErrors;

/// k-means on differenced, smoothed and lagged metric values (Netdata-style).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KMeansConfig {
    /// Whether the detector runs (opt-in until the ensemble is tuned).
    pub enabled: bool,
    /// Weight in the ensemble vote.
    pub weight: f64,
    /// Number of clusters of normal behaviour.
    pub k: usize,
    /// Moving-average length, in points, applied to the differences.
    pub smooth: usize,
    /// Previous smoothed differences appended per metric (the vector has `lag + 1` per metric).
    pub lag: usize,
    /// Most Lloyd iterations per k-means run.
    pub max_iterations: u64,
    /// Seed of the k-means initialisation.
    pub seed: u64,
}

impl Default for KMeansConfig {
    fn default() -> Self {
        Self { enabled: false, weight: 1.0, k: 2, smooth: 3, lag: 5, max_iterations: 100, seed: 1 }
    }
}

impl KMeansConfig {
    /// Reports every invalid field; pure (fills no defaults).
    pub fn validate(&self, e: &mut ConfigErrors) {
        if !(self.weight >= 0.0 && self.weight.is_finite()) {
            e.invalid("weight", format!("must be >= 0, got {}", self.weight));
        }
        if !(1..=100).contains(&self.k) {
            e.invalid("k", format!("must be within [1, 100], got {}", self.k));
        }
        if self.smooth == 0 {
            e.invalid("smooth", "must be >= 1, got 0");
        }
        if self.lag > 100 {
            e.invalid("lag", format!("must be <= 100, got {}", self.lag));
        }
        if self.max_iterations == 0 {
            e.invalid("max_iterations", "must be >= 1, got 0");
        }
    }

    /// Raw vectors one feature vector is built from.
    pub fn span(&self) -> usize {
        self.smooth.max(1) + self.lag + 1
    }
}
