//! The LSTM autoencoder of `training/train_lstm_autoencoder.py` run natively: its weights are
//! read from the ONNX graph and one window at a time goes through the encoder, the decoder
//! seeded with the encoder's state, and the linear head, in f32, on AVX2 where the CPU has it.
//!
//! A check runs the network for every entity, so it is most of the cost of `lstm_ae` at scale
//! (issue 28): tract spends ~78 µs per 32 × 7 window in a batch, mostly per-step overhead of
//! its scan loop on tensors this small; this loop keeps the 20 KB of weights in L1 and the
//! gates in registers. Only graphs of exactly that shape load here (two forward LSTMs with
//! default activations and no peepholes, clip or sequence lengths, the encoder starting from
//! zeros, the decoder from the encoder's final state, then MatMul + Add); anything else is
//! refused with the reason, and the engine choice falls back to ONNX Runtime or tract.

use prost::Message;

use super::Shape;
use super::forest::graph::{attr, tensor_values};
use crate::detect::SequenceModel;
use crate::proto::onnx::{GraphProto, ModelProto, NodeProto};

/// Gates are summed in blocks of this many (four AVX2 registers, kept in registers while the
/// inputs and the previous state stream past); rows are padded to a whole number of blocks.
const BLOCK: usize = 32;

/// One LSTM layer's weights, laid out for the step loop.
struct Cell {
    /// Input weights, `[inputs][stride]` (transposed from ONNX's `[4 × hidden][inputs]`, then
    /// zero-padded), gates in ONNX order i, o, f, c. Empty when every input weight is zero
    /// (the decoder).
    w: Vec<f32>,
    /// Recurrent weights, `[hidden][stride]`.
    r: Vec<f32>,
    /// Input and recurrent biases summed, `[stride]`.
    bias: Vec<f32>,
    /// `4 × hidden` rounded up to a whole number of blocks.
    stride: usize,
}

/// The encoder–decoder network, natively.
pub struct NativeLstm {
    window: usize,
    features: usize,
    hidden: usize,
    encoder: Cell,
    decoder: Cell,
    /// Head weights `[hidden][features]` and bias `[features]`.
    head_w: Vec<f32>,
    head_b: Vec<f32>,
    avx2: bool,
}

impl NativeLstm {
    /// Reads the network from `bytes`; `Err` says why the graph is not one this engine runs.
    pub fn new(bytes: &[u8], shape: &Shape) -> Result<Self, String> {
        let model = ModelProto::decode(bytes).map_err(|e| format!("protobuf decoding failed: {e}"))?;
        let g = model.graph.as_ref().ok_or("no graph")?;
        let lstms: Vec<&NodeProto> = g.node.iter().filter(|n| n.op_type == "LSTM").collect();
        let [enc, dec] = lstms[..] else {
            return Err(format!("expected two LSTM nodes, found {}", lstms.len()));
        };
        let (enc, dec) = if dec.input.get(5) == enc.output.get(1) { (enc, dec) } else { (dec, enc) };
        let hidden = lstm_hidden(enc)?;
        if lstm_hidden(dec)? != hidden {
            return Err("the two LSTMs differ in hidden_size".into());
        }
        // Both read the graph input, time-major.
        for n in [enc, dec] {
            let x =
                producer(g, &n.input[0]).ok_or("an LSTM's input is not a Transpose of the graph input")?;
            if x.op_type != "Transpose" || x.input.first() != Some(&shape.input) || !swaps_batch_and_time(x) {
                return Err("an LSTM's input is not the graph input transposed to time-major".into());
            }
        }
        // The encoder starts from zeros; the decoder from the encoder's final h and c.
        for i in [5, 6] {
            if let Some(name) = enc.input.get(i).filter(|s| !s.is_empty()) {
                let zero = producer(g, name).is_some_and(|p| {
                    p.op_type == "ConstantOfShape"
                        && attr(p, "value")
                            .and_then(|a| a.t.as_ref())
                            .is_none_or(|t| tensor_values(t).is_ok_and(|v| v.iter().all(|&x| x == 0.0)))
                });
                if !zero {
                    return Err("the encoder's initial state is not zeros".into());
                }
            }
        }
        if dec.input.get(5) != enc.output.get(1) || dec.input.get(6) != enc.output.get(2) {
            return Err("the decoder does not start from the encoder's final state".into());
        }
        let encoder = cell(g, enc, shape.features, hidden)?;
        let decoder = cell(g, dec, shape.features, hidden)?;
        // decoder Y [T, 1, B, H] → Squeeze → Transpose [B, T, H] → MatMul [H, F] → Add [F].
        let squeeze = only_consumer(g, &dec.output[0], "Squeeze")?;
        let transpose = only_consumer(g, &squeeze.output[0], "Transpose")?;
        if !swaps_batch_and_time(transpose) {
            return Err("the decoder's output is not transposed back to batch-major".into());
        }
        let matmul = only_consumer(g, &transpose.output[0], "MatMul")?;
        let add = only_consumer(g, &matmul.output[0], "Add")?;
        if add.output.first() != Some(&shape.output) {
            return Err(format!("the head's Add does not produce the output {}", shape.output));
        }
        let head_w = initializer(g, &matmul.input[1], hidden * shape.features)?;
        let bias_name =
            add.input.iter().find(|i| **i != matmul.output[0]).ok_or("the head's Add has no bias")?;
        let head_b = initializer(g, bias_name, shape.features)?;
        Ok(Self {
            window: shape.window,
            features: shape.features,
            hidden,
            encoder,
            decoder,
            head_w,
            head_b,
            avx2: has_avx2(),
        })
    }

