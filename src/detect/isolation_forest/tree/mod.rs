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
//!
//! `train.rs` grows a forest (or assembles one from trees trained elsewhere), `score.rs`
//! walks it; the node layout and the [`Forest`] type are here.

mod score;
mod train;

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
}
