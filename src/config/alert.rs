//! Configuration of alerting (`alert`), in the seed's flat style: one key prefix per channel
//! (`slack_*`, `alertmanager_*`, `pagerduty_*`, `webhook_*`, `email_*`) so the seed's file
//! (`slack_enabled`, `slack_webhook_url`, `slack_channel`) works unchanged.
//!
//! Routing follows the seed: info is logged only, warning goes to chat (Slack, webhook,
//! Alertmanager), critical also pages (PagerDuty, email). Each channel's floor is its
//! `*_min_severity`.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigErrors, duration, is_http_url};

/// The lowest severity a channel receives.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum MinSeverity {
    /// Every anomaly.
    Info,
    /// Warning and critical.
    Warning,
    /// Critical only.
    Critical,
}

impl MinSeverity {
    /// The rank this floor compares with (info 1, warning 2, critical 3), matching
    /// `detect::Severity` as a number.
    pub fn rank(self) -> u8 {
        match self {
            MinSeverity::Info => 1,
            MinSeverity::Warning => 2,
            MinSeverity::Critical => 3,
        }
    }
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (port 587); refused if the server cannot.
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption (a local relay only).
    None,
}

/// Alerting.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AlertConfig {
    /// Log every anomaly at or above `info` (entity, severity, top features).
    pub log_anomalies: bool,
    /// Minimum time between two alerts of one entity, feature and severity (seed: 5 m).
    /// An escalation (warning → critical) passes it.
    #[serde(with = "duration")]
    pub throttle: Duration,
    /// Consecutive normal checks after which an anomaly counts as resolved.
    pub resolve_after: u32,
    /// Base URL of this service as people reach it, for links in alerts
    /// (`generatorURL`, Slack buttons). Empty: `http://<listen>`.
    pub external_url: String,
    /// Runbook link added to every alert (Alertmanager `runbook_url` annotation, Slack, email).
    pub runbook_url: String,
    /// Attempts after the first for a failed notification (5xx, 429, connection error).
    pub retries: u32,
    /// First retry delay; doubles per attempt, with ±20 % jitter.
    #[serde(with = "duration")]
    pub retry_backoff: Duration,
    /// Longest retry delay.
    #[serde(with = "duration")]
    pub retry_max_backoff: Duration,
    /// Notifications waiting per channel; when full, new ones are dropped and counted.
    pub queue_size: usize,
    /// Timeout of one notification request.
    #[serde(with = "duration")]
    pub timeout: Duration,

    /// Alertmanager base URLs (`http://am:9093`); every one receives every alert (HA pair).
    pub alertmanager_urls: Vec<String>,
    /// Lowest severity posted to Alertmanager (it routes by the `severity` label itself).
    pub alertmanager_min_severity: MinSeverity,
    /// How often firing alerts are re-posted; `endsAt` is four times this ahead.
    #[serde(with = "duration")]
    pub alertmanager_resend: Duration,
    /// Basic-auth user toward Alertmanager.
    pub alertmanager_username: String,
    /// Basic-auth password.
    pub alertmanager_password: String,
    /// File holding the basic-auth password.
    pub alertmanager_password_file: Option<PathBuf>,
    /// Bearer token toward Alertmanager.
    pub alertmanager_bearer_token: String,
    /// File holding the bearer token.
    pub alertmanager_bearer_token_file: Option<PathBuf>,
    /// TLS of every HTTP channel (Alertmanager, Slack, PagerDuty, webhook): CA, client
    /// certificate, as Prometheus spells `tls_config`.
    pub tls_config: Option<super::TlsClientConfig>,

    /// Send anomalies to Slack (seed key).
    pub slack_enabled: bool,
    /// Slack incoming-webhook URL (seed key); also `DWCP_ANOMALY_SLACK_WEBHOOK_URL`.
    pub slack_webhook_url: String,
    /// File holding the Slack webhook URL.
    pub slack_webhook_url_file: Option<PathBuf>,
    /// Slack channel override (seed key).
    pub slack_channel: String,
    /// Lowest severity sent to Slack.
    pub slack_min_severity: MinSeverity,

    /// Page through PagerDuty Events API v2.
    pub pagerduty_enabled: bool,
    /// Integration (routing) key; also `DWCP_ANOMALY_PAGERDUTY_ROUTING_KEY`.
    pub pagerduty_routing_key: String,
    /// File holding the routing key.
    pub pagerduty_routing_key_file: Option<PathBuf>,
    /// Events API endpoint.
    pub pagerduty_url: String,
    /// Lowest severity that pages.
    pub pagerduty_min_severity: MinSeverity,

    /// Generic JSON webhook URL (empty: off).
    pub webhook_url: String,
    /// HMAC-SHA256 key signing the body (`X-DWCP-Signature: sha256=<hex>`); also
    /// `DWCP_ANOMALY_WEBHOOK_SECRET`.
    pub webhook_secret: String,
    /// File holding the HMAC key.
    pub webhook_secret_file: Option<PathBuf>,
    /// Lowest severity sent to the webhook.
    pub webhook_min_severity: MinSeverity,

    /// Send anomalies by email.
    pub email_enabled: bool,
    /// Recipients (`name@example.com` or `Name <name@example.com>`).
    pub email_to: Vec<String>,
    /// Sender address.
    pub email_from: String,
    /// SMTP server host.
    pub email_smtp_host: String,
    /// SMTP server port (587 for STARTTLS, 465 for TLS, 25 for a relay).
    pub email_smtp_port: u16,
    /// `starttls`, `tls` or `none`.
    pub email_smtp_tls: SmtpTls,
    /// SMTP user (empty: no authentication).
    pub email_username: String,
    /// SMTP password; also `DWCP_ANOMALY_EMAIL_PASSWORD`.
    pub email_password: String,
    /// File holding the SMTP password.
    pub email_password_file: Option<PathBuf>,
    /// Lowest severity emailed.
    pub email_min_severity: MinSeverity,
}

