//! Alert: turns per-check scores into alert events and hands them to notifiers.
//!
//! Last stage beside export (pipeline → **alert**). [`AlertTracker`] is pure state: an entity
//! fires when its ensemble flags it, escalates when the severity rises (passing the
//! throttle), and resolves after `resolve_after` consecutive normal checks; a repeat of the
//! same entity, top feature and severity inside `throttle` is suppressed. Notifiers receive
//! events over a bounded queue so a slow channel never blocks scoring. The log notifier is
//! always on; the seed's channels (Alertmanager, Slack, PagerDuty, webhook, email) plug in
//! behind the same [`AlertEvent`].

pub mod alertmanager;
pub mod dispatch;
pub mod email;
pub mod pagerduty;
pub mod slack;
pub mod state;
pub mod webhook;

use std::collections::HashMap;

use rustc_hash::FxHashMap;
use serde_json::json;
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
        crate::vectorize::entity_string(&self.labels)
    }

    /// `firing` or `resolved` (an escalation is still firing).
    pub fn status(&self) -> &'static str {
        match self.kind {
            AlertKind::Resolved => "resolved",
            AlertKind::Firing | AlertKind::Escalated => "firing",
        }
    }

    /// `firing`, `escalated` or `resolved`.
    pub fn kind_str(&self) -> &'static str {
        match self.kind {
            AlertKind::Firing => "firing",
            AlertKind::Escalated => "escalated",
            AlertKind::Resolved => "resolved",
        }
    }

    /// The top contributing feature's name (empty when none contributed).
    pub fn top_feature(&self) -> &str {
        self.features.first().map_or("", |f| f.feature.as_str())
    }

    /// One line for titles: `critical anomaly on job="a",instance="b": latency_ms`.
    pub fn summary(&self) -> String {
        let what = match self.kind {
            AlertKind::Resolved => "resolved anomaly",
            AlertKind::Firing | AlertKind::Escalated => "anomaly",
        };
        let mut s = format!("{} {what} on {}", self.severity.as_str(), self.entity());
        if !self.top_feature().is_empty() {
            s.push_str(": ");
            s.push_str(self.top_feature());
        }
        s
    }

    /// Several lines for bodies: confidence, then each top feature with its share and its
    /// current and usual values.
    pub fn description(&self) -> String {
        let mut s = match self.kind {
            AlertKind::Resolved => format!(
                "Normal again after {}s (was {}).",
                (self.timestamp_ms - self.started_ms).max(0) / 1000,
                self.severity.as_str()
            ),
            AlertKind::Firing | AlertKind::Escalated => format!(
                "Confidence {:.2} ({}), profile {}.",
                self.confidence,
                self.severity.as_str(),
                self.profile
            ),
        };
        for f in &self.features {
            s.push_str(&format!(
                "\n{}: {:.0}% of the anomaly, value {}, usually {}",
                f.feature,
                100.0 * f.contribution,
                number(f.value),
                number(f.expected)
            ));
        }
        s
    }

    /// The top features as JSON objects: name, contribution, value, expected (NaN → null).
    pub fn features_json(&self) -> Vec<serde_json::Value> {
        self.features
            .iter()
            .map(|f| {
                json!({
                    "name": f.feature,
                    "contribution": f.contribution,
                    "value": finite(f.value),
                    "expected": finite(f.expected),
                })
            })
            .collect()
    }

    /// The documented JSON form (the generic webhook's body; see `docs/alerting.md`).
    pub fn to_json(&self, links: &Links) -> serde_json::Value {
        let entity: serde_json::Map<String, serde_json::Value> =
            self.labels.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        json!({
            "version": "1",
            "status": self.status(),
            "kind": self.kind_str(),
            "severity": self.severity.as_str(),
            "confidence": self.confidence,
            "profile": self.profile,
            "entity": entity,
            "features": self.features_json(),
            "summary": self.summary(),
            "description": self.description(),
            "started_at": crate::rfc3339::format(self.started_ms),
            "timestamp": crate::rfc3339::format(self.timestamp_ms),
            "url": links.entity_url(self),
            "runbook_url": links.runbook_url,
        })
    }
}

