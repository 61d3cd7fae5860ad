//! Import of a scikit-learn `IsolationForest` exported to ONNX by skl2onnx
//! (`training/train_isolation_forest.py`) into the native [`Forest`].
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

use std::collections::{HashMap, HashSet};

use prost::Message;

use super::error::ForestError;
use super::tree::{Forest, MAX_FEATURES, TreeNode, average_path_length};
use crate::proto::onnx::{AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, data_type};

/// Domain of `TreeEnsembleRegressor` and `LabelEncoder`.
const ML_DOMAIN: &str = "ai.onnx.ml";
/// Operators that may sit between a tree's output and its `LabelEncoder`s.
const PASS_THROUGH: [&str; 6] = ["Cast", "Reshape", "Identity", "Flatten", "Squeeze", "Unsqueeze"];
/// Relative tolerance when matching the `trees · c(ψ)` constant: it is stored as float32,
/// whose rounding is ≤ 6e-8 relative; a few ulps of slack.
const NORMALISER_TOLERANCE: f64 = 2.5e-7;

/// What [`Forest::from_onnx_with_info`] learnt about the model besides the trees.
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

impl Forest {
    /// Reads a scikit-learn `IsolationForest` exported to ONNX by skl2onnx (see the module
    /// docs). The forest scores `2^(-E[h(x)] / c(ψ))`, i.e. minus the model's
    /// `score_samples` output, for vectors in the model's input space (already
    /// standardised, if the model was trained on standardised data).
    pub fn from_onnx(bytes: &[u8]) -> Result<Forest, ForestError> {
        Ok(Self::from_onnx_with_info(bytes)?.0)
    }

    /// [`from_onnx`](Self::from_onnx), plus the graph's input and output names.
    pub fn from_onnx_with_info(bytes: &[u8]) -> Result<(Forest, OnnxForestInfo), ForestError> {
        let model = ModelProto::decode(bytes)
            .map_err(|e| err(format!("expected an ONNX ModelProto, protobuf decoding failed: {e}")))?;
        let graph = model
            .graph
            .as_ref()
            .ok_or_else(|| err("expected an ONNX ModelProto with a graph, found none"))?;
        let g = Graph::new(graph);
        let (input_name, n_features) = g.input()?;
        let ensembles: Vec<&NodeProto> = graph
            .node
            .iter()
            .filter(|n| n.domain == ML_DOMAIN && n.op_type == "TreeEnsembleRegressor")
            .collect();
        if ensembles.is_empty() {
            let mut ops: Vec<String> = graph.node.iter().map(op_name).collect();
            ops.sort();
            ops.dedup();
            let found =
                if ops.is_empty() { "an empty graph".to_string() } else { format!("ops {}", ops.join(", ")) };
            return Err(err(format!(
                "expected ai.onnx.ml TreeEnsembleRegressor nodes, found none ({found})"
            )));
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
}

/// `domain:op_type`, or `op_type` in the default domain.
fn op_name(n: &NodeProto) -> String {
    if n.domain.is_empty() || n.domain == "ai.onnx" {
        n.op_type.clone()
    } else {
        format!("{}:{}", n.domain, n.op_type)
    }
}

/// Lookups over a graph's value names.
struct Graph<'a> {
    g: &'a GraphProto,
    /// Value name → the node that produces it.
    producer: HashMap<&'a str, &'a NodeProto>,
    /// Value name → the nodes that read it.
    consumers: HashMap<&'a str, Vec<&'a NodeProto>>,
    /// Initializers and `Constant` node outputs by name.
    constants: HashMap<&'a str, &'a TensorProto>,
}

impl<'a> Graph<'a> {
    fn new(g: &'a GraphProto) -> Self {
        let mut producer = HashMap::new();
        let mut consumers: HashMap<&str, Vec<&NodeProto>> = HashMap::new();
        let mut constants: HashMap<&str, &TensorProto> =
            g.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
        for n in &g.node {
            for o in &n.output {
                producer.insert(o.as_str(), n);
            }
            for i in &n.input {
                consumers.entry(i.as_str()).or_default().push(n);
            }
            if n.op_type == "Constant"
                && n.domain.is_empty()
                && let (Some(o), Some(t)) = (n.output.first(), attr(n, "value").and_then(|a| a.t.as_ref()))
            {
                constants.insert(o.as_str(), t);
            }
        }
        Self { g, producer, consumers, constants }
    }