impl Default for AlertConfig {
    fn default() -> Self {
        Self {
            log_anomalies: true,
            throttle: Duration::from_secs(300),
            resolve_after: 3,
            external_url: String::new(),
            runbook_url: String::new(),
            retries: 5,
            retry_backoff: Duration::from_secs(1),
            retry_max_backoff: Duration::from_secs(60),
            queue_size: 256,
            timeout: Duration::from_secs(10),
            alertmanager_urls: Vec::new(),
            alertmanager_min_severity: MinSeverity::Warning,
            alertmanager_resend: Duration::from_secs(60),
            alertmanager_username: String::new(),
            alertmanager_password: String::new(),
            alertmanager_password_file: None,
            alertmanager_bearer_token: String::new(),
            alertmanager_bearer_token_file: None,
            tls_config: None,
            slack_enabled: false,
            slack_webhook_url: String::new(),
            slack_webhook_url_file: None,
            slack_channel: "#dwcp-alerts".to_string(),
            slack_min_severity: MinSeverity::Warning,
            pagerduty_enabled: false,
            pagerduty_routing_key: String::new(),
            pagerduty_routing_key_file: None,
            pagerduty_url: "https://events.pagerduty.com/v2/enqueue".to_string(),
            pagerduty_min_severity: MinSeverity::Critical,
            webhook_url: String::new(),
            webhook_secret: String::new(),
            webhook_secret_file: None,
            webhook_min_severity: MinSeverity::Warning,
            email_enabled: false,
            email_to: Vec::new(),
            email_from: String::new(),
            email_smtp_host: String::new(),
            email_smtp_port: 587,
            email_smtp_tls: SmtpTls::Starttls,
            email_username: String::new(),
            email_password: String::new(),
            email_password_file: None,
            email_min_severity: MinSeverity::Critical,
        }
    }
}

/// Secret keys besides [`SECRETS`]: given inline or as `<name>_file`, no environment variable.
pub(super) const FILE_SECRETS: [&str; 1] = ["alertmanager_bearer_token"];

/// A secret key: (name, its `_file` key, the environment variable that may supply it).
pub(super) const SECRETS: [(&str, &str, &str); 5] = [
    ("slack_webhook_url", "slack_webhook_url_file", "DWCP_ANOMALY_SLACK_WEBHOOK_URL"),
    ("pagerduty_routing_key", "pagerduty_routing_key_file", "DWCP_ANOMALY_PAGERDUTY_ROUTING_KEY"),
    ("webhook_secret", "webhook_secret_file", "DWCP_ANOMALY_WEBHOOK_SECRET"),
    ("email_password", "email_password_file", "DWCP_ANOMALY_EMAIL_PASSWORD"),
    ("alertmanager_password", "alertmanager_password_file", "DWCP_ANOMALY_ALERTMANAGER_PASSWORD"),
];

