//! Configuration: one YAML file, every field defaulted, unknown keys rejected.
//!
//! A leaf module: it imports no stage. Loading runs in three steps so that errors name
//! the key: parse (serde with `serde_path_to_error`, unknown and ill-typed keys rejected with
//! path and line), `validate()` (pure: no files, network or clock; all errors reported at
//! once), then secrets are read from `*_file` keys or the environment. The seed's keys
//! (`enabled`, `check_interval`, `alert.slack_enabled`, `alert.slack_webhook_url`,
//! `alert.slack_channel`) keep their meaning.

pub mod alert;
mod detect;
mod duration;
mod error;
mod export;
pub mod iforest;
mod ingest;
pub mod kmeans;
pub mod onnx;
pub mod otlp;
pub mod recalibrate;
pub mod sesd;
mod vectorize;
pub mod web;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use alert::{AlertConfig, MinSeverity, SmtpTls};
pub use detect::{DETECTORS, DetectConfig, ZScoreConfig};
pub use error::{ConfigError, ConfigErrors, LoadError};
pub use export::{BasicAuth, ExportConfig, RemoteWriteConfig, RemoteWriteMessage, TlsClientConfig};
pub use iforest::IsolationForestConfig;
pub use ingest::{IngestConfig, LimitsConfig, ScrapeConfig};
pub use kmeans::KMeansConfig;
pub use onnx::{LstmAeConfig, OnnxBackend, OnnxConfig};
pub use otlp::{OtelConfig, OtelExporter, OtlpConfig, OtlpExportConfig, OtlpProtocol};
pub use recalibrate::{FprControlConfig, RecalibrateConfig};
pub use sesd::SeasonalEsdConfig;
pub use vectorize::{Aggregation, FeatureConfig, FeatureKind, ProfileConfig, VectorizeConfig};
pub use web::WebConfig;

/// Name of the built-in default profile.
pub const DEFAULT_PROFILE: &str = "dwcp";

/// The root configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Master switch (seed key). When false the service still ingests and serves `/metrics`
    /// but scores nothing and raises no alerts.
    pub enabled: bool,
    /// How often every live entity is assembled into a vector and scored (seed key).
    #[serde(with = "duration")]
    pub check_interval: Duration,
    /// Address of the HTTP listener (remote-write in, `/metrics`, health).
    pub listen: SocketAddr,
    /// The web configuration file (exporter-toolkit format: `basic_auth_users`, plus
    /// `bearer_tokens`): who may write in and read out. Unset: no authentication.
    pub web_config_file: Option<PathBuf>,
    /// Directory for persisted model state; none keeps everything in memory.
    pub state_dir: Option<PathBuf>,
    /// How often model state is saved to `state_dir` (also at shutdown).
    #[serde(with = "duration")]
    pub state_save_interval: Duration,
    /// Request limits for the ingest endpoints.
    pub ingest: IngestConfig,
    /// Limits of the process as a whole (memory ceiling).
    pub limits: LimitsConfig,
    /// OTLP receiver (gRPC listener, resource attribute mapping).
    pub otlp: OtlpConfig,
    /// `/metrics` targets the service scrapes itself (small setups without Prometheus).
    pub scrape: Vec<ScrapeConfig>,
    /// The service's own metrics and traces over OTLP (OpenTelemetry SDK).
    pub otel: OtelConfig,
    /// How samples become per-entity vectors.
    pub vectorize: VectorizeConfig,
    /// Detectors, ensemble threshold and severity bands.
    pub detect: DetectConfig,
    /// The engine that runs ONNX models (the LSTM autoencoder).
    pub onnx: OnnxConfig,
    /// Where scores are written.
    pub export: ExportConfig,
    /// Alert routing and channels.
    pub alert: AlertConfig,
    /// Logging.
    pub log: LogConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            enabled: true,
            check_interval: Duration::from_secs(10),
            listen: SocketAddr::from(([0, 0, 0, 0], 9490)),
            web_config_file: None,
            state_dir: None,
            state_save_interval: Duration::from_secs(300),
            ingest: IngestConfig::default(),
            limits: LimitsConfig::default(),
            otlp: OtlpConfig::default(),
            scrape: Vec::new(),
            otel: OtelConfig::default(),
            vectorize: VectorizeConfig::default(),
            detect: DetectConfig::default(),
            onnx: OnnxConfig::default(),
            export: ExportConfig::default(),
            alert: AlertConfig::default(),
            log: LogConfig::default(),
        }
    }
}

