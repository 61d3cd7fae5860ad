//! Configuration of the isolation forest detector (`detect.iforest`).

use serde::{Deserialize, Serialize};

use super::ConfigErrors;

/// Largest `trees` accepted: keeps per-entity memory and fit time bounded.
pub const MAX_TREES: usize = 10_000;
/// Largest `sample_size` accepted: keeps node indices within `u32` at `MAX_TREES` trees.
pub const MAX_SAMPLE_SIZE: usize = 65_536;

/// Isolation forest: random axis-parallel splits isolate outliers in few steps.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IsolationForestConfig {
    /// Whether the detector runs. Off by default until the ensemble weights are tuned.
    pub enabled: bool,
    /// Weight in the ensemble vote.
    pub weight: f64,
    /// Number of trees. More trees give smoother scores; scoring cost is linear in it.
    pub trees: usize,
    /// History vectors drawn (without replacement) to grow each tree, capped at the history
    /// length; tree depth is limited to ceil(log2(sample_size)).
    pub sample_size: usize,
    /// Seed of the tree-growing RNG: the same seed and history give the same model.
    pub seed: u64,
    /// A scikit-learn forest exported by `training/train_isolation_forest.py` (ONNX, with its
    /// `.json` metadata beside it), imported into the native forest and shared by every
    /// entity instead of growing trees per entity. Each entity still calibrates on its history.
    pub model: Option<std::path::PathBuf>,
}

impl Default for IsolationForestConfig {
    fn default() -> Self {
        Self { enabled: false, weight: 1.0, trees: 100, sample_size: 256, seed: 1, model: None }
    }
}

impl IsolationForestConfig {
    /// Reports out-of-range values under this component's key prefix. Pure.
    pub fn validate(&self, e: &mut ConfigErrors) {
        if !(1..=MAX_TREES).contains(&self.trees) {
            e.invalid("trees", format!("must be within [1, {MAX_TREES}], got {}", self.trees));
        }
        if !(16..=MAX_SAMPLE_SIZE).contains(&self.sample_size) {
            let max = MAX_SAMPLE_SIZE;
            e.invalid("sample_size", format!("must be within [16, {max}], got {}", self.sample_size));
        }
        if !(self.weight >= 0.0 && self.weight.is_finite()) {
            e.invalid("weight", format!("must be >= 0, got {}", self.weight));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(cfg: &IsolationForestConfig) -> Vec<String> {
        let mut e = ConfigErrors::default();
        e.scope("isolation_forest", |e| cfg.validate(e));
        e.into_vec().iter().map(|c| format!("{}: {}", c.path, c.reason)).collect()
    }

    #[test]
    fn defaults_are_valid_and_opt_in() {
        let cfg = IsolationForestConfig::default();
        assert!(!cfg.enabled);
        assert_eq!((cfg.trees, cfg.sample_size, cfg.seed, cfg.weight), (100, 256, 1, 1.0));
        assert!(errors(&cfg).is_empty());
    }

    #[test]
    fn bad_values_are_reported_with_their_key() {
        let cfg = IsolationForestConfig { trees: 0, sample_size: 8, weight: f64::NAN, ..Default::default() };
        assert_eq!(
            errors(&cfg),
            [
                "isolation_forest.trees: must be within [1, 10000], got 0",
                "isolation_forest.sample_size: must be within [16, 65536], got 8",
                "isolation_forest.weight: must be >= 0, got NaN",
            ]
        );
    }

    #[test]
    fn unknown_keys_are_rejected_and_missing_ones_default() {
        let cfg: IsolationForestConfig = serde_json::from_str(r#"{"trees": 50}"#).unwrap();
        assert_eq!(cfg, IsolationForestConfig { trees: 50, ..Default::default() });
        assert!(serde_json::from_str::<IsolationForestConfig>(r#"{"tree": 50}"#).is_err());
    }
}
