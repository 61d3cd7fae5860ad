//! Recent history for the live page: a few dozen checks per entity and the recent anomalies.
//!
//! The pipeline's tick task calls [`PageHistory::record`] once per check after publishing it;
//! the page takes a [`PageHistory::snapshot`] of what it shows. Everything is bounded: at most
//! [`MAX_TRACKED`] entities (the highest-scoring ones when there are more), [`POINTS`] checks
//! each (f32, one reused buffer per point) and [`MAX_ANOMALIES`] anomaly records, so 100k
//! entities cost a partial sort per check and a few MB, never a huge page.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::detect::Severity;
use crate::vectorize::EntityLabels;

use super::CheckScores;

/// Checks kept per entity.
pub const POINTS: usize = 60;
/// Entities whose history is kept.
pub const MAX_TRACKED: usize = 1000;
/// Anomaly records kept.
pub const MAX_ANOMALIES: usize = 50;
/// Features listed per anomaly.
const TOP_FEATURES: usize = 3;

/// The history shared by the pipeline (writer) and the page (reader).
pub type SharedHistory = Arc<Mutex<PageHistory>>;

/// One check of one entity: `[confidence, detectors…, values…, expected…, lower…, upper…]`,
/// NaN where there was nothing (not scored, no band).
#[derive(Debug, Clone)]
pub struct Point {
    /// Check time, ms since the epoch.
    pub timestamp_ms: i64,
    packed: Vec<f32>,
}

/// One entity's recent checks.
#[derive(Debug, Clone)]
pub struct EntityHistory {
    /// Entity labels.
    pub labels: EntityLabels,
    /// Detector names, in the packed order.
    pub detectors: Vec<&'static str>,
    /// Oldest first, at most [`POINTS`].
    pub points: VecDeque<Point>,
    anomalous: bool,
}

impl EntityHistory {
    /// Ensemble confidence per point.
    pub fn confidence(&self) -> Vec<f32> {
        self.points.iter().map(|p| p.packed[0]).collect()
    }

    /// Detector `d`'s score per point.
    pub fn detector(&self, d: usize) -> Vec<f32> {
        self.points.iter().map(|p| p.packed[1 + d]).collect()
    }

    /// Feature `f`'s `(observed, expected, lower, upper)` per point; `n` features in all.
    pub fn feature(&self, f: usize, n: usize) -> Vec<[f32; 4]> {
        let base = 1 + self.detectors.len();
        self.points
            .iter()
            .map(|p| {
                let at = |k: usize| p.packed.get(base + k * n + f).copied().unwrap_or(f32::NAN);
                [at(0), at(1), at(2), at(3)]
            })
            .collect()
    }
}

/// A feature's part in an anomaly.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureShare {
    /// Feature name.
    pub name: String,
    /// Share of the anomaly, in [0, 1].
    pub share: f64,
    /// Observed value.
    pub observed: f64,
    /// What the models expected (NaN when none modelled it).
    pub expected: f64,
}

/// One anomaly: from its first anomalous check to its last, with the peak's details.
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyRecord {
    /// Entity labels.
    pub labels: EntityLabels,
    /// First anomalous check, ms.
    pub start_ms: i64,
    /// Latest anomalous check, ms.
    pub last_ms: i64,
    /// Severity at the peak.
    pub severity: Severity,
    /// Peak ensemble confidence.
    pub confidence: f64,
    /// Top features at the peak.
    pub top: Vec<FeatureShare>,
    /// Still anomalous at the latest check.
    pub ongoing: bool,
}

/// An anomaly the demo simulator injects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectedAnomaly {
    /// Kind (`spike`, `level_shift`, …).
    pub kind: String,
    /// Entity (`instance` value).
    pub entity: String,
    /// Start, ms since the epoch.
    pub start_ms: i64,
    /// Length, ms.
    pub duration_ms: i64,
}

/// Recent checks per entity, recent anomalies and (in demo mode) the injected anomalies.
#[derive(Debug, Clone, Default)]
pub struct PageHistory {
    /// Feature names of the latest check.
    pub features: Arc<[String]>,
    entities: HashMap<EntityLabels, EntityHistory>,
    anomalies: VecDeque<AnomalyRecord>,
    /// Anomalies the demo injects, in start order (empty outside demo mode).
    pub injections: Vec<InjectedAnomaly>,
    /// Checks recorded.
    pub checks: u64,
}

impl PageHistory {
    /// A new shared, empty history.
    pub fn shared() -> SharedHistory {
        Arc::new(Mutex::new(Self::default()))
    }

