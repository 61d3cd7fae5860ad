//! tract, the pure-Rust engine: always available, slower than ONNX Runtime.

use tract_onnx::prelude::*;

use super::Shape;
use crate::detect::SequenceModel;

type Plan = Arc<TypedRunnableModel>;

/// The model optimised once for a symbolic batch size.
pub struct TractNet {
    plan: Plan,
    shape: Shape,
}

impl TractNet {
    /// Loads `bytes` with a `[batch, window, features]` f32 input and optimises it.
    pub fn new(bytes: &[u8], shape: &Shape) -> Result<Self, String> {
        let plan = (|| -> TractResult<Plan> {
            let mut model = tract_onnx::onnx().model_for_read(&mut &*bytes)?;
            let batch = model.sym("batch");
            let dims: TVec<TDim> = tvec![batch.into(), shape.window.into(), shape.features.into()];
            model.set_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), dims))?;
            model.into_optimized()?.into_runnable()
        })()
        .map_err(|e| format!("{e:#}"))?;
        Ok(Self { plan, shape: shape.clone() })
    }
}

impl SequenceModel for TractNet {
    fn backend(&self) -> &'static str {
        "tract"
    }

    fn reconstruct(&self, input: &[f32], batch: usize, output: &mut Vec<f32>) -> Result<(), String> {
        let dims = [batch, self.shape.window, self.shape.features];
        let mut run = || -> TractResult<()> {
            let x = Tensor::from_shape(&dims, input)?;
            let out = self.plan.run(tvec![x.into_tvalue()])?;
            output.clear();
            let view = out[0].to_plain_array_view::<f32>()?;
            output.extend(view.iter().copied());
            Ok(())
        };
        run().map_err(|e| format!("{e:#}"))
    }
}
