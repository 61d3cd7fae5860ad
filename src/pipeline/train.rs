//! `train`: fit every enabled detector on normal data from labeled CSV files and write the
//! state that `serve` loads at start.
//!
//! One file (or `train.csv` of a train/test directory) is one entity. Its columns must be the
//! profile's feature names in order; the entity gets `instance` = the file's name (without
//! `.csv`, or the directory's name) and `job` = `--job`, the labels `simulate push` uses.
//! Rows labeled 1 are left out; the newest `fit_window` normal rows are kept as the entity's
//! history, from which `serve` refits on schedule.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::config::Config;
use crate::dataset::{self, DatasetError, Source};
use crate::detect::{DetectError, FeatureVector};
use crate::sample::{LABEL_INSTANCE, LABEL_JOB, LabelRef, SelectorError};
use crate::vectorize::Vectorizer;

use super::state::{self, EntityState, State, StateError};
use super::{Scorer, now_ms};

/// Why training failed.
#[derive(Debug, Error)]
pub enum TrainError {
    /// A file could not be read.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// The file's columns are not the profile's features.
    #[error(
        "{file}: columns {found:?} do not match profile {profile}'s features {expected:?} (define a profile whose feature names are the column names)"
    )]
    Columns {
        /// The file.
        file: PathBuf,
        /// Profile name.
        profile: String,
        /// Profile features.
        expected: Vec<String>,
        /// File columns.
        found: Vec<String>,
    },
    /// A detector could not fit.
    #[error("{file}: {source}")]
    Fit {
        /// The file.
        file: PathBuf,
        /// The cause.
        #[source]
        source: DetectError,
    },
    /// The profile is invalid.
    #[error(transparent)]
    Profile(#[from] SelectorError),
    /// The state could not be written.
    #[error(transparent)]
    State(#[from] StateError),
    /// A model could not be loaded.
    #[error(transparent)]
    Onnx(#[from] crate::onnx::OnnxError),
}

/// What was trained.
#[derive(Debug, Clone)]
pub struct Trained {
    /// Entity instance name, normal rows used, fit time.
    pub entities: Vec<(String, usize, Duration)>,
    /// The state file written.
    pub file: PathBuf,
}

/// Trains one entity per source and writes `<state_dir>/models.state`.
pub fn train(
    cfg: &Config,
    sources: &[Source],
    job: &str,
    state_dir: &Path,
    mut progress: impl FnMut(usize, &str),
) -> Result<Trained, TrainError> {
    let vectorizer = Vectorizer::new(&cfg.vectorize)?;
    let profile = vectorizer.profile().clone();
    let features = profile.feature_names();
    let mut scorer = Scorer::new(cfg, &profile)?;
    let mut entities = Vec::new();
    let mut saved = Vec::new();
    for (i, source) in sources.iter().enumerate() {
        let path = match source {
            Source::Split { train, .. } => train.clone(),
            Source::Single { path, .. } => path.clone(),
        };
        progress(i, source.name());
        let table = dataset::read_csv(&path)?;
        if table.columns != features {
            return Err(TrainError::Columns {
                file: path,
                profile: profile.name.clone(),
                expected: features,
                found: table.columns,
            });
        }
        let instance = source.name().rsplit('/').next().unwrap_or(source.name()).to_string();
        let labels: Vec<(String, String)> = profile
            .entity_labels
            .iter()
            .filter_map(|k| match k.as_str() {
                LABEL_JOB => Some((k.clone(), job.to_string())),
                LABEL_INSTANCE => Some((k.clone(), instance.clone())),
                _ => None,
            })
            .collect();
        let history: Vec<(FeatureVector, bool)> = (0..table.len())
            .filter(|&r| table.labels[r] == 0)
            .map(|r| {
                (FeatureVector { timestamp_ms: table.timestamps[r], values: table.rows[r].clone() }, false)
            })
            .collect();
        let start = history.len().saturating_sub(cfg.detect.fit_window);
        let kept: Vec<(FeatureVector, bool)> = history[start..].to_vec();
        let refs: Vec<LabelRef<'_>> = labels.iter().map(|(k, v)| LabelRef { name: k, value: v }).collect();
        let id = vectorizer.entity_id(&refs);
        let t = Instant::now();
        let entity = EntityState { labels: labels.clone(), history: kept };
        scorer
            .restore(id, entity.clone(), now_ms())
            .map_err(|source| TrainError::Fit { file: path.clone(), source })?;
        entities.push((instance, entity.history.len(), t.elapsed()));
        saved.push(entity);
    }
    let file = state::save(
        state_dir,
        &State { profile: profile.name.clone(), features, saved_ms: now_ms(), entities: saved },
    )?;
    Ok(Trained { entities, file })
}