    /// One window `x` (`[window][features]`) into `out`, same shape.
    #[inline(always)]
    fn window_into(&self, x: &[f32], out: &mut [f32], s: &mut Scratch) {
        let (f, h) = (self.features, self.hidden);
        s.h.fill(0.0);
        s.c.fill(0.0);
        for xt in x.chunks_exact(f) {
            step(&self.encoder, xt, h, s);
        }
        for (xt, ot) in x.chunks_exact(f).zip(out.chunks_exact_mut(f)) {
            step(&self.decoder, xt, h, s);
            ot.copy_from_slice(&self.head_b);
            for (hk, wk) in s.h.iter().zip(self.head_w.chunks_exact(f)) {
                for (o, w) in ot.iter_mut().zip(wk) {
                    *o += hk * w;
                }
            }
        }
    }

    #[inline(always)]
    fn run(&self, input: &[f32], output: &mut [f32]) {
        let per = self.window * self.features;
        let mut s = Scratch::new(self.hidden);
        for (x, out) in input.chunks_exact(per).zip(output.chunks_exact_mut(per)) {
            self.window_into(x, out, &mut s);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn run_avx2(&self, input: &[f32], output: &mut [f32]) {
        self.run(input, output)
    }
}

impl SequenceModel for NativeLstm {
    fn backend(&self) -> &'static str {
        "native"
    }

    fn reconstruct(&self, input: &[f32], batch: usize, output: &mut Vec<f32>) -> Result<(), String> {
        let n = batch * self.window * self.features;
        if input.len() != n {
            return Err(format!("expected {n} input values for {batch} windows, got {}", input.len()));
        }
        output.clear();
        output.resize(n, 0.0);
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            // SAFETY: `has_avx2` found both features on this CPU when the network was loaded.
            unsafe { self.run_avx2(input, output) };
            return Ok(());
        }
        self.run(input, output);
        Ok(())
    }
}

fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// State and gates of the window in flight.
struct Scratch {
    h: Vec<f32>,
    c: Vec<f32>,
    gates: Vec<f32>,
}

impl Scratch {
    fn new(hidden: usize) -> Self {
        Self { h: vec![0.0; hidden], c: vec![0.0; hidden], gates: vec![0.0; stride(hidden)] }
    }
}

/// One time step of `cell` (ONNX LSTM, gates i, o, f, c; sigmoid, tanh, tanh).
#[inline(always)]
fn step(cell: &Cell, xt: &[f32], hidden: usize, s: &mut Scratch) {
    for (start, block) in (0..cell.stride).step_by(BLOCK).zip(s.gates.chunks_exact_mut(BLOCK)) {
        let mut acc: [f32; BLOCK] = cell.bias[start..start + BLOCK].try_into().unwrap_or([0.0; BLOCK]);
        if !cell.w.is_empty() {
            accumulate(&mut acc, xt, &cell.w, cell.stride, start);
        }
        accumulate(&mut acc, &s.h, &cell.r, cell.stride, start);
        block.copy_from_slice(&acc);
    }
    let g = &mut s.gates[..4 * hidden];
    let (sig, cand) = g.split_at_mut(3 * hidden);
    for v in sig.iter_mut() {
        *v = sigmoid(*v);
    }
    for v in cand.iter_mut() {
        *v = tanh(*v);
    }
    let (i, rest) = sig.split_at(hidden);
    let (o, f) = rest.split_at(hidden);
    for j in 0..hidden {
        let c = f[j] * s.c[j] + i[j] * cand[j];
        s.c[j] = c;
        s.h[j] = o[j] * tanh(c);
    }
}

/// `acc += Σ_k inputs[k] × weights[k][start..start + BLOCK]` (rows `stride` apart).
#[inline(always)]
fn accumulate(acc: &mut [f32; BLOCK], inputs: &[f32], weights: &[f32], stride: usize, start: usize) {
    for (k, x) in inputs.iter().enumerate() {
        let row = &weights[k * stride + start..k * stride + start + BLOCK];
        for (a, w) in acc.iter_mut().zip(row) {
            *a += x * w;
        }
    }
}

