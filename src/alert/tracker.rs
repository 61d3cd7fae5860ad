//! The alert state machine: firing, escalation, throttling and resolution per entity.

use std::collections::HashMap;

use rustc_hash::FxHashMap;

use super::{AlertEvent, AlertKind, FeatureContribution, state};
use crate::config::AlertConfig;
use crate::detect::{EnsembleScore, Severity};
use crate::vectorize::EntityLabels;

#[derive(Debug)]
struct Firing {
    normal_checks: u32,
    /// Whether a firing or escalated event went out (a throttled one does not).
    notified: bool,
    /// The last firing or escalated event (its severity and start are the alert's), re-sent
    /// to channels after a restart.
    last: AlertEvent,
}

/// Per-entity alert state.
#[derive(Debug)]
pub struct AlertTracker {
    resolve_after: u32,
    throttle_ms: i64,
    firing: FxHashMap<u64, Firing>,
    last_sent: HashMap<(u64, String, Severity), i64>,
}

impl AlertTracker {
    /// A tracker with the configured throttle and resolve delay.
    pub fn new(cfg: &AlertConfig) -> Self {
        Self {
            resolve_after: cfg.resolve_after,
            throttle_ms: cfg.throttle.as_millis() as i64,
            firing: FxHashMap::default(),
            last_sent: HashMap::new(),
        }
    }

    /// Feeds one entity's check result; returns an event when one is due.
    #[allow(clippy::too_many_arguments)]
    pub fn observe(
        &mut self,
        entity: u64,
        labels: &EntityLabels,
        profile: &str,
        features: &[String],
        values: &[f64],
        score: &EnsembleScore,
        now_ms: i64,
    ) -> Option<AlertEvent> {
        let event = |kind, severity, confidence, started_ms| AlertEvent {
            kind,
            labels: labels.clone(),
            profile: profile.to_string(),
            severity,
            confidence,
            features: top_features(features, values, score),
            started_ms,
            timestamp_ms: now_ms,
        };
        if !score.anomalous {
            let f = self.firing.get_mut(&entity)?;
            f.normal_checks += 1;
            if f.normal_checks < self.resolve_after {
                return None;
            }
            let f = self.firing.remove(&entity)?;
            // A throttled alert was never announced, so there is nothing to resolve. The
            // resolve repeats the firing event's labels and features: receivers match on them.
            return f.notified.then_some(AlertEvent {
                kind: AlertKind::Resolved,
                confidence: 0.0,
                timestamp_ms: now_ms,
                ..f.last
            });
        }
        let top = score.ranked_features().first().and_then(|&i| features.get(i)).cloned().unwrap_or_default();
        let kind = match self.firing.get_mut(&entity) {
            None => {
                let last = event(AlertKind::Firing, score.severity, score.confidence, now_ms);
                self.firing.insert(entity, Firing { normal_checks: 0, notified: false, last });
                AlertKind::Firing
            }
            Some(f) => {
                f.normal_checks = 0;
                // An escalation is never throttled, so `last` takes the new severity below.
                if score.severity <= f.last.severity {
                    return None;
                }
                AlertKind::Escalated
            }
        };
        let key = (entity, top, score.severity);
        if kind == AlertKind::Firing
            && let Some(&t) = self.last_sent.get(&key)
            && now_ms - t < self.throttle_ms
        {
            return None;
        }
        self.last_sent.insert(key, now_ms);
        let f = self.firing.get_mut(&entity)?;
        f.notified = true;
        f.last = event(kind, score.severity, score.confidence, f.last.started_ms);
        Some(f.last.clone())
    }

    /// The last event of every firing alert (what channels must keep showing).
    pub fn active(&self) -> Vec<AlertEvent> {
        self.firing.values().filter(|f| f.notified).map(|f| f.last.clone()).collect()
    }

    /// What must survive a restart: firing alerts and throttle times.
    pub fn snapshot(&self, saved_ms: i64) -> state::TrackerState {
        state::TrackerState {
            version: state::VERSION,
            saved_ms,
            firing: self
                .firing
                .iter()
                .filter(|(_, f)| f.notified)
                .map(|(&entity, f)| state::SavedFiring {
                    entity,
                    normal_checks: f.normal_checks,
                    event: state::SavedEvent::from(&f.last),
                })
                .collect(),
            sent: self
                .last_sent
                .iter()
                .map(|((entity, feature, severity), &at_ms)| state::SavedSent {
                    entity: *entity,
                    feature: feature.clone(),
                    severity: severity.as_str().to_string(),
                    at_ms,
                })
                .collect(),
        }
    }

    /// Takes over a saved state: alerts keep firing (and later resolve) and throttles hold,
    /// so a restart neither re-pages nor forgets to resolve.
    pub fn restore(&mut self, saved: state::TrackerState) {
        for f in saved.firing {
            let Some(last) = f.event.into_event() else { continue };
            let firing = Firing { normal_checks: f.normal_checks, notified: true, last };
            self.firing.insert(f.entity, firing);
        }
        for s in saved.sent {
            if let Some(sev) = state::parse_severity(&s.severity) {
                self.last_sent.insert((s.entity, s.feature, sev), s.at_ms);
            }
        }
    }

    /// Forgets an entity that went away (its alert resolves with it).
    pub fn forget(&mut self, entity: u64) {
        self.firing.remove(&entity);
        self.last_sent.retain(|(e, _, _), _| *e != entity);
    }
}

fn top_features(features: &[String], values: &[f64], score: &EnsembleScore) -> Vec<FeatureContribution> {
    score
        .ranked_features()
        .into_iter()
        .take(3)
        .filter(|&i| score.contributions[i] > 0.0)
        .map(|i| FeatureContribution {
            feature: features.get(i).cloned().unwrap_or_default(),
            contribution: score.contributions[i],
            value: values.get(i).copied().unwrap_or(f64::NAN),
            expected: score.expected.get(i).map_or(f64::NAN, |e| e.value),
        })
        .collect()
}
