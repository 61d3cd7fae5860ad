//! ONNX models: the metadata beside them, the engines that run them and the built-in model.
//!
//! The LSTM autoencoder runs on ONNX Runtime when its shared library can be found (loaded at
//! run time with `ort`'s `load-dynamic`: nothing is downloaded at build time) and otherwise on
//! tract, the pure-Rust engine compiled into the binary. The library is looked for in
//! `onnx.runtime_path`, then `ORT_DYLIB_PATH`, then the `onnxruntime` package of the Python
//! named by `DWCP_ANOMALY_PYTHON` (default `python3`). Which engine runs is logged once and exported as the `onnx_backend` label of
//! `dwcp_anomaly_build_info`. Every loading problem is an [`OnnxError`] naming the file and
//! what was expected, never a panic. With `detect.lstm_ae` off nothing here runs.
//!
//! Model import, used by `pipeline`: it reads ONNX files (with `proto::onnx`) and builds
//! `detect`'s types from them — a [`LstmModel`] whose network is a
//! [`SequenceModel`](crate::detect::lstm_ae::SequenceModel) trait object, and the scikit-learn
//! forest as a native `Forest` (`forest`) — so the detect stage never sees a file format or an
//! engine.

pub mod forest;
mod metadata;
mod native_lstm;
mod ort_engine;
mod runtime;
mod tract_engine;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;
use tracing::{info, warn};

pub use metadata::{ModelMetadata, Scaler};
use runtime::engine;
pub use runtime::{PYTHON_ENV, backend_label, find_runtime, python};

use crate::config::{Config, OnnxConfig};
use crate::detect::PretrainedForest;
use crate::detect::calibrate::Calibrator;
use crate::detect::lstm_ae::{LstmModel, STD_FLOOR};

/// The built-in autoencoder (`models/lstm_autoencoder.onnx`, profile `dwcp`).
pub const BUILTIN_LSTM: &[u8] = include_bytes!("../../models/lstm_autoencoder.onnx");
/// Its metadata.
pub const BUILTIN_LSTM_METADATA: &str = include_str!("../../models/lstm_autoencoder.json");
/// How the built-in model is named in messages.
pub const BUILTIN_NAME: &str = "built-in models/lstm_autoencoder.onnx";
/// Where `detect.lstm_ae` looks for a model trained on the profile's features when
/// `detect.lstm_ae.model` is unset (relative to the working directory).
pub const SHIPPED_MODELS: &str = "models";
/// The ONNX Runtime release the Python requirements pin (its `api-N` must be ≥ ort's).
pub const ORT_VERSION: &str = "1.32.0";
/// Environment variable naming ONNX Runtime's library (ort's convention).
pub const ORT_DYLIB_ENV: &str = "ORT_DYLIB_PATH";

/// Why a model or the runtime could not be loaded.
#[derive(Debug, Error)]
pub enum OnnxError {
    /// The model or metadata file could not be read.
    #[error("cannot read {file}: {source}")]
    Read {
        /// The file.
        file: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The metadata does not fit the profile or is malformed.
    #[error("{file}: {reason}")]
    Metadata {
        /// The metadata file.
        file: String,
        /// What was expected.
        reason: String,
    },
    /// The engine rejected the model (corrupted file, wrong input shape, ...).
    #[error("{file}: {reason}")]
    Model {
        /// The model file.
        file: String,
        /// What was expected and what the engine said.
        reason: String,
    },
    /// ONNX Runtime's library could not be loaded.
    #[error(
        "cannot load ONNX Runtime from {path} (found via {via}): {reason}; expected ONNX Runtime >= 1.31 (the pinned onnxruntime=={ORT_VERSION} wheel's libonnxruntime.so.{ORT_VERSION}), or set onnx.backend: tract"
    )]
    Runtime {
        /// The library file.
        path: PathBuf,
        /// Where the path came from.
        via: &'static str,
        /// The loader's message.
        reason: String,
    },
    /// `onnx.backend: ort` but no library was found.
    #[error(
        "onnx.backend is ort but no ONNX Runtime library was found: set onnx.runtime_path or {ORT_DYLIB_ENV} to libonnxruntime.so.{ORT_VERSION}, or pip install onnxruntime=={ORT_VERSION}"
    )]
    RuntimeNotFound,
}

