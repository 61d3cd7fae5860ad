//! Building one tree: a `TreeEnsembleRegressor`'s splits, each leaf resolved through the
//! depth and sample-count `LabelEncoder`s into scikit-learn's path length.

use std::collections::{HashMap, HashSet};

use super::ML_DOMAIN;
use super::graph::{Graph, attr, floats, ints, op_name, string, tensor_values};
use crate::detect::{TreeNode, average_path_length};
use crate::proto::onnx::{NodeProto, data_type};

/// Operators that may sit between a tree's output and its `LabelEncoder`s.
const PASS_THROUGH: [&str; 6] = ["Cast", "Reshape", "Identity", "Flatten", "Squeeze", "Unsqueeze"];

/// One imported tree: nodes with the root first, and the training samples in its leaves.
pub(super) struct Tree {
    pub(super) nodes: Vec<TreeNode>,
    pub(super) samples: f64,
}

/// One `LabelEncoder`'s map, keyed the way its input arrives.
pub(super) enum Keys {
    /// `keys_int64s`: the regressor's float output cast to int64 (truncated).
    Ints(HashMap<i64, f64>),
    /// `keys_floats`: the float output itself (bit pattern, -0 folded into +0).
    Floats(HashMap<u32, f64>),
}

pub(super) struct Encoder<'a> {
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
pub(super) fn encoders_of<'a>(g: &Graph<'a>, value: &'a str) -> Vec<&'a NodeProto> {
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
pub(super) fn read_tree<'a>(
    g: &Graph<'a>,
    node: &'a NodeProto,
    input: &str,
    n_features: usize,
) -> Result<Tree, String> {
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
pub(super) fn feature_map(
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