impl AlertConfig {
    /// The secret value and its file for a name of [`SECRETS`] or `alertmanager_bearer_token`.
    pub(super) fn secret_mut(&mut self, name: &str) -> (&mut String, Option<PathBuf>) {
        match name {
            "slack_webhook_url" => (&mut self.slack_webhook_url, self.slack_webhook_url_file.clone()),
            "pagerduty_routing_key" => {
                (&mut self.pagerduty_routing_key, self.pagerduty_routing_key_file.clone())
            }
            "webhook_secret" => (&mut self.webhook_secret, self.webhook_secret_file.clone()),
            "email_password" => (&mut self.email_password, self.email_password_file.clone()),
            "alertmanager_password" => {
                (&mut self.alertmanager_password, self.alertmanager_password_file.clone())
            }
            _ => (&mut self.alertmanager_bearer_token, self.alertmanager_bearer_token_file.clone()),
        }
    }

    /// Names of the channels that will send, besides the log.
    pub fn channels(&self) -> Vec<&'static str> {
        let mut c = Vec::new();
        if !self.alertmanager_urls.is_empty() {
            c.push("alertmanager");
        }
        if self.slack_enabled {
            c.push("slack");
        }
        if self.pagerduty_enabled {
            c.push("pagerduty");
        }
        if !self.webhook_url.is_empty() {
            c.push("webhook");
        }
        if self.email_enabled {
            c.push("email");
        }
        c
    }

    /// Reports every invalid field; pure (secrets from the environment are already in).
    pub fn validate(&self, e: &mut ConfigErrors) {
        let missing = |value: &str, file: &Option<PathBuf>| value.is_empty() && file.is_none();
        if self.resolve_after == 0 {
            e.invalid("resolve_after", "must be >= 1");
        }
        if let Some(t) = &self.tls_config {
            e.scope("tls_config", |e| t.validate(e));
        }
        if self.queue_size == 0 {
            e.invalid("queue_size", "must be >= 1");
        }
        if self.timeout.is_zero() {
            e.invalid("timeout", "must be > 0");
        }
        if self.retry_max_backoff < self.retry_backoff {
            e.invalid("retry_max_backoff", "must be >= retry_backoff");
        }
        for (key, url) in [("external_url", &self.external_url), ("runbook_url", &self.runbook_url)] {
            if !url.is_empty() && !is_http_url(url) {
                e.invalid(key, format!("must be an http(s) URL, got {url:?}"));
            }
        }
        for (i, url) in self.alertmanager_urls.iter().enumerate() {
            if !is_http_url(url) {
                e.invalid(&format!("alertmanager_urls[{i}]"), format!("must be an http(s) URL, got {url:?}"));
            }
        }
        if self.alertmanager_resend < Duration::from_secs(1) {
            e.invalid("alertmanager_resend", "must be >= 1s");
        }
        if !self.alertmanager_password.is_empty() || self.alertmanager_password_file.is_some() {
            if self.alertmanager_username.is_empty() {
                e.invalid("alertmanager_username", "required when alertmanager_password is set");
            }
            if !self.alertmanager_bearer_token.is_empty() || self.alertmanager_bearer_token_file.is_some() {
                e.invalid("alertmanager_bearer_token", "set basic auth or a bearer token, not both");
            }
        }
        if self.slack_enabled && missing(&self.slack_webhook_url, &self.slack_webhook_url_file) {
            e.invalid(
                "slack_webhook_url",
                "required when slack_enabled is true (or set slack_webhook_url_file or \
                 DWCP_ANOMALY_SLACK_WEBHOOK_URL)",
            );
        }
        if !self.slack_webhook_url.is_empty() && !is_http_url(&self.slack_webhook_url) {
            e.invalid("slack_webhook_url", "must be an http(s) URL");
        }
        if self.pagerduty_enabled && missing(&self.pagerduty_routing_key, &self.pagerduty_routing_key_file) {
            e.invalid(
                "pagerduty_routing_key",
                "required when pagerduty_enabled is true (or set pagerduty_routing_key_file or \
                 DWCP_ANOMALY_PAGERDUTY_ROUTING_KEY)",
            );
        }
        if !is_http_url(&self.pagerduty_url) {
            e.invalid("pagerduty_url", format!("must be an http(s) URL, got {:?}", self.pagerduty_url));
        }
        if !self.webhook_url.is_empty() && !is_http_url(&self.webhook_url) {
            e.invalid("webhook_url", format!("must be an http(s) URL, got {:?}", self.webhook_url));
        }
        if self.email_enabled {
            if self.email_to.is_empty() {
                e.invalid("email_to", "at least one recipient is required when email_enabled is true");
            }
            for (i, to) in self.email_to.iter().enumerate() {
                if let Err(why) = check_mailbox(to) {
                    e.invalid(&format!("email_to[{i}]"), why);
                }
            }
            if let Err(why) = check_mailbox(&self.email_from) {
                e.invalid("email_from", why);
            }
            if self.email_smtp_host.is_empty() {
                e.invalid("email_smtp_host", "required when email_enabled is true");
            }
            if self.email_smtp_port == 0 {
                e.invalid("email_smtp_port", "must be within [1, 65535]");
            }
            if !missing(&self.email_password, &self.email_password_file) && self.email_username.is_empty() {
                e.invalid("email_username", "required when an email password is set");
            }
        }
    }
}

