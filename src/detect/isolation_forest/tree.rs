//! The forest: training, the flat node layout, and the allocation-free scoring paths.
//!
//! All trees live in one `Vec<Node>` of 16-byte nodes in pre-order, so a split's left child
//! is always the next node and only the right child index is stored; four nodes share a
//! cache line and a root-to-leaf walk mostly moves forward in memory. A leaf stores its full
//! path length (depth + c(leaf size)) and points to itself, so a walk can take a fixed number
//! of branch-free steps: [`Forest::score`] walks 8 or 16 trees at once for one vector and
//! [`Forest::score_batch`] walks one tree for [`LANES`] vectors at once, which keeps several
//! independent loads in flight instead of stalling on one data-dependent branch per node.
//! With fewer than 16 features the walks read a 16-slot stack copy of the vector whose last
//! slot is NaN and which every leaf indexes: a step is then a masked load, one compare and a
//! conditional move, with no leaf test and no bounds check on the feature.

use std::hint::select_unpredictable;

use crate::detect::{DetectError, normalise};
use crate::rng::Rng;

use super::error::ForestError;

/// Trees (or vectors) walked together in the lockstep scoring paths.
pub const LANES: usize = 8;
/// Trees walked together by [`Forest::score`] and [`Forest::path_length`]: the walk is
/// bound by each step's load-compare-load latency, and 16 chains hide more of it than 8
/// (~15 % faster). The contribution path keeps [`LANES`]: its per-lane path records grow.
const SCORE_LANES: usize = 16;
/// Largest feature count the node encoding supports (the top two bits carry flags).
pub const MAX_FEATURES: usize = INDEX_MASK as usize;
/// Split nodes remembered per walk for contributions; earlier splits weigh < 2^-64 anyway.
const PATH_RING: usize = 64;
/// Rows scored per pass over the trees in [`Forest::score_batch`] (fits L1 with one tree).
const BATCH_BLOCK: usize = 128;
/// Slots of the stack copy of a vector the short walk reads: features `0..n` and, in the
/// last slot, NaN. A power of two, so masking a node's feature field indexes it unchecked.
const X_SLOTS: usize = 16;
/// Set on leaves.
const LEAF_BIT: u32 = 1 << 31;
/// A leaf's index bits: the NaN slot of the short walk's vector copy, so a leaf compares
/// false, goes "right" to itself and needs no leaf test.
const LEAF_SLOT: u32 = X_SLOTS as u32 - 1;
/// Set on splits whose missing (NaN) values go left.
const MISSING_LEFT: u32 = 1 << 30;
const INDEX_MASK: u32 = MISSING_LEFT - 1;
const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;

/// Average path length `c(n)` of an unsuccessful search in a binary search tree of `n` points,
/// as scikit-learn computes it: 0 for n <= 1, 1 for n = 2, else
/// `2 (ln(n - 1) + γ) - 2 (n - 1) / n`. Leaves holding `n` training points add `c(n)` to
/// their depth, and the forest normalises mean path lengths by `c(sample_size)`.
pub fn average_path_length(n: f64) -> f64 {
    if n <= 1.0 {
        0.0
    } else if n <= 2.0 {
        1.0
    } else {
        2.0 * ((n - 1.0).ln() + EULER_GAMMA) - 2.0 * (n - 1.0) / n
    }
}

/// One node as stored: 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
struct Node {
    /// Split: threshold (`x <= threshold` goes left). Leaf: path length, depth + c(size).
    value: f64,
    /// Split: feature index, plus `MISSING_LEFT`. Leaf: `LEAF_BIT | LEAF_SLOT`.
    feature: u32,
    /// Split: absolute index of the right child. Leaf: its own index.
    right: u32,
}

impl Node {
    fn leaf(path_length: f64, at: usize) -> Self {
        Node { value: path_length, feature: LEAF_BIT | LEAF_SLOT, right: at as u32 }
    }

    fn is_leaf(&self) -> bool {
        self.feature & LEAF_BIT != 0
    }

    fn index(&self) -> usize {
        (self.feature & INDEX_MASK) as usize
    }

