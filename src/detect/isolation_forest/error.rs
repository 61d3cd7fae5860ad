//! Errors building a [`Forest`](super::Forest) from training data or explicit node lists.

use thiserror::Error;

/// Why a forest could not be built.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum ForestError {
    /// No trees were given or asked for.
    #[error("a forest needs at least 1 tree, got 0")]
    NoTrees,
    /// The feature count is zero or too large for the node encoding.
    #[error("feature count must be within [1, {max}], got {found}")]
    Features {
        /// Largest supported feature count.
        max: usize,
        /// Feature count given.
        found: usize,
    },
    /// The sample size used for the `c(n)` normalisation is below 2 (c would be 0).
    #[error("sample size must be >= 2, got {0}")]
    SampleSize(usize),
    /// Too few training rows.
    #[error("training needs at least 2 rows, got {0}")]
    TooFewRows(usize),
    /// A training row has the wrong length.
    #[error("row {row}: expected {expected} features, got {found}")]
    RowShape {
        /// Index of the row.
        row: usize,
        /// Features the forest is built for.
        expected: usize,
        /// Features in the row.
        found: usize,
    },
    /// The forest would hold more nodes than the `u32` child indices can address.
    #[error("forest too large: more than {max} nodes")]
    TooManyNodes {
        /// Largest supported node count.
        max: usize,
    },
    /// An explicit tree is malformed.
    #[error("tree {tree}, node {node}: {reason}")]
    BadNode {
        /// Index of the tree in the input.
        tree: usize,
        /// Index of the node in that tree's list.
        node: usize,
        /// What is wrong, e.g. `child index 9 out of range (7 nodes)`.
        reason: String,
    },
    /// An ONNX model could not be read as a scikit-learn isolation forest: what was expected
    /// and what was found, e.g. `tree 3: leaf 17 has no entry in LabelEncoder 'x'`.
    #[error("ONNX isolation forest: {0}")]
    Onnx(String),
}
