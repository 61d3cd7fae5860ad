//! PagerDuty Events API v2 (`POST https://events.pagerduty.com/v2/enqueue`, answered with
//! `202 Accepted`). A firing alert is a `trigger` with `dedup_key`
//! `dwcp-anomaly/<entity>/<top feature>`; an escalation re-triggers the same key with the new
//! severity (PagerDuty updates the open incident); the end is a `resolve` of that key.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{Value, json};

use super::dispatch::{Channel, SendError, post_json};
use super::{AlertEvent, AlertKind, Links};
use crate::detect::Severity;

/// The PagerDuty channel.
pub struct PagerDuty {
    client: reqwest::Client,
    url: String,
    routing_key: String,
    links: Links,
    /// Dedup key of each entity's latest alert, fixed by its firing event.
    keys: Mutex<HashMap<String, String>>,
}

impl PagerDuty {
    /// A channel sending to `url` with the integration's `routing_key`.
    pub fn new(client: reqwest::Client, url: &str, routing_key: &str, links: Links) -> Self {
        Self {
            client,
            url: url.to_string(),
            routing_key: routing_key.to_string(),
            links,
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// The dedup key for `e`: a firing alert sets it from its top feature; the escalation and
    /// the resolve of that alert reuse it (also when a send is retried).
    fn dedup_key(&self, e: &AlertEvent) -> String {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = format!("dwcp-anomaly/{}/{}", e.entity(), e.top_feature());
        match e.kind {
            AlertKind::Firing => {
                keys.insert(e.entity(), fresh.clone());
                fresh
            }
            AlertKind::Escalated | AlertKind::Resolved => keys.entry(e.entity()).or_insert(fresh).clone(),
        }
    }

    /// The event body for `e`.
    pub fn event(&self, e: &AlertEvent) -> Value {
        let dedup_key = self.dedup_key(e);
        if e.kind == AlertKind::Resolved {
            return json!({
                "routing_key": self.routing_key,
                "event_action": "resolve",
                "dedup_key": dedup_key,
            });
        }
        let label = |k: &str| e.labels.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let severity = match e.severity {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Info | Severity::None => "info",
        };
        let summary: String = e.summary().chars().take(1024).collect();
        let mut payload = json!({
            "summary": summary,
            "source": label("instance").unwrap_or_else(|| e.entity()),
            "severity": severity,
            "timestamp": crate::rfc3339::format(e.timestamp_ms),
            "component": e.profile,
            "class": "DWCPAnomaly",
            "custom_details": {
                "entity": e.entity(),
                "confidence": e.confidence,
                "started_at": crate::rfc3339::format(e.started_ms),
                "features": e.features_json(),
            },
        });
        if let Some(job) = label("job") {
            payload["group"] = json!(job);
        }
        let mut links = vec![json!({"href": self.links.entity_url(e), "text": "Open in dwcp-anomaly"})];
        if !self.links.runbook_url.is_empty() {
            links.push(json!({"href": self.links.runbook_url, "text": "Runbook"}));
        }
        json!({
            "routing_key": self.routing_key,
            "event_action": "trigger",
            "dedup_key": dedup_key,
            "payload": payload,
            "links": links,
            "client": "dwcp-anomaly",
            "client_url": format!("{}/", self.links.external_url),
        })
    }
}

impl Channel for PagerDuty {
    fn name(&self) -> &'static str {
        "pagerduty"
    }

    async fn send(&self, event: &AlertEvent) -> Result<(), SendError> {
        post_json(self.client.post(&self.url), &self.event(event)).await
    }
}
