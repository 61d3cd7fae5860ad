//! The library API: the original design's embedding, without HTTP.
//!
//! The seed's quick start, step by step: load the configuration, create the detector, create
//! the alert manager, create the pipeline, train it on historical normal data, start it, feed
//! it a [`MetricVector`] every second, stop it.
//!
//! ```no_run
//! use dwcp_anomaly::{AlertManager, AnomalyDetector, Config, MetricVector, MonitoringPipeline};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::load(Some("configs/anomaly-detection.yaml".as_ref()))?;
//! let detector = AnomalyDetector::new(&config)?;
//! let alert_manager = AlertManager::new(&config);
//! let mut pipeline = MonitoringPipeline::new(detector, alert_manager);
//!
//! let normal: Vec<MetricVector> = Vec::new(); // historical normal data
//! pipeline.train("link-1", &normal)?;
//!
//! let mut anomalies = pipeline.start()?; // alert channels of the config start here
//! let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
//! pipeline.process(MetricVector { timestamp_ms: now_ms, entity: "link-1".into(), latency_ms: 480.0, ..MetricVector::default() });
//! while let Ok(anomaly) = anomalies.try_recv() {
//!     println!("{} {:?} {:.2}", anomaly.entity(), anomaly.severity, anomaly.confidence);
//! }
//! pipeline.stop().await;
//! # Ok(()) }
//! ```
//!
//! [`MonitoringPipeline::process`] scores a vector at once (the service's `check_interval`
//! only paces `serve`, which assembles vectors from incoming series); the anomalies it finds
//! are returned, sent on the channel [`MonitoringPipeline::start`] gave, and handed to the alert
//! channels of the configuration (Alertmanager, Slack, PagerDuty, webhook, email), the log
//! included, exactly as `serve` does. Entities are named by one string (the `instance` label).

use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::alert::dispatch::Dispatcher;
use crate::alert::{AlertEvent, AlertTracker, SetupError};
use crate::config::Config;
use crate::detect::{DetectError, FeatureVector, ModelState};
use crate::onnx::OnnxError;
use crate::pipeline::Scorer;
use crate::sample::{LABEL_INSTANCE, SelectorError};
use crate::telemetry::Telemetry;
use crate::vectorize::{Assembled, EntityStatus, EntityVector, Profile};

/// One vector of the seed's seven DWCP metrics (the `dwcp` profile's features, in order).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricVector {
    /// Time of the vector, milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The entity (link or host) it describes: the `instance` label.
    pub entity: String,
    /// Bandwidth, Mbps.
    pub bandwidth_mbps: f64,
    /// Latency, ms.
    pub latency_ms: f64,
    /// Packet loss, %.
    pub packet_loss_pct: f64,
    /// Jitter, ms.
    pub jitter_ms: f64,
    /// CPU usage, %.
    pub cpu_pct: f64,
    /// Memory usage, %.
    pub memory_pct: f64,
    /// Error rate, %.
    pub error_rate_pct: f64,
}

/// A vector of any profile: values in the order of the profile's features (NaN: missing).
#[derive(Debug, Clone, PartialEq)]
pub struct Vector {
    /// Time, milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The entity: the `instance` label.
    pub entity: String,
    /// Feature values in profile order.
    pub values: Vec<f64>,
}

impl From<MetricVector> for Vector {
    fn from(m: MetricVector) -> Self {
        let values = m.values().to_vec();
        Vector { timestamp_ms: m.timestamp_ms, entity: m.entity, values }
    }
}

impl From<&MetricVector> for Vector {
    fn from(m: &MetricVector) -> Self {
        m.clone().into()
    }
}

impl MetricVector {
    /// The seven values in the `dwcp` profile's order.
    ///
    /// ```
    /// use dwcp_anomaly::{MetricVector, Vector};
    /// let m = MetricVector { entity: "link-1".into(), latency_ms: 12.0, cpu_pct: 35.0, ..MetricVector::default() };
    /// assert_eq!(m.values(), [0.0, 12.0, 0.0, 0.0, 35.0, 0.0, 0.0]);
    /// let v: Vector = m.into();
    /// assert_eq!((v.entity.as_str(), v.values.len()), ("link-1", 7));
    /// ```
    pub fn values(&self) -> [f64; 7] {
        [
            self.bandwidth_mbps,
            self.latency_ms,
            self.packet_loss_pct,
            self.jitter_ms,
            self.cpu_pct,
            self.memory_pct,
            self.error_rate_pct,
        ]
    }
}

