//! Vectorize: groups incoming series into per-entity feature vectors.
//!
//! Second stage of the flow (ingest → **vectorize** → detect). Every sample is routed by
//! metric name to the profile features whose selectors match, and stored in a per-series
//! slot of its entity (counters keep their previous raw value to form a reset-aware rate).
//! At every check the pipeline calls [`Vectorizer::assemble`], which aggregates each entity's
//! fresh slots into one vector; a feature without a fresh sample is NaN. Nothing here reads
//! the clock: callers pass `now`, so CSV replay and `serve` share this code.
//!
//! The per-sample path hashes labels with FxHash and allocates only when an entity or series
//! is first seen; labels are borrowed from the decoded request.

mod profile;
mod sink;

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHasher};

use crate::config::{Aggregation, FeatureKind, VectorizeConfig};
use crate::ingest::ObserveStats;
use crate::sample::{
    LABEL_METRIC_NAME, LABEL_NAME, LabelRef, Matcher, STALE_NAN_BITS, SampleRef, SelectorError,
};

pub use profile::{Profile, ProfileMode, dwcp, node};
pub use sink::VectorizerSink;

/// An entity's identifying labels, in the profile's order, empty values omitted.
pub type EntityLabels = Arc<[(String, String)]>;

/// An entity as people read it and links name it: `job="a",instance="b"`.
pub fn entity_string(labels: &[(String, String)]) -> String {
    labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect::<Vec<_>>().join(",")
}

/// Why the vectorizer refused a sample (counted by the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A new entity would exceed `max_entities`.
    MaxEntities,
    /// Timestamp not newer than the series' previous one.
    OutOfOrder,
    /// A new entity beyond the budget of new entities the caller set.
    NewEntityRate,
}

fn refuse(stats: &mut ObserveStats, r: Refusal, n: u64) {
    match r {
        Refusal::MaxEntities => stats.max_entities += n,
        Refusal::OutOfOrder => stats.out_of_order += n,
        Refusal::NewEntityRate => stats.new_entity_rate += n,
    }
}

/// One assembled vector, ready for the detectors.
#[derive(Debug, Clone)]
pub struct EntityVector {
    /// Stable id of the entity (hash of its labels).
    pub entity: u64,
    /// The entity's labels.
    pub labels: EntityLabels,
    /// Time of the check, milliseconds since the epoch.
    pub timestamp_ms: i64,
    /// Feature values in profile order; NaN where missing.
    pub values: Vec<f64>,
    /// Timestamp of the newest sample in the vector (the data's own time).
    pub sample_ms: i64,
    /// Wall-clock time the first sample since the previous check was received, so the
    /// pipeline can say how long a sample waited until its score was published.
    pub received_ms: i64,
}

/// Liveness of one entity at a check.
#[derive(Debug, Clone)]
pub struct EntityStatus {
    /// Entity id.
    pub entity: u64,
    /// The entity's labels.
    pub labels: EntityLabels,
    /// True when no new sample arrived for much longer than its usual interval.
    pub stale: bool,
}

/// Several series of one entity feeding one feature whose profile does not merge series on
/// purpose (see `FeatureConfig::merge_series`): the entity labels do not separate them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedSeries {
    /// The entity's labels.
    pub labels: EntityLabels,
    /// The feature's index in the profile.
    pub feature: u16,
    /// How many series were combined into the feature's value at this check.
    pub series: u32,
    /// First time seen for this entity and feature: the labels outside the entity labels of
    /// the series that joined (what differs between them), for the one warning to name.
    pub first: Option<LabelPairs>,
}

/// What one check produced.
#[derive(Debug, Default)]
pub struct Assembled {
    /// Vectors of entities with new samples since the previous check.
    pub vectors: Vec<EntityVector>,
    /// Every live entity.
    pub status: Vec<EntityStatus>,
    /// Entities dropped at this check (silent beyond the staleness window).
    pub dropped: Vec<u64>,
    /// Features of entities that combined several series without the profile asking.
    pub merged: Vec<MergedSeries>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Numerator,
    Denominator,
}

#[derive(Debug, Clone)]
struct Route {
    feature: u16,
    role: Role,
    matchers: Vec<Matcher>,
}

#[derive(Debug)]
struct Slot {
    feature: u16,
    role: Role,
    kind: FeatureKind,
    last_ts: i64,
    last_raw: f64,
    value: f64,
    valid: bool,
}

