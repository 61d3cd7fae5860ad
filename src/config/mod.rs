//! Configuration: one YAML file, every field defaulted, unknown keys rejected.
//!
//! A leaf module: it imports no stage. Loading runs in three steps so that errors name
//! the key: parse (serde with `serde_path_to_error`, unknown and ill-typed keys rejected with
//! path and line), `validate()` (pure: no files, network or clock; all errors reported at
//! once), then secrets are read from `*_file` keys or the environment. The seed's keys
//! (`enabled`, `check_interval`, `alert.slack_enabled`, `alert.slack_webhook_url`,
//! `alert.slack_channel`) keep their meaning.

pub mod alert;
mod duration;
mod error;
pub mod iforest;
pub mod kmeans;
pub mod onnx;
pub mod otlp;
pub mod recalibrate;
pub mod sesd;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use alert::{AlertConfig, MinSeverity, SmtpTls};
pub use error::{ConfigError, ConfigErrors, LoadError};
pub use iforest::IsolationForestConfig;
pub use kmeans::KMeansConfig;
pub use onnx::{LstmAeConfig, OnnxBackend, OnnxConfig};
pub use otlp::{OtelConfig, OtelExporter, OtlpConfig, OtlpExportConfig, OtlpProtocol};
pub use recalibrate::RecalibrateConfig;
pub use sesd::SeasonalEsdConfig;

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
    /// Directory for persisted model state; none keeps everything in memory.
    pub state_dir: Option<PathBuf>,
    /// How often model state is saved to `state_dir` (also at shutdown).
    #[serde(with = "duration")]
    pub state_save_interval: Duration,
    /// Request limits for the ingest endpoints.
    pub ingest: IngestConfig,
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
            state_dir: None,
            state_save_interval: Duration::from_secs(300),
            ingest: IngestConfig::default(),
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

/// Limits applied before any decoding, so a hostile request cannot exhaust memory.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Largest accepted request body in bytes, as sent (compressed).
    pub max_request_bytes: usize,
    /// Largest accepted body in bytes after decompression.
    pub max_decoded_bytes: usize,
    /// Ingest requests (remote-write, OTLP/HTTP, OTLP/gRPC) handled at once; beyond it a
    /// request is refused as retryable (HTTP 503 with `Retry-After`, gRPC `UNAVAILABLE`).
    pub max_concurrent_requests: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self { max_request_bytes: 16 << 20, max_decoded_bytes: 64 << 20, max_concurrent_requests: 64 }
    }
}

/// How incoming series are grouped into per-entity feature vectors.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct VectorizeConfig {
    /// Profile to use: `dwcp`, `node`, `per_series`, or a name under `profiles`.
    pub profile: String,
    /// Overrides the profile's entity labels (e.g. `[instance]`).
    pub entity_labels: Option<Vec<String>>,
    /// A feature's newest sample counts for this long; an entity silent this long is dropped.
    #[serde(with = "duration")]
    pub staleness: Duration,
    /// Upper bound on live entities; samples of further new entities are rejected and counted.
    pub max_entities: usize,
    /// User-defined profiles by name.
    pub profiles: BTreeMap<String, ProfileConfig>,
}

impl Default for VectorizeConfig {
    fn default() -> Self {
        Self {
            profile: DEFAULT_PROFILE.to_string(),
            entity_labels: None,
            staleness: Duration::from_secs(300),
            max_entities: 10_000,
            profiles: BTreeMap::new(),
        }
    }
}

/// A user-defined profile: entity labels and ordered features.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProfileConfig {
    /// Labels whose values identify one entity.
    pub entity_labels: Vec<String>,
    /// Ordered features of the vector.
    pub features: Vec<FeatureConfig>,
}

/// One feature of a profile.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FeatureConfig {
    /// Feature name, used in the `feature` label of the output.
    pub name: String,
    /// Unit, for documentation and dashboards.
    #[serde(default)]
    pub unit: String,
    /// Series selectors (`metric{label="v",label!="v"}`); every match is aggregated.
    pub series: Vec<String>,
    /// Optional denominator selector: the feature becomes `series / per`.
    #[serde(default)]
    pub per: Option<String>,
    /// `gauge` (value as is) or `counter` (reset-aware per-second rate).
    #[serde(default)]
    pub kind: FeatureKind,
    /// How several matching series of one entity combine.
    #[serde(default)]
    pub aggregation: Aggregation,
    /// Multiplier applied after aggregation.
    #[serde(default = "one")]
    pub scale: f64,
    /// Offset added after scaling.
    #[serde(default)]
    pub offset: f64,
}

