//! Reading an ONNX graph: values by name, their producers and readers, constants, and the
//! normaliser that gives the forest's ψ.

use std::collections::{HashMap, HashSet};

use super::err;
use crate::detect::{ForestError, MAX_FEATURES, average_path_length};
use crate::proto::onnx::{AttributeProto, GraphProto, NodeProto, TensorProto, data_type};

/// Relative tolerance when matching the `trees · c(ψ)` constant: it is stored as float32,
/// whose rounding is ≤ 6e-8 relative; a few ulps of slack.
const NORMALISER_TOLERANCE: f64 = 2.5e-7;

/// `domain:op_type`, or `op_type` in the default domain.
pub(super) fn op_name(n: &NodeProto) -> String {
    if n.domain.is_empty() || n.domain == "ai.onnx" {
        n.op_type.clone()
    } else {
        format!("{}:{}", n.domain, n.op_type)
    }
}

/// Lookups over a graph's value names.
pub(super) struct Graph<'a> {
    pub(super) g: &'a GraphProto,
    /// Value name → the node that produces it.
    pub(super) producer: HashMap<&'a str, &'a NodeProto>,
    /// Value name → the nodes that read it.
    pub(super) consumers: HashMap<&'a str, Vec<&'a NodeProto>>,
    /// Initializers and `Constant` node outputs by name.
    pub(super) constants: HashMap<&'a str, &'a TensorProto>,
}

impl<'a> Graph<'a> {
    pub(super) fn new(g: &'a GraphProto) -> Self {
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
    pub(super) fn input(&self) -> Result<(&'a str, usize), ForestError> {
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
    pub(super) fn constant(&self, name: &str) -> Result<Option<Vec<f64>>, String> {
        match self.constants.get(name) {
            Some(t) => tensor_values(t).map(Some).map_err(|e| format!("constant '{name}': {e}")),
            None => Ok(None),
        }
    }

    /// ψ from the score's normaliser `Pow(2, Neg(Div(Σ path lengths, trees · c(ψ))))`, checked
    /// against the trees' leaf sample counts (`samples`: name and sum per tree), and the name of
    /// the graph output holding `score_samples = Neg(Pow(..))`.
    pub(super) fn normaliser(&self, samples: &[(&str, f64)]) -> Result<(usize, Option<String>), ForestError> {
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
pub(in crate::onnx) fn tensor_values(t: &TensorProto) -> Result<Vec<f64>, String> {
    if t.data_location == 1 {
        return Err("external tensor data is not supported".into());
    }
    let raw = &t.raw_data;
    pub(super) fn chunks<const N: usize>(raw: &[u8], f: impl Fn([u8; N]) -> f64) -> Result<Vec<f64>, String> {
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

pub(in crate::onnx) fn attr<'n>(node: &'n NodeProto, name: &str) -> Option<&'n AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

/// An INTS attribute; required.
pub(super) fn ints<'n>(node: &'n NodeProto, name: &str) -> Result<&'n [i64], String> {
    attr(node, name).map(|a| a.ints.as_slice()).ok_or_else(|| format!("attribute {name} missing"))
}

/// A FLOATS attribute or, failing that, its tensor form `<name>_as_tensor` (or `tensor`).
pub(super) fn floats(node: &NodeProto, name: &str, tensor: &str) -> Result<Option<Vec<f64>>, String> {
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
pub(super) fn string(node: &NodeProto, name: &str) -> Option<String> {
    attr(node, name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
}
