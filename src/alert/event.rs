//! What an alert says: the event every channel renders, its kind, top features and links.

use serde_json::json;

use crate::detect::Severity;
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