    /// Whether `v` goes left at this split (NaN follows the missing-value side). Bitwise
    /// `|`/`&`, not `||`/`&&`: a short-circuit would be a data-dependent branch per node.
    #[inline(always)]
    fn goes_left(&self, v: f64) -> bool {
        (v <= self.value) | (v.is_nan() & (self.feature & MISSING_LEFT != 0))
    }
}

/// One node of a tree trained elsewhere, for [`Forest::from_trees`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TreeNode {
    /// An internal node. Goes left when `x[feature] <= threshold` (scikit-learn's rule);
    /// NaN goes left when `missing_left`, else right.
    Split {
        /// Feature index, `< n_features`.
        feature: usize,
        /// Split threshold; not NaN.
        threshold: f64,
        /// Index of the left child in the same list.
        left: usize,
        /// Index of the right child in the same list.
        right: usize,
        /// Side taken by NaN values (ONNX `nodes_missing_value_tracks_true`).
        missing_left: bool,
    },
    /// A leaf. `path_length` is the leaf's depth (edges from the root) plus
    /// [`average_path_length`] of the training samples that reached it, exactly as
    /// scikit-learn's `score_samples` accumulates it; finite and >= 0.
    Leaf {
        /// Depth + c(samples in leaf).
        path_length: f64,
    },
}

/// Training parameters of a [`Forest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForestParams {
    /// Number of trees, >= 1.
    pub trees: usize,
    /// Rows drawn (without replacement) per tree, >= 2; capped at the row count.
    pub sample_size: usize,
    /// RNG seed: the same seed and data give the same forest.
    pub seed: u64,
}

/// An isolation forest in a flat, cache-friendly layout.
///
/// Scores follow Liu et al. and scikit-learn: `s(x) = 2^(-E[h(x)] / c(ψ))` with `h` the path
/// length (depth + c(leaf size)), `ψ` the per-tree sample size and `c` from
/// [`average_path_length`]; s is in (0, 1], ≈ 0.5 for typical points, → 1 for isolated ones.
/// scikit-learn's `score_samples` returns `-s(x)`.
///
/// Missing values: every split knows which side NaN takes. Trained forests send NaN to the
/// side the feature's training median goes, which is the same as imputing the median (the
/// training rows are imputed that way too); imported trees say it per node.
#[derive(Debug, Clone, PartialEq)]
pub struct Forest {
    nodes: Vec<Node>,
    roots: Vec<u32>,
    /// Depth of each tree's deepest leaf: steps of a branch-free walk.
    depths: Vec<u32>,
    n_features: usize,
    sample_size: usize,
    /// 1 / (trees · c(ψ)): turns a sum of path lengths into the score exponent.
    inv_norm: f64,
}

