//! The check: what one scoring pass over every live entity produced, and the bounded
//! history of recent checks the live page draws.
//!
//! The pipeline builds a [`CheckScores`] at every check; export, alert and the page read it.
//! It sits below all three so that none of them imports another to see a result.

pub mod history;

use std::sync::Arc;

use parking_lot::RwLock;

use crate::detect::{EnsembleScore, ModelState};
use crate::vectorize::{EntityLabels, MergedSeries};

/// The latest check, as served on `/metrics` and the status API.
pub type Scoreboard = Arc<RwLock<Arc<CheckScores>>>;

/// One entity's result at one check.
#[derive(Debug, Clone)]
pub struct EntityScores {
    /// Entity labels.
    pub labels: EntityLabels,
    /// Model state.
    pub state: ModelState,
    /// The score (None while warming, or when stale).
    pub score: Option<EnsembleScore>,
    /// The feature values that were scored (empty when not scored at this check).
    pub values: Vec<f64>,
    /// The vote rules the entity's models run (see `EntityModel::rules`); `None` while warming.
    pub rules: Option<&'static str>,
}

/// Everything one check produced.
#[derive(Debug, Clone, Default)]
pub struct CheckScores {
    /// Time of the check, ms since the epoch.
    pub timestamp_ms: i64,
    /// Profile name.
    pub profile: Arc<str>,
    /// Feature names in vector order.
    pub features: Arc<[String]>,
    /// Every live entity. Shared with the scorer, which keeps each entity's last result until
    /// its next vector (one copy per entity, not one per holder).
    pub entities: Vec<Arc<EntityScores>>,
    /// Features of entities that combined several series without the profile asking (the
    /// entity labels do not separate them), as the vectorizer found them at this check.
    pub merged: Vec<MergedSeries>,
}
