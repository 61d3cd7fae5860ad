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

/// One declared graph input or output.
#[derive(Debug, Clone, PartialEq)]
pub struct Declared {
    /// Tensor name.
    pub name: String,
    /// Input (true) or output.
    pub input: bool,
    /// Dimensions; `None` where symbolic.
    pub dims: Vec<Option<i64>>,
}

/// The graph's declared inputs and outputs, read from the ONNX protobuf without building
/// the model.
pub fn declared_io(bytes: &[u8]) -> Result<Vec<Declared>, String> {
    use tract_onnx::pb::tensor_shape_proto::dimension::Value;
    use tract_onnx::pb::type_proto;
    let proto = tract_onnx::onnx()
        .proto_model_for_read(&mut &*bytes)
        .map_err(|e| format!("not an ONNX model: {e:#}"))?;
    let graph = proto.graph.ok_or("the ONNX model has no graph")?;
    let dims = |v: &tract_onnx::pb::ValueInfoProto| -> Vec<Option<i64>> {
        match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
            Some(type_proto::Value::TensorType(t)) => t
                .shape
                .as_ref()
                .map(|s| {
                    s.dim
                        .iter()
                        .map(|d| match d.value {
                            Some(Value::DimValue(n)) => Some(n),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    };
    let io =
        |v: &tract_onnx::pb::ValueInfoProto, input| Declared { name: v.name.clone(), input, dims: dims(v) };
    Ok(graph.input.iter().map(|v| io(v, true)).chain(graph.output.iter().map(|v| io(v, false))).collect())
}