impl Forest {
    /// Trains on `rows` (each `n_features` long). Non-finite values are replaced by the
    /// feature's median over the finite training values (0 when it has none).
    pub fn train(rows: &[&[f64]], n_features: usize, params: &ForestParams) -> Result<Self, ForestError> {
        check_shape(params.trees, n_features, params.sample_size)?;
        if rows.len() < 2 {
            return Err(ForestError::TooFewRows(rows.len()));
        }
        if let Some((row, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != n_features) {
            return Err(ForestError::RowShape { row, expected: n_features, found: r.len() });
        }
        let psi = params.sample_size.min(rows.len());
        let max_nodes = params.trees.saturating_mul(2 * psi - 1);
        if max_nodes >= u32::MAX as usize {
            return Err(ForestError::TooManyNodes { max: u32::MAX as usize - 1 });
        }

        let medians = medians(rows, n_features);
        let mut data = Vec::with_capacity(rows.len() * n_features);
        for r in rows {
            data.extend(r.iter().zip(&medians).map(|(&v, &m)| if v.is_finite() { v } else { m }));
        }
        let mut b = Builder {
            data: &data,
            nf: n_features,
            medians: &medians,
            rng: Rng::new(params.seed),
            feats: (0..n_features).collect(),
            nodes: Vec::new(),
            max_depth: (psi as f64).log2().ceil() as usize,
            deepest: 0,
        };
        let mut perm: Vec<u32> = (0..rows.len() as u32).collect();
        let (mut roots, mut depths) = (Vec::new(), Vec::new());
        for _ in 0..params.trees {
            // Partial Fisher–Yates: the first ψ entries become a uniform sample.
            for i in 0..psi {
                let j = i + b.rng.below((perm.len() - i) as u64) as usize;
                perm.swap(i, j);
            }
            let mut idx = perm[..psi].to_vec();
            roots.push(b.nodes.len() as u32);
            b.deepest = 0;
            b.build(&mut idx, 0);
            depths.push(b.deepest as u32);
        }
        Ok(Self::assemble(b.nodes, roots, depths, n_features, psi))
    }

    /// Builds a forest from trees trained elsewhere, e.g. scikit-learn `IsolationForest`
    /// estimators read from an ONNX `TreeEnsembleRegressor`.
    ///
    /// Each tree is a node list whose root is index 0; children are indices into the same
    /// list (any order; nodes unreachable from the root are ignored). Semantics are
    /// scikit-learn's: a split sends `x` left when `x[feature] <= threshold`; a leaf's
    /// `path_length` is its depth plus `c(samples in leaf)` ([`average_path_length`]);
    /// `sample_size` is the `max_samples_` the trees were grown on, used for `c(ψ)` in the
    /// score. The result scores `2^(-mean path length / c(sample_size))`, i.e. the negation
    /// of scikit-learn's `score_samples`.
    pub fn from_trees<T: AsRef<[TreeNode]>>(
        n_features: usize,
        sample_size: usize,
        trees: &[T],
    ) -> Result<Self, ForestError> {
        check_shape(trees.len(), n_features, sample_size)?;
        let mut nodes = Vec::new();
        let (mut roots, mut depths) = (Vec::new(), Vec::new());
        let mut stack: Vec<(usize, Option<usize>, u32)> = Vec::new();
        for (t, tree) in trees.iter().enumerate() {
            let tree = tree.as_ref();
            let bad = |node: usize, reason: String| ForestError::BadNode { tree: t, node, reason };
            if tree.is_empty() {
                return Err(bad(0, "tree has no nodes".into()));
            }
            let mut seen = vec![false; tree.len()];
            let mut deepest = 0;
            roots.push(nodes.len() as u32);
            stack.push((0, None, 0));
            while let Some((s, patch, depth)) = stack.pop() {
                if seen[s] {
                    return Err(bad(s, "node reached twice (not a tree)".into()));
                }
                seen[s] = true;
                let at = nodes.len();
                if at >= u32::MAX as usize {
                    return Err(ForestError::TooManyNodes { max: u32::MAX as usize - 1 });
                }
                if let Some(p) = patch {
                    let parent: &mut Node = &mut nodes[p];
                    parent.right = at as u32;
                }
                match tree[s] {
                    TreeNode::Leaf { path_length } => {
                        if !(path_length.is_finite() && path_length >= 0.0) {
                            let r = format!("leaf path length must be finite and >= 0, got {path_length}");
                            return Err(bad(s, r));
                        }
                        deepest = deepest.max(depth);
                        nodes.push(Node::leaf(path_length, at));
                    }
                    TreeNode::Split { feature, threshold, left, right, missing_left } => {
                        if feature >= n_features {
                            let r = format!("feature {feature} out of range ({n_features} features)");
                            return Err(bad(s, r));
                        }
                        if threshold.is_nan() {
                            return Err(bad(s, "threshold is NaN".into()));
                        }
                        for c in [left, right] {
                            if c >= tree.len() {
                                let r = format!("child index {c} out of range ({} nodes)", tree.len());
                                return Err(bad(s, r));
                            }
                        }
                        let flag = if missing_left { MISSING_LEFT } else { 0 };
                        nodes.push(Node { value: threshold, feature: feature as u32 | flag, right: 0 });
                        // LIFO: the left subtree is laid out right after its parent.
                        stack.push((right, Some(at), depth + 1));
                        stack.push((left, None, depth + 1));
                    }
                }
            }
            depths.push(deepest);
        }
        Ok(Self::assemble(nodes, roots, depths, n_features, sample_size))
    }

    fn assemble(
        nodes: Vec<Node>,
        roots: Vec<u32>,
        depths: Vec<u32>,
        n_features: usize,
        sample_size: usize,
    ) -> Self {
        let c = average_path_length(sample_size as f64);
        Self { inv_norm: 1.0 / (roots.len() as f64 * c), nodes, roots, depths, n_features, sample_size }
    }

    /// Features per vector.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Number of trees.
    pub fn n_trees(&self) -> usize {
        self.roots.len()
    }

    /// Nodes over all trees (16 bytes each).
    pub fn n_nodes(&self) -> usize {
        self.nodes.len()
    }

    /// Per-tree sample size ψ used for `c(ψ)`.
    pub fn sample_size(&self) -> usize {
        self.sample_size
    }

    /// Mean path length `E[h(x)]` over the trees.
    pub fn path_length(&self, x: &[f64]) -> Result<f64, DetectError> {
        self.check(x)?;
        Ok(self.sum_paths_only(x) / self.roots.len() as f64)
    }

    /// Anomaly score `2^(-E[h(x)] / c(ψ))` in (0, 1]. Does not allocate.
    pub fn score(&self, x: &[f64]) -> Result<f64, DetectError> {
        self.check(x)?;
        Ok(self.score_of_sum(self.sum_paths_only(x)))
    }

    /// Score as [`score`](Self::score), plus each feature's share of the isolation written
    /// into `contributions` (`n_features` long, normalised to sum to 1). Does not allocate.
    ///
    /// Every tree credits the features split on along `x`'s path; the split that created the
    /// leaf gets the tree's weight, each one above it half of the one below (splits near the
    /// leaf are the ones that cut `x` off), and a tree's weight is `2^-h` for path length
    /// `h`, halving per extra level, so the trees that isolate `x` early dominate. (Weighting
    /// trees by their own score `2^(-h / c(ψ))` instead spreads the credit so evenly that a
    /// point far out in one feature of five gets only ~22 % on it.) Paths longer than ~1000
    /// underflow to zero credit; all-zero contributions stay zero.
    pub fn score_into(&self, x: &[f64], contributions: &mut [f64]) -> Result<f64, DetectError> {
        self.check(x)?;
        if contributions.len() != self.n_features {
            let found = contributions.len();
            return Err(DetectError::Shape { expected: self.n_features, found });
        }
        contributions.fill(0.0);
        let total = self.sum_paths::<true, LANES>(x, contributions);
        normalise(contributions);
        Ok(self.score_of_sum(total))
    }

    /// Scores many vectors: `rows` holds them back to back (row-major, `n_features` each)
    /// and `out` receives one score per row. Does not allocate (a block of rows is copied to
    /// the stack). Walks one tree for [`LANES`] rows at a time so each tree stays in L1
    /// while a block of rows passes; at 100 trees x 256 samples the whole forest (~190 KB)
    /// fits L2 anyway and this is ~15 % faster per vector than [`score`](Self::score) (see
    /// `benches/README.md`).
    pub fn score_batch(&self, rows: &[f64], out: &mut [f64]) -> Result<(), DetectError> {
        let nf = self.n_features;
        if rows.len() != out.len() * nf {
            return Err(DetectError::Shape { expected: out.len() * nf, found: rows.len() });
        }
        let mut copies = [[f64::NAN; X_SLOTS]; BATCH_BLOCK];
        let mut refs: [&[f64]; BATCH_BLOCK] = [&[]; BATCH_BLOCK];
        for (rows, out) in rows.chunks(BATCH_BLOCK * nf).zip(out.chunks_mut(BATCH_BLOCK)) {
            let nan = rows.iter().any(|v| v.is_nan());
            if nf < X_SLOTS {
                for (c, r) in copies.iter_mut().zip(rows.chunks_exact(nf)) {
                    c[..nf].copy_from_slice(r);
                }
                let xs = &copies[..out.len()];
                if nan {
                    self.score_block::<_, true, true>(xs, out);
                } else {
                    self.score_block::<_, false, true>(xs, out);
                }
            } else {
                for (x, r) in refs.iter_mut().zip(rows.chunks_exact(nf)) {
                    *x = r;
                }
                let xs = &refs[..out.len()];
                if nan {
                    self.score_block::<_, true, false>(xs, out);
                } else {
                    self.score_block::<_, false, false>(xs, out);
                }
            }
        }
        Ok(())
    }

    /// Scores the rows `xs` into `out` (same length, at most [`BATCH_BLOCK`]): each tree in
    /// turn walks [`LANES`] rows in lockstep (a last, partial group repeats its last row in
    /// the spare lanes and ignores them). `NAN` and `SHORT` as in [`step`](Self::step).
    #[inline(always)]
    fn score_block<T: AsRef<[f64]>, const NAN: bool, const SHORT: bool>(&self, xs: &[T], out: &mut [f64]) {
        out.fill(0.0);
        for (&root, &depth) in self.roots.iter().zip(&self.depths) {
            for (x, o) in xs.chunks(LANES).zip(out.chunks_mut(LANES)) {
                let lanes: [&T; LANES] = std::array::from_fn(|l| &x[l.min(x.len() - 1)]);
                let mut idx = [root as usize; LANES];
                for _ in 0..depth {
                    for (i, x) in idx.iter_mut().zip(&lanes) {
                        *i = self.step::<NAN, SHORT>(*i, x.as_ref());
                    }
                }
                for (o, &i) in o.iter_mut().zip(&idx) {
                    *o += self.nodes[i].value;
                }
            }
        }
        for o in out.iter_mut() {
            *o = self.score_of_sum(*o);
        }
    }

    fn check(&self, x: &[f64]) -> Result<(), DetectError> {
        if x.len() == self.n_features {
            Ok(())
        } else {
            Err(DetectError::Shape { expected: self.n_features, found: x.len() })
        }
    }

    fn score_of_sum(&self, total: f64) -> f64 {
        (-total * self.inv_norm).exp2()
    }

    /// Sum of path lengths over all trees, without contributions.
    fn sum_paths_only(&self, x: &[f64]) -> f64 {
        self.sum_paths::<false, SCORE_LANES>(x, &mut [])
    }

    /// Sum of path lengths over all trees, `L` in lockstep (see [`lockstep`](Self::lockstep)), choosing the
    /// missing-value test only when `x` has NaN, and the short walk over a stack copy of `x`
    /// when the features leave room for its NaN slot.
    #[inline(always)]
    fn sum_paths<const CREDIT: bool, const L: usize>(&self, x: &[f64], contributions: &mut [f64]) -> f64 {
        let nan = x.iter().any(|v| v.is_nan());
        if self.n_features < X_SLOTS {
            let mut xs = [f64::NAN; X_SLOTS];
            xs[..x.len()].copy_from_slice(x);
            if nan {
                self.lockstep::<true, CREDIT, true, L>(&xs, contributions)
            } else {
                self.lockstep::<false, CREDIT, true, L>(&xs, contributions)
            }
        } else if nan {
            self.lockstep::<true, CREDIT, false, L>(x, contributions)
        } else {
            self.lockstep::<false, CREDIT, false, L>(x, contributions)
        }
    }

    /// Sum of path lengths over all trees, `L` trees in lockstep (a last, partial group
    /// repeats its last tree in the spare lanes and ignores them). `NAN`: `x` may hold NaN
    /// (else the missing-value test is skipped). `CREDIT`: add each tree's credit to
    /// `contributions` (see [`score_into`](Self::score_into)); unnormalised. `SHORT`: `x` is
    /// the [`X_SLOTS`] copy (see [`step`](Self::step)). Trees are summed in order, so the
    /// total does not depend on the lane count.
    #[inline(always)]
    fn lockstep<const NAN: bool, const CREDIT: bool, const SHORT: bool, const L: usize>(
        &self,
        x: &[f64],
        contributions: &mut [f64],
    ) -> f64 {
        let mut total = 0.0;
        // Nodes visited per lane, by step; a lane parked on its leaf records the leaf again.
        let mut path = [[0u32; PATH_RING]; L];
        for (r, d) in self.roots.chunks(L).zip(self.depths.chunks(L)) {
            let steps = d.iter().copied().max().unwrap_or(0) as usize;
            if CREDIT && steps > PATH_RING {
                total += r.iter().map(|&r| self.walk_credit::<NAN>(r, x, contributions)).sum::<f64>();
                continue;
            }
            let mut idx = [0usize; L];
            for (l, i) in idx.iter_mut().enumerate() {
                *i = r[l.min(r.len() - 1)] as usize;
            }
            for s in 0..steps {
                for l in 0..L {
                    if CREDIT {
                        path[l][s % PATH_RING] = idx[l] as u32;
                    }
                    idx[l] = self.step::<NAN, SHORT>(idx[l], x);
                }
            }
            for l in 0..r.len() {
                let h = self.nodes[idx[l]].value;
                total += h;
                if CREDIT {
                    let visited = &path[l][..steps];
                    let depth = visited.iter().position(|&i| i as usize == idx[l]).unwrap_or(steps);
                    let mut w = exp2_neg(h);
                    for &i in visited[..depth].iter().rev() {
                        contributions[self.nodes[i as usize].index()] += w;
                        w *= 0.5;
                    }
                }
            }
        }
        total
    }

    /// Path length of `x` in the tree rooted at `root`, crediting its path's features (see
    /// [`score_into`](Self::score_into)); any depth.
    fn walk_credit<const NAN: bool>(&self, root: u32, x: &[f64], contributions: &mut [f64]) -> f64 {
        let (mut i, mut len) = (root as usize, 0);
        let mut ring = [0u32; PATH_RING];
        loop {
            let n = self.nodes[i];
            if n.is_leaf() {
                break;
            }
            ring[len % PATH_RING] = n.index() as u32;
            len += 1;
            i = self.step::<NAN, false>(i, x);
        }
        let h = self.nodes[i].value;
        credit(contributions, &ring, len, h);
        h
    }

    /// One branch-free step; leaves point to themselves. `NAN`: `x` may hold NaN.
    /// `SHORT`: `x` is [`X_SLOTS`] long with NaN in its last slot, the feature field is
    /// masked instead of bounds-checked, and a leaf (index [`LEAF_SLOT`]) reads that NaN, so
    /// it compares false and stays without a leaf test. `select_unpredictable`, not `if`:
    /// LLVM otherwise turns the select into a branch, which mispredicts on half the nodes
    /// (measured 3x slower).
    #[inline(always)]
    fn step<const NAN: bool, const SHORT: bool>(&self, i: usize, x: &[f64]) -> usize {
        let n = self.nodes[i];
        let v = if SHORT { x[n.feature as usize & (X_SLOTS - 1)] } else { x[n.index()] };
        let left = if NAN { n.goes_left(v) } else { v <= n.value };
        // Leaves go "right", to themselves.
        let go_left = if SHORT { left } else { left & !n.is_leaf() };
        select_unpredictable(go_left, i + 1, n.right as usize)
    }
}

/// Adds one tree's credit for a path of `len` splits whose features are in the ring `path`
/// and whose leaf has path length `h`: `2^-h` to the split above the leaf, halving upwards.
#[inline(always)]
fn credit(contributions: &mut [f64], path: &[u32; PATH_RING], len: usize, h: f64) {
    let mut w = exp2_neg(h);
    for k in (len.saturating_sub(PATH_RING)..len).rev() {
        contributions[path[k % PATH_RING] as usize] += w;
        w *= 0.5;
    }
}

/// `2^-h` for `h >= 0` to ~0.03 %, without a libm call (one per tree was 2/3 of the cost of
/// [`Forest::score_into`]); 0 beyond 2^-1000. Only weighs contributions, never scores.
#[inline(always)]
fn exp2_neg(h: f64) -> f64 {
    if h.is_nan() || h >= 1000.0 {
        return 0.0;
    }
    let k = h.floor();
    let f = (h - k) * std::f64::consts::LN_2;
    // e^-f on [0, ln 2): degree-5 Taylor, error < 0.03 %.
    let e = 1.0 - f * (1.0 - f / 2.0 * (1.0 - f / 3.0 * (1.0 - f / 4.0 * (1.0 - f / 5.0))));
    // 2^-k by building the exponent directly (k <= 999, a normal number).
    e * f64::from_bits((1023 - k as u64) << 52)
}

fn check_shape(trees: usize, n_features: usize, sample_size: usize) -> Result<(), ForestError> {
    if trees == 0 {
        return Err(ForestError::NoTrees);
    }
    if n_features == 0 || n_features > MAX_FEATURES {
        return Err(ForestError::Features { max: MAX_FEATURES, found: n_features });
    }
    if sample_size < 2 {
        return Err(ForestError::SampleSize(sample_size));
    }
    Ok(())
}

/// Median of each feature over its finite values; 0 when there are none.
fn medians(rows: &[&[f64]], n_features: usize) -> Vec<f64> {
    let mut col = Vec::with_capacity(rows.len());
    (0..n_features)
        .map(|f| {
            col.clear();
            col.extend(rows.iter().map(|r| r[f]).filter(|v| v.is_finite()));
            if col.is_empty() {
                return 0.0;
            }
            let mid = col.len() / 2;
            let (_, m, _) = col.select_nth_unstable_by(mid, f64::total_cmp);
            *m
        })
        .collect()
}

/// Grows trees into one node vector.
struct Builder<'a> {
    /// Imputed training rows, row-major.
    data: &'a [f64],
    nf: usize,
    medians: &'a [f64],
    rng: Rng,
    /// Scratch permutation of feature indices.
    feats: Vec<usize>,
    nodes: Vec<Node>,
    max_depth: usize,
    deepest: usize,
}