/// Logging output.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `tracing` filter, e.g. `info` or `dwcp_anomaly=debug`; `RUST_LOG` wins when set.
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: "info".to_string(), format: LogFormat::Text }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

const EMBEDDED: &str = "<embedded defaults>";

impl Config {
    /// Loads `path`, or the embedded defaults when `None`; validates and resolves secrets.
    pub fn load(path: Option<&Path>) -> Result<Self, LoadError> {
        let (file, mut cfg) = match path {
            None => (PathBuf::from(EMBEDDED), Config::default()),
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|cause| LoadError::Read { file: p.to_path_buf(), cause })?;
                let cfg = Self::parse(&text)
                    .map_err(|e| LoadError::Invalid { file: p.to_path_buf(), errors: vec![e] })?;
                (p.to_path_buf(), cfg)
            }
        };
        for (name, _, env) in alert::SECRETS {
            if let Ok(v) = std::env::var(env) {
                *cfg.alert.secret_mut(name).0 = v;
            }
        }
        let errors = cfg.validate();
        if !errors.is_empty() {
            return Err(LoadError::Invalid { file, errors });
        }
        cfg.resolve_secrets().map_err(|errors| LoadError::Invalid { file, errors })?;
        Ok(cfg)
    }

    /// Parses YAML text; the error names the key path and line.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        let mut path = String::new();
        let options = serde_saphyr::options! { with_snippet: false };
        serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
            serde_path_to_error::deserialize(de).map_err(|e| {
                path = e.path().to_string();
                e.into_inner()
            })
        })
        .map_err(|e| {
            let line = e.location().map(|l| l.line());
            let mut reason = parse_reason(&e);
            // A syntax error stops the parser inside a value it never named (`detect.?`): name
            // the last key it knew and say it is the YAML that is broken, not the value.
            let syntax = path.contains('?');
            let known = path.split('.').take_while(|k| *k != "?").collect::<Vec<_>>().join(".");
            if syntax && reason.contains("did not find expected key") {
                reason = "YAML structure error: this line's indentation matches no key above it \
                          (keys of one mapping must start in the same column)"
                    .to_string();
            } else if syntax {
                reason = format!("YAML syntax error: {reason}");
            } else if reason == "expected mapping start" {
                let key = known.rsplit('.').next().unwrap_or("");
                reason = format!(
                    "YAML structure error: expected the keys of `{key}` on the following lines, \
                     indented further than `{key}:` itself"
                );
            } else if let Some(value) =
                line.and_then(|l| value_at(text, l)).filter(|v| !reason.contains(v.as_str()))
            {
                reason = format!("{}, got {value:?}", plain_type_error(&reason));
            }
            ConfigError {
                path: if known.is_empty() || known == "." { "(root)".to_string() } else { known },
                reason,
                line,
            }
        })
    }

    /// Checks every value; returns all problems (empty when valid). Pure.
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut errs = ConfigErrors::default();
        if self.check_interval < Duration::from_millis(100) {
            errs.invalid("check_interval", format!("must be >= 100ms, got {:?}", self.check_interval));
        }
        errs.scope("ingest", |e| {
            if self.ingest.max_request_bytes == 0 {
                e.invalid("max_request_bytes", "must be > 0");
            }
            if self.ingest.max_decoded_bytes < self.ingest.max_request_bytes {
                e.invalid("max_decoded_bytes", "must be >= max_request_bytes");
            }
            if self.ingest.max_concurrent_requests == 0 {
                e.invalid("max_concurrent_requests", "must be > 0");
            }
            // A series needs its name, a job and an instance; names and values need room.
            if self.ingest.max_labels_per_series < 3 {
                e.invalid("max_labels_per_series", "must be >= 3");
            }
            if self.ingest.max_label_name_length < 16 {
                e.invalid("max_label_name_length", "must be >= 16");
            }
            if self.ingest.max_label_value_length < 16 {
                e.invalid("max_label_value_length", "must be >= 16");
            }
            if self.ingest.max_series_per_request == 0 {
                e.invalid("max_series_per_request", "must be > 0");
            }
            if self.ingest.max_samples_per_request == 0 {
                e.invalid("max_samples_per_request", "must be > 0");
            }
        });
        for (i, t) in self.scrape.iter().enumerate() {
            errs.scope(&format!("scrape[{i}]"), |e| t.validate(e));
        }
        errs.scope("limits", |e| {
            let l = &self.limits;
            if l.shed_memory_bytes > 0 && l.shed_memory_bytes <= l.max_memory_bytes {
                e.invalid(
                    "shed_memory_bytes",
                    format!(
                        "must be above max_memory_bytes ({}) so that ingest stops before entities are shed",
                        l.max_memory_bytes
                    ),
                );
            }
        });
        errs.scope("vectorize", |e| self.vectorize.validate(e));
        errs.scope("detect", |e| self.detect.validate(e));
        errs.scope("export", |e| {
            for (i, rw) in self.export.remote_write.iter().enumerate() {
                e.scope(&format!("remote_write[{i}]"), |e| rw.validate(e));
            }
            for (i, o) in self.export.otlp.iter().enumerate() {
                e.scope(&format!("otlp[{i}]"), |e| o.validate(e));
            }
        });
        errs.scope("alert", |e| self.alert.validate(e));
        if let Err(err) = self.log.level.parse::<tracing_subscriber::EnvFilter>() {
            errs.invalid("log.level", format!("invalid filter {:?}: {err}", self.log.level));
        }
        errs.into_vec()
    }

    fn resolve_secrets(&mut self) -> Result<(), Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut read = |key: String, file: &Path| match std::fs::read_to_string(file) {
            Ok(s) => Some(s.trim().to_string()),
            Err(err) => {
                errors.push(ConfigError {
                    path: key,
                    reason: format!("cannot read {}: {err}", file.display()),
                    line: None,
                });
                None
            }
        };
        for name in alert::SECRETS.map(|s| s.0).into_iter().chain(alert::FILE_SECRETS) {
            let (value, file) = self.alert.secret_mut(name);
            if let Some(f) = file
                && let Some(v) = read(format!("alert.{name}_file"), &f)
            {
                *value = v;
            }
        }
        for (i, rw) in self.export.remote_write.iter_mut().enumerate() {
            if let Some(f) = rw.bearer_token_file.clone()
                && let Some(v) = read(format!("export.remote_write[{i}].bearer_token_file"), &f)
            {
                rw.bearer_token = Some(v);
            }
            if let Some(b) = rw.basic_auth.as_mut()
                && let Some(f) = b.password_file.clone()
                && let Some(v) = read(format!("export.remote_write[{i}].basic_auth.password_file"), &f)
            {
                b.password = Some(v);
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }

    /// The effective configuration as YAML (secrets masked).
    pub fn to_yaml(&self) -> String {
        let mut shown = self.clone();
        for name in alert::SECRETS.map(|s| s.0).into_iter().chain(alert::FILE_SECRETS) {
            let value = shown.alert.secret_mut(name).0;
            if !value.is_empty() {
                *value = "<secret>".into();
            }
        }
        for rw in &mut shown.export.remote_write {
            if rw.bearer_token.is_some() {
                rw.bearer_token = Some("<secret>".into());
            }
            if let Some(p) = rw.basic_auth.as_mut().and_then(|b| b.password.as_mut()) {
                *p = "<secret>".into();
            }
        }
        serde_saphyr::to_string(&shown).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }
}

