//! Configuration of the LSTM autoencoder (`detect.lstm_ae`) and of the ONNX runtime (`onnx`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigErrors;

/// Largest `max_batch` accepted.
pub const MAX_BATCH: usize = 65_536;

/// LSTM autoencoder: reconstruction error of each entity's last `window` vectors, run through
/// an ONNX model trained by `training/train_lstm_autoencoder.py`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LstmAeConfig {
    /// Whether the detector runs. Off by default: when off the service never touches ONNX.
    pub enabled: bool,
    /// Weight in the ensemble vote.
    pub weight: f64,
    /// The ONNX model; its metadata is the `.json` file of the same name beside it. A
    /// directory: the first model under it (recursively, in path order) whose metadata lists
    /// exactly the profile's features — one setting for several feature sets; with none, the
    /// detector is left out with a warning. Unset: the model built into the binary
    /// (`models/lstm_autoencoder.onnx`, `dwcp` profile).
    pub model: Option<PathBuf>,
    /// Most windows per inference call; a check with more entities makes several calls.
    pub max_batch: usize,
    /// Newest steps of each window the score covers. Unset: the whole window (training's
    /// definition; best point F1 on real server data, whose anomalies last, but a passed spike
    /// stays in the score for a window's length); 1 scores the vector at hand in its window's
    /// context.
    pub score_steps: Option<usize>,
}

impl Default for LstmAeConfig {
    fn default() -> Self {
        Self { enabled: false, weight: 1.0, model: None, max_batch: 256, score_steps: None }
    }
}

impl LstmAeConfig {
    /// Reports out-of-range values under this component's key prefix. Pure.
    pub fn validate(&self, e: &mut ConfigErrors) {
        if !(self.weight >= 0.0 && self.weight.is_finite()) {
            e.invalid("weight", format!("must be >= 0, got {}", self.weight));
        }
        if !(1..=MAX_BATCH).contains(&self.max_batch) {
            e.invalid("max_batch", format!("must be within [1, {MAX_BATCH}], got {}", self.max_batch));
        }
        if self.score_steps == Some(0) {
            e.invalid("score_steps", "must be >= 1");
        }
    }
}

/// Which engine runs ONNX models.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnnxBackend {
    /// The native engine when the graph is the shipped encoder–decoder shape (what
    /// `training/train_lstm_autoencoder.py` exports), else ONNX Runtime when its library is
    /// found, else tract.
    #[default]
    Auto,
    /// The native engine (the shipped encoder–decoder shape only; another graph is a startup
    /// error).
    Native,
    /// ONNX Runtime (`libonnxruntime.so`); not finding or loading it is a startup error.
    Ort,
    /// tract, the pure-Rust engine built into the binary.
    Tract,
}

impl OnnxBackend {
    /// The config value.
    pub fn as_str(self) -> &'static str {
        match self {
            OnnxBackend::Auto => "auto",
            OnnxBackend::Native => "native",
            OnnxBackend::Ort => "ort",
            OnnxBackend::Tract => "tract",
        }
    }
}

/// The ONNX runtime that runs the LSTM autoencoder.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct OnnxConfig {
    /// `auto`, `native`, `ort` or `tract`.
    pub backend: OnnxBackend,
    /// ONNX Runtime's shared library (`libonnxruntime.so.1.32.0`). Unset: `ORT_DYLIB_PATH`,
    /// then the library of an installed Python `onnxruntime` package.
    pub runtime_path: Option<PathBuf>,
}
