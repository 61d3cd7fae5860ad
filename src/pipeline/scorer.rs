//! The pure part of a check: vectors → entity models → scores and alert events.
//!
//! Shared by `serve` (on a blocking thread every `check_interval`) and by replay/eval, so
//! both score exactly the same way.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::alert::{AlertEvent, AlertTracker};
use crate::config::Config;
use crate::detect::{DetectError, EntityModel, FeatureVector, ModelSpec, ModelState, Severity};
use crate::export::{CheckScores, EntityScores};
use crate::vectorize::{Assembled, EntityLabels, Profile};

use super::state::EntityState;

/// Counts from one check.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CheckStats {
    /// Vectors scored by a ready model.
    pub scored: u64,
    /// Anomalous vectors by severity (info, warning, critical).
    pub anomalies: [u64; 3],
    /// Detector errors.
    pub errors: u64,
}

/// Entity models plus alert state.
pub struct Scorer {
    spec: ModelSpec,
    models: FxHashMap<u64, EntityModel>,
    tracker: AlertTracker,
    profile: Arc<str>,
    features: Arc<[String]>,
    enabled: bool,
    last: FxHashMap<u64, EntityScores>,
    labels: FxHashMap<u64, EntityLabels>,
}

impl Scorer {
    /// A scorer for `profile` with the detectors and alert settings of `cfg`.
    pub fn new(cfg: &Config, profile: &Profile) -> Self {
        Self {
            spec: ModelSpec::new(&cfg.detect, profile.features.len()),
            models: FxHashMap::default(),
            tracker: AlertTracker::new(&cfg.alert),
            profile: profile.name.as_str().into(),
            features: profile.feature_names().into(),
            enabled: cfg.enabled,
            last: FxHashMap::default(),
            labels: FxHashMap::default(),
        }
    }

    /// The model of one entity, created on first use.
    pub fn model(&mut self, entity: u64) -> &mut EntityModel {
        let spec = &self.spec;
        self.models.entry(entity).or_insert_with(|| spec.build())
    }

    /// Restores one entity from saved state (fits on its history).
    pub fn restore(&mut self, entity: u64, state: EntityState, last_fit_ms: i64) -> Result<(), DetectError> {
        self.labels.insert(entity, state.labels.into());
        self.model(entity).restore(state.history, last_fit_ms)
    }

    /// Every fitted entity's labels and history, for saving.
    pub fn snapshot(&self) -> Vec<EntityState> {
        let mut out: Vec<EntityState> = self
            .models
            .iter()
            .filter(|(_, m)| m.is_ready())
            .filter_map(|(id, m)| {
                Some(EntityState {
                    labels: self.labels.get(id)?.to_vec(),
                    history: m.history().cloned().collect(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    }

    /// Profile name and feature names.
    pub fn alerts(&self) -> &AlertTracker {
        &self.tracker
    }

    /// The alert tracker, to restore it.
    pub fn alerts_mut(&mut self) -> &mut AlertTracker {
        &mut self.tracker
    }

    /// Profile name and feature names.
    pub fn profile(&self) -> (&str, &[String]) {
        (&self.profile, &self.features)
    }

    /// Scores one check's vectors; every live entity appears in the result.
    pub fn check(&mut self, assembled: Assembled, now_ms: i64) -> (CheckScores, Vec<AlertEvent>, CheckStats) {
        let mut stats = CheckStats::default();
        let mut events = Vec::new();
        for id in &assembled.dropped {
            self.models.remove(id);
            self.last.remove(id);
            self.labels.remove(id);
            self.tracker.forget(*id);
        }
        for v in assembled.vectors {
            if !self.enabled {
                continue;
            }
            let values = v.values.clone();
            self.labels.entry(v.entity).or_insert_with(|| v.labels.clone());
            let step =
                self.model(v.entity).step(FeatureVector { timestamp_ms: v.timestamp_ms, values: v.values });
            let entry = match step {
                Ok(step) => {
                    if let Some(score) = &step.score {
                        stats.scored += 1;
                        if score.severity != Severity::None {
                            stats.anomalies[score.severity as usize - 1] += 1;
                        }
                        events.extend(self.tracker.observe(
                            v.entity,
                            &v.labels,
                            &self.profile,
                            &self.features,
                            &values,
                            score,
                            now_ms,
                        ));
                    }
                    EntityScores { labels: v.labels, state: step.state, score: step.score, values }
                }
                Err(
                    DetectError::Shape { .. } | DetectError::NotFitted(_) | DetectError::NotEnoughData { .. },
                ) => {
                    stats.errors += 1;
                    EntityScores { labels: v.labels, state: ModelState::Warming, score: None, values }
                }
            };
            self.last.insert(v.entity, entry);
        }
        let mut entities = Vec::with_capacity(assembled.status.len());
        for s in assembled.status {
            let mut e = self.last.get(&s.entity).cloned().unwrap_or(EntityScores {
                labels: s.labels,
                state: ModelState::Warming,
                score: None,
                values: Vec::new(),
            });
            if s.stale && e.state == ModelState::Ready {
                e.state = ModelState::Stale;
                e.score = None;
            }
            entities.push(e);
        }
        entities.sort_by(|a, b| a.labels.cmp(&b.labels));
        let check = CheckScores {
            timestamp_ms: now_ms,
            profile: Arc::clone(&self.profile),
            features: Arc::clone(&self.features),
            entities,
        };
        (check, events, stats)
    }
}