fn is_http_url(s: &str) -> bool {
    let rest = s.strip_prefix("http://").or_else(|| s.strip_prefix("https://"));
    rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/'))
}

/// The parser's message without its own location suffix (the line is reported separately).
/// The parser's type errors in plain words (`invalid u64` → `expected a whole number >= 0`).
fn plain_type_error(reason: &str) -> String {
    let plain = match reason {
        "invalid u64" | "invalid u32" | "invalid u16" | "invalid usize" => "expected a whole number >= 0",
        "invalid i64" | "invalid i32" => "expected a whole number",
        "invalid floating point" => "expected a number",
        "invalid boolean" => "expected true or false",
        "expected string scalar" => "expected a single value, not a list or mapping",
        other => other,
    };
    plain.to_string()
}

/// The value written on 1-based `line` of `text` (after `key:` or `- `, without its quotes),
/// for echoing in an error; None when the line holds no value (a block follows).
fn value_at(text: &str, line: u64) -> Option<String> {
    let l = text.lines().nth(line.checked_sub(1)? as usize)?.trim();
    let l = l.split(" #").next().unwrap_or(l).trim();
    let value = match l.split_once(": ") {
        Some((_, v)) => v,
        None => l.strip_prefix("- ").unwrap_or(l.strip_suffix(':').map_or(l, |_| "")),
    };
    let value = value.trim();
    let unquoted = ['"', '\''].iter().find_map(|q| value.strip_prefix(*q)?.strip_suffix(*q)).unwrap_or(value);
    (!value.is_empty()).then(|| unquoted.to_string())
}

fn parse_reason(e: &serde_saphyr::Error) -> String {
    let text = e.to_string();
    let text = text.lines().next().unwrap_or_default().to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests;