#[derive(Debug)]
struct Entity {
    labels: EntityLabels,
    slots: FxHashMap<u64, Slot>,
    last_seen_ms: i64,
    interval_ms: f64,
    dirty: bool,
    /// Wall-clock receipt of the first sample since the previous check (valid while dirty).
    received_ms: i64,
    /// Features already reported as merging several series, with the labels outside the
    /// entity labels of the series that joined until the report is taken (empty normally).
    merged: Vec<(u16, Option<LabelPairs>)>,
}

/// Owned label pairs, e.g. the labels that set one series apart from another.
pub type LabelPairs = Vec<(String, String)>;

/// Groups samples into per-entity vectors for one profile.
#[derive(Debug)]
pub struct Vectorizer {
    profile: Arc<Profile>,
    routes: FxHashMap<Box<str>, Vec<Route>>,
    entities: FxHashMap<u64, Entity>,
    staleness_ms: i64,
    max_entities: usize,
    /// New entities that may still be created (`u64::MAX`: no budget); the serving sink sets it
    /// from `max_new_entities_per_second`, replay leaves it unlimited.
    new_entity_budget: u64,
}

impl Vectorizer {
    /// Builds the vectorizer for the configured profile.
    pub fn new(cfg: &VectorizeConfig) -> Result<Self, SelectorError> {
        let profile = Profile::from_config(cfg)?;
        let mut routes: FxHashMap<Box<str>, Vec<Route>> = FxHashMap::default();
        for (i, f) in profile.features.iter().enumerate() {
            let sels = f
                .series
                .iter()
                .map(|s| (s, Role::Numerator))
                .chain(f.per.iter().map(|s| (s, Role::Denominator)));
            for (sel, role) in sels {
                routes.entry(sel.metric.as_str().into()).or_default().push(Route {
                    feature: i as u16,
                    role,
                    matchers: sel.matchers.clone(),
                });
            }
        }
        Ok(Self {
            profile,
            routes,
            entities: FxHashMap::default(),
            staleness_ms: cfg.staleness.as_millis() as i64,
            max_entities: cfg.max_entities,
            new_entity_budget: u64::MAX,
        })
    }

    /// The profile in use.
    pub fn profile(&self) -> &Arc<Profile> {
        &self.profile
    }