fn one() -> f64 {
    1.0
}

/// How a feature's samples are read.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FeatureKind {
    /// The newest value.
    #[default]
    Gauge,
    /// Per-second rate between the two newest samples; a decrease is a counter reset.
    Counter,
}

/// How several series of one entity and feature combine.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// Sum of the series.
    #[default]
    Sum,
    /// Mean of the series.
    Avg,
    /// Largest value.
    Max,
    /// Smallest value.
    Min,
}

/// Detectors and how their scores combine.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DetectConfig {
    /// Ensemble confidence at or above which a vector is anomalous (`anomaly_flag` = 1).
    pub threshold: f64,
    /// When set, overrides `threshold` with the confidence whose normal tail probability is
    /// this false-positive rate (e.g. 0.001).
    pub target_fpr: Option<f64>,
    /// Calibration range: a score of 1.0 means a tail probability of `10^-decades` among
    /// normal training scores, 0.5 means `10^-(decades/2)`.
    pub calibration_decades: f64,
    /// Confidence from which an anomaly is a warning (seed: 0.7).
    pub severity_warning: f64,
    /// Confidence above which an anomaly is critical (seed: 0.9).
    pub severity_critical: f64,
    /// How often each entity's models are refitted on its buffered history.
    #[serde(with = "duration")]
    pub fit_every: Duration,
    /// How many recent vectors per entity are kept for (re)fitting.
    pub fit_window: usize,
    /// Vectors an entity needs before its first fit; until then it is `warming`.
    pub min_fit_points: usize,
    /// Online recalibration of every detector on its recent scores (ensemble).
    pub recalibrate: RecalibrateConfig,
    /// Detectors that flag a vector on their own, beside the vote, when their tail probability
    /// is at most this rate (e.g. `kmeans: 0.02`); see docs/configuration.md.
    pub alone_fpr: BTreeMap<String, f64>,
    /// Hysteresis: once a vector is flagged, the entity's next ones stay flagged while their
    /// confidence is at least `hold_ratio × threshold` (1 = off).
    pub hold_ratio: f64,
    /// Rolling z-score detector.
    pub zscore: ZScoreConfig,
    /// Isolation forest detector.
    pub iforest: IsolationForestConfig,
    /// Seasonal hybrid ESD detector.
    pub sesd: SeasonalEsdConfig,
    /// k-means detector on feature windows.
    pub kmeans: KMeansConfig,
    /// LSTM autoencoder (ONNX).
    pub lstm_ae: LstmAeConfig,
}

impl Default for DetectConfig {
    fn default() -> Self {
        Self {
            threshold: 0.5,
            target_fpr: None,
            calibration_decades: 6.0,
            severity_warning: 0.7,
            severity_critical: 0.9,
            fit_every: Duration::from_secs(3600),
            fit_window: 360,
            min_fit_points: 30,
            recalibrate: RecalibrateConfig::default(),
            alone_fpr: BTreeMap::new(),
            hold_ratio: 1.0,
            zscore: ZScoreConfig::default(),
            iforest: IsolationForestConfig::default(),
            sesd: SeasonalEsdConfig::default(),
            kmeans: KMeansConfig::default(),
            lstm_ae: LstmAeConfig::default(),
        }
    }
}

/// Detector names, as in the `detector` label and the `detect.<name>` keys.
pub const DETECTORS: [&str; 5] = ["zscore", "iforest", "sesd", "kmeans", "lstm_ae"];

impl DetectConfig {
    /// Enables exactly the named detectors (e.g. from `eval --detectors`).
    pub fn enable_only(&mut self, names: &[&str]) -> Result<(), String> {
        if let Some(bad) = names.iter().find(|n| !DETECTORS.contains(n)) {
            return Err(format!("unknown detector {bad:?}, expected one of {}", DETECTORS.join(", ")));
        }
        self.zscore.enabled = names.contains(&"zscore");
        self.iforest.enabled = names.contains(&"iforest");
        self.sesd.enabled = names.contains(&"sesd");
        self.kmeans.enabled = names.contains(&"kmeans");
        self.lstm_ae.enabled = names.contains(&"lstm_ae");
        Ok(())
    }

