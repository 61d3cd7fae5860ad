//! The pure part of a check: vectors → entity models → scores and alert events.
//!
//! Shared by `serve` (on a blocking thread every `check_interval`) and by replay/eval, so
//! both score exactly the same way.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::alert::{AlertEvent, AlertTracker};
use crate::check::{CheckScores, EntityScores};
use crate::config::Config;
use crate::detect::{DetectError, EntityModel, FeatureVector, ModelSpec, ModelState, Severity};
use crate::onnx::{self, OnnxError};
use crate::vectorize::{Assembled, EntityLabels, Profile, entity_string};
use tracing::{debug, info};

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
    /// Entity models (re)fitted.
    pub fits: u64,
    /// Entities still warming (collecting vectors before their first fit).
    pub warming: u64,
    /// Vectors collected by the most advanced warming entity.
    pub warming_vectors: usize,
    /// Vectors an entity needs before its first fit (`detect.min_fit_points`).
    pub warmup_target: usize,
    /// Wall-clock receipt time of every scored vector's first sample (receipt → score).
    pub received_ms: Vec<i64>,
    /// Data time of the newest sample of every vector that raised an entity's flag (the
    /// previous vector was not flagged): onset → flag.
    pub onsets_ms: Vec<i64>,
}

/// What one [`Scorer::fit_pending`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FitStats {
    /// Entity models (re)fitted.
    pub fits: u64,
    /// Fits still due when the deadline came: they wait for the next call.
    pub pending: u64,
    /// Fits that failed (retried at the next call).
    pub errors: u64,
    /// Entities fitted for the first time, with the vote rules they chose (logged).
    first: Vec<(u64, Option<&'static str>)>,
}

impl FitStats {
    fn merge(mut self, other: Self) -> Self {
        self.fits += other.fits;
        self.pending += other.pending;
        self.errors += other.errors;
        self.first.extend(other.first);
        self
    }
}

/// One vector stepped through its entity's model, with what the bookkeeping after needs.
struct Stepped {
    step: Result<crate::detect::Step, DetectError>,
    was_ready: bool,
    rules: Option<&'static str>,
    history_len: usize,
}

/// Most threads a check scores on.
const MAX_THREADS: usize = 8;
/// Entities with vectors in a check from which it is worth scoring on several threads.
const PARALLEL_FROM: usize = 256;

/// The entity models of one profile: vectors in, scores out.
pub struct Scorer {
    spec: ModelSpec,
    models: FxHashMap<u64, EntityModel>,
    profile: Arc<str>,
    features: Arc<[String]>,
    /// Each feature's valid range: expected values and bands are clamped to it.
    ranges: Vec<(f64, f64)>,
    enabled: bool,
    last: FxHashMap<u64, Arc<EntityScores>>,
    labels: FxHashMap<u64, EntityLabels>,
    max_batch: usize,
    min_fit_points: usize,
    /// Fits wait for [`Scorer::fit_pending`] between checks (`serve`) instead of running
    /// inside the check.
    defer_fits: bool,
    /// Threads a check scores on (the machine's cores, at most [`MAX_THREADS`]).
    threads: usize,
}

/// One scoring thread's buffers for the batched network pass.
#[derive(Default)]
struct Batch {
    input: Vec<f32>,
    output: Vec<f32>,
    /// Index in the group of each window in `input`.
    members: Vec<usize>,
}

impl Batch {
    /// Runs the shared network once over a group of entities (at most `max_batch`): the
    /// window of each entity's first vector in the check, when its model is ready and will
    /// not refit first (a second vector needs the first in its window and is scored alone).
    /// Each model gets its output, so the steps that follow score from it. A failure leaves
    /// the entities to score alone (and report).
    fn run(
        &mut self,
        net: &crate::detect::LstmModel,
        group: &mut [(&mut EntityModel, Vec<usize>)],
        vectors: &[crate::vectorize::EntityVector],
        defer: bool,
    ) {
        self.input.clear();
        self.members.clear();
        for (k, (model, ix)) in group.iter().enumerate() {
            let v = &vectors[ix[0]];
            if model.batch_input(v.timestamp_ms, &v.values, &mut self.input, defer) {
                self.members.push(k);
            }
        }
        if self.members.is_empty()
            || net.reconstruct(&self.input, self.members.len(), &mut self.output).is_err()
        {
            return;
        }
        let per = net.window_len();
        for (j, &k) in self.members.iter().enumerate() {
            let (model, ix) = &mut group[k];
            let range = j * per..(j + 1) * per;
            model.batch_output(vectors[ix[0]].timestamp_ms, &self.input[range.clone()], &self.output[range]);
        }
    }
}