/// Loads the autoencoder `detect.lstm_ae` asks for, checked against the profile's
/// `features`. With no `model` set: the first model under `./models` trained on exactly these
/// features, else the built-in one when the profile is its (`dwcp`); `Ok(None)` when the
/// detector is off or no model fits the features — then it is left out, logged.
pub fn load_lstm(
    cfg: &Config,
    profile: &str,
    features: &[String],
) -> Result<Option<Arc<LstmModel>>, OnnxError> {
    let lc = &cfg.detect.lstm_ae;
    if !lc.enabled {
        return Ok(None);
    }
    let chosen = match &lc.model {
        Some(dir) if dir.is_dir() => match find_in_dir(dir, "lstm_autoencoder", features)? {
            Some(path) => Some(path),
            None => {
                warn!(
                    profile,
                    dir = %dir.display(),
                    features = features.len(),
                    "detect.lstm_ae.model is a directory holding no LSTM autoencoder trained on this profile's features; lstm_ae is left out"
                );
                return Ok(None);
            }
        },
        Some(file) => Some(file.clone()),
        // Unset: the models shipped in `models/` (the working directory's, as in the
        // repository and the container image) when one matches the features, else built in.
        None => {
            let shipped = Path::new(SHIPPED_MODELS);
            if shipped.is_dir() { find_in_dir(shipped, "lstm_autoencoder", features)? } else { None }
        }
    };
    let (source, bytes, meta_file, meta_text) = match &chosen {
        Some(path) => {
            let (bytes, meta_path, text) = read_model(path)?;
            (path.display().to_string(), bytes, meta_path.display().to_string(), text)
        }
        None => {
            if !trained_on(BUILTIN_LSTM_METADATA, "lstm_autoencoder", features) {
                info!(
                    profile,
                    features = features.len(),
                    "No LSTM autoencoder in {SHIPPED_MODELS}/ or built in is trained on this profile's features; \
                     lstm_ae is left out (train one with training/train_lstm_autoencoder.py and set detect.lstm_ae.model)"
                );
                return Ok(None);
            }
            (
                BUILTIN_NAME.to_string(),
                BUILTIN_LSTM.to_vec(),
                format!("{BUILTIN_NAME} metadata"),
                BUILTIN_LSTM_METADATA.to_string(),
            )
        }
    };
    let meta = ModelMetadata::parse(&meta_text, "lstm_autoencoder", features)
        .map_err(|reason| OnnxError::Metadata { file: meta_file.clone(), reason })?;
    let model = build_lstm(&cfg.onnx, &source, &bytes, &meta_file, &meta, cfg.detect.calibration_decades)?;
    info!(model = %source, backend = model.net.backend(), window = model.window, "LSTM autoencoder loaded.");
    Ok(Some(Arc::new(model)))
}

/// Loads the scikit-learn forest `detect.iforest.model` names into the native forest, checked
/// against the profile's `features`; `Ok(None)` when the detector is off or grows its own.
pub fn load_forest(cfg: &Config, features: &[String]) -> Result<Option<Arc<PretrainedForest>>, OnnxError> {
    let ic = &cfg.detect.iforest;
    let Some(path) = ic.model.as_ref().filter(|_| ic.enabled) else { return Ok(None) };
    let (bytes, meta_path, text) = read_model(path)?;
    let meta = ModelMetadata::parse(&text, "isolation_forest", features)
        .map_err(|reason| OnnxError::Metadata { file: meta_path.display().to_string(), reason })?;
    let forest = forest::read(&bytes)
        .map_err(|e| OnnxError::Model { file: path.display().to_string(), reason: e.to_string() })?;
    if forest.n_features() != features.len() {
        let reason =
            format!("the forest reads {} features, the profile has {}", forest.n_features(), features.len());
        return Err(OnnxError::Model { file: path.display().to_string(), reason });
    }
    info!(model = %path.display(), trees = forest.n_trees(), "Isolation forest imported from ONNX.");
    let std = meta.scaler.std.iter().map(|s| s.max(STD_FLOOR)).collect();
    Ok(Some(Arc::new(PretrainedForest { forest, mean: meta.scaler.mean, std })))
}

/// The first model (in path order) under `dir`, searched recursively, whose metadata (the
/// `.json` beside each `.onnx`) has this `kind` and exactly these feature names in this order.
/// Files that are not models, or whose metadata does not parse, are passed over.
fn find_in_dir(dir: &Path, kind: &str, features: &[String]) -> Result<Option<PathBuf>, OnnxError> {
    let mut pending = vec![dir.to_path_buf()];
    let mut models = Vec::new();
    while let Some(d) = pending.pop() {
        let entries = std::fs::read_dir(&d).map_err(|source| OnnxError::Read { file: d.clone(), source })?;
        for entry in entries {
            let path = entry.map_err(|source| OnnxError::Read { file: d.clone(), source })?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "onnx") {
                models.push(path);
            }
        }
    }
    models.sort();
    Ok(models.into_iter().find(|m| {
        std::fs::read_to_string(m.with_extension("json")).is_ok_and(|t| trained_on(&t, kind, features))
    }))
}

/// Whether metadata `text` parses and describes a model of this `kind` trained on exactly
/// these features, in this order.
fn trained_on(text: &str, kind: &str, features: &[String]) -> bool {
    serde_json::from_str::<ModelMetadata>(text).is_ok_and(|m| m.kind == kind && m.features == features)
}