    /// The effective ensemble threshold (from `target_fpr` when set).
    pub fn effective_threshold(&self) -> f64 {
        match self.target_fpr {
            Some(fpr) => (-fpr.log10() / self.calibration_decades).clamp(0.0, 1.0),
            None => self.threshold,
        }
    }
}

/// Rolling z-score: online mean and standard deviation over a window, per feature.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ZScoreConfig {
    /// Whether the detector runs.
    pub enabled: bool,
    /// Weight in the ensemble vote.
    pub weight: f64,
    /// Number of points in the rolling window.
    pub window: usize,
    /// Width of the expected band in standard deviations (`anomaly_expected_lower/upper`).
    pub band: f64,
    /// Values further than `clip` standard deviations from the mean are held back from the
    /// window (so an outlier cannot inflate the spread and mask the ones after it) until they
    /// persist for half a window, when they are accepted as the new level.
    pub clip: f64,
    /// Floor of the rolling standard deviation as a share of the feature's spread over the
    /// fit history, so a feature that is flat for a window does not turn noise into huge z.
    pub min_std_ratio: f64,
}

impl Default for ZScoreConfig {
    fn default() -> Self {
        Self { enabled: true, weight: 1.0, window: 60, band: 3.0, clip: 4.0, min_std_ratio: 0.05 }
    }
}

/// Where scores go besides `/metrics`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ExportConfig {
    /// Remote-write targets for the score series.
    pub remote_write: Vec<RemoteWriteConfig>,
    /// OTLP targets (a collector) for the score series.
    pub otlp: Vec<OtlpExportConfig>,
}

/// One remote-write target.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RemoteWriteConfig {
    /// Endpoint, e.g. `http://prometheus:9090/api/v1/write`.
    pub url: String,
    /// Timeout of one request.
    #[serde(with = "duration", default = "default_rw_timeout")]
    pub timeout: Duration,
    /// Series per request.
    #[serde(default = "default_rw_batch")]
    pub max_samples_per_send: usize,
    /// Attempts after the first for 5xx / 429 / connection errors; 4xx is never retried.
    #[serde(default = "default_rw_retries")]
    pub max_retries: u32,
    /// First retry delay; doubles up to `max_backoff`.
    #[serde(with = "duration", default = "default_rw_min_backoff")]
    pub min_backoff: Duration,
    /// Longest retry delay.
    #[serde(with = "duration", default = "default_rw_max_backoff")]
    pub max_backoff: Duration,
    /// Ticks buffered while the target is slow; the oldest is dropped (and counted) beyond.
    #[serde(default = "default_rw_queue")]
    pub queue_capacity: usize,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Bearer token sent as `Authorization: Bearer ...`.
    #[serde(default)]
    pub bearer_token: Option<String>,
    /// File holding the bearer token (read at start).
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    /// Message to send, as Prometheus names it: `prometheus.WriteRequest` (remote-write 1.0,
    /// default) or `io.prometheus.write.v2.Request` (2.0).
    #[serde(default)]
    pub protobuf_message: RemoteWriteMessage,
}

/// Remote-write protocol of a target.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum RemoteWriteMessage {
    /// Remote-write 1.0.
    #[default]
    #[serde(rename = "prometheus.WriteRequest")]
    V1,
    /// Remote-write 2.0.
    #[serde(rename = "io.prometheus.write.v2.Request")]
    V2,
}

fn default_rw_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_rw_batch() -> usize {
    2000
}
fn default_rw_retries() -> u32 {
    8
}
fn default_rw_min_backoff() -> Duration {
    Duration::from_millis(100)
}
fn default_rw_max_backoff() -> Duration {
    Duration::from_secs(10)
}
fn default_rw_queue() -> usize {
    64
}

