//! The pure part of a check: vectors → entity models → scores and alert events.
//!
//! Shared by `serve` (on a blocking thread every `check_interval`) and by replay/eval, so
//! both score exactly the same way.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::alert::{AlertEvent, AlertTracker};
use crate::config::Config;
use crate::detect::{DetectError, EntityModel, FeatureVector, LstmModel, ModelSpec, ModelState, Severity};
use crate::export::{CheckScores, EntityScores};
use crate::onnx::{self, OnnxError};
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
    batch: Batch,
    max_batch: usize,
}

/// Reused buffers of the batched network pass.
#[derive(Default)]
struct Batch {
    input: Vec<f32>,
    output: Vec<f32>,
    /// (entity, timestamp) per window in `input`.
    entities: Vec<(u64, i64)>,
    seen: rustc_hash::FxHashSet<u64>,
}

impl Scorer {
    /// A scorer for `profile` with the detectors and alert settings of `cfg`; loads the
    /// LSTM autoencoder when `detect.lstm_ae` is on.
    pub fn new(cfg: &Config, profile: &Profile) -> Result<Self, OnnxError> {
        let features = profile.feature_names();
        let lstm = onnx::load_lstm(cfg, &profile.name, &features)?;
        let mut scorer = Self::with_lstm(cfg, profile, lstm);
        if let Some(f) = onnx::load_forest(cfg, &features)? {
            scorer.spec = scorer.spec.with_forest(f);
        }
        Ok(scorer)
    }

    /// A scorer with an already loaded autoencoder (or none), e.g. shared by many replays.
    pub fn with_lstm(cfg: &Config, profile: &Profile, lstm: Option<std::sync::Arc<LstmModel>>) -> Self {
        let mut spec = ModelSpec::new(&cfg.detect, profile.features.len());
        if let Some(m) = lstm {
            spec = spec.with_lstm(m);
        }
        Self {
            spec,
            models: FxHashMap::default(),
            tracker: AlertTracker::new(&cfg.alert),
            profile: profile.name.as_str().into(),
            features: profile.feature_names().into(),
            enabled: cfg.enabled,
            last: FxHashMap::default(),
            labels: FxHashMap::default(),
            batch: Batch::default(),
            max_batch: cfg.detect.lstm_ae.max_batch.max(1),
        }
    }

    /// Names of the detectors in each entity's ensemble, in order.
    pub fn detector_names(&self) -> Vec<&'static str> {
        self.spec.detector_names()
    }

    /// The engine running the autoencoder (`ort`, `tract`), or `none`.
    pub fn onnx_backend(&self) -> &'static str {
        onnx::backend_label(self.spec.lstm().map(|m| m.as_ref()))
    }

    /// Runs the shared network once for every ready entity of the check (in calls of at most
    /// `max_batch` windows) and hands each its output, so the steps that follow score from
    /// it. An entity's first vector in the check only: a second one needs the first in its
    /// window and is scored alone. Failures leave the entities to score alone (and report).
    fn run_batch(&mut self, vectors: &[crate::vectorize::EntityVector]) {
        let Some(net) = self.spec.lstm().cloned() else { return };
        let b = &mut self.batch;
        b.input.clear();
        b.entities.clear();
        b.seen.clear();
        for v in vectors {
            if !b.seen.insert(v.entity) {
                continue;
            }
            if let Some(m) = self.models.get(&v.entity)
                && m.batch_input(v.timestamp_ms, &v.values, &mut b.input)
            {
                b.entities.push((v.entity, v.timestamp_ms));
            }
        }
        let per = net.window_len();
        let mut done = 0;
        for chunk in b.entities.chunks(self.max_batch) {
            let input = &b.input[done * per..(done + chunk.len()) * per];
            if net.reconstruct(input, chunk.len(), &mut b.output).is_ok() {
                for (k, (id, ts)) in chunk.iter().enumerate() {
                    if let Some(m) = self.models.get_mut(id) {
                        let range = k * per..(k + 1) * per;
                        m.batch_output(*ts, &input[range.clone()], &b.output[range]);
                    }
                }
            }
            done += chunk.len();
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
        if self.enabled {
            self.run_batch(&assembled.vectors);
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
                    DetectError::Shape { .. }
                    | DetectError::NotFitted(_)
                    | DetectError::NotEnoughData { .. }
                    | DetectError::Inference { .. },
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