    /// The id an entity with these labels has (or would have).
    pub fn entity_id(&self, labels: &[LabelRef<'_>]) -> u64 {
        match self.profile.mode {
            ProfileMode::PerSeries => hash_all(labels),
            ProfileMode::Grouped => hash_entity(&self.profile.entity_labels, labels),
        }
    }

    /// Lets at most `n` new entities be created from now on (`u64::MAX`: any number); further
    /// new entities are refused (`Refusal::NewEntityRate`) until it is set again.
    pub fn set_new_entity_budget(&mut self, n: u64) {
        self.new_entity_budget = n;
    }

    /// How many new entities may still be created.
    pub fn new_entity_budget(&self) -> u64 {
        self.new_entity_budget
    }

    /// The configured `max_entities`.
    pub fn max_entities(&self) -> usize {
        self.max_entities
    }

    /// Drops the `n` entities seen least recently (silent ones before busy ones) and returns
    /// their ids, for the scorer to drop their models.
    pub fn shed(&mut self, n: usize) -> Vec<u64> {
        let mut by_age: Vec<(i64, u64)> = self.entities.iter().map(|(id, e)| (e.last_seen_ms, *id)).collect();
        by_age.sort_unstable();
        by_age.truncate(n);
        for (_, id) in &by_age {
            self.entities.remove(id);
        }
        by_age.into_iter().map(|(_, id)| id).collect()
    }

    /// Number of live entities.
    pub fn entity_count(&self) -> usize {
        self.entities.len()
    }

    /// Stores one series' samples (labels already validated, samples in time order).
    pub fn observe(&mut self, labels: &[LabelRef<'_>], samples: &[SampleRef], stats: &mut ObserveStats) {
        if samples.is_empty() {
            return;
        }
        let n = samples.len() as u64;
        let name = labels.iter().find(|l| l.name == LABEL_NAME).map_or("", |l| l.value);
        match self.profile.mode {
            ProfileMode::PerSeries => {
                let h = hash_all(labels);
                let kind = if is_counter_name(name) { FeatureKind::Counter } else { FeatureKind::Gauge };
                match self.entity_for(h, labels, per_series_labels) {
                    Ok(e) => {
                        e.slots.entry(h).or_insert_with(|| Slot::new(0, Role::Numerator, kind));
                        store(e, h, samples, stats);
                    }
                    Err(r) => refuse(stats, r, n),
                }
            }
            ProfileMode::Grouped => {
                let Some(routes) = self.routes.get(name) else {
                    stats.unmatched += n;
                    return;
                };
                let matched: Vec<(u16, Role)> = routes
                    .iter()
                    .filter(|r| r.matchers.iter().all(|m| m.matches(labels)))
                    .map(|r| (r.feature, r.role))
                    .collect();
                if matched.is_empty() {
                    stats.unmatched += n;
                    return;
                }
                let profile = Arc::clone(&self.profile);
                let ekey = hash_entity(&profile.entity_labels, labels);
                let series = hash_all(labels);
                let entity = self.entity_for(ekey, labels, |l| entity_labels(&profile.entity_labels, l));
                match entity {
                    Ok(e) => {
                        for (k, (feature, role)) in matched.into_iter().enumerate() {
                            let key = series.wrapping_add(k as u64);
                            let f = &profile.features[feature as usize];
                            if !e.slots.contains_key(&key) {
                                if !f.merge_series && role == Role::Numerator {
                                    note_merge(e, feature, &profile.entity_labels, labels);
                                }
                                e.slots.insert(key, Slot::new(feature, role, f.kind));
                            }
                            store(e, key, samples, stats);
                        }
                    }
                    Err(r) => refuse(stats, r, n),
                }
            }
        }
    }

    fn entity_for(
        &mut self,
        key: u64,
        labels: &[LabelRef<'_>],
        make: impl FnOnce(&[LabelRef<'_>]) -> Vec<(String, String)>,
    ) -> Result<&mut Entity, Refusal> {
        let len = self.entities.len();
        match self.entities.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => Ok(e.into_mut()),
            std::collections::hash_map::Entry::Vacant(v) => {
                if len >= self.max_entities {
                    return Err(Refusal::MaxEntities);
                }
                if self.new_entity_budget == 0 {
                    return Err(Refusal::NewEntityRate);
                }
                if self.new_entity_budget != u64::MAX {
                    self.new_entity_budget -= 1;
                }
                Ok(v.insert(Entity {
                    labels: make(labels).into(),
                    slots: FxHashMap::default(),
                    last_seen_ms: i64::MIN,
                    interval_ms: 0.0,
                    dirty: false,
                    received_ms: 0,
                    merged: Vec::new(),
                }))
            }
        }
    }

    /// Assembles one vector per entity that received samples since the last call, reports
    /// every live entity's status and drops entities silent beyond the staleness window.
    pub fn assemble(&mut self, now_ms: i64) -> Assembled {
        let mut out = Assembled::default();
        let nf = self.profile.features.len();
        let horizon = now_ms - self.staleness_ms;
        let mut num = vec![Agg::default(); nf];
        let mut den = vec![Agg::default(); nf];
        self.entities.retain(|&id, e| {
            if e.last_seen_ms < horizon {
                out.dropped.push(id);
                return false;
            }
            e.slots.retain(|_, s| s.last_ts >= horizon);
            let silent_for = (now_ms - e.last_seen_ms) as f64;
            let stale = e.interval_ms > 0.0 && silent_for > 3.0 * e.interval_ms + 1000.0;
            out.status.push(EntityStatus { entity: id, labels: Arc::clone(&e.labels), stale });
            if !e.dirty {
                return true;
            }
            e.dirty = false;
            num.iter_mut().chain(den.iter_mut()).for_each(|a| *a = Agg::default());
            for s in e.slots.values().filter(|s| s.valid) {
                let a = match s.role {
                    Role::Numerator => &mut num[s.feature as usize],
                    Role::Denominator => &mut den[s.feature as usize],
                };
                a.add(s.value);
            }
            for (feature, first) in e.merged.iter_mut() {
                let n = num[*feature as usize].n;
                if n > 1 {
                    out.merged.push(MergedSeries {
                        labels: Arc::clone(&e.labels),
                        feature: *feature,
                        series: n,
                        first: first.take(),
                    });
                }
            }
            let values = self
                .profile
                .features
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    let mut v = num[i].get(f.aggregation);
                    if f.per.is_some() {
                        v /= den[i].get(f.aggregation);
                    }
                    let v = f.offset + f.scale * v;
                    if v.is_finite() { v } else { f64::NAN }
                })
                .collect();
            out.vectors.push(EntityVector {
                entity: id,
                labels: Arc::clone(&e.labels),
                timestamp_ms: now_ms,
                values,
                sample_ms: e.last_seen_ms,
                received_ms: e.received_ms,
            });
            true
        });
        out
    }
}

/// A new series joins `feature` of entity `e`: when another series of the entity feeds the
/// feature already, remember it (once per feature) with the labels that set the new one apart.
fn note_merge(e: &mut Entity, feature: u16, entity_labels: &[String], labels: &[LabelRef<'_>]) {
    if e.merged.iter().any(|(f, _)| *f == feature) {
        return;
    }
    let shared = e.slots.values().any(|s| s.feature == feature && s.role == Role::Numerator);
    if shared {
        let apart = labels
            .iter()
            .filter(|l| l.name != LABEL_NAME && !entity_labels.iter().any(|k| k == l.name))
            .map(|l| (l.name.to_string(), l.value.to_string()))
            .collect();
        e.merged.push((feature, Some(apart)));
    }
}

impl Slot {
    fn new(feature: u16, role: Role, kind: FeatureKind) -> Self {
        Slot { feature, role, kind, last_ts: i64::MIN, last_raw: f64::NAN, value: f64::NAN, valid: false }
    }
}

/// Applies samples to slot `key` of entity `e`.
#[inline]
fn store(e: &mut Entity, key: u64, samples: &[SampleRef], stats: &mut ObserveStats) {
    let Some(slot) = e.slots.get_mut(&key) else { return };
    let mut newest = e.last_seen_ms;
    for s in samples {
        if s.timestamp_ms <= slot.last_ts {
            stats.out_of_order += 1;
            continue;
        }
        if s.value.to_bits() == STALE_NAN_BITS {
            slot.valid = false;
            slot.last_raw = f64::NAN;
            slot.last_ts = s.timestamp_ms;
            stats.accepted += 1;
            continue;
        }
        match slot.kind {
            FeatureKind::Gauge => {
                slot.value = s.value;
                slot.valid = s.value.is_finite();
            }
            FeatureKind::Counter => {
                if slot.last_raw.is_finite() && s.value.is_finite() {
                    let dt = (s.timestamp_ms - slot.last_ts) as f64 / 1000.0;
                    // A decrease is a reset: the counter restarted from zero.
                    let inc = if s.value >= slot.last_raw { s.value - slot.last_raw } else { s.value };
                    slot.value = inc / dt;
                    slot.valid = true;
                }
                slot.last_raw = s.value;
            }
        }
        slot.last_ts = s.timestamp_ms;
        newest = newest.max(s.timestamp_ms);
        stats.accepted += 1;
    }
    if newest > e.last_seen_ms {
        if e.last_seen_ms != i64::MIN {
            let gap = (newest - e.last_seen_ms) as f64;
            e.interval_ms = if e.interval_ms == 0.0 { gap } else { 0.8 * e.interval_ms + 0.2 * gap };
        }
        e.last_seen_ms = newest;
        if !e.dirty {
            e.received_ms = crate::rfc3339::now_ms();
            e.dirty = true;
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Agg {
    sum: f64,
    n: u32,
    max: f64,
    min: f64,
}

impl Default for Agg {
    fn default() -> Self {
        Agg { sum: 0.0, n: 0, max: f64::NEG_INFINITY, min: f64::INFINITY }
    }
}

impl Agg {
    fn add(&mut self, v: f64) {
        self.sum += v;
        self.n += 1;
        self.max = self.max.max(v);
        self.min = self.min.min(v);
    }

    fn get(&self, how: Aggregation) -> f64 {
        if self.n == 0 {
            return f64::NAN;
        }
        match how {
            Aggregation::Sum => self.sum,
            Aggregation::Avg => self.sum / f64::from(self.n),
            Aggregation::Max => self.max,
            Aggregation::Min => self.min,
        }
    }
}

fn per_series_labels(labels: &[LabelRef<'_>]) -> Vec<(String, String)> {
    labels
        .iter()
        .filter(|l| !l.value.is_empty())
        .map(|l| {
            let name = if l.name == LABEL_NAME { LABEL_METRIC_NAME } else { l.name };
            (name.to_string(), l.value.to_string())
        })
        .collect()
}

fn is_counter_name(name: &str) -> bool {
    ["_total", "_count", "_sum", "_bucket"].iter().any(|s| name.ends_with(s))
}

fn hash_all(labels: &[LabelRef<'_>]) -> u64 {
    let mut h = FxHasher::default();
    for l in labels {
        l.name.hash(&mut h);
        l.value.hash(&mut h);
    }
    h.finish()
}

fn hash_entity(keys: &[String], labels: &[LabelRef<'_>]) -> u64 {
    let mut h = FxHasher::default();
    for k in keys {
        labels.iter().find(|l| l.name == k).map_or("", |l| l.value).hash(&mut h);
    }
    h.finish()
}

fn entity_labels(keys: &[String], labels: &[LabelRef<'_>]) -> Vec<(String, String)> {
    keys.iter()
        .filter_map(|k| {
            let v = labels.iter().find(|l| l.name == k)?.value;
            (!v.is_empty()).then(|| (k.clone(), v.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests;