impl Scorer {
    /// A scorer for `profile` with the detectors of `cfg`; loads the
    /// LSTM autoencoder when `detect.lstm_ae` is on and the forest `detect.iforest.model` names.
    pub fn new(cfg: &Config, profile: &Profile) -> Result<Self, OnnxError> {
        let features = profile.feature_names();
        let mut spec = ModelSpec::new(&cfg.detect, features.len());
        if let Some(m) = onnx::load_lstm(cfg, &profile.name, &features)? {
            spec = spec.with_lstm(m);
        }
        if let Some(f) = onnx::load_forest(cfg, &features)? {
            spec = spec.with_forest(f);
        }
        Ok(Self {
            spec,
            models: FxHashMap::default(),
            profile: profile.name.as_str().into(),
            features: features.into(),
            ranges: profile.features.iter().map(|f| f.range).collect(),
            enabled: cfg.enabled,
            last: FxHashMap::default(),
            labels: FxHashMap::default(),
            max_batch: cfg.detect.lstm_ae.max_batch.max(1),
            min_fit_points: cfg.detect.min_fit_points,
            defer_fits: false,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_THREADS),
        })
    }

    /// Leaves every fit that falls due inside a check for [`fit_pending`](Self::fit_pending)
    /// between checks (`serve`): a check only scores, so its duration does not grow when
    /// thousands of entities warm up or refit together, and an entity whose fit is due scores
    /// meanwhile with the models it has (or stays `warming` before its first fit). Without it
    /// (replay, `eval`) every fit happens inside the step it falls due in, so results never
    /// depend on the machine's speed.
    pub fn fit_between_checks(&mut self) {
        self.defer_fits = true;
    }

    /// Fits every entity whose fit a check left for later, on the scorer's threads, entities
    /// never fitted first, until `deadline`: past it a thread starts no further fit (but each
    /// fits at least one, so warming up always progresses). The entities left wait for the
    /// next call.
    pub fn fit_pending(&mut self, deadline: std::time::Instant) -> FitStats {
        let mut due: Vec<(u64, &mut EntityModel)> =
            self.models.iter_mut().filter(|(_, m)| m.fit_pending()).map(|(id, m)| (*id, m)).collect();
        due.sort_by_key(|(_, m)| m.is_ready());
        let threads = self.threads.min(due.len()).max(1);
        let mut parts: Vec<Vec<(u64, &mut EntityModel)>> = (0..threads).map(|_| Vec::new()).collect();
        for (k, e) in due.into_iter().enumerate() {
            parts[k % threads].push(e);
        }
        let fit_part = |part: Vec<(u64, &mut EntityModel)>| {
            let mut out = FitStats::default();
            for (id, model) in part {
                if out.fits + out.errors > 0 && std::time::Instant::now() >= deadline {
                    out.pending += 1;
                    continue;
                }
                let was_ready = model.is_ready();
                match model.fit_pending_now() {
                    Ok(true) if !was_ready => out.first.push((id, model.rules())),
                    Ok(_) => {}
                    Err(error) => {
                        debug!(%error, "Fit failed; retried after the next check.");
                        out.errors += 1;
                        continue;
                    }
                }
                out.fits += 1;
            }
            out
        };
        let mut parts = parts.into_iter();
        let mut stats = if threads < 2 {
            parts.next().map(fit_part).unwrap_or_default()
        } else {
            std::thread::scope(|scope| {
                let handles: Vec<_> = parts.map(|part| scope.spawn(|| fit_part(part))).collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("a fitting thread panicked"))
                    .fold(FitStats::default(), FitStats::merge)
            })
        };
        for (id, rules) in std::mem::take(&mut stats.first) {
            if let Some(labels) = self.labels.get(&id) {
                info!(entity = %entity_string(labels), rules = rules.unwrap_or("none"), "First fit; vote rules chosen.");
            }
        }
        stats
    }

    /// Scores on `n` threads (at least 1) instead of one per core.
    pub fn set_threads(&mut self, n: usize) {
        self.threads = n.max(1);
    }

    /// Names of the detectors in each entity's ensemble, in order.
    pub fn detector_names(&self) -> Vec<&'static str> {
        self.spec.detector_names()
    }

    /// The engine running the autoencoder (`ort`, `tract`), or `none`.
    pub fn onnx_backend(&self) -> &'static str {
        onnx::backend_label(self.spec.lstm().map(|m| m.as_ref()))
    }

    /// Steps every vector through its entity's model: entities in parallel on up to
    /// [`MAX_THREADS`] threads (each entity's vectors in order, on one thread), so the result is
    /// what a sequential loop gives. Each thread runs the shared network (when there is one)
    /// over its entities in groups of `max_batch` before stepping them, so the network's
    /// passes share the cores too.
    fn step_all(&mut self, vectors: &[crate::vectorize::EntityVector]) -> Vec<Stepped> {
        let mut order: FxHashMap<u64, Vec<usize>> = FxHashMap::default();
        for (i, v) in vectors.iter().enumerate() {
            self.labels.entry(v.entity).or_insert_with(|| v.labels.clone());
            self.model(v.entity);
            order.entry(v.entity).or_default().push(i);
        }
        let mut work: Vec<(&mut EntityModel, Vec<usize>)> =
            self.models.iter_mut().filter_map(|(id, m)| order.remove(id).map(|ix| (m, ix))).collect();
        let defer = self.defer_fits;
        let net = self.spec.lstm().cloned();
        let max_batch = self.max_batch;
        let step_chunk = |chunk: &mut [(&mut EntityModel, Vec<usize>)]| {
            let mut out = Vec::new();
            let mut batch = Batch::default();
            for group in chunk.chunks_mut(max_batch) {
                if let Some(net) = &net {
                    batch.run(net, group, vectors, defer);
                }
                for (model, ix) in group.iter_mut() {
                    for &i in ix.iter() {
                        let v = &vectors[i];
                        let was_ready = model.is_ready();
                        let x = FeatureVector { timestamp_ms: v.timestamp_ms, values: v.values.clone() };
                        let step = model.step_deferring(x, defer);
                        let (rules, history_len) = (model.rules(), model.history_len());
                        out.push((i, Stepped { step, was_ready, rules, history_len }));
                    }
                }
            }
            out
        };
        let threads = self.threads;
        let parts: Vec<Vec<(usize, Stepped)>> = if threads < 2 || work.len() < PARALLEL_FROM {
            vec![step_chunk(&mut work)]
        } else {
            let per = work.len().div_ceil(threads);
            std::thread::scope(|scope| {
                let handles: Vec<_> =
                    work.chunks_mut(per).map(|chunk| scope.spawn(|| step_chunk(chunk))).collect();
                handles.into_iter().map(|h| h.join().expect("a scoring thread panicked")).collect()
            })
        };
        let mut out: Vec<Option<Stepped>> = (0..vectors.len()).map(|_| None).collect();
        for (i, s) in parts.into_iter().flatten() {
            out[i] = Some(s);
        }
        out.into_iter().map(|s| s.expect("every vector was stepped")).collect()
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

    /// Every fitted entity's labels and model, in label order, for saving (the history read
    /// one vector at a time by [`EntityModel::history`]).
    pub fn fitted(&self) -> Vec<(&[(String, String)], &EntityModel)> {
        let mut out: Vec<(&[(String, String)], &EntityModel)> = self
            .models
            .iter()
            .filter(|(_, m)| m.is_ready())
            .filter_map(|(id, m)| Some((&self.labels.get(id)?[..], m)))
            .collect();
        out.sort_by(|a, b| a.0.cmp(b.0));
        out
    }

    /// Profile name and feature names.
    pub fn profile(&self) -> (&str, &[String]) {
        (&self.profile, &self.features)
    }

    /// Scores one check's vectors; every live entity appears in the result. With `alerts`,
    /// every score is handed to it (in vector order) and the alert events it raised are
    /// returned; without (replay), there are none.
    pub fn check(
        &mut self,
        assembled: Assembled,
        now_ms: i64,
        mut alerts: Option<&mut AlertTracker>,
    ) -> (CheckScores, Vec<AlertEvent>, CheckStats) {
        let mut stats = CheckStats { warmup_target: self.min_fit_points, ..CheckStats::default() };
        let mut events = Vec::new();
        for id in &assembled.dropped {
            self.models.remove(id);
            self.last.remove(id);
            self.labels.remove(id);
            if let Some(t) = alerts.as_deref_mut() {
                t.forget(*id);
            }
        }
        let stepped = if self.enabled { self.step_all(&assembled.vectors) } else { Vec::new() };
        for (v, Stepped { step, was_ready, rules, history_len }) in assembled.vectors.into_iter().zip(stepped)
        {
            let values = v.values;
            let entry = match step {
                Ok(mut step) => {
                    stats.fits += u64::from(step.fitted);
                    if let Some(score) = step.score.as_mut() {
                        clamp_expected(&mut score.expected, &self.ranges);
                    }
                    if let Some(score) = &step.score {
                        stats.scored += 1;
                        stats.received_ms.push(v.received_ms);
                        let was_flagged = self
                            .last
                            .get(&v.entity)
                            .and_then(|e| e.score.as_ref())
                            .is_some_and(|s| s.anomalous);
                        if score.anomalous && !was_flagged {
                            stats.onsets_ms.push(v.sample_ms);
                        }
                        if score.severity != Severity::None {
                            stats.anomalies[score.severity as usize - 1] += 1;
                        }
                        if let Some(t) = alerts.as_deref_mut() {
                            events.extend(t.observe(
                                v.entity,
                                &v.labels,
                                &self.profile,
                                &self.features,
                                &values,
                                score,
                                now_ms,
                            ));
                        }
                    }
                    if step.state == ModelState::Warming {
                        stats.warming += 1;
                        stats.warming_vectors = stats.warming_vectors.max(history_len);
                    }
                    if step.fitted && !was_ready {
                        info!(
                            entity = %entity_string(&v.labels),
                            rules = rules.unwrap_or("none"),
                            "First fit; vote rules chosen."
                        );
                    }
                    EntityScores { labels: v.labels, state: step.state, score: step.score, values, rules }
                }
                Err(
                    DetectError::Shape { .. }
                    | DetectError::NotFitted(_)
                    | DetectError::NotEnoughData { .. }
                    | DetectError::Inference { .. },
                ) => {
                    stats.errors += 1;
                    EntityScores {
                        labels: v.labels,
                        state: ModelState::Warming,
                        score: None,
                        values,
                        rules: None,
                    }
                }
            };
            self.last.insert(v.entity, Arc::new(entry));
        }
        let mut entities = Vec::with_capacity(assembled.status.len());
        for s in assembled.status {
            let mut e = self.last.get(&s.entity).cloned().unwrap_or_else(|| {
                Arc::new(EntityScores {
                    labels: s.labels,
                    state: ModelState::Warming,
                    score: None,
                    values: Vec::new(),
                    rules: None,
                })
            });
            if s.stale && e.state == ModelState::Ready {
                let stale = Arc::make_mut(&mut e);
                stale.state = ModelState::Stale;
                stale.score = None;
            }
            entities.push(e);
        }
        entities.sort_by(|a, b| a.labels.cmp(&b.labels));
        let check = CheckScores {
            timestamp_ms: now_ms,
            profile: Arc::clone(&self.profile),
            features: Arc::clone(&self.features),
            entities,
            merged: assembled.merged,
        };
        (check, events, stats)
    }
}

