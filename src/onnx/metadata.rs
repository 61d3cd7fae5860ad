//! The JSON metadata beside each model (`training/common.py` writes it).

use serde::Deserialize;

use crate::detect::Scaling;

/// What the loader reads of `<model>.json`; other keys (training summary, versions) are
/// informational.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelMetadata {
    /// Model name, e.g. `lstm_autoencoder`.
    pub name: String,
    /// Model kind: `lstm_autoencoder` or `isolation_forest`.
    pub kind: String,
    /// Profile the model was trained for.
    pub profile: String,
    /// Feature names, in input order.
    pub features: Vec<String>,
    /// Standardisation applied before the network.
    pub scaler: Scaler,
    /// `model` (default: the scaler above) or `entity` (each entity's own).
    #[serde(default)]
    pub scaling: Option<String>,
    /// Vectors per window (sequence models).
    #[serde(default)]
    pub window: Option<usize>,
    /// Name of the input tensor.
    pub input_name: String,
    /// Name of the output tensor.
    pub output_name: String,
    /// Quantiles of training raw scores at p = 0, 0.01, ..., 1.
    pub calibration_quantiles: Vec<f64>,
    /// Raw score at the training target false-positive rate.
    pub threshold: f64,
}

/// A per-feature standardisation.
#[derive(Debug, Clone, Deserialize)]
pub struct Scaler {
    /// Means.
    pub mean: Vec<f64>,
    /// Standard deviations.
    pub std: Vec<f64>,
}

impl ModelMetadata {
    /// Parses and checks the metadata of a model of `kind` for a profile with `features`;
    /// the error says what was expected.
    pub fn parse(text: &str, kind: &str, features: &[String]) -> Result<Self, String> {
        let m: ModelMetadata =
            serde_json::from_str(text).map_err(|e| format!("invalid JSON metadata: {e}"))?;
        if m.kind != kind {
            return Err(format!("metadata kind is {:?}, expected {kind:?}", m.kind));
        }
        if m.features != features {
            return Err(format!(
                "model features {:?} do not match the profile's features {features:?} (same names, same order)",
                m.features
            ));
        }
        let nf = features.len();
        if m.scaler.mean.len() != nf || m.scaler.std.len() != nf {
            let (a, b) = (m.scaler.mean.len(), m.scaler.std.len());
            return Err(format!("scaler has {a} means and {b} standard deviations, expected {nf} each"));
        }
        if m.scaler.mean.iter().chain(&m.scaler.std).any(|v| !v.is_finite())
            || m.scaler.std.iter().any(|s| *s <= 0.0)
        {
            return Err("scaler values must be finite with standard deviations > 0".into());
        }
        if m.calibration_quantiles.len() < crate::detect::calibrate::MIN_EMPIRICAL
            || m.calibration_quantiles.iter().any(|q| !q.is_finite())
            || m.calibration_quantiles.windows(2).any(|w| w[0] > w[1])
        {
            return Err(format!(
                "calibration_quantiles must be at least {} finite, non-decreasing values, got {}",
                crate::detect::calibrate::MIN_EMPIRICAL,
                m.calibration_quantiles.len()
            ));
        }
        if !m.threshold.is_finite() {
            return Err(format!("threshold must be finite, got {}", m.threshold));
        }
        m.scaling()?;
        Ok(m)
    }

    /// The scaler the network expects.
    pub fn scaling(&self) -> Result<Scaling, String> {
        match self.scaling.as_deref() {
            None | Some("model") => Ok(Scaling::Model),
            Some("entity") => Ok(Scaling::Entity),
            Some(other) => Err(format!("scaling is {other:?}, expected \"model\" or \"entity\"")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features() -> Vec<String> {
        vec!["a".into(), "b".into()]
    }

    fn meta(patch: impl FnOnce(&mut serde_json::Value)) -> String {
        let q: Vec<f64> = (0..=100).map(f64::from).collect();
        let mut v = serde_json::json!({
            "name": "lstm_autoencoder", "kind": "lstm_autoencoder", "profile": "p",
            "features": ["a", "b"], "scaler": {"mean": [0.0, 1.0], "std": [1.0, 2.0]},
            "window": 4, "input_name": "input", "output_name": "output",
            "calibration_quantiles": q, "threshold": 90.0
        });
        patch(&mut v);
        v.to_string()
    }

    #[test]
    fn valid_metadata_parses() {
        let m = ModelMetadata::parse(&meta(|_| {}), "lstm_autoencoder", &features()).unwrap();
        assert_eq!((m.window, m.scaling().unwrap()), (Some(4), Scaling::Model));
    }

    #[test]
    fn mismatches_say_what_was_expected() {
        let err = |patch: fn(&mut serde_json::Value)| {
            ModelMetadata::parse(&meta(patch), "lstm_autoencoder", &features()).unwrap_err()
        };
        assert!(
            err(|v| v["features"] = serde_json::json!(["b", "a"]))
                .contains("do not match the profile's features [\"a\", \"b\"]")
        );
        assert!(err(|v| v["kind"] = "isolation_forest".into()).contains("expected \"lstm_autoencoder\""));
        assert!(err(|v| v["scaler"]["std"] = serde_json::json!([1.0])).contains("expected 2 each"));
        assert!(err(|v| v["scaler"]["std"] = serde_json::json!([1.0, 0.0])).contains("> 0"));
        assert!(
            err(|v| v["calibration_quantiles"] = serde_json::json!([1.0, 0.0])).contains("non-decreasing")
        );
        assert!(err(|v| v["scaling"] = "global".into()).contains("expected \"model\" or \"entity\""));
        assert!(
            err(|v| {
                v.as_object_mut().unwrap().remove("threshold");
            })
            .contains("missing field `threshold`")
        );
        assert!(
            ModelMetadata::parse("{", "lstm_autoencoder", &features()).unwrap_err().contains("invalid JSON")
        );
    }
}
