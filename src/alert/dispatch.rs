//! Delivery: one bounded queue and one task per channel, routed by severity, with retries.
//!
//! [`Dispatcher::dispatch`] never waits: it logs the event, then offers it to every channel
//! whose floor (`*_min_severity`) the event's severity reaches; a full queue drops the event
//! for that channel and counts `dwcp_anomaly_alerts_failed_total{reason="queue_full"}`. Each
//! channel's task sends one event at a time and retries what [`SendError::Retry`] reports
//! with exponential backoff and ±20 % jitter (honouring `Retry-After`), so a slow or failing
//! channel delays only itself. A channel that must repeat itself (Alertmanager re-posts firing
//! alerts before they expire) says so with [`Channel::resend_every`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::{AlertEvent, log_event};
use crate::config::{AlertConfig, MinSeverity};
use crate::retry::RetryPolicy;
use crate::rng::Rng;
use crate::telemetry::Telemetry;

/// Why a notification was not delivered.
#[derive(Debug, Clone, PartialEq)]
pub enum SendError {
    /// Transient (5xx, 429, connection error, timeout): worth another attempt.
    Retry {
        /// What happened, for the log.
        reason: String,
        /// The receiver's `Retry-After`, if it gave one.
        after: Option<Duration>,
    },
    /// The receiver refused it (4xx, invalid address): retrying cannot help.
    Rejected(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Retry { reason, .. } => write!(f, "{reason} (retryable)"),
            SendError::Rejected(reason) => write!(f, "{reason} (rejected)"),
        }
    }
}

/// A notification channel. Implementations own their client and render their own payload.
pub trait Channel: Send + Sync + 'static {
    /// The `channel` label value (`slack`, `pagerduty`, ...).
    fn name(&self) -> &'static str;

    /// Delivers one event (firing, escalated or resolved) once; the caller retries.
    fn send(&self, event: &AlertEvent) -> impl Future<Output = Result<(), SendError>> + Send;

    /// How often [`Channel::resend`] runs; `None` for channels that never repeat.
    fn resend_every(&self) -> Option<Duration> {
        None
    }

    /// Repeats what must stay visible (Alertmanager's firing alerts before they expire).
    fn resend(&self) -> impl Future<Output = Result<(), SendError>> + Send {
        async { Ok(()) }
    }
}

/// POSTs a JSON body, mapping the answer the way every HTTP channel here needs: 2xx is
/// delivered, 429 and 5xx are retried (with `Retry-After`), other statuses are rejected with
/// the status and the start of the body.
pub async fn post_json(req: reqwest::RequestBuilder, body: &serde_json::Value) -> Result<(), SendError> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    post_body(req.header(reqwest::header::CONTENT_TYPE, "application/json"), bytes).await
}

/// Like [`post_json`] for a body already encoded (e.g. one that was signed).
pub async fn post_body(req: reqwest::RequestBuilder, body: Vec<u8>) -> Result<(), SendError> {
    let resp =
        req.body(body).send().await.map_err(|e| SendError::Retry { reason: error_chain(&e), after: None })?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let after = crate::retry::retry_after(resp.headers());
    let text = resp.text().await.unwrap_or_default();
    let text: String = text.trim().chars().take(200).collect();
    let reason = format!("HTTP {}: {text}", status.as_u16());
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        Err(SendError::Retry { reason, after })
    } else {
        Err(SendError::Rejected(reason))
    }
}

/// An error with its sources (reqwest's top-level message hides the cause).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// A channel's queue as the dispatcher holds it.
struct Route {
    name: &'static str,
    floor: MinSeverity,
    queue: mpsc::Sender<AlertEvent>,
}

/// Routes events to the channels' queues. Cheap to call from the pipeline: never blocks.
pub struct Dispatcher {
    log: bool,
    routes: Vec<Route>,
    tasks: Vec<JoinHandle<()>>,
    telemetry: Arc<Telemetry>,
}

impl Dispatcher {
    /// A dispatcher with the log channel only (when `log` is set).
    pub fn new(log: bool, telemetry: Arc<Telemetry>) -> Self {
        Self { log, routes: Vec::new(), tasks: Vec::new(), telemetry }
    }