/// One scrape target.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScrapeConfig {
    /// URL of the target's metrics page, e.g. `http://host:9100/metrics`.
    pub url: String,
    /// Time between scrapes.
    #[serde(with = "duration", default = "default_scrape_interval")]
    pub interval: Duration,
    /// Timeout of one scrape (at most `interval`).
    #[serde(with = "duration", default = "default_scrape_timeout")]
    pub timeout: Duration,
    /// `job` label of the target's series.
    #[serde(default = "default_scrape_job")]
    pub job: String,
    /// Extra labels added to the target's series.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Keep the target's own `job`/`instance`/extra labels when they clash with ours (as
    /// Prometheus's `honor_labels`); otherwise theirs are renamed `exported_<name>`.
    #[serde(default)]
    pub honor_labels: bool,
}

fn default_scrape_interval() -> Duration {
    Duration::from_secs(15)
}
fn default_scrape_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_scrape_job() -> String {
    "scrape".into()
}

impl ScrapeConfig {
    fn validate(&self, e: &mut ConfigErrors) {
        if !is_http_url(&self.url) {
            e.invalid("url", format!("must be an http:// or https:// URL, got {:?}", self.url));
        }
        if self.interval < Duration::from_millis(100) {
            e.invalid("interval", format!("must be >= 100ms, got {:?}", self.interval));
        }
        if self.timeout.is_zero() || self.timeout > self.interval {
            e.invalid(
                "timeout",
                format!("must be > 0 and <= interval ({:?}), got {:?}", self.interval, self.timeout),
            );
        }
        for k in self.labels.keys() {
            let valid = k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                e.invalid("labels", format!("invalid label name {k:?}"));
            }
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
                    .map_err(|source| LoadError::Read { file: p.to_path_buf(), source })?;
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
        .map_err(|e| ConfigError {
            path: if path.is_empty() || path == "." { "(root)".to_string() } else { path },
            reason: parse_reason(&e),
            line: e.location().map(|l| l.line()),
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
        });
        for (i, t) in self.scrape.iter().enumerate() {
            errs.scope(&format!("scrape[{i}]"), |e| t.validate(e));
        }
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
        }
        serde_saphyr::to_string(&shown).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }
}

impl VectorizeConfig {
    fn validate(&self, e: &mut ConfigErrors) {
        const BUILTIN: [&str; 3] = ["dwcp", "node", "per_series"];
        if !BUILTIN.contains(&self.profile.as_str()) && !self.profiles.contains_key(&self.profile) {
            let mut known: Vec<&str> = BUILTIN.to_vec();
            known.extend(self.profiles.keys().map(String::as_str));
            e.invalid(
                "profile",
                format!("unknown profile {:?}, expected one of {}", self.profile, known.join(", ")),
            );
        }
        if self.max_entities == 0 {
            e.invalid("max_entities", "must be >= 1");
        }
        if self.staleness < Duration::from_secs(1) {
            e.invalid("staleness", format!("must be >= 1s, got {:?}", self.staleness));
        }
        if self.entity_labels.as_ref().is_some_and(Vec::is_empty) {
            e.invalid("entity_labels", "must name at least one label");
        }
        for (name, p) in &self.profiles {
            e.scope(&format!("profiles.{name}"), |e| {
                if BUILTIN.contains(&name.as_str()) {
                    e.invalid("", "a custom profile cannot reuse a built-in name");
                }
                if p.features.is_empty() {
                    e.invalid("features", "must list at least one feature");
                }
                for (i, f) in p.features.iter().enumerate() {
                    e.scope(&format!("features[{i}]"), |e| {
                        if f.series.is_empty() {
                            e.invalid("series", "must list at least one selector");
                        }
                        for (j, s) in f.series.iter().chain(f.per.iter()).enumerate() {
                            if let Err(err) = crate::vectorize::Selector::parse(s) {
                                e.invalid(&format!("series[{j}]"), err.to_string());
                            }
                        }
                        if !f.scale.is_finite() || !f.offset.is_finite() {
                            e.invalid("scale", "scale and offset must be finite");
                        }
                    });
                }
            });
        }
    }
}

