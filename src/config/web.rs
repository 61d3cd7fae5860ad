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
    /// TLS on the HTTP and the OTLP/gRPC listener (exporter-toolkit's `tls_server_config`).
    pub tls_server_config: Option<TlsServerConfig>,
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

/// `tls_server_config`, as exporter-toolkit spells it. Relative paths are read from the web
/// configuration file's directory, as exporter-toolkit does.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsServerConfig {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// Whether clients present certificates.
    pub client_auth_type: ClientAuthType,
    /// PEM CA certificates that client certificates must chain to.
    pub client_ca_file: Option<PathBuf>,
    /// Lowest TLS version accepted (`TLS12` by default; rustls has nothing older).
    pub min_version: Option<TlsVersion>,
    /// Highest TLS version accepted.
    pub max_version: Option<TlsVersion>,
    /// TLS 1.2 cipher suites by their IANA names (Go's spelling); TLS 1.3 suites are not
    /// configurable, as in Go. Empty: every suite rustls offers.
    pub cipher_suites: Vec<String>,
    /// Whether the server's suite order wins over the client's.
    pub prefer_server_cipher_suites: Option<bool>,
    /// Key exchange groups (`X25519`, `CurveP256`, `CurveP384`), in preference order.
    pub curve_preferences: Vec<String>,
}

/// `tls_server_config.client_auth_type`. The two kinds that accept a certificate without
/// verifying it (`RequestClientCert`, `RequireAnyClientCert`) are refused at load.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum ClientAuthType {
    /// No client certificates (the default).
    #[default]
    NoClientCert,
    /// Not served: a certificate asked for but never verified.
    RequestClientCert,
    /// Not served: any certificate, never verified.
    RequireAnyClientCert,
    /// A certificate is optional; one that is sent must chain to `client_ca_file`.
    VerifyClientCertIfGiven,
    /// Mutual TLS: every client sends a certificate that chains to `client_ca_file`.
    RequireAndVerifyClientCert,
}

/// `min_version` / `max_version`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// TLS 1.2.
    TLS12,
    /// TLS 1.3.
    TLS13,
}

impl TlsServerConfig {
    /// Checks what can be checked without reading the files; resolves relative paths
    /// against `base` (the web configuration file's directory).
    fn resolve(&mut self, base: &Path) -> Result<(), String> {
        if self.cert_file.as_os_str().is_empty() {
            return Err("tls_server_config.cert_file: required".into());
        }
        if self.key_file.as_os_str().is_empty() {
            return Err("tls_server_config.key_file: required".into());
        }
        match self.client_auth_type {
            ClientAuthType::RequestClientCert | ClientAuthType::RequireAnyClientCert => {
                return Err(format!(
                    "tls_server_config.client_auth_type: {:?} accepts certificates without verifying them; \
                     use VerifyClientCertIfGiven or RequireAndVerifyClientCert with client_ca_file",
                    self.client_auth_type
                ));
            }
            ClientAuthType::VerifyClientCertIfGiven | ClientAuthType::RequireAndVerifyClientCert
                if self.client_ca_file.is_none() =>
            {
                return Err(format!(
                    "tls_server_config.client_ca_file: required with client_auth_type {:?}",
                    self.client_auth_type
                ));
            }
            _ => {}
        }
        if let (Some(lo), Some(hi)) = (self.min_version, self.max_version)
            && lo > hi
        {
            return Err(format!("tls_server_config.min_version: {lo:?} is above max_version {hi:?}"));
        }
        for p in [Some(&mut self.cert_file), Some(&mut self.key_file), self.client_ca_file.as_mut()]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(())
    }
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
        if let Some(tls) = &mut c.tls_server_config {
            tls.resolve(path.parent().unwrap_or(Path::new("."))).map_err(|e| format!("{file}: {e}"))?;
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
