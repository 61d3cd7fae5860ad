//! Import of a scikit-learn `IsolationForest` exported to ONNX by skl2onnx
//! (`training/train_isolation_forest.py`) into the native [`Forest`]:
//! `graph.rs` reads the graph (value lookups, constants, the score's normaliser), `trees.rs`
//! builds each tree from its regressor and encoders.
//!
//! The export does not store path lengths in the trees. Per estimator it has:
//!
//! ```text
//! input ─ Gather(axis=1, features) ─ TreeEnsembleRegressor (ai.onnx.ml, one tree, BRANCH_LEQ;
//!         │                          each leaf outputs its own node id as target weight)
//!         ├─ Cast(int64) ─ LabelEncoder: leaf id → training samples in the leaf ─┐ c(n) in ~15
//!         └─ Cast(int64) ─ LabelEncoder: leaf id → depth + 1 (root = 1) ─────────┴ Add/Mul/Log…, -1
//! ```
//!
//! then `Sum` over the estimators, `Div` by the constant `trees · c(ψ)` and
//! `score_samples = -(2 ^ -quotient)`. The importer reads each tree's splits from the
//! regressor, resolves every leaf through both encoders, and rebuilds scikit-learn's leaf path
//! length `depth + c(samples)` (see [`Forest::from_trees`]); ψ comes from the `Div` constant.
//! It checks the pieces against each other rather than trusting node names: the encoder that
//! maps every leaf to its structural depth + 1 is the depth encoder (so the other holds the
//! sample counts), and every tree's leaf counts must add up to the ψ the constant implies.
//!
//! Only what skl2onnx writes for `IsolationForest` is accepted; anything else is a
//! [`ForestError::Onnx`] saying what was expected and what was found, never a panic.
//!
//! Precision: the ONNX graph runs in float32 and skl2onnx stores each threshold as the
//! float32 `w` with `(float)x <= t ⇔ (float)x <= w` for scikit-learn's float64 threshold `t`.
//! So for inputs already rounded to f32 (`v as f32 as f64`; scikit-learn casts `X` to float32
//! too) the imported forest takes exactly scikit-learn's branches; its arithmetic is f64,
//! so it agrees with scikit-learn's `score_samples` to ~1e-15 and with onnxruntime to float32
//! rounding (~1e-7). An f64 input not rounded to f32 can branch differently from
//! scikit-learn only when it lies within one float32 step of a threshold.
//!
//! Trees are numbered in graph order in errors, which is not estimator order (skl2onnx sorts
//! nodes by name: node_sample0, node_sample10, ..., node_sample1, ...), so errors also name
//! the regressor node. The forest's score does not depend on the order.

pub(super) mod graph;
mod trees;

use crate::detect::{Forest, ForestError};
use prost::Message;

use crate::proto::onnx::{ModelProto, NodeProto};
use graph::{Graph, op_name};
use trees::read_tree;

/// Domain of `TreeEnsembleRegressor` and `LabelEncoder`.
const ML_DOMAIN: &str = "ai.onnx.ml";

/// What [`read_with_info`] learnt about the model besides the trees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnnxForestInfo {
    /// Name of the graph input (the `[batch, n_features]` float matrix), e.g. `input`.
    pub input_name: String,
    /// Name of the graph output carrying scikit-learn's `score_samples` (`-score`), e.g.
    /// `score_samples`; `None` when the model does not expose it as an output.
    pub score_output: Option<String>,
    /// `producer_name producer_version` of the file, e.g. `skl2onnx 1.20.0`.
    pub producer: String,
}

fn err(msg: impl Into<String>) -> ForestError {
    ForestError::Onnx(msg.into())
}

/// Reads a scikit-learn `IsolationForest` exported to ONNX by skl2onnx (see the module
/// docs). The forest scores `2^(-E[h(x)] / c(ψ))`, i.e. minus the model's
/// `score_samples` output, for vectors in the model's input space (already
/// standardised, if the model was trained on standardised data).
pub fn read(bytes: &[u8]) -> Result<Forest, ForestError> {
    Ok(read_with_info(bytes)?.0)
}

/// [`read`], plus the graph's input and output names.
pub fn read_with_info(bytes: &[u8]) -> Result<(Forest, OnnxForestInfo), ForestError> {
    let model = ModelProto::decode(bytes)
        .map_err(|e| err(format!("expected an ONNX ModelProto, protobuf decoding failed: {e}")))?;
    let graph =
        model.graph.as_ref().ok_or_else(|| err("expected an ONNX ModelProto with a graph, found none"))?;
    let g = Graph::new(graph);
    let (input_name, n_features) = g.input()?;
    let ensembles: Vec<&NodeProto> =
        graph.node.iter().filter(|n| n.domain == ML_DOMAIN && n.op_type == "TreeEnsembleRegressor").collect();
    if ensembles.is_empty() {
        let mut ops: Vec<String> = graph.node.iter().map(op_name).collect();
        ops.sort();
        ops.dedup();
        let found =
            if ops.is_empty() { "an empty graph".to_string() } else { format!("ops {}", ops.join(", ")) };
        return Err(err(format!("expected ai.onnx.ml TreeEnsembleRegressor nodes, found none ({found})")));
    }
    let mut trees = Vec::with_capacity(ensembles.len());
    let mut samples = Vec::with_capacity(ensembles.len());
    for (t, node) in ensembles.iter().enumerate() {
        // Graph order, which is not estimator order: skl2onnx sorts nodes by name
        // (node_sample0, node_sample1, node_sample10, ...), hence the name in errors.
        let tree = read_tree(&g, node, input_name, n_features)
            .map_err(|e| err(format!("tree {t} ('{}'): {e}", node.name)))?;
        trees.push(tree.nodes);
        samples.push((node.name.as_str(), tree.samples));
    }
    let (sample_size, score_output) = g.normaliser(&samples)?;
    let forest = Forest::from_trees(n_features, sample_size, &trees)?;
    let producer = format!("{} {}", model.producer_name, model.producer_version).trim().to_string();
    Ok((forest, OnnxForestInfo { input_name: input_name.to_string(), score_output, producer }))
}

#[cfg(test)]
mod tests;
