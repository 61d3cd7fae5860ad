//! Alertmanager API v2: `POST <url>/api/v2/alerts` with a JSON array of postable alerts, to
//! every URL of `alert.alertmanager_urls` (an HA pair gossips, but each must hear every alert).
//!
//! An alert's identity in Alertmanager is its label set: `alertname="DWCPAnomaly"`, `severity`,
//! `profile`, the entity labels and `feature` (the top contributor when it fired). Firing alerts
//! carry `endsAt` = now + 4 × `alertmanager_resend` and are re-posted every
//! `alertmanager_resend`, as Prometheus does, so they expire on their own if this service dies.
//! An escalation changes the `severity` label, hence the identity: the old label set is posted
//! resolved in the same request. A resolve posts `endsAt` = the event's time.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};

use super::dispatch::{Channel, SendError, post_json};
use super::{AlertEvent, AlertKind, Links};
use crate::config::AlertConfig;

/// The `alertname` label.
pub const ALERTNAME: &str = "DWCPAnomaly";

/// How requests authenticate.
#[derive(Debug, Clone, PartialEq)]
enum Auth {
    None,
    Basic(String, String),
    Bearer(String),
}

/// One alert as Alertmanager knows it (without `endsAt`, set per post).
#[derive(Debug, Clone, PartialEq)]
struct Posted {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    starts_at: String,
    generator_url: String,
}

impl Posted {
    fn json(&self, ends_ms: i64) -> Value {
        json!({
            "labels": self.labels,
            "annotations": self.annotations,
            "startsAt": self.starts_at,
            "endsAt": crate::rfc3339::format(ends_ms),
            "generatorURL": self.generator_url,
        })
    }
}

/// The Alertmanager channel.
pub struct Alertmanager {
    client: reqwest::Client,
    urls: Vec<String>,
    auth: Auth,
    links: Links,
    resend: Duration,
    /// Firing alerts by entity (`AlertEvent::entity`).
    active: Mutex<HashMap<String, Posted>>,
}

impl Alertmanager {
    /// A channel for `cfg.alertmanager_urls`; `active` are alerts firing at start (restored
    /// after a restart), which it keeps re-posting until they resolve.
    pub fn new(client: reqwest::Client, cfg: &AlertConfig, links: Links, active: &[AlertEvent]) -> Self {
        let auth = if !cfg.alertmanager_username.is_empty() {
            Auth::Basic(cfg.alertmanager_username.clone(), cfg.alertmanager_password.clone())
        } else if !cfg.alertmanager_bearer_token.is_empty() {
            Auth::Bearer(cfg.alertmanager_bearer_token.clone())
        } else {
            Auth::None
        };
        let urls = cfg
            .alertmanager_urls
            .iter()
            .map(|u| format!("{}/api/v2/alerts", u.trim_end_matches('/')))
            .collect();
        let am = Self {
            client,
            urls,
            auth,
            links,
            resend: cfg.alertmanager_resend,
            active: Mutex::new(HashMap::new()),
        };
        let restored = active.iter().map(|e| (e.entity(), am.posted(e))).collect();
        *am.active.lock().unwrap_or_else(|p| p.into_inner()) = restored;
        am
    }

    fn posted(&self, e: &AlertEvent) -> Posted {
        let mut labels: BTreeMap<String, String> =
            e.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        // The alert's own labels win over entity labels of the same name.
        labels.insert("alertname".into(), ALERTNAME.into());
        labels.insert("severity".into(), e.severity.as_str().into());
        labels.insert("profile".into(), e.profile.clone());
        if !e.top_feature().is_empty() {
            labels.insert("feature".into(), e.top_feature().into());
        }
        let mut annotations = BTreeMap::new();
        annotations.insert("summary".to_string(), e.summary());
        annotations.insert("description".to_string(), e.description());
        if !self.links.runbook_url.is_empty() {
            annotations.insert("runbook_url".to_string(), self.links.runbook_url.clone());
        }
        Posted {
            labels,
            annotations,
            starts_at: crate::rfc3339::format(e.started_ms),
            generator_url: self.links.entity_url(e),
        }
    }

    /// The request body for `e` at `now_ms`; updates the active set.
    fn body_for(&self, e: &AlertEvent, now_ms: i64) -> Value {
        let expires = now_ms + 4 * self.resend.as_millis() as i64;
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        let mut batch = Vec::new();
        match e.kind {
            AlertKind::Firing | AlertKind::Escalated => {
                let new = self.posted(e);
                if let Some(old) = active.insert(e.entity(), new.clone())
                    && old.labels != new.labels
                {
                    batch.push(old.json(now_ms));
                }
                batch.push(new.json(expires));
            }
            AlertKind::Resolved => {
                let old = active.remove(&e.entity()).unwrap_or_else(|| self.posted(e));
                batch.push(old.json(e.timestamp_ms));
            }
        }
        Value::Array(batch)
    }

    /// Every firing alert with a fresh `endsAt`, or `None` when none fires.
    fn resend_body(&self, now_ms: i64) -> Option<Value> {
        let expires = now_ms + 4 * self.resend.as_millis() as i64;
        let active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        (!active.is_empty()).then(|| Value::Array(active.values().map(|p| p.json(expires)).collect()))
    }