/// A model file, the path of its metadata (`.json` beside it) and the metadata's text.
fn read_model(path: &Path) -> Result<(Vec<u8>, PathBuf, String), OnnxError> {
    let read =
        |file: &Path| std::fs::read(file).map_err(|source| OnnxError::Read { file: file.into(), source });
    let meta_path = path.with_extension("json");
    let text = String::from_utf8_lossy(&read(&meta_path)?).into_owned();
    Ok((read(path)?, meta_path, text))
}

/// Builds the network on the configured engine and checks it on one window of zeros.
/// Metadata problems are reported against `meta_file`, engine ones against `source`.
fn build_lstm(
    onnx: &OnnxConfig,
    source: &str,
    bytes: &[u8],
    meta_file: &str,
    meta: &ModelMetadata,
    decades: f64,
) -> Result<LstmModel, OnnxError> {
    let meta_err = |reason: &str| OnnxError::Metadata { file: meta_file.into(), reason: reason.into() };
    let window = meta.window.filter(|w| *w >= 1).ok_or_else(|| meta_err("window must be >= 1"))?;
    let nf = meta.features.len();
    let shape =
        Shape { window, features: nf, input: meta.input_name.clone(), output: meta.output_name.clone() };
    check_declared(source, bytes, &shape)?;
    let net = engine(onnx, source, bytes, &shape)?;
    let input = vec![0f32; window * nf];
    let mut output = Vec::new();
    net.reconstruct(&input, 1, &mut output).map_err(|reason| OnnxError::Model {
        file: source.into(),
        reason: format!("a [1, {window}, {nf}] window does not run: {reason}"),
    })?;
    if output.len() != input.len() {
        return Err(OnnxError::Model {
            file: source.into(),
            reason: format!(
                "output {} has {} values for a [1, {window}, {nf}] input, expected the same shape",
                meta.output_name,
                output.len()
            ),
        });
    }
    let calibrator = Calibrator::fit(&meta.calibration_quantiles, decades)
        .ok_or_else(|| meta_err("calibration_quantiles hold too few finite values"))?;
    Ok(LstmModel {
        source: source.into(),
        window,
        n_features: nf,
        mean: meta.scaler.mean.clone(),
        std: meta.scaler.std.iter().map(|s| s.max(STD_FLOOR)).collect(),
        scaling: meta.scaling().map_err(|reason| meta_err(&reason))?,
        threshold: meta.threshold,
        calibrator,
        net,
    })
}

/// Checks the graph's declared input and output against the metadata: names present, rank 3,
/// and every fixed dimension equal to `[batch, window, features]`.
fn check_declared(source: &str, bytes: &[u8], shape: &Shape) -> Result<(), OnnxError> {
    use prost::Message;
    let model_err = |reason: String| OnnxError::Model { file: source.into(), reason };
    let model = crate::proto::onnx::ModelProto::decode(bytes)
        .map_err(|e| model_err(format!("not an ONNX model: {e}")))?;
    let graph = model.graph.ok_or_else(|| model_err("the ONNX model has no graph".into()))?;
    for (name, is_input) in [(&shape.input, true), (&shape.output, false)] {
        let (what, declared) = if is_input { ("input", &graph.input) } else { ("output", &graph.output) };
        let Some(value) = declared.iter().find(|v| &v.name == name) else {
            let names: Vec<&str> = declared.iter().map(|v| v.name.as_str()).collect();
            return Err(model_err(format!(
                "the metadata names {what} {name:?}, the model's {what}s are {names:?}"
            )));
        };
        // Fixed sizes; `None` where symbolic.
        let dims: Vec<Option<i64>> = value
            .r#type
            .as_ref()
            .and_then(|t| t.tensor_type.as_ref())
            .and_then(|t| t.shape.as_ref())
            .map(|s| s.dim.iter().map(|d| d.dim_value).collect())
            .unwrap_or_default();
        let expected = [None, Some(shape.window as i64), Some(shape.features as i64)];
        let fits =
            dims.len() == 3 && dims.iter().zip(&expected).all(|(d, e)| d.is_none() || e.is_none() || d == e);
        if !fits {
            let shown: Vec<String> = dims.iter().map(|d| d.map_or("?".into(), |n| n.to_string())).collect();
            return Err(model_err(format!(
                "{what} {name:?} is [{}], expected [batch, {}, {}] (window and features from the metadata)",
                shown.join(", "),
                shape.window,
                shape.features
            )));
        }
    }
    Ok(())
}

/// The tensor layout of a sequence model.
#[derive(Debug, Clone)]
pub struct Shape {
    /// Steps per window.
    pub window: usize,
    /// Features per step.
    pub features: usize,
    /// Input tensor name.
    pub input: String,
    /// Output tensor name.
    pub output: String,
}

#[cfg(test)]
mod tests;