    /// The one graph input that is not an initializer, and its feature count.
    fn input(&self) -> Result<(&'a str, usize), ForestError> {
        let inputs: Vec<_> =
            self.g.input.iter().filter(|i| !self.constants.contains_key(i.name.as_str())).collect();
        let [input] = inputs.as_slice() else {
            let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
            return Err(err(format!(
                "expected 1 graph input (the feature matrix), found {}: {names:?}",
                inputs.len()
            )));
        };
        let dims = input.r#type.as_ref().and_then(|t| t.tensor_type.as_ref()).and_then(|t| t.shape.as_ref());
        let dims = dims.map(|s| s.dim.as_slice()).unwrap_or_default();
        if let [_, d] = dims
            && let Some(n) = d.dim_value.filter(|&n| n >= 1)
        {
            return match usize::try_from(n) {
                Ok(n) if n <= MAX_FEATURES => Ok((input.name.as_str(), n)),
                _ => Err(err(format!(
                    "expected at most {MAX_FEATURES} features, found graph input '{}' with {n}",
                    input.name
                ))),
            };
        }
        let shape: Vec<String> = dims
            .iter()
            .map(|d| match (&d.dim_value, &d.dim_param) {
                (Some(v), _) => v.to_string(),
                (None, Some(p)) => p.clone(),
                (None, None) => "?".into(),
            })
            .collect();
        Err(err(format!(
            "expected graph input '{}' of shape [batch, n_features] with a fixed n_features, found [{}]",
            input.name,
            shape.join(", ")
        )))
    }

    /// Elements of the constant `name`; `None` when it is not a constant.
    fn constant(&self, name: &str) -> Result<Option<Vec<f64>>, String> {
        match self.constants.get(name) {
            Some(t) => tensor_values(t).map(Some).map_err(|e| format!("constant '{name}': {e}")),
            None => Ok(None),
        }
    }

    /// ψ from the score's normaliser `Pow(2, Neg(Div(Σ path lengths, trees · c(ψ))))`, checked
    /// against the trees' leaf sample counts (`samples`: name and sum per tree), and the name of
    /// the graph output holding `score_samples = Neg(Pow(..))`.
    fn normaliser(&self, samples: &[(&str, f64)]) -> Result<(usize, Option<String>), ForestError> {
        let mut found = Vec::new();
        for pow in self.g.node.iter().filter(|n| n.op_type == "Pow" && n.domain.is_empty()) {
            let (Some(base), Some(exp)) = (pow.input.first(), pow.input.get(1)) else { continue };
            if self.constant(base).ok().flatten().as_deref() != Some(&[2.0][..]) {
                continue;
            }
            let Some(neg) = self.producer.get(exp.as_str()).filter(|n| n.op_type == "Neg") else { continue };
            let div = neg.input.first().and_then(|i| self.producer.get(i.as_str()));
            let Some(div) = div.filter(|n| n.op_type == "Div") else { continue };
            let divisor = div.input.get(1).map(|d| self.constant(d)).unwrap_or(Ok(None)).map_err(err)?;
            if let Some([k]) = divisor.as_deref() {
                found.push((*k, pow));
            }
        }
        let [(k, pow)] = found.as_slice() else {
            return Err(err(format!(
                "expected the score 2^(-Σ path lengths / (trees · c(ψ))) as one Pow(2, Neg(Div(_, constant))), \
                 found {}",
                found.len()
            )));
        };
        let trees = samples.len() as f64;
        let c = |n: usize| trees * average_path_length(n as f64);
        let near = |n: usize| (c(n) - k).abs() <= NORMALISER_TOLERANCE * k.abs();
        let k32 = *k as f32;
        if !(k.is_finite() && *k >= c(2) * (1.0 - NORMALISER_TOLERANCE)) {
            return Err(err(format!(
                "expected the normaliser trees · c(ψ) >= {} for {trees} trees (ψ >= 2), found {k32}",
                c(2)
            )));
        }
        // c is increasing: the smallest n with c(n) >= k, or the one below it.
        let (mut lo, mut hi) = (2usize, 1usize << 52);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if c(mid) >= *k { hi = mid } else { lo = mid + 1 }
        }
        let psi = if lo > 2 && (k - c(lo - 1)).abs() <= (c(lo) - k).abs() { lo - 1 } else { lo };
        if !near(psi) {
            return Err(err(format!(
                "the normaliser {k32} is not {trees} trees · c(n) for any sample size n (nearest: n = {psi}, {})",
                c(psi) as f32
            )));
        }
        // Beyond ψ ≈ 3e5 neighbouring ψ give the same float32 constant; the counts decide.
        let psi = match samples.first() {
            Some(&(_, s))
                if s != psi as f64
                    && samples.iter().all(|&(_, x)| x == s)
                    && s >= 2.0
                    && near(s as usize) =>
            {
                s as usize
            }
            _ => psi,
        };
        if let Some((t, (name, s))) = samples.iter().enumerate().find(|&(_, &(_, s))| s != psi as f64) {
            return Err(err(format!(
                "tree {t} ('{name}'): its leaves hold {s} training samples, but the normaliser {k32} = {trees} trees · c(ψ) \
                 implies ψ = {psi}"
            )));
        }
        let graph_outputs: HashSet<&str> = self.g.output.iter().map(|o| o.name.as_str()).collect();
        let score_output = pow.output.first().and_then(|o| self.consumers.get(o.as_str())).and_then(|cs| {
            cs.iter()
                .filter(|n| n.op_type == "Neg")
                .filter_map(|n| n.output.first())
                .find(|o| graph_outputs.contains(o.as_str()))
                .cloned()
        });
        Ok((psi, score_output))
    }
}

