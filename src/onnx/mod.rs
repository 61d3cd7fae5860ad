//! ONNX models: the metadata beside them, the engines that run them and the built-in model.
//!
//! The LSTM autoencoder runs on ONNX Runtime when its shared library can be found (loaded at
//! run time with `ort`'s `load-dynamic`: nothing is downloaded at build time) and otherwise on
//! tract, the pure-Rust engine compiled into the binary. The library is looked for in
//! `onnx.runtime_path`, then `ORT_DYLIB_PATH`, then an installed Python `onnxruntime`
//! package. Which engine runs is logged once and exported as the `onnx_backend` label of
//! `dwcp_anomaly_build_info`. Every loading problem is an [`OnnxError`] naming the file and
//! what was expected, never a panic. With `detect.lstm_ae` off nothing here runs.
//!
//! A leaf used by `pipeline`: it hands `detect` a [`LstmModel`] whose network is a
//! [`SequenceModel`] trait object, so the detect stage never sees an engine.

mod metadata;
mod ort_engine;
mod tract_engine;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;
use tracing::{info, warn};

pub use metadata::{ModelMetadata, Scaler};

use crate::config::{Config, OnnxBackend, OnnxConfig};
use crate::detect::calibrate::Calibrator;
use crate::detect::lstm_ae::{LstmModel, STD_FLOOR, SequenceModel};
use crate::detect::{Forest, PretrainedForest};