/// Why the alert channels could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The HTTP client could not be built.
    #[error("cannot build the alert HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// The email channel's settings are unusable.
    #[error("{0}")]
    Email(#[from] email::EmailConfigError),
}

/// Builds the dispatcher with every configured channel. `active` are the alerts firing at
/// start (restored state), which channels that keep alerts visible (Alertmanager) take over.
pub fn dispatcher(
    cfg: &crate::config::Config,
    telemetry: std::sync::Arc<crate::telemetry::Telemetry>,
    shutdown: &tokio::sync::watch::Receiver<bool>,
    active: &[AlertEvent],
) -> Result<dispatch::Dispatcher, SetupError> {
    let a = &cfg.alert;
    let client = crate::http_client().timeout(a.timeout).build()?;
    let links = Links::new(cfg);
    let mut d = dispatch::Dispatcher::new(a.log_anomalies, telemetry);
    if !a.alertmanager_urls.is_empty() {
        let floor = a.alertmanager_min_severity.rank();
        let active: Vec<AlertEvent> = active.iter().filter(|e| e.severity as u8 >= floor).cloned().collect();
        let channel = alertmanager::Alertmanager::new(client.clone(), a, links.clone(), &active);
        d.add(channel, a.alertmanager_min_severity, a, shutdown);
    }
    if a.slack_enabled {
        let channel =
            slack::Slack::new(client.clone(), &a.slack_webhook_url, &a.slack_channel, links.clone());
        d.add(channel, a.slack_min_severity, a, shutdown);
    }
    if a.pagerduty_enabled {
        let channel = pagerduty::PagerDuty::new(
            client.clone(),
            &a.pagerduty_url,
            &a.pagerduty_routing_key,
            links.clone(),
        );
        d.add(channel, a.pagerduty_min_severity, a, shutdown);
    }
    if a.email_enabled {
        d.add(email::Email::new(a, links.clone())?, a.email_min_severity, a, shutdown);
    }
    if !a.webhook_url.is_empty() {
        let channel = webhook::Webhook::new(client.clone(), &a.webhook_url, &a.webhook_secret, links.clone());
        d.add(channel, a.webhook_min_severity, a, shutdown);
    }
    Ok(d)
}

/// Links put in alerts: the service's page for an entity and the runbook.
#[derive(Debug, Clone, PartialEq)]
pub struct Links {
    /// Base URL of the service (`alert.external_url`, else `http://<listen>`), no trailing `/`.
    pub external_url: String,
    /// `alert.runbook_url` (may be empty).
    pub runbook_url: String,
}

impl Links {
    /// The links configured in `cfg`.
    pub fn new(cfg: &crate::config::Config) -> Self {
        let base = if cfg.alert.external_url.is_empty() {
            let addr = cfg.listen;
            if addr.ip().is_unspecified() {
                // A wildcard listener is reachable by the host's name, not by 0.0.0.0.
                let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
                let host = host.trim();
                let host = if host.is_empty() { "localhost" } else { host };
                format!("http://{host}:{}", addr.port())
            } else {
                format!("http://{addr}")
            }
        } else {
            cfg.alert.external_url.clone()
        };
        Self {
            external_url: base.trim_end_matches('/').to_string(),
            runbook_url: cfg.alert.runbook_url.clone(),
        }
    }

    /// The service's page filtered to the event's entity: `<base>/?entity=<labels>`.
    pub fn entity_url(&self, e: &AlertEvent) -> String {
        let base = format!("{}/", self.external_url);
        match reqwest::Url::parse(&base) {
            Ok(mut u) => {
                u.query_pairs_mut().append_pair("entity", &e.entity());
                u.to_string()
            }
            Err(_) => base,
        }
    }
}

fn finite(v: f64) -> serde_json::Value {
    if v.is_finite() { json!(v) } else { serde_json::Value::Null }
}

/// A value for people: at most 4 decimals, `unknown` for NaN.
pub(crate) fn number(v: f64) -> String {
    if !v.is_finite() {
        return "unknown".to_string();
    }
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" { "0".to_string() } else { s.to_string() }
}

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