/// Elements of a constant tensor as f64.
fn tensor_values(t: &TensorProto) -> Result<Vec<f64>, String> {
    if t.data_location == 1 {
        return Err("external tensor data is not supported".into());
    }
    let raw = &t.raw_data;
    fn chunks<const N: usize>(raw: &[u8], f: impl Fn([u8; N]) -> f64) -> Result<Vec<f64>, String> {
        if !raw.len().is_multiple_of(N) {
            return Err(format!(
                "raw_data of {} bytes is not a whole number of {N}-byte elements",
                raw.len()
            ));
        }
        Ok(raw.chunks_exact(N).map(|c| f(c.try_into().unwrap_or([0; N]))).collect())
    }
    match t.data_type {
        data_type::FLOAT if !raw.is_empty() => chunks::<4>(raw, |b| f32::from_le_bytes(b) as f64),
        data_type::FLOAT => Ok(t.float_data.iter().map(|&v| v as f64).collect()),
        data_type::DOUBLE if !raw.is_empty() => chunks::<8>(raw, f64::from_le_bytes),
        data_type::DOUBLE => Ok(t.double_data.clone()),
        data_type::INT64 if !raw.is_empty() => chunks::<8>(raw, |b| i64::from_le_bytes(b) as f64),
        data_type::INT64 => Ok(t.int64_data.iter().map(|&v| v as f64).collect()),
        data_type::INT32 if !raw.is_empty() => chunks::<4>(raw, |b| i32::from_le_bytes(b) as f64),
        data_type::INT32 => Ok(t.int32_data.iter().map(|&v| v as f64).collect()),
        other => Err(format!("expected a float, double, int32 or int64 tensor, found data type {other}")),
    }
}

fn attr<'n>(node: &'n NodeProto, name: &str) -> Option<&'n AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

/// An INTS attribute; required.
fn ints<'n>(node: &'n NodeProto, name: &str) -> Result<&'n [i64], String> {
    attr(node, name).map(|a| a.ints.as_slice()).ok_or_else(|| format!("attribute {name} missing"))
}

/// A FLOATS attribute or, failing that, its tensor form `<name>_as_tensor` (or `tensor`).
fn floats(node: &NodeProto, name: &str, tensor: &str) -> Result<Option<Vec<f64>>, String> {
    if let Some(a) = attr(node, name) {
        return Ok(Some(a.floats.iter().map(|&v| v as f64).collect()));
    }
    match attr(node, tensor) {
        Some(a) => {
            let t = a.t.as_ref().ok_or_else(|| format!("attribute {tensor} holds no tensor"))?;
            tensor_values(t).map(Some).map_err(|e| format!("attribute {tensor}: {e}"))
        }
        None => Ok(None),
    }
}

/// A STRING attribute as text, if present.
fn string(node: &NodeProto, name: &str) -> Option<String> {
    attr(node, name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
}

/// One imported tree: nodes with the root first, and the training samples in its leaves.
struct Tree {
    nodes: Vec<TreeNode>,
    samples: f64,
}

/// One `LabelEncoder`'s map, keyed the way its input arrives.
enum Keys {
    /// `keys_int64s`: the regressor's float output cast to int64 (truncated).
    Ints(HashMap<i64, f64>),
    /// `keys_floats`: the float output itself (bit pattern, -0 folded into +0).
    Floats(HashMap<u32, f64>),
}

struct Encoder<'a> {
    name: &'a str,
    keys: Keys,
}

