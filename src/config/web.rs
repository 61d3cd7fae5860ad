//! The web configuration file (`serve --web.config.file`, `web_config_file`): who may write
//! in and read out, in the exporter-toolkit format Prometheus, Alertmanager and the exporters
//! read, plus bearer tokens for remote-write senders and OTLP exporters.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The parts of the exporter-toolkit web configuration this service reads.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// TLS for the listeners (exporter-toolkit's `tls_server_config`): not served yet; a file
    /// that sets it is refused rather than silently served in clear text.
    pub tls_server_config: Option<serde_json::Value>,
    /// Response headers (exporter-toolkit's `http_server_config.headers`).
    pub http_server_config: HttpServerConfig,
    /// User name → bcrypt hash of the password (`htpasswd -nBC 10 user`).
    pub basic_auth_users: BTreeMap<String, String>,
    /// Tokens accepted as `Authorization: Bearer <token>` (this service's extension, for
    /// remote-write senders and OTLP exporters).
    pub bearer_tokens: Vec<String>,
    /// A file with one bearer token per line (blank lines and `#` comments skipped).
    pub bearer_tokens_file: Option<PathBuf>,
    /// Leave `/metrics` and the live page `/` open (for scrapers on a trusted network); ingest
    /// and `/api` stay protected.
    pub open_metrics: bool,
}

/// `http_server_config`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpServerConfig {
    /// Headers added to every response.
    pub headers: BTreeMap<String, String>,
}

/// Environment variable holding one more bearer token.
pub const BEARER_TOKEN_ENV: &str = "DWCP_ANOMALY_BEARER_TOKEN";

impl WebConfig {
    /// Reads `path`; the error names the file and the key. Tokens from `bearer_tokens_file`
    /// and [`BEARER_TOKEN_ENV`] are added to `bearer_tokens`.
    pub fn load(path: &Path) -> Result<Self, String> {
        let file = path.display();
        let text = std::fs::read_to_string(path).map_err(|e| format!("{file}: {e}"))?;
        let mut c: WebConfig = if text.trim().is_empty() {
            WebConfig::default()
        } else {
            serde_saphyr::from_str(&text).map_err(|e| format!("{file}: {e}"))?
        };
        if c.tls_server_config.is_some() {
            return Err(format!(
                "{file}: tls_server_config: TLS is not served yet; terminate TLS in front of the service \
                 (a reverse proxy) and remove the key"
            ));
        }
        for (user, hash) in &c.basic_auth_users {
            if !hash.starts_with("$2") {
                return Err(format!(
                    "{file}: basic_auth_users.{user}: not a bcrypt hash (expected $2a$/$2b$/$2y$…)"
                ));
            }
        }
        if let Some(f) = &c.bearer_tokens_file {
            let tokens = std::fs::read_to_string(f)
                .map_err(|e| format!("{file}: bearer_tokens_file: {}: {e}", f.display()))?;
            c.bearer_tokens.extend(
                tokens
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(String::from),
            );
        }
        if let Ok(t) = std::env::var(BEARER_TOKEN_ENV)
            && !t.trim().is_empty()
        {
            c.bearer_tokens.push(t.trim().to_string());
        }
        if c.bearer_tokens.iter().any(|t| t.len() < 16) {
            return Err(format!("{file}: bearer_tokens: every token needs at least 16 characters"));
        }
        Ok(c)
    }

    /// Whether any credential is configured (else every request is let in, as without a file).
    pub fn has_auth(&self) -> bool {
        !self.basic_auth_users.is_empty() || !self.bearer_tokens.is_empty()
    }
}