    /// Posts `body` to every URL; the worst outcome wins (a retry re-posts to all, which
    /// Alertmanager deduplicates).
    async fn post_all(&self, body: &Value) -> Result<(), SendError> {
        let mut worst = Ok(());
        for url in &self.urls {
            let mut req = self.client.post(url);
            req = match &self.auth {
                Auth::None => req,
                Auth::Basic(u, p) => req.basic_auth(u, Some(p)),
                Auth::Bearer(t) => req.bearer_auth(t),
            };
            if let Err(e) = post_json(req, body).await {
                let e = match e {
                    SendError::Retry { reason, after } => {
                        SendError::Retry { reason: format!("{url}: {reason}"), after }
                    }
                    SendError::Rejected(reason) => SendError::Rejected(format!("{url}: {reason}")),
                };
                if matches!(e, SendError::Retry { .. }) || worst.is_ok() {
                    worst = Err(e);
                }
            }
        }
        worst
    }
}

impl Channel for Alertmanager {
    fn name(&self) -> &'static str {
        "alertmanager"
    }

    async fn send(&self, event: &AlertEvent) -> Result<(), SendError> {
        let body = self.body_for(event, crate::rfc3339::now_ms());
        self.post_all(&body).await
    }

    fn resend_every(&self) -> Option<Duration> {
        Some(self.resend)
    }

    async fn resend(&self) -> Result<(), SendError> {
        match self.resend_body(crate::rfc3339::now_ms()) {
            Some(body) => self.post_all(&body).await,
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::alert::FeatureContribution;
    use crate::detect::Severity;

    fn event(kind: AlertKind, severity: Severity, feature: &str, at: i64) -> AlertEvent {
        AlertEvent {
            kind,
            labels: Arc::from(vec![
                ("instance".to_string(), "n1".to_string()),
                ("job".to_string(), "dwcp".to_string()),
            ]),
            profile: "dwcp".into(),
            severity,
            confidence: 0.8,
            features: vec![FeatureContribution {
                feature: feature.into(),
                contribution: 0.75,
                value: 310.0,
                expected: 40.0,
            }],
            started_ms: 1_700_000_000_000,
            timestamp_ms: at,
        }
    }

    fn channel() -> Alertmanager {
        let cfg = AlertConfig {
            alertmanager_urls: vec!["http://am:9093/".into()],
            alertmanager_resend: Duration::from_secs(60),
            runbook_url: "https://runbooks.example/dwcp".into(),
            ..AlertConfig::default()
        };
        let links = Links { external_url: "http://dwcp:9490".into(), runbook_url: cfg.runbook_url.clone() };
        Alertmanager::new(crate::retry::http_client().build().unwrap(), &cfg, links, &[])
    }

    const T0: i64 = 1_700_000_000_000;

    #[test]
    fn a_firing_alert_has_the_documented_shape() {
        let am = channel();
        assert_eq!(am.urls, ["http://am:9093/api/v2/alerts"]);
        let body = am.body_for(&event(AlertKind::Firing, Severity::Warning, "latency_ms", T0), T0);
        let expected = json!([{
            "labels": {
                "alertname": "DWCPAnomaly", "severity": "warning", "profile": "dwcp",
                "instance": "n1", "job": "dwcp", "feature": "latency_ms"
            },
            "annotations": {
                "summary": "warning anomaly on instance=\"n1\",job=\"dwcp\": latency_ms",
                "description": "Confidence 0.80 (warning), profile dwcp.\nlatency_ms: 75% of the anomaly, value 310, usually 40",
                "runbook_url": "https://runbooks.example/dwcp"
            },
            "startsAt": crate::rfc3339::format(T0),
            "endsAt": crate::rfc3339::format(T0 + 240_000),
            "generatorURL": "http://dwcp:9490/?entity=instance%3D%22n1%22%2Cjob%3D%22dwcp%22"
        }]);
        assert_eq!(body, expected);
    }

    #[test]
    fn an_escalation_resolves_the_old_label_set_and_a_resolve_ends_the_new_one() {
        let am = channel();
        am.body_for(&event(AlertKind::Firing, Severity::Warning, "latency_ms", T0), T0);
        let body = am.body_for(
            &event(AlertKind::Escalated, Severity::Critical, "latency_ms", T0 + 10_000),
            T0 + 10_000,
        );
        let alerts = body.as_array().unwrap();
        assert_eq!(alerts.len(), 2);
        assert_eq!(alerts[0]["labels"]["severity"], "warning");
        assert_eq!(alerts[0]["endsAt"], crate::rfc3339::format(T0 + 10_000));
        assert_eq!(alerts[1]["labels"]["severity"], "critical");
        assert_eq!(alerts[1]["endsAt"], crate::rfc3339::format(T0 + 250_000));
        let resent = am.resend_body(T0 + 60_000).unwrap();
        assert_eq!(resent.as_array().unwrap().len(), 1, "only the critical one stays active");
        assert_eq!(resent[0]["endsAt"], crate::rfc3339::format(T0 + 300_000));
        let body = am.body_for(
            &event(AlertKind::Resolved, Severity::Critical, "latency_ms", T0 + 90_000),
            T0 + 90_000,
        );
        assert_eq!(body[0]["labels"], alerts[1]["labels"]);
        assert_eq!(body[0]["endsAt"], crate::rfc3339::format(T0 + 90_000));
        assert!(am.resend_body(T0 + 120_000).is_none(), "nothing active after the resolve");
    }

    #[test]
    fn restored_alerts_are_re_posted() {
        let cfg = AlertConfig { alertmanager_urls: vec!["http://am:9093".into()], ..AlertConfig::default() };
        let links = Links { external_url: "http://dwcp:9490".into(), runbook_url: String::new() };
        let restored = [event(AlertKind::Firing, Severity::Critical, "cpu_pct", T0)];
        let am = Alertmanager::new(crate::retry::http_client().build().unwrap(), &cfg, links, &restored);
        let body = am.resend_body(T0).unwrap();
        assert_eq!(body[0]["labels"]["feature"], "cpu_pct");
        assert!(body[0]["annotations"].get("runbook_url").is_none());
    }
}