impl Encoder<'_> {
    fn read<'n>(node: &'n NodeProto) -> Result<Encoder<'n>, String> {
        let name = node.name.as_str();
        let fail = |what: &str| format!("LabelEncoder '{name}': {what}");
        let values = match floats(node, "values_floats", "values_tensor").map_err(|e| fail(&e))? {
            Some(v) => v,
            None => match attr(node, "values_int64s") {
                Some(a) => a.ints.iter().map(|&v| v as f64).collect(),
                None => {
                    return Err(fail("expected values_floats, values_int64s or values_tensor, found none"));
                }
            },
        };
        let keys = if let Some(a) = attr(node, "keys_int64s") {
            Keys::Ints(a.ints.iter().copied().zip(values.iter().copied()).collect())
        } else if let Some(a) = attr(node, "keys_floats") {
            Keys::Floats(a.floats.iter().map(|k| (k + 0.0).to_bits()).zip(values.iter().copied()).collect())
        } else if let Some(t) = attr(node, "keys_tensor").and_then(|a| a.t.as_ref()) {
            let k = tensor_values(t).map_err(|e| fail(&format!("keys_tensor: {e}")))?;
            match t.data_type {
                data_type::INT64 | data_type::INT32 => {
                    Keys::Ints(k.iter().map(|&k| k as i64).zip(values.iter().copied()).collect())
                }
                _ => Keys::Floats(
                    k.iter().map(|&k| (k as f32 + 0.0).to_bits()).zip(values.iter().copied()).collect(),
                ),
            }
        } else {
            return Err(fail("expected numeric keys (keys_int64s, keys_floats or keys_tensor), found none"));
        };
        let n_keys = match &keys {
            Keys::Ints(m) => m.len(),
            Keys::Floats(m) => m.len(),
        };
        if n_keys != values.len() {
            return Err(fail(&format!("{} values for {n_keys} distinct keys", values.len())));
        }
        Ok(Encoder { name, keys })
    }

    /// The value for a regressor output.
    fn get(&self, out: f32) -> Option<f64> {
        match &self.keys {
            // ONNX Cast float → int64 truncates; out of range is undefined, so no entry.
            Keys::Ints(m) if out.is_finite() && out.abs() < 9.0e18 => m.get(&(out.trunc() as i64)).copied(),
            Keys::Ints(_) => None,
            Keys::Floats(m) => m.get(&(out + 0.0).to_bits()).copied(),
        }
    }
}

/// The `LabelEncoder`s reading `value` directly or through [`PASS_THROUGH`] operators.
fn encoders_of<'a>(g: &Graph<'a>, value: &'a str) -> Vec<&'a NodeProto> {
    let (mut found, mut seen, mut todo) = (Vec::new(), HashSet::new(), vec![value]);
    while let Some(v) = todo.pop() {
        if !seen.insert(v) {
            continue;
        }
        for &n in g.consumers.get(v).map(Vec::as_slice).unwrap_or_default() {
            if n.domain == ML_DOMAIN && n.op_type == "LabelEncoder" {
                found.push(n);
            } else if n.domain.is_empty() && PASS_THROUGH.contains(&n.op_type.as_str()) {
                todo.extend(n.output.first().map(String::as_str));
            }
        }
    }
    found
}

