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
use tracing::info;

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
    /// Fits that were due but wait for a later check (`detect.fit_share` spent).
    pub deferred_fits: u64,
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
    batch: Batch,
    max_batch: usize,
    min_fit_points: usize,
    /// Wall time a check may spend on fits (`serve`); `None` fits everything on time.
    fit_budget: Option<std::time::Duration>,
    /// Threads a check scores on (the machine's cores, at most [`MAX_THREADS`]).
    threads: usize,
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
            batch: Batch::default(),
            max_batch: cfg.detect.lstm_ae.max_batch.max(1),
            min_fit_points: cfg.detect.min_fit_points,
            fit_budget: None,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_THREADS),
        })
    }

    /// Limits the wall time each check spends on fits to `share` of `interval` (`serve`): fits
    /// due past it wait for a later check. Without it (replay, `eval`) every fit happens on
    /// time, so results never depend on the machine's speed.
    pub fn limit_fit_time(&mut self, interval: std::time::Duration, share: f64) {
        self.fit_budget = Some(interval.mul_f64(share));
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
        for (c, chunk) in b.entities.chunks(self.max_batch).enumerate() {
            let start = c * self.max_batch * per;
            let input = &b.input[start..start + chunk.len() * per];
            if net.reconstruct(input, chunk.len(), &mut b.output).is_ok() {
                for (k, (id, ts)) in chunk.iter().enumerate() {
                    if let Some(m) = self.models.get_mut(id) {
                        let range = k * per..(k + 1) * per;
                        m.batch_output(*ts, &input[range.clone()], &b.output[range]);
                    }
                }
            }
        }
    }

    /// Steps every vector through its entity's model: entities in parallel on up to
    /// [`MAX_THREADS`] threads (each entity's vectors in order, on one thread), so the result is
    /// what a sequential loop gives. Fits stop once the check's fit budget is spent.
    fn step_all(&mut self, vectors: &[crate::vectorize::EntityVector]) -> Vec<Stepped> {
        let mut order: FxHashMap<u64, Vec<usize>> = FxHashMap::default();
        for (i, v) in vectors.iter().enumerate() {
            self.labels.entry(v.entity).or_insert_with(|| v.labels.clone());
            self.model(v.entity);
            order.entry(v.entity).or_default().push(i);
        }
        let mut work: Vec<(&mut EntityModel, Vec<usize>)> =
            self.models.iter_mut().filter_map(|(id, m)| order.remove(id).map(|ix| (m, ix))).collect();
        let budget = self.fit_budget;
        let spent = std::sync::atomic::AtomicU64::new(0);
        let step_chunk = |chunk: &mut [(&mut EntityModel, Vec<usize>)]| {
            let mut out = Vec::new();
            for (model, ix) in chunk.iter_mut() {
                for &i in ix.iter() {
                    let v = &vectors[i];
                    let spent_ns = spent.load(std::sync::atomic::Ordering::Relaxed);
                    let defer = budget.is_some_and(|b| spent_ns >= b.as_nanos() as u64);
                    let started = budget.map(|_| std::time::Instant::now());
                    let was_ready = model.is_ready();
                    let x = FeatureVector { timestamp_ms: v.timestamp_ms, values: v.values.clone() };
                    let step = model.step_deferring(x, defer);
                    if let (Some(t), Ok(s)) = (started, &step)
                        && s.fitted
                    {
                        spent.fetch_add(t.elapsed().as_nanos() as u64, std::sync::atomic::Ordering::Relaxed);
                    }
                    let (rules, history_len) = (model.rules(), model.history_len());
                    out.push((i, Stepped { step, was_ready, rules, history_len }));
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

    /// Every fitted entity's labels and history, for saving.
    pub fn snapshot(&self) -> Vec<EntityState> {
        let mut out: Vec<EntityState> = self
            .models
            .iter()
            .filter(|(_, m)| m.is_ready())
            .filter_map(|(id, m)| {
                Some(EntityState { labels: self.labels.get(id)?.to_vec(), history: m.history().collect() })
            })
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
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
        if self.enabled {
            self.run_batch(&assembled.vectors);
        }
        let stepped = if self.enabled { self.step_all(&assembled.vectors) } else { Vec::new() };
        for (v, Stepped { step, was_ready, rules, history_len }) in assembled.vectors.into_iter().zip(stepped)
        {
            let values = v.values;
            let entry = match step {
                Ok(mut step) => {
                    stats.fits += u64::from(step.fitted);
                    stats.deferred_fits += u64::from(step.deferred);
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

    /// With a fit budget spent by the first fit of a check, entities that warm up together fit
    /// over the following checks, each exactly once, and none is lost or fitted twice; without
    /// one (replay) they all fit in the same check.
    #[test]
    fn fits_past_the_budget_wait_for_later_checks() {
        let cfg = Config::default();
        let profile = crate::vectorize::Profile::from_config(&cfg.vectorize).unwrap();
        let run = |budget: bool| {
            let mut scorer = Scorer::new(&cfg, &profile).unwrap();
            if budget {
                scorer.limit_fit_time(std::time::Duration::from_nanos(1), 1.0);
            }
            let mut rng = crate::rng::Rng::new(5);
            let mut per_check = Vec::new();
            for i in 0..(cfg.detect.min_fit_points as i64 + 8) {
                let ts = 1_700_000_000_000 + i * 10_000;
                let vectors = noisy_vectors(5, ts, &mut rng);
                let (_, _, stats) = scorer.check(Assembled { vectors, ..Assembled::default() }, ts, None);
                per_check.push((stats.fits, stats.deferred_fits));
            }
            per_check.into_iter().filter(|c| *c != (0, 0)).collect::<Vec<_>>()
        };
        assert_eq!(run(false), vec![(5, 0)]);
        assert_eq!(run(true), vec![(1, 4), (1, 3), (1, 2), (1, 1), (1, 0)]);
    }

    /// Entities scored on several threads get exactly the scores, fits and order one thread
    /// gives them.
    #[test]
    fn scoring_on_threads_changes_nothing() {
        let mut cfg = Config::default();
        cfg.detect.enable_only(&["zscore", "iforest", "kmeans"]).unwrap();
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
                out.push((scores, stats.scored, stats.fits));
            }
            out
        };
        let one = run(1);
        assert!(one.last().unwrap().1 > PARALLEL_FROM as u64, "the last checks score every entity");
        assert_eq!(run(3), one);
    }
}
