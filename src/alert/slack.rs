//! Slack incoming webhook: one message per event, a Block Kit layout inside an attachment so
//! the severity shows as the bar colour (`POST <slack_webhook_url>`, Slack answers `200 ok`).
//!
//! ```text
//! ┃ 🔴 critical anomaly on instance="n1",job="dwcp": latency_ms
//! ┃ Entity / Severity / Confidence / Started
//! ┃ • latency_ms — 75 % of the anomaly, value 310, usually 40
//! ┃ [Open in dwcp-anomaly] [Runbook]
//! ```

use serde_json::{Value, json};

use super::dispatch::{Channel, SendError, post_json};
use super::{AlertEvent, AlertKind, Links, number};
use crate::detect::Severity;

/// The Slack channel.
pub struct Slack {
    client: reqwest::Client,
    url: String,
    channel: String,
    links: Links,
}

impl Slack {
    /// A channel posting to the incoming webhook `url`, overriding its channel when
    /// `channel` is not empty.
    pub fn new(client: reqwest::Client, url: &str, channel: &str, links: Links) -> Self {
        Self { client, url: url.to_string(), channel: channel.to_string(), links }
    }

    /// The message for `e`.
    pub fn message(&self, e: &AlertEvent) -> Value {
        let (colour, icon) = match (e.kind, e.severity) {
            (AlertKind::Resolved, _) => ("#2EB67D", "✅"),
            (_, Severity::Critical) => ("#E01E5A", "🔴"),
            (_, Severity::Warning) => ("#ECB22E", "🟠"),
            _ => ("#36C5F0", "🔵"),
        };
        let title = format!("{icon} {}", e.summary());
        let field = |k: &str, v: String| json!({"type": "mrkdwn", "text": format!("*{k}*\n{v}")});
        let mut fields = vec![
            field("Entity", e.entity()),
            field("Severity", e.severity.as_str().to_string()),
            field("Started", crate::rfc3339::format(e.started_ms)),
        ];
        if e.kind == AlertKind::Resolved {
            fields.push(field("Duration", format!("{}s", (e.timestamp_ms - e.started_ms).max(0) / 1000)));
        } else {
            fields.insert(2, field("Confidence", format!("{:.2}", e.confidence)));
        }
        let features: Vec<String> = e
            .features
            .iter()
            .map(|f| {
                format!(
                    "• *{}* — {:.0} % of the anomaly, value {}, usually {}",
                    f.feature,
                    100.0 * f.contribution,
                    number(f.value),
                    number(f.expected)
                )
            })
            .collect();
        let mut buttons = vec![json!({
            "type": "button",
            "text": {"type": "plain_text", "text": "Open in dwcp-anomaly"},
            "url": self.links.entity_url(e),
        })];
        if !self.links.runbook_url.is_empty() {
            buttons.push(json!({
                "type": "button",
                "text": {"type": "plain_text", "text": "Runbook"},
                "url": self.links.runbook_url,
            }));
        }
        let mut blocks = vec![
            json!({"type": "header", "text": {"type": "plain_text", "text": truncate(&title, 150)}}),
            json!({"type": "section", "fields": fields}),
        ];
        if !features.is_empty() {
            blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": features.join("\n")}}));
        }
        blocks.push(json!({"type": "actions", "elements": buttons}));
        let mut msg = json!({
            "text": title,
            "attachments": [{"color": colour, "blocks": blocks}],
        });
        if !self.channel.is_empty() {
            msg["channel"] = json!(self.channel);
        }
        msg
    }
}

/// At most `n` characters (Slack rejects longer header texts).
fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_string() } else { s.chars().take(n - 1).chain(['…']).collect() }
}

impl Channel for Slack {
    fn name(&self) -> &'static str {
        "slack"
    }

    async fn send(&self, event: &AlertEvent) -> Result<(), SendError> {
        post_json(self.client.post(&self.url), &self.message(event)).await
    }
}