/// Reads one `TreeEnsembleRegressor` and its encoders. Errors are prefixed by the caller.
fn read_tree<'a>(g: &Graph<'a>, node: &'a NodeProto, input: &str, n_features: usize) -> Result<Tree, String> {
    let features = feature_map(g, node, input, n_features)?;

    if let Some(p) = string(node, "post_transform").filter(|p| p != "NONE") {
        return Err(format!("expected post_transform NONE, found {p}"));
    }
    if let Some(n) = attr(node, "n_targets").map(|a| a.i).filter(|&n| n != 1) {
        return Err(format!("expected n_targets 1 (the leaf id), found {n}"));
    }
    let base =
        floats(node, "base_values", "base_values_as_tensor")?.and_then(|b| b.first().copied()).unwrap_or(0.0);

    let tree_ids = ints(node, "nodes_treeids")?;
    let ids = ints(node, "nodes_nodeids")?;
    let feats = ints(node, "nodes_featureids")?;
    let modes: Vec<String> = attr(node, "nodes_modes")
        .ok_or("attribute nodes_modes missing")?
        .strings
        .iter()
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    let trues = ints(node, "nodes_truenodeids")?;
    let falses = ints(node, "nodes_falsenodeids")?;
    let values = floats(node, "nodes_values", "nodes_values_as_tensor")?
        .ok_or("expected nodes_values or nodes_values_as_tensor, found neither")?;
    let n = ids.len();
    let zeros = vec![0; n];
    let missing = attr(node, "nodes_missing_value_tracks_true").map(|a| a.ints.as_slice()).unwrap_or(&zeros);
    if n == 0 {
        return Err(format!("TreeEnsembleRegressor '{}' has no nodes", node.name));
    }
    let lens = [
        ("nodes_treeids", tree_ids.len()),
        ("nodes_featureids", feats.len()),
        ("nodes_modes", modes.len()),
        ("nodes_truenodeids", trues.len()),
        ("nodes_falsenodeids", falses.len()),
        ("nodes_values", values.len()),
        ("nodes_missing_value_tracks_true", missing.len()),
    ];
    if let Some((name, len)) = lens.iter().find(|(_, len)| *len != n) {
        return Err(format!(
            "attribute {name} has {len} entries, expected {n} (one per node in nodes_nodeids)"
        ));
    }
    let tree_id = tree_ids[0];
    if let Some(other) = tree_ids.iter().find(|&&t| t != tree_id) {
        return Err(format!(
            "expected one tree per TreeEnsembleRegressor (its output, a leaf id, feeds LabelEncoders), \
             found trees {tree_id} and {other} in '{}'",
            node.name
        ));
    }

    // Node id → position.
    let mut pos = HashMap::with_capacity(n);
    for (p, &id) in ids.iter().enumerate() {
        if pos.insert(id, p).is_some() {
            return Err(format!("node id {id} appears twice"));
        }
    }
    let child = |p: usize, id: i64| {
        pos.get(&id).copied().ok_or_else(|| format!("node {}: child {id} is not a node of the tree", ids[p]))
    };

    // Leaf outputs: the sum of the leaf's target weights (plus the base value), in float32.
    let t_nodes = ints(node, "target_nodeids")?;
    let t_weights = floats(node, "target_weights", "target_weights_as_tensor")?
        .ok_or("expected target_weights or target_weights_as_tensor, found neither")?;
    let t_trees = attr(node, "target_treeids").map(|a| a.ints.as_slice());
    let t_ids = attr(node, "target_ids").map(|a| a.ints.as_slice());
    if t_weights.len() != t_nodes.len()
        || t_trees.is_some_and(|t| t.len() != t_nodes.len())
        || t_ids.is_some_and(|t| t.len() != t_nodes.len())
    {
        return Err(format!(
            "target_nodeids, target_treeids, target_ids and target_weights differ in length ({}, {}, {}, {})",
            t_nodes.len(),
            t_trees.map_or(0, <[i64]>::len),
            t_ids.map_or(0, <[i64]>::len),
            t_weights.len()
        ));
    }
    let mut outputs: HashMap<usize, f32> = HashMap::new();
    for (k, (&id, &w)) in t_nodes.iter().zip(&t_weights).enumerate() {
        if t_trees.is_some_and(|t| t[k] != tree_id) || t_ids.is_some_and(|t| t[k] != 0) {
            return Err(format!("target entry {k} is not for tree {tree_id}, target 0"));
        }
        let p = pos
            .get(&id)
            .copied()
            .ok_or_else(|| format!("target_nodeids names node {id}, not in the tree"))?;
        *outputs.entry(p).or_insert(base as f32) += w as f32;
    }

    let encs = encoders_of(g, node.output.first().map(String::as_str).unwrap_or_default());
    let [e0, e1] = encs.as_slice() else {
        let names: Vec<&str> = encs.iter().map(|e| e.name.as_str()).collect();
        return Err(format!(
            "expected 2 ai.onnx.ml LabelEncoders on the output of '{}' (leaf → training samples, leaf → depth), \
             found {}: {names:?}",
            node.name,
            encs.len()
        ));
    };
    let encs = [Encoder::read(e0)?, Encoder::read(e1)?];

    // Walk from the root: the root is the one node no split points to.
    let mut is_child = vec![false; n];
    for p in 0..n {
        if modes[p] != "LEAF" {
            is_child[child(p, trues[p])?] = true;
            is_child[child(p, falses[p])?] = true;
        }
    }
    let roots: Vec<usize> = (0..n).filter(|&p| !is_child[p]).collect();
    let &[root] = roots.as_slice() else {
        let ids: Vec<i64> = roots.iter().map(|&p| ids[p]).collect();
        return Err(format!(
            "expected one root (a node no split points to), found {}: node ids {ids:?}",
            ids.len()
        ));
    };
    // Root first, the others in order: `from_trees` wants the root at index 0.
    let at = |p: usize| {
        if p == root {
            0
        } else if p < root {
            p + 1
        } else {
            p
        }
    };
    let mut nodes = vec![TreeNode::Leaf { path_length: 0.0 }; n];
    let mut leaves = Vec::new(); // (position, depth, value of encoder 0, value of encoder 1)
    let mut seen = vec![false; n];
    let mut stack = vec![(root, 0usize)];
    while let Some((p, depth)) = stack.pop() {
        if std::mem::replace(&mut seen[p], true) {
            return Err(format!("node {} is reached twice (not a tree)", ids[p]));
        }
        match modes[p].as_str() {
            "LEAF" => {
                let out = *outputs.get(&p).ok_or_else(|| format!("leaf {} has no target weight", ids[p]))?;
                let mut v = [0.0; 2];
                for (v, e) in v.iter_mut().zip(&encs) {
                    *v = e.get(out).ok_or_else(|| {
                        format!("leaf {} (output {out}) has no entry in LabelEncoder '{}'", ids[p], e.name)
                    })?;
                }
                leaves.push((p, depth, v));
            }
            "BRANCH_LEQ" => {
                let f = usize::try_from(feats[p]).ok().and_then(|f| features.get(f).copied()).ok_or_else(
                    || {
                        format!(
                            "node {}: feature {} out of range ({} features in)",
                            ids[p],
                            feats[p],
                            features.len()
                        )
                    },
                )?;
                let (l, r) = (child(p, trues[p])?, child(p, falses[p])?);
                let missing_left = missing[p] != 0;
                nodes[at(p)] = TreeNode::Split {
                    feature: f,
                    threshold: values[p],
                    left: at(l),
                    right: at(r),
                    missing_left,
                };
                stack.push((r, depth + 1));
                stack.push((l, depth + 1));
            }
            other => {
                return Err(format!(
                    "node {}: mode {other} not supported (scikit-learn trees export BRANCH_LEQ and LEAF)",
                    ids[p]
                ));
            }
        }
    }

    // Which encoder holds depth + 1 (scikit-learn's decision path length, root = 1)?
    let mismatch = |e: usize| leaves.iter().find(|(_, d, v)| v[e] != *d as f64 + 1.0);
    let depth_enc = match (mismatch(0), mismatch(1)) {
        (None, _) => 0,
        (_, None) => 1,
        (Some((p0, d0, v0)), Some((p1, d1, v1))) => {
            return Err(format!(
                "expected one LabelEncoder to map every leaf to its depth + 1, found neither: '{}' maps leaf {} \
                 at depth {d0} to {}, '{}' maps leaf {} at depth {d1} to {}",
                encs[0].name, ids[*p0], v0[0], encs[1].name, ids[*p1], v1[1]
            ));
        }
    };
    let count_enc = 1 - depth_enc;
    let mut samples = 0.0;
    for &(p, depth, v) in &leaves {
        let count = v[count_enc];
        if !(count.is_finite() && count >= 1.0) {
            return Err(format!(
                "leaf {}: expected a training sample count >= 1 from LabelEncoder '{}', found {count}",
                ids[p], encs[count_enc].name
            ));
        }
        samples += count;
        nodes[at(p)] = TreeNode::Leaf { path_length: depth as f64 + average_path_length(count) };
    }
    Ok(Tree { nodes, samples })
}

