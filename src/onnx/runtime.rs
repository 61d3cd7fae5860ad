//! Which engine runs a network: the native one for the shipped encoder–decoder shape, else
//! ONNX Runtime when its library is found (configured, in `ORT_DYLIB_PATH`, or in an
//! installed Python `onnxruntime`), tract otherwise.

use std::path::PathBuf;

use tracing::{debug, info, warn};

use super::{ORT_DYLIB_ENV, OnnxError, Shape, native_lstm, ort_engine, tract_engine};
use crate::config::{OnnxBackend, OnnxConfig};
use crate::detect::lstm_ae::{LstmModel, SequenceModel};

/// The network on the engine `onnx.backend` selects.
pub(super) fn engine(
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
    if matches!(onnx.backend, OnnxBackend::Auto | OnnxBackend::Native) {
        match native_lstm::NativeLstm::new(bytes, shape) {
            Ok(net) => return Ok(Box::new(net)),
            Err(reason) if onnx.backend == OnnxBackend::Native => {
                return Err(OnnxError::Model {
                    file: source.into(),
                    reason: format!("the native engine cannot run it: {reason}"),
                });
            }
            Err(reason) => {
                debug!(model = source, %reason, "Not the shipped LSTM shape; trying ONNX Runtime, then tract.")
            }
        }
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

/// Environment variable naming the Python interpreter whose `onnxruntime` package is probed
/// (`scripts/test.sh` points it at the virtual environment it creates; the tests start their
/// Python peers with the same interpreter).
pub const PYTHON_ENV: &str = "DWCP_ANOMALY_PYTHON";

/// The Python interpreter: `DWCP_ANOMALY_PYTHON` when set, else `python3` on `PATH`.
pub fn python() -> PathBuf {
    std::env::var_os(PYTHON_ENV)
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from("python3"), PathBuf::from)
}

/// Where ONNX Runtime's library is: `onnx.runtime_path`, `ORT_DYLIB_PATH`, or the `capi`
/// folder of the `onnxruntime` package of [`python`] (found without importing it).
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
    let out = std::process::Command::new(python())
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