impl DetectConfig {
    fn validate(&self, e: &mut ConfigErrors) {
        let unit = |e: &mut ConfigErrors, key: &str, v: f64| {
            if !(0.0..=1.0).contains(&v) {
                e.invalid(key, format!("must be within [0, 1], got {v}"));
            }
        };
        unit(e, "threshold", self.threshold);
        unit(e, "severity_warning", self.severity_warning);
        unit(e, "severity_critical", self.severity_critical);
        if self.severity_warning > self.severity_critical {
            e.invalid(
                "severity_warning",
                format!("must be <= severity_critical ({})", self.severity_critical),
            );
        }
        if let Some(fpr) = self.target_fpr
            && !(fpr > 0.0 && fpr < 1.0)
        {
            e.invalid("target_fpr", format!("must be within (0, 1), got {fpr}"));
        }
        if !(self.calibration_decades >= 1.0 && self.calibration_decades <= 12.0) {
            e.invalid(
                "calibration_decades",
                format!("must be within [1, 12], got {}", self.calibration_decades),
            );
        }
        if self.min_fit_points < 2 {
            e.invalid("min_fit_points", format!("must be >= 2, got {}", self.min_fit_points));
        }
        if self.fit_window < self.min_fit_points {
            e.invalid("fit_window", format!("must be >= min_fit_points ({})", self.min_fit_points));
        }
        if self.fit_every < Duration::from_secs(1) {
            e.invalid("fit_every", format!("must be >= 1s, got {:?}", self.fit_every));
        }
        e.scope("recalibrate", |e| self.recalibrate.validate(e));
        e.scope("alone_fpr", |e| recalibrate::validate_alone(&self.alone_fpr, e));
        if !(self.hold_ratio > 0.0 && self.hold_ratio <= 1.0) {
            e.invalid("hold_ratio", format!("must be within (0, 1], got {}", self.hold_ratio));
        }
        e.scope("zscore", |e| {
            let z = &self.zscore;
            if z.window < 2 {
                e.invalid("window", format!("must be >= 2, got {}", z.window));
            }
            if !(z.weight >= 0.0 && z.weight.is_finite()) {
                e.invalid("weight", format!("must be >= 0, got {}", z.weight));
            }
            if z.band.is_nan() || z.band <= 0.0 {
                e.invalid("band", format!("must be > 0, got {}", z.band));
            }
            if !(0.0..=1.0).contains(&z.min_std_ratio) {
                e.invalid("min_std_ratio", format!("must be within [0, 1], got {}", z.min_std_ratio));
            }
            if z.clip.is_nan() || z.clip < 1.0 {
                e.invalid("clip", format!("must be >= 1, got {}", z.clip));
            }
        });
        e.scope("iforest", |e| self.iforest.validate(e));
        e.scope("sesd", |e| self.sesd.validate(e));
        e.scope("kmeans", |e| self.kmeans.validate(e));
        e.scope("lstm_ae", |e| self.lstm_ae.validate(e));
        let enabled = [
            (self.zscore.enabled, self.zscore.weight),
            (self.iforest.enabled, self.iforest.weight),
            (self.sesd.enabled, self.sesd.weight),
            (self.kmeans.enabled, self.kmeans.weight),
            (self.lstm_ae.enabled, self.lstm_ae.weight),
        ];
        if !enabled.iter().any(|&(on, w)| on && w > 0.0) {
            e.invalid("", "at least one detector must be enabled with a weight > 0");
        }
    }
}

impl RemoteWriteConfig {
    fn validate(&self, e: &mut ConfigErrors) {
        if !is_http_url(&self.url) {
            e.invalid("url", format!("must be an http(s) URL, got {:?}", self.url));
        }
        if self.max_samples_per_send == 0 {
            e.invalid("max_samples_per_send", "must be >= 1");
        }
        if self.queue_capacity == 0 {
            e.invalid("queue_capacity", "must be >= 1");
        }
        if self.min_backoff > self.max_backoff {
            e.invalid("min_backoff", "must be <= max_backoff");
        }
        if self.bearer_token.is_some() && self.bearer_token_file.is_some() {
            e.invalid("bearer_token", "set bearer_token or bearer_token_file, not both");
        }
    }
}

fn is_http_url(s: &str) -> bool {
    let rest = s.strip_prefix("http://").or_else(|| s.strip_prefix("https://"));
    rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/'))
}

/// The parser's message without its own location suffix (the line is reported separately).
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