impl Builder<'_> {
    /// Grows the subtree over rows `idx` (reordered in place) at `depth`, in pre-order.
    fn build(&mut self, idx: &mut [u32], depth: usize) {
        let at = self.nodes.len();
        let split = if idx.len() > 1 && depth < self.max_depth { self.pick_split(idx) } else { None };
        let Some((f, t)) = split else {
            self.deepest = self.deepest.max(depth);
            let h = depth as f64 + average_path_length(idx.len() as f64);
            self.nodes.push(Node::leaf(h, at));
            return;
        };
        let flag = if self.medians[f] <= t { MISSING_LEFT } else { 0 };
        self.nodes.push(Node { value: t, feature: f as u32 | flag, right: 0 });
        let mut n_left = 0;
        for k in 0..idx.len() {
            if self.value(idx[k], f) <= t {
                idx.swap(k, n_left);
                n_left += 1;
            }
        }
        let (left, right) = idx.split_at_mut(n_left);
        self.build(left, depth + 1);
        self.nodes[at].right = self.nodes.len() as u32;
        self.build(right, depth + 1);
    }

    /// A random feature that is not constant over `idx` (drawn without replacement, as
    /// scikit-learn's random splitter does) and a threshold uniform in [min, max); `None`
    /// when every feature is constant.
    fn pick_split(&mut self, idx: &[u32]) -> Option<(usize, f64)> {
        for j in 0..self.nf {
            let k = j + self.rng.below((self.nf - j) as u64) as usize;
            self.feats.swap(j, k);
            let f = self.feats[j];
            let (lo, hi) = idx.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &r| {
                let v = self.value(r, f);
                (lo.min(v), hi.max(v))
            });
            if hi > lo {
                let t = lo + self.rng.uniform() * (hi - lo);
                // Rounding can reach hi, which would leave the right side empty.
                return Some((f, if t < hi { t } else { lo }));
            }
        }
        None
    }

    fn value(&self, row: u32, f: usize) -> f64 {
        self.data[row as usize * self.nf + f]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockstep_credit_matches_the_plain_walk() {
        let mut rng = Rng::new(5);
        let data: Vec<f64> = (0..600 * 3).map(|_| rng.normal()).collect();
        let rows: Vec<&[f64]> = data.chunks_exact(3).collect();
        let params = ForestParams { trees: 2 * LANES, sample_size: 64, seed: 6 };
        let f = Forest::train(&rows, 3, &params).unwrap();
        for x in [[0.1, -2.0, 3.0], [f64::NAN, 0.5, -0.5], [9.0, 0.0, 0.0]] {
            let mut lockstep = [0.0; 3];
            f.score_into(&x, &mut lockstep).unwrap();
            let mut plain = [0.0; 3];
            for &r in &f.roots {
                f.walk_credit::<true>(r, &x, &mut plain);
            }
            normalise(&mut plain);
            for (a, b) in lockstep.iter().zip(&plain) {
                assert!((a - b).abs() < 1e-12, "{lockstep:?} vs {plain:?}");
            }
        }
        assert!((exp2_neg(3.7) / 2f64.powf(-3.7) - 1.0).abs() < 3e-4);
        assert_eq!((exp2_neg(0.0), exp2_neg(1e6), exp2_neg(f64::NAN)), (1.0, 0.0, 0.0));
    }
}