/// Checks `Name <local@domain>` or `local@domain` (the shape, not deliverability).
pub fn check_mailbox(s: &str) -> Result<(), String> {
    let addr = match (s.find('<'), s.rfind('>')) {
        (Some(a), Some(b)) if a < b && s[b + 1..].trim().is_empty() => &s[a + 1..b],
        (None, None) => s.trim(),
        _ => return Err(format!("not an email address: {s:?}")),
    };
    let valid = addr.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && !domain.is_empty()
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !addr.chars().any(|c| c.is_whitespace() || c == ',' || c == '<' || c == '>')
            && !domain.contains('@')
    });
    if valid { Ok(()) } else { Err(format!("not an email address: {s:?}")) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn errors(yaml: &str) -> Vec<String> {
        Config::parse(yaml)
            .unwrap()
            .validate()
            .into_iter()
            .map(|e| format!("{}: {}", e.path, e.reason))
            .collect()
    }

    #[test]
    fn an_unknown_channel_is_an_unknown_key_with_its_line() {
        let err = Config::parse("alert:\n  throttle: 1m\n  teams_enabled: true\n").unwrap_err();
        assert_eq!((err.path.as_str(), err.line), ("alert.teams_enabled", Some(3)));
    }

    #[test]
    fn every_channel_names_what_it_misses() {
        let e = errors(
            "alert:\n  pagerduty_enabled: true\n  email_enabled: true\n  email_to: [ops]\n  \
             webhook_url: ftp://x\n  alertmanager_urls: [am:9093]\n",
        );
        let has = |p: &str| e.iter().any(|x| x.starts_with(p));
        for key in [
            "alert.pagerduty_routing_key",
            "alert.email_to[0]: not an email address",
            "alert.email_from",
            "alert.email_smtp_host",
            "alert.webhook_url",
            "alert.alertmanager_urls[0]",
        ] {
            assert!(has(key), "{key} missing from {e:#?}");
        }
    }

    #[test]
    fn a_secret_file_fills_its_key_and_is_masked() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("pd");
        std::fs::write(&key, "R0UTING\n").unwrap();
        let cfg_path = dir.path().join("c.yaml");
        let yaml =
            format!("alert:\n  pagerduty_enabled: true\n  pagerduty_routing_key_file: {}\n", key.display());
        std::fs::write(&cfg_path, yaml).unwrap();
        let cfg = Config::load(Some(&cfg_path)).unwrap();
        assert_eq!(cfg.alert.pagerduty_routing_key, "R0UTING");
        assert!(!cfg.to_yaml().contains("R0UTING"));
    }

    #[test]
    fn mailboxes() {
        for ok in ["ops@example.com", "On Call <oncall@example.org>", " a@b.c "] {
            assert_eq!(check_mailbox(ok), Ok(()), "{ok}");
        }
        for bad in ["", "ops", "@example.com", "ops@", "a b@c.d", "x <a@b.c", "a@b.c, d@e.f", "a@.b"] {
            assert!(check_mailbox(bad).is_err(), "{bad}");
        }
    }
}
