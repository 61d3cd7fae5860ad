//! SMTP email with `lettre`: one message per event to every `email_to`, multipart/alternative
//! with a plain-text and an HTML body. `starttls` upgrades a plain connection and refuses a
//! server that cannot, `tls` is TLS from the first byte, `none` is for a local relay.
//! A transient SMTP reply (4xx), a timeout or a connection failure is retried; a permanent
//! one (5xx, e.g. 550 mailbox unavailable) is a rejection.

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Identity, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::dispatch::{Channel, SendError};
use super::{AlertEvent, AlertKind, Links, number};
use crate::config::{AlertConfig, SmtpTls};

/// The email channel.
pub struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    links: Links,
}

/// Why the channel could not be built (the key is named).
#[derive(Debug, thiserror::Error)]
#[error("alert.{key}: {reason}")]
pub struct EmailConfigError {
    /// The config key at fault.
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

/// `alert.tls_config` as lettre's TLS parameters: `ca_file` as the only roots, the client's
/// identity from `cert_file`/`key_file`.
fn tls_parameters(
    host: &str,
    tls: &crate::config::TlsClientConfig,
) -> Result<TlsParameters, (&'static str, String)> {
    let read = |key: &'static str, file: &std::path::Path| {
        std::fs::read(file).map_err(|e| (key, format!("{}: {e}", file.display())))
    };
    let mut p = TlsParameters::builder(host.to_string());
    if let Some(ca) = &tls.ca_file {
        let cert = Certificate::from_pem(&read("tls_config.ca_file", ca)?)
            .map_err(|e| ("tls_config.ca_file", format!("{}: {e}", ca.display())))?;
        p = p.certificate_store(CertificateStore::None).add_root_certificate(cert);
    }
    if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
        let identity =
            Identity::from_pem(&read("tls_config.cert_file", cert)?, &read("tls_config.key_file", key)?)
                .map_err(|e| ("tls_config.key_file", format!("{}: {e}", key.display())))?;
        p = p.identify_with(identity);
    }
    p.dangerous_accept_invalid_certs(tls.insecure_skip_verify)
        .build_rustls()
        .map_err(|e| ("tls_config", e.to_string()))
}

impl Email {
    /// The channel configured by `cfg`'s `email_*` keys.
    pub fn new(cfg: &AlertConfig, links: Links) -> Result<Self, EmailConfigError> {
        let err = |key: &str, reason: String| EmailConfigError { key: key.into(), reason };
        let host = cfg.email_smtp_host.as_str();
        let builder = match cfg.email_smtp_tls {
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                .map_err(|e| err("email_smtp_host", e.to_string()))?,
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
                .map_err(|e| err("email_smtp_host", e.to_string()))?,
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
        };
        let mut builder = builder.port(cfg.email_smtp_port).timeout(Some(cfg.timeout));
        if let Some(tls) = &cfg.tls_config
            && cfg.email_smtp_tls != SmtpTls::None
        {
            let params = tls_parameters(host, tls).map_err(|(key, reason)| err(key, reason))?;
            builder = builder.tls(match cfg.email_smtp_tls {
                SmtpTls::Tls => Tls::Wrapper(params),
                _ => Tls::Required(params),
            });
        }
        if !cfg.email_username.is_empty() {
            builder =
                builder.credentials(Credentials::new(cfg.email_username.clone(), cfg.email_password.clone()));
        }
        let from: Mailbox = cfg.email_from.trim().parse().map_err(|e| err("email_from", format!("{e}")))?;
        let to = cfg
            .email_to
            .iter()
            .enumerate()
            .map(|(i, t)| t.trim().parse().map_err(|e| err(&format!("email_to[{i}]"), format!("{e}"))))
            .collect::<Result<Vec<Mailbox>, _>>()?;
        Ok(Self { transport: builder.build(), from, to, links })
    }

    /// The message for `e`.
    pub fn message(&self, e: &AlertEvent) -> Result<Message, String> {
        let subject = match e.kind {
            AlertKind::Resolved => format!("[DWCP RESOLVED] {}", e.summary()),
            AlertKind::Firing | AlertKind::Escalated => {
                format!("[DWCP {}] {}", e.severity.as_str().to_uppercase(), e.summary())
            }
        };
        let url = self.links.entity_url(e);
        let mut text = format!("{}\n\n{}\n\nEntity: {url}\n", e.summary(), e.description());
        if !self.links.runbook_url.is_empty() {
            text.push_str(&format!("Runbook: {}\n", self.links.runbook_url));
        }
        let mut builder = Message::builder().from(self.from.clone()).subject(subject);
        for t in &self.to {
            builder = builder.to(t.clone());
        }
        builder
            .multipart(MultiPart::alternative_plain_html(text, html(e, &url, &self.links.runbook_url)))
            .map_err(|err| format!("cannot build the message: {err}"))
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The HTML body: title, confidence, a table of the top features, links.
fn html(e: &AlertEvent, url: &str, runbook: &str) -> String {
    let colour = match (e.kind, e.severity.as_str()) {
        (AlertKind::Resolved, _) => "#2EB67D",
        (_, "critical") => "#E01E5A",
        _ => "#ECB22E",
    };
    let mut rows = String::new();
    for f in &e.features {
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{:.0}%</td><td>{}</td><td>{}</td></tr>",
            esc(&f.feature),
            100.0 * f.contribution,
            number(f.value),
            number(f.expected)
        ));
    }
    let first_line = e.description().lines().next().unwrap_or_default().to_string();
    let mut out = format!(
        "<html><body style=\"font-family:sans-serif\"><h2 style=\"border-left:6px solid {colour};padding-left:8px\">{}</h2>\
         <p>{}</p><table border=\"1\" cellpadding=\"4\" style=\"border-collapse:collapse\">\
         <tr><th>feature</th><th>share</th><th>value</th><th>usual</th></tr>{rows}</table>\
         <p><a href=\"{}\">Open in dwcp-anomaly</a>",
        esc(&e.summary()),
        esc(&first_line),
        esc(url)
    );
    if !runbook.is_empty() {
        out.push_str(&format!(" · <a href=\"{}\">Runbook</a>", esc(runbook)));
    }
    out.push_str("</p></body></html>");
    out
}

impl Channel for Email {
    fn name(&self) -> &'static str {
        "email"
    }

    async fn send(&self, event: &AlertEvent) -> Result<(), SendError> {
        let msg = self.message(event).map_err(SendError::Rejected)?;
        match self.transport.send(msg).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(SendError::Rejected(format!("SMTP: {e}"))),
            Err(e) => Err(SendError::Retry { reason: format!("SMTP: {e}"), after: None }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_what_it_shows() {
        let e = AlertEvent {
            kind: AlertKind::Firing,
            labels: std::sync::Arc::from(vec![("instance".to_string(), "<b>".to_string())]),
            profile: "dwcp".into(),
            severity: crate::detect::Severity::Critical,
            confidence: 0.95,
            features: Vec::new(),
            started_ms: 0,
            timestamp_ms: 0,
        };
        let h = html(&e, "http://x/?a=1&b=2", "");
        assert!(h.contains("&lt;b&gt;") && !h.contains("<b>") && h.contains("a=1&amp;b=2"), "{h}");
    }
}