/// Input column of each feature index the tree uses: the tree reads the graph input
/// directly, or a `Gather(axis=1)` of it (scikit-learn's per-estimator feature subset).
fn feature_map(
    g: &Graph<'_>,
    node: &NodeProto,
    input: &str,
    n_features: usize,
) -> Result<Vec<usize>, String> {
    let src = node.input.first().map(String::as_str).unwrap_or_default();
    if src == input {
        return Ok((0..n_features).collect());
    }
    let gather = g.producer.get(src).filter(|p| {
        p.op_type == "Gather" && p.domain.is_empty() && p.input.first().map(String::as_str) == Some(input)
    });
    let Some(gather) = gather else {
        let found = g.producer.get(src).map_or_else(|| "no producer".to_string(), |p| op_name(p));
        return Err(format!(
            "expected '{}' to read graph input '{input}' directly or through Gather(axis=1), found {found} \
             producing '{src}'",
            node.name
        ));
    };
    let axis = attr(gather, "axis").map_or(0, |a| a.i);
    if axis != 1 && axis != -1 {
        return Err(format!("expected Gather '{}' on axis 1 (features), found axis {axis}", gather.name));
    }
    let indices = gather.input.get(1).map_or(Ok(None), |i| g.constant(i))?;
    let indices =
        indices.ok_or_else(|| format!("expected Gather '{}' indices to be a constant", gather.name))?;
    indices
        .iter()
        .map(|&i| {
            let col = if i < 0.0 { i + n_features as f64 } else { i };
            if col >= 0.0 && col < n_features as f64 && col.fract() == 0.0 {
                Ok(col as usize)
            } else {
                Err(format!("Gather '{}' index {i} out of range ({n_features} features)", gather.name))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::onnx::{
        Dimension, OperatorSetIdProto, TensorShapeProto, TypeProto, TypeProtoTensor, ValueInfoProto,
        attribute_type,
    };

    const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/isolation_forest.onnx");

    fn shipped() -> Vec<u8> {
        std::fs::read(SHIPPED).expect("models/isolation_forest.onnx")
    }

    fn onnx_err(bytes: &[u8]) -> String {
        match Forest::from_onnx(bytes) {
            Ok(f) => panic!("expected an error, got a forest of {} trees", f.n_trees()),
            Err(ForestError::Onnx(m)) => m,
            Err(e) => panic!("expected ForestError::Onnx, got {e:?}"),
        }
    }

    /// Decodes the shipped model, applies `edit`, re-encodes and imports it.
    fn edited(edit: impl FnOnce(&mut GraphProto)) -> Result<Forest, ForestError> {
        let mut m = ModelProto::decode(shipped().as_slice()).unwrap();
        edit(m.graph.as_mut().unwrap());
        Forest::from_onnx(&m.encode_to_vec())
    }

    fn node_mut<'a>(g: &'a mut GraphProto, name: &str) -> &'a mut NodeProto {
        g.node.iter_mut().find(|n| n.name == name).unwrap_or_else(|| panic!("no node {name}"))
    }

    fn attr_mut<'a>(n: &'a mut NodeProto, name: &str) -> &'a mut AttributeProto {
        n.attribute.iter_mut().find(|a| a.name == name).unwrap()
    }

    #[test]
    fn shipped_model_imports_with_its_shape_and_names() {
        let (f, info) = Forest::from_onnx_with_info(&shipped()).unwrap();
        assert_eq!((f.n_trees(), f.n_features(), f.sample_size()), (100, 7, 256));
        assert_eq!(info.input_name, "input");
        assert_eq!(info.score_output.as_deref(), Some("score_samples"));
        assert_eq!(info.producer, "skl2onnx 1.20.0");
        // A standardised all-mean vector is ordinary; one 8σ out in every feature is not.
        let typical = f.score(&[0.0; 7]).unwrap();
        let outlier = f.score(&[8.0; 7]).unwrap();
        assert!(typical < 0.5 && outlier > 0.7, "typical {typical}, outlier {outlier}");
    }

    #[test]
    fn garbage_and_truncated_bytes_are_errors() {
        for bytes in [&b""[..], b"\x00", b"not an onnx model at all", &[0xff; 64]] {
            let m = onnx_err(bytes);
            assert!(m.contains("expected an ONNX ModelProto"), "{m}");
        }
        let bytes = shipped();
        for cut in [1, 7, 100, 4096, bytes.len() / 3, bytes.len() / 2, bytes.len() - 1] {
            // Never a panic; usually a decode error, at worst a model missing its pieces.
            assert!(Forest::from_onnx(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn corrupted_bytes_never_panic() {
        let bytes = shipped();
        let mut rng = crate::rng::Rng::new(11);
        for _ in 0..24 {
            let mut b = bytes.clone();
            let at = rng.below(b.len() as u64) as usize;
            b[at] ^= 1 << rng.below(8);
            // Either outcome is fine; reaching here without a panic is the test.
            let _ = Forest::from_onnx(&b);
        }
    }

    /// A valid model computing `y = x + x`: no trees.
    fn model_without_trees() -> ModelProto {
        let value = |name: &str| ValueInfoProto {
            name: name.into(),
            r#type: Some(TypeProto {
                tensor_type: Some(TypeProtoTensor {
                    elem_type: data_type::FLOAT,
                    shape: Some(TensorShapeProto {
                        dim: vec![
                            Dimension { dim_value: None, dim_param: Some("batch".into()) },
                            Dimension { dim_value: Some(3), dim_param: None },
                        ],
                    }),
                }),
            }),
        };
        let add = NodeProto {
            input: vec!["x".into(), "x".into()],
            output: vec!["y".into()],
            name: "add".into(),
            op_type: "Add".into(),
            ..Default::default()
        };
        ModelProto {
            ir_version: 8,
            opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 17 }],
            producer_name: "test".into(),
            graph: Some(GraphProto {
                node: vec![add],
                name: "no_trees".into(),
                input: vec![value("x")],
                output: vec![value("y")],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn model_without_trees_is_an_error_naming_its_ops() {
        let m = onnx_err(&model_without_trees().encode_to_vec());
        assert_eq!(m, "expected ai.onnx.ml TreeEnsembleRegressor nodes, found none (ops Add)");
        let mut huge = model_without_trees();
        let set = |m: &mut ModelProto, dim: Vec<Dimension>| {
            let x = &mut m.graph.as_mut().unwrap().input[0];
            x.r#type.as_mut().unwrap().tensor_type.as_mut().unwrap().shape.as_mut().unwrap().dim = dim;
        };
        let batch = Dimension { dim_value: None, dim_param: Some("batch".into()) };
        set(&mut huge, vec![batch.clone(), Dimension { dim_value: Some(1 << 40), dim_param: None }]);
        let m = onnx_err(&huge.encode_to_vec());
        assert_eq!(
            m,
            format!("expected at most {MAX_FEATURES} features, found graph input 'x' with 1099511627776")
        );
        set(&mut huge, vec![batch]);
        let m = onnx_err(&huge.encode_to_vec());
        assert_eq!(
            m,
            "expected graph input 'x' of shape [batch, n_features] with a fixed n_features, found [batch]"
        );
        let m = onnx_err(&ModelProto { graph: None, ..model_without_trees() }.encode_to_vec());
        assert_eq!(m, "expected an ONNX ModelProto with a graph, found none");
    }

    #[test]
    fn unsupported_or_inconsistent_graphs_say_what_they_found() {
        let e = edited(|g| {
            let modes = attr_mut(node_mut(g, "node_sample3_TreeEnsembleRegressor"), "nodes_modes");
            modes.strings[0] = b"BRANCH_LT".to_vec();
        });
        assert_eq!(
            e,
            Err(err(
                "tree 33 ('node_sample3_TreeEnsembleRegressor'): node 0: mode BRANCH_LT not supported (scikit-learn trees export BRANCH_LEQ and LEAF)"
            ))
        );

        // Drop a leaf's key from the sample-count encoder of tree 5.
        let e = edited(|g| {
            let enc = node_mut(g, "node_sample5_LabelEncoder");
            let keys = attr_mut(enc, "keys_int64s");
            let leaf = keys.ints.remove(0);
            attr_mut(enc, "values_floats").floats.remove(0);
            assert!(leaf > 0);
        })
        .unwrap_err()
        .to_string();
        let expected = "ONNX isolation forest: tree 55 ('node_sample5_TreeEnsembleRegressor'): leaf 6 (output 6) \
                        has no entry in LabelEncoder 'node_sample5_LabelEncoder'";
        assert_eq!(e, expected);

        // A depth encoder that no longer matches the tree structure.
        let e = edited(|g| {
            let enc = node_mut(g, "path_length7_LabelEncoder");
            attr_mut(enc, "values_floats").floats[0] += 1.0;
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("tree 77 ('node_sample7_TreeEnsembleRegressor'): expected one LabelEncoder to map every leaf to its depth + 1"), "{e}");

        // A normaliser for ψ = 128 contradicts the 256 samples in every tree.
        let e = edited(|g| {
            let k = g.initializer.iter_mut().find(|t| t.name == "dec_Divcst").unwrap();
            let c = (100.0 * average_path_length(128.0)) as f32;
            k.raw_data.clear();
            k.float_data = vec![c];
        })
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("tree 0 ('node_sample0_TreeEnsembleRegressor'): its leaves hold 256 training samples")
                && e.contains("implies ψ = 128"),
            "{e}"
        );

        // Feature indices must fit the input.
        let e = edited(|g| {
            let t = attr_mut(node_mut(g, "node_sample0_TreeEnsembleRegressor"), "nodes_featureids");
            t.ints[0] = 7;
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("tree 0 ('node_sample0_TreeEnsembleRegressor'): node 0: feature 7 out of range (7 features in)"), "{e}");

        let e = edited(|g| {
            let n = node_mut(g, "node_sample0_TreeEnsembleRegressor");
            n.attribute.retain(|a| a.name != "nodes_values");
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("tree 0 ('node_sample0_TreeEnsembleRegressor'): expected nodes_values or nodes_values_as_tensor, found neither"), "{e}");
    }

    #[test]
    fn thresholds_as_tensors_and_constant_nodes_are_read_too() {
        // ai.onnx.ml opset 3 allows double thresholds as nodes_values_as_tensor.
        let plain = Forest::from_onnx(&shipped()).unwrap();
        let f = edited(|g| {
            for n in g.node.iter_mut().filter(|n| n.op_type == "TreeEnsembleRegressor") {
                let i = n.attribute.iter().position(|a| a.name == "nodes_values").unwrap();
                let values = n.attribute.remove(i).floats;
                n.attribute.push(AttributeProto {
                    name: "nodes_values_as_tensor".into(),
                    r#type: attribute_type::TENSOR,
                    t: Some(TensorProto {
                        dims: vec![values.len() as i64],
                        data_type: data_type::DOUBLE,
                        double_data: values.iter().map(|&v| v as f64).collect(),
                        ..Default::default()
                    }),
                    ..Default::default()
                });
            }
            // The normaliser as a Constant node instead of an initializer.
            let i = g.initializer.iter().position(|t| t.name == "dec_Divcst").unwrap();
            let k = g.initializer.remove(i);
            g.node.insert(
                0,
                NodeProto {
                    output: vec!["dec_Divcst".into()],
                    op_type: "Constant".into(),
                    attribute: vec![AttributeProto {
                        name: "value".into(),
                        r#type: attribute_type::TENSOR,
                        t: Some(k),
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            );
        })
        .unwrap();
        assert_eq!(f, plain);
    }
}