    /// Starts `channel`'s task with its own queue of `cfg.queue_size`, receiving events of
    /// severity `floor` and above.
    pub fn add<C: Channel>(
        &mut self,
        channel: C,
        floor: MinSeverity,
        cfg: &AlertConfig,
        shutdown: &watch::Receiver<bool>,
    ) {
        let name = channel.name();
        let (tx, rx) = mpsc::channel(cfg.queue_size.max(1));
        let worker = Worker {
            channel,
            policy: RetryPolicy {
                retries: cfg.retries,
                backoff: cfg.retry_backoff,
                max_backoff: cfg.retry_max_backoff,
            },
            telemetry: Arc::clone(&self.telemetry),
            shutdown: shutdown.clone(),
        };
        self.telemetry.alert_queue.with(&[name]).set(0.0);
        self.tasks.push(tokio::spawn(worker.run(rx)));
        self.routes.push(Route { name, floor, queue: tx });
    }

    /// Names of the channels added.
    pub fn channels(&self) -> Vec<&'static str> {
        self.routes.iter().map(|r| r.name).collect()
    }

    /// Logs `event` and queues it for every channel whose floor it reaches.
    pub fn dispatch(&self, event: &AlertEvent) {
        let t = &self.telemetry;
        if self.log {
            log_event(event);
            t.alerts_sent.with(&["log", event.severity.as_str()]).inc();
        }
        for r in self.routes.iter().filter(|r| event.severity as u8 >= r.floor.rank()) {
            match r.queue.try_send(event.clone()) {
                Ok(()) => t.alert_queue.with(&[r.name]).inc(),
                Err(_) => {
                    t.alerts_failed.with(&[r.name, "queue_full"]).inc();
                    warn!(channel = r.name, entity = %event.entity(), "Alert queue full; dropped a notification.");
                }
            }
        }
    }

    /// Closes the queues and waits for the channels to deliver what they hold (a pending retry
    /// ends at shutdown).
    pub async fn close(self) {
        drop(self.routes);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

struct Worker<C> {
    channel: C,
    policy: RetryPolicy,
    telemetry: Arc<Telemetry>,
    shutdown: watch::Receiver<bool>,
}

impl<C: Channel> Worker<C> {
    async fn run(mut self, mut rx: mpsc::Receiver<AlertEvent>) {
        let name = self.channel.name();
        let mut resend = self.channel.resend_every().map(|every| {
            let mut i = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });
        let mut rng = Rng::new(name.len() as u64 ^ 0xa1e7);
        loop {
            let tick = async {
                match resend.as_mut() {
                    Some(i) => {
                        i.tick().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                ev = rx.recv() => {
                    let Some(ev) = ev else { break };
                    self.telemetry.alert_queue.with(&[name]).set(rx.len() as f64);
                    self.deliver(&ev, &mut rng).await;
                }
                _ = tick => {
                    if let Err(error) = self.channel.resend().await {
                        self.telemetry.alerts_failed.with(&[name, "resend"]).inc();
                        warn!(channel = name, %error, "Re-posting firing alerts failed; next try at the next resend.");
                    }
                }
            }
        }
    }

    async fn deliver(&mut self, ev: &AlertEvent, rng: &mut Rng) {
        let name = self.channel.name();
        let mut attempt = 0;
        loop {
            let error = match self.channel.send(ev).await {
                Ok(()) => {
                    self.telemetry.alerts_sent.with(&[name, ev.severity.as_str()]).inc();
                    debug!(channel = name, entity = %ev.entity(), kind = ?ev.kind, "Alert delivered.");
                    return;
                }
                Err(e) => e,
            };
            let after = match &error {
                SendError::Rejected(_) => {
                    self.telemetry.alerts_failed.with(&[name, "rejected"]).inc();
                    warn!(channel = name, entity = %ev.entity(), %error, "Alert rejected by the receiver.");
                    return;
                }
                SendError::Retry { after, .. } => *after,
            };
            if attempt >= self.policy.retries {
                self.telemetry.alerts_failed.with(&[name, "retries_exhausted"]).inc();
                warn!(channel = name, entity = %ev.entity(), %error, attempts = attempt + 1, "Alert not delivered; giving up.");
                return;
            }
            attempt += 1;
            self.telemetry.alert_retries.with(&[name]).inc();
            let delay = self.policy.delay(attempt, after, rng);
            debug!(channel = name, %error, ?delay, attempt, "Alert delivery failed; retrying.");
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.shutdown.wait_for(|s| *s) => {
                    self.telemetry.alerts_failed.with(&[name, "shutdown"]).inc();
                    return;
                }
            }
        }
    }
}