/// Why the detector or the pipeline could not be built.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The profile's selectors are invalid.
    #[error("invalid profile: {0}")]
    Profile(#[from] SelectorError),
    /// A model could not be loaded.
    #[error("{0}")]
    Onnx(#[from] OnnxError),
    /// An alert channel could not be set up.
    #[error("{0}")]
    Alert(#[from] SetupError),
    /// Training failed (too few vectors, wrong length).
    #[error("{0}")]
    Train(#[from] DetectError),
    /// `start` outside a tokio runtime (the alert channels run as tasks).
    #[error("start needs a tokio runtime: the alert channels run as tasks")]
    NoRuntime,
}

/// The ensemble of the configured detectors, one model per entity (the seed's
/// `NewAnomalyDetector`): z-score, isolation forest, seasonal ESD, k-means and the LSTM
/// autoencoder as `detect.*` enables them, for the profile `vectorize.profile` names.
pub struct AnomalyDetector {
    scorer: Scorer,
    profile: Arc<Profile>,
}

impl AnomalyDetector {
    /// Builds the detectors of `config` (loads the ONNX models it names).
    pub fn new(config: &Config) -> Result<Self, EmbedError> {
        let profile = Profile::from_config(&config.vectorize)?;
        let scorer = Scorer::new(config, &profile)?;
        Ok(Self { scorer, profile })
    }

    /// The detectors in each entity's ensemble, in order.
    pub fn detectors(&self) -> Vec<&'static str> {
        self.scorer.detector_names()
    }

    /// Feature names, the order of [`Vector::values`].
    pub fn features(&self) -> Vec<String> {
        self.profile.feature_names()
    }
}

/// Alert state and channels (the seed's `NewAlertManager`): firing, escalation, throttling
/// and resolution per entity, and the channels of `alert.*`.
pub struct AlertManager {
    config: Config,
    tracker: AlertTracker,
}

impl AlertManager {
    /// The alert settings and channels of `config`.
    pub fn new(config: &Config) -> Self {
        Self { config: config.clone(), tracker: AlertTracker::new(&config.alert) }
    }
}

/// What [`MonitoringPipeline::train`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainReport {
    /// Vectors the models were fitted on.
    pub used: usize,
    /// The entity's model state afterwards (`Ready` once fitted).
    pub state: ModelState,
}

/// Detector + alert manager (the seed's `NewMonitoringPipeline`): train, start, process, stop.
///
/// Trained on a quiet hour, it stays quiet on normal vectors and reports a latency spike with
/// its severity and the feature that moved:
///
/// ```
/// use dwcp_anomaly::{AlertManager, AnomalyDetector, Config, MetricVector, MonitoringPipeline};
///
/// let config = Config::load(None).unwrap(); // the embedded defaults
/// let mut pipeline =
///     MonitoringPipeline::new(AnomalyDetector::new(&config).unwrap(), AlertManager::new(&config));
/// let link = |s: i64, latency_ms: f64| MetricVector {
///     timestamp_ms: 1_700_000_000_000 + s * 1000,
///     entity: "link-1".into(),
///     bandwidth_mbps: 900.0 + (s % 7) as f64,
///     latency_ms,
///     packet_loss_pct: 0.1 + (s % 3) as f64 * 0.01,
///     jitter_ms: 2.0 + (s % 5) as f64 * 0.1,
///     cpu_pct: 40.0 + (s % 11) as f64,
///     memory_pct: 60.0 + (s % 4) as f64,
///     error_rate_pct: 0.01 * (s % 2) as f64,
/// };
/// let normal: Vec<MetricVector> = (0..3600).map(|s| link(s, 20.0 + (s % 9) as f64 * 0.5)).collect();
/// let report = pipeline.train("link-1", &normal).unwrap();
/// assert_eq!(report.used, 3600);
///
/// assert!(pipeline.process(link(3600, 21.0)).is_empty());
/// let events = pipeline.process(link(3601, 480.0));
/// let spike = events.first().expect("the spike is reported");
/// assert!(spike.confidence > 0.7);
/// assert_eq!(spike.features[0].feature, "latency_ms");
/// ```
pub struct MonitoringPipeline {
    detector: AnomalyDetector,
    alerts: AlertManager,
    telemetry: Arc<Telemetry>,
    running: Option<Running>,
}

struct Running {
    dispatcher: Dispatcher,
    anomalies: mpsc::UnboundedSender<AlertEvent>,
    shutdown: watch::Sender<bool>,
}

impl MonitoringPipeline {
    /// A pipeline scoring with `detector` and alerting through `alerts`.
    pub fn new(detector: AnomalyDetector, alerts: AlertManager) -> Self {
        Self { detector, alerts, telemetry: Arc::new(Telemetry::default()), running: None }
    }

    /// Fits `entity`'s models on historical normal vectors (oldest first), so it scores from
    /// its first vector instead of warming up on `detect.min_fit_points` live ones.
    pub fn train<V: Into<Vector> + Clone>(
        &mut self,
        entity: &str,
        normal: &[V],
    ) -> Result<TrainReport, EmbedError> {
        let history: Vec<FeatureVector> = normal
            .iter()
            .map(|v| {
                let v: Vector = v.clone().into();
                FeatureVector { timestamp_ms: v.timestamp_ms, values: v.values }
            })
            .collect();
        let id = entity_id(entity);
        let model = self.detector.scorer.model(id);
        model.fit_on(&history)?;
        let state = if model.is_ready() { ModelState::Ready } else { ModelState::Warming };
        Ok(TrainReport { used: history.len(), state })
    }

    /// Starts the alert channels (inside a tokio runtime) and returns the channel every
    /// anomaly event (firing, escalated, resolved) is sent on.
    pub fn start(&mut self) -> Result<mpsc::UnboundedReceiver<AlertEvent>, EmbedError> {
        tokio::runtime::Handle::try_current().map_err(|_| EmbedError::NoRuntime)?;
        let (shutdown, rx) = watch::channel(false);
        let active = self.alerts.tracker.active();
        let dispatcher =
            crate::alert::dispatcher(&self.alerts.config, Arc::clone(&self.telemetry), &rx, &active)?;
        let (anomalies, events) = mpsc::unbounded_channel();
        self.running = Some(Running { dispatcher, anomalies, shutdown });
        Ok(events)
    }

    /// Scores one vector now. Returns the anomaly events it raised (also sent on the
    /// channel of [`start`](Self::start) and to the alert channels, when started).
    pub fn process(&mut self, vector: impl Into<Vector>) -> Vec<AlertEvent> {
        let v: Vector = vector.into();
        let id = entity_id(&v.entity);
        let labels: crate::vectorize::EntityLabels =
            vec![(LABEL_INSTANCE.to_string(), v.entity.clone())].into();
        let assembled = Assembled {
            vectors: vec![EntityVector {
                entity: id,
                labels: Arc::clone(&labels),
                timestamp_ms: v.timestamp_ms,
                values: v.values,
                sample_ms: v.timestamp_ms,
                received_ms: crate::rfc3339::now_ms(),
            }],
            status: vec![EntityStatus { entity: id, labels, stale: false }],
            ..Assembled::default()
        };
        let (_, events, _) =
            self.detector.scorer.check(assembled, v.timestamp_ms, Some(&mut self.alerts.tracker));
        if let Some(r) = &self.running {
            for e in &events {
                r.dispatcher.dispatch(e);
                let _ = r.anomalies.send(e.clone());
            }
        }
        events
    }

    /// Stops the alert channels, letting them deliver what is queued (10 s at most), as
    /// `serve` does at shutdown.
    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            let _ = r.shutdown.send(true);
            drop(r.anomalies);
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), r.dispatcher.close()).await;
        }
    }
}

/// The id of an entity named `name` (its `instance` label).
fn entity_id(name: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = rustc_hash::FxHasher::default();
    (LABEL_INSTANCE, name).hash(&mut h);
    h.finish()
}
