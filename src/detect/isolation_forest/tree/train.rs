//! Growing a forest on history rows, or assembling one from trees trained elsewhere.

use super::{Forest, ForestParams, MAX_FEATURES, MISSING_LEFT, Node, TreeNode, average_path_length};
use crate::detect::isolation_forest::ForestError;
use crate::rng::Rng;

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
