//! Configuration of the ensemble's online recalibration (`detect.recalibrate`) and of
//! detectors that flag on their own (`detect.alone_fpr`).

use serde::{Deserialize, Serialize};

use super::ConfigErrors;

/// Fewest recent scores from which a detector is recalibrated.
pub const MIN_POINTS: usize = 100;

/// Online recalibration: at every refit, each detector's raw scores are re-mapped to [0, 1] by
/// the distribution of the raw scores it actually produced on the last `window` vectors (all of
/// them, flagged ones included), instead of by its scores on the fit history alone. The tail is
/// extrapolated from the median excess over the 90th percentile, so a few percent of anomalous
/// scores in the window do not loosen it. This follows drift, and it cuts the loop in which
/// vectors flagged anomalous are left out of refits, the refit history gets calmer than the
/// data and the observed false-positive rate climbs far above `target_fpr`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RecalibrateConfig {
    /// Whether scores are recalibrated online.
    pub enabled: bool,
    /// Recent raw scores kept per detector and entity (8 bytes each).
    pub window: usize,
    /// Recent scores a detector needs before its recalibrated score replaces the one from the
    /// fit history.
    pub min_points: usize,
}

impl Default for RecalibrateConfig {
    fn default() -> Self {
        Self { enabled: false, window: 5000, min_points: 500 }
    }
}

impl RecalibrateConfig {
    /// Reports every invalid field; pure (fills no defaults).
    pub fn validate(&self, e: &mut ConfigErrors) {
        if self.min_points < MIN_POINTS {
            e.invalid("min_points", format!("must be >= {MIN_POINTS}, got {}", self.min_points));
        }
        if self.window < self.min_points {
            e.invalid("window", format!("must be >= min_points ({}), got {}", self.min_points, self.window));
        }
    }
}

/// Live false-positive control of the vote (`detect.fpr_control`): the threshold that
/// `target_fpr` (or `threshold`) sets is a tail rate on the fit history; this measures the rate
/// at which the vote actually flags each entity's last `window` vectors and raises the entity's
/// threshold by tenths of a decade while it is above that rate (at most `max_decades`), lowering
/// it again below half of it. The share of flagged vectors is exported as `anomaly_flag_rate`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FprControlConfig {
    /// Whether the threshold is corrected online.
    pub enabled: bool,
    /// Scored vectors per entity over which the rate is measured (rounded up to a multiple
    /// of 100: one byte per 100 vectors, two when enabled).
    pub window: usize,
    /// Scored vectors an entity needs before its threshold is corrected.
    pub min_points: usize,
    /// Largest raise, in decades of tail probability (1 = the vote's rate may be cut tenfold).
    pub max_decades: f64,
}

impl Default for FprControlConfig {
    fn default() -> Self {
        Self { enabled: false, window: 5000, min_points: 500, max_decades: 1.0 }
    }
}

impl FprControlConfig {
    /// Reports every invalid field; pure (fills no defaults).
    pub fn validate(&self, e: &mut ConfigErrors) {
        if self.min_points < MIN_POINTS {
            e.invalid("min_points", format!("must be >= {MIN_POINTS}, got {}", self.min_points));
        }
        if self.window < self.min_points {
            e.invalid("window", format!("must be >= min_points ({}), got {}", self.min_points, self.window));
        }
        if !(self.max_decades >= 0.0 && self.max_decades <= 6.0) {
            e.invalid("max_decades", format!("must be within [0, 6], got {}", self.max_decades));
        }
    }
}

/// Checks `detect.alone_fpr`: known detector names, rates within (0, 1).
pub fn validate_alone(alone: &std::collections::BTreeMap<String, f64>, e: &mut ConfigErrors) {
    for (name, fpr) in alone {
        if !super::DETECTORS.contains(&name.as_str()) {
            e.invalid(name, format!("unknown detector, expected one of {}", super::DETECTORS.join(", ")));
        } else if !(*fpr > 0.0 && *fpr < 1.0) {
            e.invalid(name, format!("must be within (0, 1), got {fpr}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn ensemble_keys_parse_and_validate() {
        let cfg = Config::parse(
            "detect:\n  recalibrate:\n    enabled: true\n    window: 2000\n  alone_fpr:\n    kmeans: 0.02\n  hold_ratio: 0.5\n",
        )
        .unwrap();
        assert!(cfg.detect.recalibrate.enabled);
        assert_eq!(cfg.detect.recalibrate.window, 2000);
        assert_eq!(cfg.detect.alone_fpr.as_ref().and_then(|a| a.get("kmeans")), Some(&0.02));
        assert_eq!(cfg.detect.hold_ratio, Some(0.5));
        assert!(cfg.validate().is_empty());

        let bad = Config::parse(
            "detect:\n  recalibrate:\n    min_points: 10\n  alone_fpr:\n    kmean: 0.02\n    zscore: 1.5\n  hold_ratio: 0\n",
        )
        .unwrap();
        let paths: Vec<String> = bad.validate().into_iter().map(|e| e.path).collect();
        assert_eq!(
            paths,
            [
                "detect.recalibrate.min_points",
                "detect.alone_fpr.kmean",
                "detect.alone_fpr.zscore",
                "detect.hold_ratio"
            ]
        );
    }

    #[test]
    fn fpr_control_and_outgoing_tls_keys_are_checked_by_name() {
        let bad = Config::parse(
            "detect:\n  fpr_control:\n    min_points: 10\n    max_decades: 7\nexport:\n  remote_write:\n    \
             - url: https://x/api/v1/write\n      tls_config:\n        cert_file: c.pem\n        server_name: x\n\
             alert:\n  tls_config:\n    key_file: k.pem\n",
        )
        .unwrap();
        let paths: Vec<String> = bad.validate().into_iter().map(|e| e.path).collect();
        for want in [
            "detect.fpr_control.min_points",
            "detect.fpr_control.max_decades",
            "export.remote_write[0].tls_config.cert_file",
            "export.remote_write[0].tls_config.server_name",
            "alert.tls_config.cert_file",
        ] {
            assert!(paths.iter().any(|p| p == want), "{want} not in {paths:?}");
        }
        assert!(
            Config::parse("detect:\n  fpr_control:\n    enabled: false\n").unwrap().validate().is_empty()
        );
    }
}