    /// Adds one check: O(entities) plus a partial sort when there are more than
    /// [`MAX_TRACKED`]; entities not in the check (dropped) or not tracked lose their history.
    pub fn record(&mut self, check: &CheckScores) {
        self.checks += 1;
        if !Arc::ptr_eq(&self.features, &check.features) && *self.features != *check.features {
            self.entities.clear();
        }
        self.features = Arc::clone(&check.features);
        let nf = check.features.len();
        let mut order: Vec<usize> = (0..check.entities.len()).collect();
        if order.len() > MAX_TRACKED {
            let conf = |i: usize| check.entities[i].score.as_ref().map_or(-1.0, |s| s.confidence);
            order.select_nth_unstable_by(MAX_TRACKED - 1, |&a, &b| conf(b).total_cmp(&conf(a)));
            order.truncate(MAX_TRACKED);
        }
        let mut old = std::mem::take(&mut self.entities);
        for &i in &order {
            let e = &check.entities[i];
            let mut h = old.remove(&e.labels).unwrap_or_else(|| EntityHistory {
                labels: e.labels.clone(),
                detectors: Vec::new(),
                points: VecDeque::with_capacity(POINTS),
                anomalous: false,
            });
            if let Some(s) = &e.score {
                let names: Vec<&'static str> = s.detectors.iter().map(|d| d.detector).collect();
                if h.detectors.is_empty() {
                    h.detectors = names;
                } else if h.detectors != names {
                    h.detectors = names;
                    h.points.clear();
                }
            }
            let width = 1 + h.detectors.len() + 4 * nf;
            let mut packed = if h.points.len() == POINTS {
                h.points.pop_front().map(|p| p.packed).unwrap_or_default()
            } else {
                Vec::with_capacity(width)
            };
            packed.clear();
            packed.resize(width, f32::NAN);
            let base = 1 + h.detectors.len();
            for (f, v) in e.values.iter().take(nf).enumerate() {
                packed[base + f] = *v as f32;
            }
            if let Some(s) = &e.score {
                packed[0] = s.confidence as f32;
                for (d, ds) in s.detectors.iter().enumerate() {
                    packed[1 + d] = ds.score.value as f32;
                }
                for (f, x) in s.expected.iter().take(nf).enumerate() {
                    packed[base + nf + f] = x.value as f32;
                    packed[base + 2 * nf + f] = x.lower as f32;
                    packed[base + 3 * nf + f] = x.upper as f32;
                }
            }
            h.points.push_back(Point { timestamp_ms: check.timestamp_ms, packed });
            let anomalous = e.score.as_ref().is_some_and(|s| s.anomalous);
            if anomalous {
                self.note_anomaly(check, i, h.anomalous);
            } else if h.anomalous {
                self.end_anomaly(&e.labels);
            }
            h.anomalous = anomalous;
            self.entities.insert(e.labels.clone(), h);
        }
        // Tracked entities that left the check (or the top) end their ongoing anomaly.
        for (labels, h) in old {
            if h.anomalous {
                self.end_anomaly(&labels);
            }
        }
    }

    fn note_anomaly(&mut self, check: &CheckScores, i: usize, ongoing: bool) {
        let e = &check.entities[i];
        let Some(s) = &e.score else { return };
        let top = || -> Vec<FeatureShare> {
            s.ranked_features()
                .into_iter()
                .take(TOP_FEATURES)
                .map(|f| FeatureShare {
                    name: check.features[f].clone(),
                    share: s.contributions[f],
                    observed: e.values.get(f).copied().unwrap_or(f64::NAN),
                    expected: s.expected.get(f).map_or(f64::NAN, |x| x.value),
                })
                .collect()
        };
        let current = if ongoing {
            self.anomalies.iter_mut().rev().find(|a| a.ongoing && a.labels == e.labels)
        } else {
            None
        };
        match current {
            Some(a) => {
                a.last_ms = check.timestamp_ms;
                if s.confidence > a.confidence {
                    a.confidence = s.confidence;
                    a.severity = s.severity;
                    a.top = top();
                }
            }
            None => {
                if self.anomalies.len() == MAX_ANOMALIES {
                    self.anomalies.pop_front();
                }
                self.anomalies.push_back(AnomalyRecord {
                    labels: e.labels.clone(),
                    start_ms: check.timestamp_ms,
                    last_ms: check.timestamp_ms,
                    severity: s.severity,
                    confidence: s.confidence,
                    top: top(),
                    ongoing: true,
                });
            }
        }
    }

    fn end_anomaly(&mut self, labels: &EntityLabels) {
        if let Some(a) = self.anomalies.iter_mut().rev().find(|a| a.ongoing && &a.labels == labels) {
            a.ongoing = false;
        }
    }

    /// An entity's history.
    pub fn entity(&self, labels: &[(String, String)]) -> Option<&EntityHistory> {
        self.entities.get(labels)
    }

    /// Recent anomalies, newest first.
    pub fn anomalies(&self) -> impl Iterator<Item = &AnomalyRecord> {
        self.anomalies.iter().rev()
    }

    /// Number of entities with history.
    pub fn tracked(&self) -> usize {
        self.entities.len()
    }

    /// The copy the page renders from: the histories of `wanted` entities and everything else, so the lock is held only to copy.
    pub fn snapshot(&self, wanted: &[&[(String, String)]]) -> PageHistory {
        let entities =
            wanted.iter().filter_map(|l| self.entity(l)).map(|h| (h.labels.clone(), h.clone())).collect();
        PageHistory {
            features: Arc::clone(&self.features),
            entities,
            anomalies: self.anomalies.clone(),
            injections: self.injections.clone(),
            checks: self.checks,
        }
    }
}