fn stride(hidden: usize) -> usize {
    (4 * hidden).div_ceil(BLOCK) * BLOCK
}

/// tanh by a rational approximation (Eigen's float kernel: error within a few ulp), written
/// so that loops over it vectorise.
#[inline(always)]
fn tanh(x: f32) -> f32 {
    let x = x.clamp(-7.905_311, 7.905_311);
    let x2 = x * x;
    let mut p = x2 * -2.760_768_5e-16 + 2.000_188e-13;
    p = x2 * p + -8.604_672e-11;
    p = x2 * p + 5.122_297e-8;
    p = x2 * p + 1.485_722_4e-5;
    p = x2 * p + 6.372_619_3e-4;
    p = x2 * p + 4.893_524_6e-3;
    p *= x;
    let mut q = x2 * 1.198_258_4e-6 + 1.185_347_1e-4;
    q = x2 * q + 2.268_434_6e-3;
    q = x2 * q + 4.893_525e-3;
    p / q
}

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    0.5 * tanh(0.5 * x) + 0.5
}

fn lstm_hidden(n: &NodeProto) -> Result<usize, String> {
    for a in &n.attribute {
        let default = match a.name.as_str() {
            "hidden_size" => true,
            "layout" | "input_forget" => a.i == 0,
            "direction" => a.s == b"forward",
            _ => false,
        };
        if !default {
            return Err(format!("LSTM attribute {} is not supported natively", a.name));
        }
    }
    if n.input.get(4).is_some_and(|s| !s.is_empty()) || n.input.get(7).is_some_and(|s| !s.is_empty()) {
        return Err("LSTM sequence lengths or peepholes are not supported natively".into());
    }
    attr(n, "hidden_size")
        .map(|a| a.i as usize)
        .filter(|&h| h > 0)
        .ok_or_else(|| "LSTM without hidden_size".into())
}

/// The weights of an LSTM node reading `inputs` features.
fn cell(g: &GraphProto, n: &NodeProto, inputs: usize, hidden: usize) -> Result<Cell, String> {
    let (gh, stride) = (4 * hidden, stride(hidden));
    let name = |i: usize| n.input.get(i).filter(|s| !s.is_empty()).ok_or(format!("LSTM input {i} missing"));
    let w = initializer(g, name(1)?, gh * inputs)?;
    let r = initializer(g, name(2)?, gh * hidden)?;
    let b = match n.input.get(3).filter(|s| !s.is_empty()) {
        Some(b) => initializer(g, b, 2 * gh)?,
        None => vec![0.0; 2 * gh],
    };
    let transpose = |m: &[f32], cols: usize| -> Vec<f32> {
        let mut t = vec![0.0; cols * stride];
        for (row, values) in m.chunks_exact(cols).enumerate() {
            for (col, v) in values.iter().enumerate() {
                t[col * stride + row] = *v;
            }
        }
        t
    };
    let mut bias: Vec<f32> = b[..gh].iter().zip(&b[gh..]).map(|(x, y)| x + y).collect();
    bias.resize(stride, 0.0);
    Ok(Cell {
        w: if w.iter().all(|&v| v == 0.0) { Vec::new() } else { transpose(&w, inputs) },
        r: transpose(&r, hidden),
        bias,
        stride,
    })
}

/// A float initializer of exactly `len` values.
fn initializer(g: &GraphProto, name: &str, len: usize) -> Result<Vec<f32>, String> {
    let t =
        g.initializer.iter().find(|t| t.name == name).ok_or(format!("{name} is not a constant weight"))?;
    let v = tensor_values(t).map_err(|e| format!("{name}: {e}"))?;
    if v.len() != len {
        return Err(format!("{name} holds {} values, expected {len}", v.len()));
    }
    Ok(v.into_iter().map(|x| x as f32).collect())
}

fn producer<'g>(g: &'g GraphProto, output: &str) -> Option<&'g NodeProto> {
    g.node.iter().find(|n| n.output.iter().any(|o| o == output))
}

/// The one node reading `input`, which must be an `op`.
fn only_consumer<'g>(g: &'g GraphProto, input: &str, op: &str) -> Result<&'g NodeProto, String> {
    let mut users = g.node.iter().filter(|n| n.input.iter().any(|i| i == input));
    match (users.next(), users.next()) {
        (Some(n), None) if n.op_type == op => Ok(n),
        _ => Err(format!("{input} is not read by one {op} alone")),
    }
}

/// A Transpose with `perm` [1, 0, 2]: batch-major ↔ time-major.
fn swaps_batch_and_time(n: &NodeProto) -> bool {
    attr(n, "perm").is_some_and(|a| a.ints == [1, 0, 2])
}
