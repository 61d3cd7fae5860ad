//! Alert: turns per-check scores into alert events and hands them to notifiers.
//!
//! Last stage beside export (pipeline → **alert**). [`AlertTracker`] is pure state: an entity
//! fires when its ensemble flags it, escalates when the severity rises (passing the
//! throttle), and resolves after `resolve_after` consecutive normal checks; a repeat of the
//! same entity, top feature and severity inside `throttle` is suppressed. Notifiers receive
//! events over a bounded queue so a slow channel never blocks scoring. The log notifier is
//! always on; the seed's channels (Alertmanager, Slack, PagerDuty, webhook, email) plug in
//! behind the same [`AlertEvent`].

use std::collections::HashMap;

use rustc_hash::FxHashMap;
use tracing::{info, warn};

use crate::config::AlertConfig;
use crate::detect::{EnsembleScore, Severity};
use crate::vectorize::EntityLabels;

/// What happened to an entity's alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertKind {
    /// The entity became anomalous.
    Firing,
    /// Already firing, at a higher severity now.
    Escalated,
    /// Normal for `resolve_after` consecutive checks.
    Resolved,
}

/// One feature's part in an anomaly.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureContribution {
    /// Feature name.
    pub feature: String,
    /// Share of the anomaly in [0, 1].
    pub contribution: f64,
    /// Observed value.
    pub value: f64,
    /// Expected value (NaN when no detector models one).
    pub expected: f64,
}

/// An alert event for notifiers.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertEvent {
    /// Firing, escalated or resolved.
    pub kind: AlertKind,
    /// Entity labels.
    pub labels: EntityLabels,
    /// Profile name.
    pub profile: String,
    /// Severity (of the firing alert, for resolves).
    pub severity: Severity,
    /// Ensemble confidence at the event (0 for resolves).
    pub confidence: f64,
    /// Features by decreasing contribution (top 3).
    pub features: Vec<FeatureContribution>,
    /// When the anomaly started, ms since the epoch.
    pub started_ms: i64,
    /// Time of the event, ms since the epoch.
    pub timestamp_ms: i64,
}

impl AlertEvent {
    /// `job="a",instance="b"` for logs and messages.
    pub fn entity(&self) -> String {
        self.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect::<Vec<_>>().join(",")
    }
}

#[derive(Debug)]
struct Firing {
    severity: Severity,
    normal_checks: u32,
    started_ms: i64,
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
            return Some(event(AlertKind::Resolved, f.severity, 0.0, f.started_ms));
        }
        let top = score.ranked_features().first().and_then(|&i| features.get(i)).cloned().unwrap_or_default();
        let kind = match self.firing.get_mut(&entity) {
            None => {
                self.firing.insert(
                    entity,
                    Firing { severity: score.severity, normal_checks: 0, started_ms: now_ms },
                );
                AlertKind::Firing
            }
            Some(f) => {
                f.normal_checks = 0;
                if score.severity <= f.severity {
                    return None;
                }
                f.severity = score.severity;
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
        let started = self.firing.get(&entity).map_or(now_ms, |f| f.started_ms);
        Some(event(kind, score.severity, score.confidence, started))
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

/// Writes an event to the log (the always-on channel).
pub fn log_event(e: &AlertEvent) {
    let top: Vec<String> = e
        .features
        .iter()
        .map(|f| {
            format!(
                "{}={:.3} (expected {:.3}, {:.0}%)",
                f.feature,
                f.value,
                f.expected,
                100.0 * f.contribution
            )
        })
        .collect();
    let entity = e.entity();
    match e.kind {
        AlertKind::Firing | AlertKind::Escalated if e.severity >= Severity::Warning => warn!(
            entity = %entity,
            severity = e.severity.as_str(),
            confidence = format!("{:.3}", e.confidence),
            top_features = %top.join(", "),
            escalated = e.kind == AlertKind::Escalated,
            "Anomaly detected."
        ),
        AlertKind::Firing | AlertKind::Escalated => info!(
            entity = %entity,
            severity = e.severity.as_str(),
            confidence = format!("{:.3}", e.confidence),
            top_features = %top.join(", "),
            escalated = e.kind == AlertKind::Escalated,
            "Anomaly detected."
        ),
        AlertKind::Resolved => info!(
            entity = %entity,
            severity = e.severity.as_str(),
            duration_s = (e.timestamp_ms - e.started_ms) / 1000,
            "Anomaly resolved."
        ),
    }
}

#[cfg(test)]
mod tests;
