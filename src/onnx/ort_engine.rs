//! ONNX Runtime through `ort`, its library loaded at run time.

use std::path::Path;
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::session::Session;
use ort::value::TensorRef;
use parking_lot::Mutex;

use super::Shape;
use crate::detect::SequenceModel;

/// The process's one ONNX Runtime environment, from the first library loaded.
static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();

/// Loads ONNX Runtime from `path` (once per process; later calls reuse the first result).
pub fn runtime(path: &Path) -> Result<(), String> {
    ENVIRONMENT
        .get_or_init(|| {
            let builder = ort::init_from(path).map_err(|e| e.to_string())?;
            builder.with_name("dwcp-anomaly").build().map_err(|e| e.to_string())
        })
        .as_ref()
        .map(|_| ())
        .map_err(Clone::clone)
}

/// A session on one model. ONNX Runtime's `run` takes the session mutably; the check scores
/// on one thread, so the lock is never contended.
pub struct OrtNet {
    session: Mutex<Session>,
    shape: Shape,
}

impl OrtNet {
    /// A session with one intra-op thread, so a check never competes with ingest for cores.
    pub fn new(bytes: &[u8], shape: &Shape) -> Result<Self, String> {
        let env = match ENVIRONMENT.get() {
            Some(Ok(env)) => env,
            _ => return Err("ONNX Runtime is not loaded".into()),
        };
        let session = Session::builder(env)
            .and_then(|b| b.with_intra_threads(1).map_err(Into::into))
            .and_then(|b| b.with_inter_threads(1).map_err(Into::into))
            .and_then(|mut b| b.commit_from_memory(bytes))
            .map_err(|e| e.to_string())?;
        for (what, names, want) in [
            (
                "input",
                session.inputs().iter().map(|o| o.name().to_string()).collect::<Vec<_>>(),
                &shape.input,
            ),
            ("output", session.outputs().iter().map(|o| o.name().to_string()).collect(), &shape.output),
        ] {
            if !names.contains(want) {
                return Err(format!("the metadata names {what} {want:?}, the model has {names:?}"));
            }
        }
        Ok(Self { session: Mutex::new(session), shape: shape.clone() })
    }
}

impl SequenceModel for OrtNet {
    fn backend(&self) -> &'static str {
        "ort"
    }

    fn reconstruct(&self, input: &[f32], batch: usize, output: &mut Vec<f32>) -> Result<(), String> {
        let dims = [batch, self.shape.window, self.shape.features];
        let tensor = TensorRef::from_array_view((dims, input)).map_err(|e| e.to_string())?;
        let mut session = self.session.lock();
        let outputs =
            session.run(ort::inputs![self.shape.input.as_str() => tensor]).map_err(|e| e.to_string())?;
        let (_, data) =
            outputs[self.shape.output.as_str()].try_extract_tensor::<f32>().map_err(|e| e.to_string())?;
        output.clear();
        output.extend_from_slice(data);
        Ok(())
    }
}
