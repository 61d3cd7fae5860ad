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
mod event;
pub mod pagerduty;
pub mod slack;
pub mod state;
mod tracker;
pub mod webhook;

use tracing::{info, warn};

use crate::detect::Severity;

pub(crate) use event::number;
pub use event::{AlertEvent, AlertKind, FeatureContribution, Links};
pub use tracker::AlertTracker;

/// Why the alert channels could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The HTTP client could not be built.
    #[error("cannot build the alert HTTP client: alert.{0}")]
    Client(#[from] crate::retry::ClientError),
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
    let client = crate::retry::http_client().timeout(a.timeout);
    let client = crate::retry::with_tls(client, a.tls_config.as_ref())?
        .build()
        .map_err(crate::retry::ClientError::from)?;
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