/// The built-in autoencoder (`models/lstm_autoencoder.onnx`, profile `dwcp`).
pub const BUILTIN_LSTM: &[u8] = include_bytes!("../../models/lstm_autoencoder.onnx");
/// Its metadata.
pub const BUILTIN_LSTM_METADATA: &str = include_str!("../../models/lstm_autoencoder.json");
/// How the built-in model is named in messages.
pub const BUILTIN_NAME: &str = "built-in models/lstm_autoencoder.onnx";
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
/// `features`. `Ok(None)` when the detector is off, or when it uses the built-in model
/// (no `model` set) and the profile is not the built-in model's — then it is left out with
/// a warning, since there is nothing to run.
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
        other => other.clone(),
    };
    let (source, bytes, meta_file, meta_text) = match &chosen {
        Some(path) => {
            let (bytes, meta_path, text) = read_model(path)?;
            (path.display().to_string(), bytes, meta_path.display().to_string(), text)
        }
        None => {
            if !trained_on(BUILTIN_LSTM_METADATA, "lstm_autoencoder", features) {
                warn!(
                    profile,
                    "detect.lstm_ae is enabled without a model and the built-in model is for profile dwcp; \
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
    let forest = Forest::from_onnx(&bytes)
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

/// The network on the engine `onnx.backend` selects.
fn engine(
    onnx: &OnnxConfig,
    source: &str,
    bytes: &[u8],
    shape: &Shape,
) -> Result<Box<dyn SequenceModel>, OnnxError> {
    let tract = || -> Result<Box<dyn SequenceModel>, OnnxError> {
        Ok(Box::new(tract_engine::TractNet::new(bytes, shape).map_err(|reason| OnnxError::Model {
            file: source.into(),
            reason: format!(
                "tract cannot load it as a [batch, {}, {}] sequence model: {reason}",
                shape.window, shape.features
            ),
        })?))
    };
    if onnx.backend == OnnxBackend::Tract {
        return tract();
    }
    let Some((path, via)) = find_runtime(onnx) else {
        if onnx.backend == OnnxBackend::Ort {
            return Err(OnnxError::RuntimeNotFound);
        }
        log_once(|| {
            info!(
                "ONNX Runtime not found (onnx.runtime_path, {ORT_DYLIB_ENV}, Python onnxruntime); running ONNX models on tract."
            )
        });
        return tract();
    };
    match ort_engine::runtime(&path) {
        Ok(()) => {}
        Err(reason) if onnx.backend == OnnxBackend::Auto && via == VIA_PYTHON => {
            log_once(
                || warn!(path = %path.display(), %reason, "Cannot load the Python package's ONNX Runtime; running ONNX models on tract."),
            );
            return tract();
        }
        Err(reason) => return Err(OnnxError::Runtime { path, via, reason }),
    }
    log_once(|| info!(path = %path.display(), via, "Running ONNX models on ONNX Runtime."));
    let net = ort_engine::OrtNet::new(bytes, shape).map_err(|reason| OnnxError::Model {
        file: source.into(),
        reason: format!("ONNX Runtime cannot load it: {reason}"),
    })?;
    Ok(Box::new(net))
}

fn log_once(f: impl FnOnce()) {
    static LOGGED: std::sync::Once = std::sync::Once::new();
    LOGGED.call_once(f);
}

const VIA_PYTHON: &str = "the Python onnxruntime package";

/// Where ONNX Runtime's library is: `onnx.runtime_path`, `ORT_DYLIB_PATH`, or the `capi`
/// folder of an installed Python `onnxruntime` (found without importing it).
pub fn find_runtime(onnx: &OnnxConfig) -> Option<(PathBuf, &'static str)> {
    if let Some(p) = &onnx.runtime_path {
        return Some((p.clone(), "onnx.runtime_path"));
    }
    if let Some(p) = std::env::var_os(ORT_DYLIB_ENV).filter(|p| !p.is_empty()) {
        return Some((PathBuf::from(p), ORT_DYLIB_ENV));
    }
    python_runtime().map(|p| (p, VIA_PYTHON))
}

/// The probe spawns Python, so it runs once per process (eval loads a model per dataset).
fn python_runtime() -> Option<PathBuf> {
    static FOUND: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    FOUND.get_or_init(probe_python).clone()
}

fn probe_python() -> Option<PathBuf> {
    const PROBE: &str = "import importlib.util as u, glob, os\n\
        s = u.find_spec('onnxruntime')\n\
        d = [os.path.join(p, 'capi') for p in (s.submodule_search_locations or [])] if s else []\n\
        print('\\n'.join(sorted(f for x in d for f in glob.glob(os.path.join(x, 'libonnxruntime.so*')))))";
    let out = std::process::Command::new("python3")
        .args(["-c", PROBE])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    // The versioned file (libonnxruntime.so.1.32.0) sorts last; the wheel has no plain .so.
    text.lines().rfind(|l| !l.is_empty()).map(PathBuf::from)
}

/// The engine name of a loaded model, or `none`, for `dwcp_anomaly_build_info`.
pub fn backend_label(model: Option<&LstmModel>) -> &'static str {
    model.map_or("none", |m| m.net.backend())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::FeatureVector;

    fn dwcp_features() -> Vec<String> {
        crate::simulate::FEATURES.iter().map(|s| s.to_string()).collect()
    }

    fn config(backend: OnnxBackend) -> Config {
        let mut cfg = Config::default();
        cfg.detect.lstm_ae.enabled = true;
        cfg.onnx.backend = backend;
        cfg
    }

    #[test]
    fn builtin_model_runs_on_tract_batched_as_alone() {
        let m = load_lstm(&config(OnnxBackend::Tract), "dwcp", &dwcp_features()).unwrap().unwrap();
        assert_eq!((m.window, m.n_features, m.net.backend()), (32, 7, "tract"));
        let mut rng = crate::rng::Rng::new(5);
        let input: Vec<f32> = (0..3 * m.window_len()).map(|_| rng.normal() as f32).collect();
        let mut batched = Vec::new();
        m.reconstruct(&input, 3, &mut batched).unwrap();
        for (k, window) in input.chunks(m.window_len()).enumerate() {
            let mut alone = Vec::new();
            m.reconstruct(window, 1, &mut alone).unwrap();
            let diff = alone
                .iter()
                .zip(&batched[k * m.window_len()..])
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(diff < 1e-5, "window {k}: {diff}");
        }
    }

    #[test]
    fn disabled_or_foreign_profile_never_loads() {
        assert!(load_lstm(&Config::default(), "dwcp", &dwcp_features()).unwrap().is_none());
        let other = vec!["a".to_string()];
        assert!(load_lstm(&config(OnnxBackend::Tract), "node", &other).unwrap().is_none());
    }

    #[test]
    fn a_directory_picks_the_model_trained_on_the_profiles_features() {
        let dir = tempfile::tempdir().unwrap();
        // Two "families": dwcp's 7 features under a/, the same model relabelled with other
        // names under b/, and a stray file with unreadable metadata.
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(a.join("lstm_autoencoder.onnx"), BUILTIN_LSTM).unwrap();
        std::fs::write(a.join("lstm_autoencoder.json"), BUILTIN_LSTM_METADATA).unwrap();
        let mut other = BUILTIN_LSTM_METADATA.to_string();
        for (k, f) in dwcp_features().iter().enumerate() {
            other = other.replace(&format!("\"{f}\""), &format!("\"f{k}\""));
        }
        std::fs::write(b.join("lstm_autoencoder.onnx"), BUILTIN_LSTM).unwrap();
        std::fs::write(b.join("lstm_autoencoder.json"), &other).unwrap();
        std::fs::write(dir.path().join("0.onnx"), b"not a model").unwrap();
        std::fs::write(dir.path().join("0.json"), b"{").unwrap();
        let mut cfg = config(OnnxBackend::Tract);
        cfg.detect.lstm_ae.model = Some(dir.path().to_path_buf());

        let m = load_lstm(&cfg, "dwcp", &dwcp_features()).unwrap().unwrap();
        assert_eq!(m.source, a.join("lstm_autoencoder.onnx").display().to_string());
        let fs: Vec<String> = (0..7).map(|k| format!("f{k}")).collect();
        let m = load_lstm(&cfg, "csv", &fs).unwrap().unwrap();
        assert_eq!(m.source, b.join("lstm_autoencoder.onnx").display().to_string());
        // No model for these features: left out, not an error.
        assert!(load_lstm(&cfg, "csv", &fs[..3]).unwrap().is_none());
    }

    #[test]
    fn bad_model_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("m.onnx");
        let mut cfg = config(OnnxBackend::Tract);
        cfg.detect.lstm_ae.model = Some(model.clone());
        let err = load_lstm(&cfg, "dwcp", &dwcp_features()).unwrap_err().to_string();
        assert!(err.contains("cannot read") && err.contains("m.json"), "{err}");
        std::fs::write(dir.path().join("m.json"), BUILTIN_LSTM_METADATA).unwrap();
        std::fs::write(&model, b"not a model").unwrap();
        let err = load_lstm(&cfg, "dwcp", &dwcp_features()).unwrap_err().to_string();
        assert!(err.contains("m.onnx: not an ONNX model"), "{err}");
        // The right model with a window its metadata gets wrong.
        std::fs::write(&model, BUILTIN_LSTM).unwrap();
        let wrong = BUILTIN_LSTM_METADATA.replace("\"window\": 32", "\"window\": 16");
        std::fs::write(dir.path().join("m.json"), wrong).unwrap();
        let err = load_lstm(&cfg, "dwcp", &dwcp_features()).unwrap_err().to_string();
        assert!(err.contains("m.onnx: input \"input\" is [?, 32, 7], expected [batch, 16, 7]"), "{err}");
        // A tensor name the graph does not have.
        let renamed =
            BUILTIN_LSTM_METADATA.replace("\"output_name\": \"output\"", "\"output_name\": \"recon\"");
        std::fs::write(dir.path().join("m.json"), renamed).unwrap();
        let err = load_lstm(&cfg, "dwcp", &dwcp_features()).unwrap_err().to_string();
        assert!(
            err.contains("the metadata names output \"recon\", the model's outputs are [\"output\"]"),
            "{err}"
        );
        // Features in another order.
        let mut swapped = dwcp_features();
        swapped.swap(0, 1);
        std::fs::write(dir.path().join("m.json"), BUILTIN_LSTM_METADATA).unwrap();
        let err = load_lstm(&cfg, "dwcp", &swapped).unwrap_err().to_string();
        assert!(err.contains("m.json: model features") && err.contains("same order"), "{err}");
    }

    #[test]
    fn shipped_forest_is_imported_and_flags_a_spike() {
        let mut cfg = Config::default();
        cfg.detect.iforest.enabled = true;
        cfg.detect.iforest.model =
            Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("models/isolation_forest.onnx"));
        let f = load_forest(&cfg, &dwcp_features()).unwrap().unwrap();
        assert_eq!((f.forest.n_trees(), f.forest.sample_size()), (100, 256));
        let mut d = crate::detect::IsolationForestDetector::pretrained(f, 6.0);
        let mut rng = crate::rng::Rng::new(4);
        let normal = |rng: &mut crate::rng::Rng| -> Vec<f64> {
            [700.0, 25.0, 0.05, 2.5, 50.0, 55.0, 0.02]
                .iter()
                .map(|m| m * (1.0 + 0.05 * rng.normal()))
                .collect()
        };
        let history: Vec<FeatureVector> =
            (0..500).map(|t| FeatureVector { timestamp_ms: t, values: normal(&mut rng) }).collect();
        use crate::detect::Detector;
        d.fit(&history).unwrap();
        let ok = d.score(&FeatureVector { timestamp_ms: 501, values: normal(&mut rng) }).unwrap();
        let mut spike = normal(&mut rng);
        spike[1] = 400.0;
        let bad = d.score(&FeatureVector { timestamp_ms: 502, values: spike }).unwrap();
        assert!(bad.value > 0.5 && ok.value < 0.5, "spike {} normal {}", bad.value, ok.value);
        let top = bad.contributions.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
        assert_eq!(top, 1, "{:?}", bad.contributions);
        // Features in another order are refused, naming the metadata file.
        let mut swapped = dwcp_features();
        swapped.swap(0, 1);
        let err = load_forest(&cfg, &swapped).unwrap_err().to_string();
        assert!(err.contains("isolation_forest.json: model features"), "{err}");
    }
}
