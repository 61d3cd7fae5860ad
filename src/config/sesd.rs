//! Configuration of the `sesd` detector (`detect.sesd`).

use serde::{Deserialize, Serialize};

use super::ConfigErrors;

/// History length the detector needs to fit (and the smallest window).
pub const MIN_FIT: usize = 16;

/// Seasonal hybrid ESD: robust seasonal baseline and generalized ESD on the residuals.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SeasonalEsdConfig {
    /// Whether the detector runs (opt-in until the ensemble is tuned).
    pub enabled: bool,
    /// Weight in the ensemble vote.
    pub weight: f64,
    /// Points per feature in the sliding window the decomposition and the ESD test use. At
    /// most `detect.fit_window`: the window is read from the entity's buffered history.
    pub window: usize,
    /// Season length in points; 0 detects it per feature from the history's autocorrelation.
    pub period: usize,
    /// Largest share of the window the ESD test may call outliers, in (0, 0.49].
    pub max_anoms: f64,
    /// Significance level of the ESD test, in (0, 1).
    pub alpha: f64,
    /// Updates between rebuilds of the per-phase medians, residual spread and ESD verdict.
    pub recompute_every: usize,
}

impl Default for SeasonalEsdConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            weight: 1.0,
            window: 1440,
            period: 0,
            max_anoms: 0.02,
            alpha: 0.05,
            recompute_every: 60,
        }
    }
}

impl SeasonalEsdConfig {
    /// Reports every invalid field; pure (fills no defaults).
    pub fn validate(&self, e: &mut ConfigErrors) {
        if !(self.weight >= 0.0 && self.weight.is_finite()) {
            e.invalid("weight", format!("must be >= 0, got {}", self.weight));
        }
        if self.window < MIN_FIT {
            e.invalid("window", format!("must be >= {MIN_FIT}, got {}", self.window));
        }
        if self.period != 0 && (self.period < 2 || 2 * self.period > self.window) {
            e.invalid(
                "period",
                format!(
                    "must be 0 (detect) or within [2, window / 2 = {}], got {}",
                    self.window / 2,
                    self.period
                ),
            );
        }
        if !(self.max_anoms > 0.0 && self.max_anoms <= 0.49) {
            e.invalid("max_anoms", format!("must be within (0, 0.49], got {}", self.max_anoms));
        }
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            e.invalid("alpha", format!("must be within (0, 1), got {}", self.alpha));
        }
        if self.recompute_every == 0 {
            e.invalid("recompute_every", "must be >= 1, got 0");
        }
    }
}
