//! Detector errors.

use thiserror::Error;

/// Why a detector could not fit or score.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum DetectError {
    /// `score` was called before a successful `fit`.
    #[error("detector {0} is not fitted")]
    NotFitted(&'static str),
    /// The vector has the wrong number of features.
    #[error("expected {expected} features, got {found}")]
    Shape {
        /// Features the model was built for.
        expected: usize,
        /// Features in the vector.
        found: usize,
    },
    /// Too little usable history to fit.
    #[error("{detector} needs at least {needed} usable vectors to fit, got {found}")]
    NotEnoughData {
        /// Detector name.
        detector: &'static str,
        /// Minimum needed.
        needed: usize,
        /// Found.
        found: usize,
    },
    /// The inference engine failed (LSTM autoencoder).
    #[error("{detector}: inference failed: {reason}")]
    Inference {
        /// Detector name.
        detector: &'static str,
        /// The engine's message.
        reason: String,
    },
}