/// Clamps expected values and normal bands to each feature's valid range (a packet-loss band
/// never reaches below 0 %, a CPU band never above 100 %), for every output that shows them.
fn clamp_expected(expected: &mut [crate::detect::Expected], ranges: &[(f64, f64)]) {
    for (e, &(lo, hi)) in expected.iter_mut().zip(ranges) {
        for v in [&mut e.value, &mut e.lower, &mut e.upper] {
            if v.is_finite() {
                *v = v.clamp(lo, hi);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OnnxBackend;
    use crate::ingest::ObserveStats;
    use crate::pipeline::replay::{metric_for, replay_config};
    use crate::sample::{LABEL_INSTANCE, LABEL_NAME, LabelRef, SampleRef};
    use crate::vectorize::Vectorizer;

    /// `lstm_ae` scores of 5 entities over 60 checks, the network run in calls of `max_batch`.
    fn lstm_scores(max_batch: usize) -> Vec<f64> {
        let cols: Vec<String> = crate::simulate::FEATURES.iter().map(|s| s.to_string()).collect();
        let mut cfg = Config::default();
        cfg.detect.min_fit_points = 40;
        cfg.detect.lstm_ae.enabled = true;
        cfg.detect.lstm_ae.max_batch = max_batch;
        cfg.onnx.backend = OnnxBackend::Tract;
        let c = replay_config(&cfg, &cols);
        let mut vectorizer = Vectorizer::new(&c.vectorize).unwrap();
        let mut scorer = Scorer::new(&c, vectorizer.profile()).unwrap();
        let mut rng = crate::rng::Rng::new(11);
        let mut scores = Vec::new();
        for step in 0..100i64 {
            let ts = 1_700_000_000_000 + step * 10_000;
            for e in 0..5 {
                let instance = format!("e{e}");
                for col in &cols {
                    let metric = metric_for(col);
                    let labels = [
                        LabelRef { name: LABEL_NAME, value: &metric },
                        LabelRef { name: LABEL_INSTANCE, value: &instance },
                    ];
                    let value = 50.0 + 5.0 * rng.normal() + if step == 80 && e == 3 { 60.0 } else { 0.0 };
                    vectorizer.observe(
                        &labels,
                        &[SampleRef { value, timestamp_ms: ts }],
                        &mut ObserveStats::default(),
                    );
                }
            }
            let (check, _, _) = scorer.check(vectorizer.assemble(ts), ts, None);
            for entity in check.entities {
                if let Some(s) = &entity.score {
                    scores
                        .extend(s.detectors.iter().filter(|d| d.detector == "lstm_ae").map(|d| d.score.raw));
                }
            }
        }
        scores
    }

    #[test]
    fn batches_split_into_calls_score_as_one_call() {
        let one_call = lstm_scores(256);
        assert!(one_call.len() >= 5 * 50, "{} scores", one_call.len());
        assert!(one_call.iter().all(|s| s.is_finite()));
        for max_batch in [1, 2, 3] {
            let split = lstm_scores(max_batch);
            assert_eq!(split.len(), one_call.len());
            let diff = split.iter().zip(&one_call).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(diff < 1e-9, "max_batch {max_batch}: max |diff| {diff}");
        }
    }

    /// One check holding one vector of entity 1.
    fn one_entity(
        labels: &EntityLabels,
        ts: i64,
        values: Vec<f64>,
        sample_ms: i64,
        received_ms: i64,
    ) -> Assembled {
        let labels = Arc::clone(labels);
        Assembled {
            vectors: vec![crate::vectorize::EntityVector {
                entity: 1,
                labels: Arc::clone(&labels),
                timestamp_ms: ts,
                values,
                sample_ms,
                received_ms,
            }],
            status: vec![crate::vectorize::EntityStatus { entity: 1, labels, stale: false }],
            ..Assembled::default()
        }
    }

    #[test]
    fn expected_values_and_bands_stay_inside_each_features_valid_range() {
        // The dwcp profile, every native detector that models an expected value, and data
        // hugging the edges: packet loss and errors near 0 %, CPU and memory near 100 %.
        let mut cfg = Config::default();
        cfg.detect.kmeans.enabled = true;
        cfg.detect.sesd.enabled = true;
        let profile = crate::vectorize::Profile::from_config(&cfg.vectorize).unwrap();
        let mut scorer = Scorer::new(&cfg, &profile).unwrap();
        let ranges: Vec<(f64, f64)> = profile.features.iter().map(|f| f.range).collect();
        assert_eq!(ranges[2], (0.0, 100.0), "packet_loss_pct");
        assert_eq!(ranges[1], (0.0, f64::INFINITY), "latency_ms");
        let labels: crate::vectorize::EntityLabels = vec![("instance".to_string(), "n".to_string())].into();
        let mut rng = crate::rng::Rng::new(5);
        let (mut checked, mut lo_min, mut hi_max) = (0, f64::INFINITY, f64::NEG_INFINITY);
        for i in 0..400i64 {
            let n = |r: &mut crate::rng::Rng, mean: f64, sd: f64| mean + sd * r.normal();
            let values = vec![
                n(&mut rng, 900.0, 200.0),
                n(&mut rng, 2.0, 3.0).abs(),
                n(&mut rng, 0.05, 0.2).abs(),
                n(&mut rng, 0.5, 1.0).abs(),
                n(&mut rng, 98.0, 3.0).min(100.0),
                n(&mut rng, 97.0, 4.0).min(100.0),
                n(&mut rng, 0.1, 0.3).abs(),
            ];
            let ts = 1_700_000_000_000 + i * 10_000;
            let assembled = one_entity(&labels, ts, values, ts, ts);
            let (check, _, _) = scorer.check(assembled, ts, None);
            for score in check.entities.iter().filter_map(|e| e.score.as_ref()) {
                for (e, &(lo, hi)) in score.expected.iter().zip(&ranges) {
                    for v in [e.value, e.lower, e.upper].into_iter().filter(|v| v.is_finite()) {
                        assert!(v >= lo && v <= hi, "{v} outside [{lo}, {hi}] in {:?}", score.expected);
                    }
                    checked += 1;
                }
                lo_min = lo_min.min(score.expected[2].lower);
                hi_max = hi_max.max(score.expected[4].upper);
            }
        }
        assert!(checked > 1000, "expected values were checked: {checked}");
        // The clamp did work here: unclamped, these bands cross 0 % and 100 %.
        assert_eq!((lo_min, hi_max), (0.0, 100.0));
    }

    #[test]
    fn a_flag_onset_is_reported_once_with_its_samples_time() {
        let cfg = Config::default();
        let profile = crate::vectorize::Profile::from_config(&cfg.vectorize).unwrap();
        let mut scorer = Scorer::new(&cfg, &profile).unwrap();
        let labels: crate::vectorize::EntityLabels = vec![("instance".to_string(), "n".to_string())].into();
        let mut rng = crate::rng::Rng::new(9);
        let (mut onsets, mut received, mut scored, mut fits) = (Vec::new(), 0, 0, 0);
        for i in 0..300i64 {
            let ts = 1_700_000_000_000 + i * 10_000;
            // A latency incident over checks 250..255: one onset, however long it lasts.
            let latency = if (250..255).contains(&i) { 400.0 } else { 20.0 + rng.normal() };
            let values = vec![900.0 + rng.normal(), latency, 0.1, 1.0, 40.0 + rng.normal(), 60.0, 0.1];
            let assembled = one_entity(&labels, ts, values, ts - 3_000, ts - 1_000);
            let (_, _, stats) = scorer.check(assembled, ts, None);
            onsets.extend(stats.onsets_ms);
            received += stats.received_ms.len();
            scored += stats.scored;
            fits += stats.fits;
        }
        assert_eq!(onsets, vec![1_700_000_000_000 + 250 * 10_000 - 3_000]);
        assert_eq!(received as u64, scored);
        assert!(scored > 100 && fits >= 1, "scored {scored}, fits {fits}");
    }

    /// One vector of 7 values around 50 for each entity `0..n` at `ts`.
    fn noisy_vectors(n: u64, ts: i64, rng: &mut crate::rng::Rng) -> Vec<crate::vectorize::EntityVector> {
        (0..n)
            .map(|e| crate::vectorize::EntityVector {
                entity: e,
                labels: vec![("instance".to_string(), format!("n{e}"))].into(),
                timestamp_ms: ts,
                values: (0..7).map(|_| 50.0 + rng.normal()).collect(),
                sample_ms: ts,
                received_ms: ts,
            })
            .collect()
    }

    /// Between checks (`serve`), the fits a check left are made by `fit_pending`: all of them
    /// when there is time, so every entity scores from the next check on; past the deadline
    /// one per thread per call, so entities that warm up together fit over the following
    /// calls, each exactly once, and none is lost or fitted twice. Within checks nothing fits.
    #[test]
    fn fits_left_by_checks_are_made_between_them() {
        let cfg = Config::default();
        let profile = crate::vectorize::Profile::from_config(&cfg.vectorize).unwrap();
        let run = |time: bool| {
            let mut scorer = Scorer::new(&cfg, &profile).unwrap();
            scorer.fit_between_checks();
            scorer.set_threads(1);
            let mut rng = crate::rng::Rng::new(5);
            let mut per_check = Vec::new();
            for i in 0..(cfg.detect.min_fit_points as i64 + 8) {
                let ts = 1_700_000_000_000 + i * 10_000;
                let vectors = noisy_vectors(5, ts, &mut rng);
                let (_, _, stats) = scorer.check(Assembled { vectors, ..Assembled::default() }, ts, None);
                assert_eq!(stats.fits, 0, "a check fits nothing");
                let deadline =
                    std::time::Instant::now() + std::time::Duration::from_secs(if time { 60 } else { 0 });
                let fits = scorer.fit_pending(deadline);
                assert_eq!(fits.errors, 0);
                per_check.push((stats.scored, fits.fits, fits.pending));
            }
            per_check.into_iter().filter(|c| *c != (0, 0, 0) && *c != (5, 0, 0)).collect::<Vec<_>>()
        };
        assert_eq!(run(true), vec![(0, 5, 0)]);
        assert_eq!(run(false), vec![(0, 1, 4), (1, 1, 3), (2, 1, 2), (3, 1, 1), (4, 1, 0)]);
    }

    /// Entities scored on several threads get exactly the scores, fits and order one thread
    /// gives them.
    #[test]
    fn scoring_on_threads_changes_nothing() {
        let mut cfg = Config::default();
        cfg.detect.enable_only(&["zscore", "iforest", "kmeans", "lstm_ae"]).unwrap();
        // Groups of 16 windows: each thread runs the network over its own entities.
        cfg.detect.lstm_ae.max_batch = 16;
        cfg.onnx.backend = OnnxBackend::Tract;
        let profile = crate::vectorize::Profile::from_config(&cfg.vectorize).unwrap();
        let run = |threads: usize| {
            let mut scorer = Scorer::new(&cfg, &profile).unwrap();
            scorer.set_threads(threads);
            let mut rng = crate::rng::Rng::new(17);
            let mut out = Vec::new();
            for i in 0..(cfg.detect.min_fit_points as i64 + 5) {
                let ts = 1_700_000_000_000 + i * 10_000;
                let mut vectors = noisy_vectors(PARALLEL_FROM as u64 + 44, ts, &mut rng);
                // A second vector of some entities in the same check, stepped after the first.
                let again: Vec<_> = (0..20usize)
                    .map(|e| crate::vectorize::EntityVector {
                        timestamp_ms: ts + 5_000,
                        values: (0..7).map(|_| 50.0 + rng.normal()).collect(),
                        ..vectors[e * 7].clone()
                    })
                    .collect();
                vectors.extend(again);
                let status = vectors
                    .iter()
                    .take(PARALLEL_FROM + 44)
                    .map(|v| crate::vectorize::EntityStatus {
                        entity: v.entity,
                        labels: v.labels.clone(),
                        stale: false,
                    })
                    .collect();
                let (check, _, stats) =
                    scorer.check(Assembled { vectors, status, ..Assembled::default() }, ts, None);
                let scores: Vec<Option<f64>> =
                    check.entities.iter().map(|e| e.score.as_ref().map(|s| s.confidence)).collect();
                let lstm: Vec<u64> = check
                    .entities
                    .iter()
                    .flat_map(|e| e.score.iter().flat_map(|s| &s.detectors))
                    .filter(|d| d.detector == "lstm_ae")
                    .map(|d| d.score.raw.to_bits())
                    .collect();
                out.push((scores, lstm, stats.scored, stats.fits));
            }
            out
        };
        let one = run(1);
        assert!(one.last().unwrap().2 > PARALLEL_FROM as u64, "the last checks score every entity");
        assert!(one.last().unwrap().1.len() > PARALLEL_FROM, "the network scores every entity");
        assert_eq!(run(3), one);
    }
}
