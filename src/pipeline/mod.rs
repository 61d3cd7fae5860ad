//! Pipeline: builds the stages and wires them together.
//!
//! Ingest requests write into the vectorizer under a short lock (O(samples), no scoring).
//! Every `check_interval` the tick task takes the assembled vectors out under the same lock
//! and scores them on a blocking thread, so scoring never runs on the request path or a tokio
//! worker. The result is published for `/metrics` and offered to each exporter's bounded queue
//! and to the alert queue; a full queue drops (and counts) instead of waiting. Shutdown stops
//! the ticks, closes the queues and lets exporters drain in flow order.

pub mod replay;
mod scorer;
pub mod state;
pub mod train;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::RwLock;

use thiserror::Error;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use crate::alert::{AlertKind, AlertTracker};
use crate::check::history::{PageHistory, SharedHistory};
use crate::check::{CheckScores, Scoreboard};
use crate::config::Config;
use crate::detect::{ModelState, Severity};
use crate::export;
use crate::ingest::SampleSink;
use crate::sample::{LabelRef, SelectorError};
use crate::telemetry::Telemetry;
use crate::vectorize::{Vectorizer, VectorizerSink, entity_string};

pub use scorer::{CheckStats, Scorer};

/// Why the pipeline could not start.
#[derive(Debug, Error)]
pub enum PipelineError {
    /// The profile's selectors are invalid.
    #[error("invalid profile: {0}")]
    Profile(#[from] SelectorError),
    /// A remote-write client could not be built.
    #[error("cannot build the remote-write client: export.remote_write: {0}")]
    Client(#[from] crate::retry::ClientError),
    /// An OTLP exporter could not be set up.
    #[error("{0}")]
    Otlp(#[from] export::otlp::OtlpSetupError),
    /// An alert channel could not be set up.
    #[error("{0}")]
    Alert(#[from] crate::alert::SetupError),
    /// A model could not be loaded.
    #[error("{0}")]
    Onnx(#[from] crate::onnx::OnnxError),
}

/// A built, not yet running pipeline.
pub struct Pipeline {
    cfg: Config,
    sink: Arc<VectorizerSink>,
    scoreboard: Scoreboard,
    telemetry: Arc<Telemetry>,
    scorer: Scorer,
    alerts: AlertTracker,
    ready: Arc<AtomicBool>,
    history: SharedHistory,
}

use crate::rfc3339::now_ms;

impl Pipeline {
    /// Builds every stage from `cfg`.
    pub fn new(cfg: &Config, telemetry: Arc<Telemetry>) -> Result<Self, PipelineError> {
        let vectorizer = Vectorizer::new(&cfg.vectorize)?;
        let mut scorer = Scorer::new(cfg, vectorizer.profile())?;
        scorer.fit_between_checks();
        telemetry.set_onnx_backend(scorer.onnx_backend());
        let mut alerts = AlertTracker::new(&cfg.alert);
        // Every feature (and severity) at 0, so that increase() sees an event's first count
        // and a dashboard shows 0 rather than no data.
        let profile = vectorizer.profile();
        for feature in profile.feature_names() {
            telemetry.merged_series.with(&[&profile.name, &feature]);
            for severity in Severity::ANOMALOUS {
                telemetry.events.with(&[&profile.name, &feature, severity.as_str()]);
            }
        }
        if let Some(dir) = &cfg.state_dir {
            restore(&mut scorer, &vectorizer, dir, cfg.detect.fit_every);
            match crate::alert::state::load(dir) {
                Ok(None) => {}
                Ok(Some(saved)) => {
                    info!(file = %crate::alert::state::path_in(dir).display(), firing = saved.firing.len(), "Restored alert state.");
                    alerts.restore(saved);
                }
                Err(error) => warn!(%error, "Ignoring saved alert state; alerts start clean."),
            }
        }
        let empty = CheckScores {
            profile: vectorizer.profile().name.as_str().into(),
            features: vectorizer.profile().feature_names().into(),
            ..CheckScores::default()
        };
        Ok(Self {
            cfg: cfg.clone(),
            sink: Arc::new(VectorizerSink::new(vectorizer, cfg.vectorize.max_new_entities_per_second)),
            scoreboard: Arc::new(RwLock::new(Arc::new(empty))),
            telemetry,
            scorer,
            alerts,
            ready: Arc::new(AtomicBool::new(false)),
            history: PageHistory::shared(),
        })
    }

    /// Where ingest writes.
    pub fn sink(&self) -> Arc<dyn SampleSink> {
        self.sink.clone()
    }

    /// The latest check.
    pub fn scoreboard(&self) -> Scoreboard {
        Arc::clone(&self.scoreboard)
    }

    /// Recent checks and anomalies for the live page, updated after every check.
    pub fn history(&self) -> SharedHistory {
        Arc::clone(&self.history)
    }

    /// Set once the tick task runs.
    pub fn ready_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.ready)
    }

    /// Starts the check loop, exporters and notifiers; the task ends after `shutdown` fires
    /// and the exporters drained.
    pub fn spawn(self, shutdown: watch::Receiver<bool>) -> Result<JoinHandle<()>, PipelineError> {
        let mut exporters =
            export::remote_write::spawn(&self.cfg.export.remote_write, &self.telemetry, &shutdown)?;
        exporters.extend(export::otlp::spawn(&self.cfg.export.otlp, &self.telemetry, &shutdown)?);
        let dispatcher = crate::alert::dispatcher(
            &self.cfg,
            Arc::clone(&self.telemetry),
            &shutdown,
            &self.alerts.active(),
        )?;
        if !dispatcher.channels().is_empty() {
            info!(channels = ?dispatcher.channels(), "Alert channels ready.");
        }
        Ok(tokio::spawn(async move {
            let Pipeline { cfg, sink, scoreboard, telemetry, scorer, alerts, ready, history } = self;
            let mut scorer = Some((scorer, alerts));
            let mut ticks = tokio::time::interval(cfg.check_interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut shutdown = shutdown;
            let mut last_save = Instant::now();
            ready.store(true, Ordering::SeqCst);
            info!(interval = ?cfg.check_interval, profile = %scoreboard.read().profile, "Pipeline started.");
            loop {
                let due = tokio::select! {
                    due = ticks.tick() => due.into_std(),
                    _ = shutdown.wait_for(|s| *s) => break,
                };
                let started = Instant::now();
                let now = now_ms();
                let shed = shed_if_over(&cfg.limits, &sink, &telemetry);
                let mut assembled = sink.lock().assemble(now);
                assembled.dropped.extend(shed);
                telemetry.entities.with(&[]).set(assembled.status.len() as f64);
                let Some((mut sc, mut alerts)) = scorer.take() else { break };
                let joined = tokio::task::spawn_blocking(move || {
                    let out = sc.check(assembled, now, Some(&mut alerts));
                    (sc, alerts, out)
                })
                .await;
                let (mut sc, alerts, (check, events, stats)) = match joined {
                    Ok(x) => x,
                    Err(err) => {
                        error!(error = %err, "Scoring task failed; stopping the pipeline.");
                        break;
                    }
                };
                record(&telemetry, &stats);
                report_merged(&telemetry, &check);
                let check = Arc::new(check);
                *scoreboard.write() = Arc::clone(&check);
                record_published(&telemetry, &stats, &check);
                history.lock().record(&check);
                if stats.warming > 0 {
                    info!(
                        entities = stats.warming,
                        "Warming up: {}/{} vectors.", stats.warming_vectors, stats.warmup_target
                    );
                }
                for ex in &exporters {
                    if ex.queue.try_send(Arc::clone(&check)).is_err() {
                        telemetry.errors.with(&["export", "queue_full"]).inc();
                        debug!(exporter = %ex.id, "Exporter queue full; dropped a check.");
                    }
                }
                for ev in &events {
                    if ev.kind != AlertKind::Resolved {
                        let severity = ev.severity.as_str();
                        telemetry.events.with(&[&ev.profile, ev.top_feature(), severity]).inc();
                    }
                    dispatcher.dispatch(ev);
                }
                let took = started.elapsed();
                telemetry.check_duration.observe(took.as_secs_f64());
                let next_due = due + cfg.check_interval;
                telemetry
                    .check_lag
                    .with(&[])
                    .set(Instant::now().saturating_duration_since(next_due).as_secs_f64());
                // Between checks: the fits the check left (detect.fit_share of the interval at
                // most, and never into the next check), then the state file when due.
                let room = next_due.saturating_duration_since(Instant::now()).mul_f64(0.8);
                let deadline = Instant::now() + cfg.check_interval.mul_f64(cfg.detect.fit_share).min(room);
                let save_to =
                    cfg.state_dir.clone().filter(|_| last_save.elapsed() >= cfg.state_save_interval);
                if save_to.is_some() {
                    last_save = Instant::now();
                }
                let fitting = Instant::now();
                let joined = tokio::task::spawn_blocking(move || {
                    let fits = sc.fit_pending(deadline);
                    if let Some(dir) = save_to {
                        save_state(&sc, &alerts, &dir);
                    }
                    // Every check, not only after shedding: a check frees what the previous
                    // one's scores held, and glibc keeps freed pages mapped. At 10k entities
                    // the resident size after 8 minutes was 310 MiB without this and 191 MiB
                    // with it, for a few ms per check (issue 28, docs/performance.md).
                    release_freed_memory();
                    (sc, alerts, fits)
                })
                .await;
                let (sc, alerts, fits) = match joined {
                    Ok(x) => x,
                    Err(err) => {
                        error!(error = %err, "Fitting task failed; stopping the pipeline.");
                        break;
                    }
                };
                debug!(
                    check = ?took,
                    fits = fits.fits,
                    pending = fits.pending,
                    after = ?fitting.elapsed(),
                    "Check done, then fits and saving."
                );
                scorer = Some((sc, alerts));
                telemetry.model_fits.with(&[]).add(fits.fits as f64);
                telemetry.fits_deferred.with(&[]).add(fits.pending as f64);
                if fits.errors > 0 {
                    telemetry.errors.with(&["detect", "fit"]).add(fits.errors as f64);
                }
            }
            ready.store(false, Ordering::SeqCst);
            if let (Some(dir), Some((sc, alerts))) = (cfg.state_dir.clone(), scorer.take()) {
                let _ = tokio::task::spawn_blocking(move || save_state(&sc, &alerts, &dir)).await;
            }
            let drain = async {
                for ex in exporters {
                    drop(ex.queue);
                    let _ = ex.task.await;
                }
                dispatcher.close().await;
            };
            if tokio::time::timeout(Duration::from_secs(10), drain).await.is_err() {
                warn!("Exporters did not drain within 10s; exiting anyway.");
            }
            info!("Pipeline stopped.");
        }))
    }
}

/// Over `limits.shed_memory_bytes`, drops a tenth of the entities (those seen least recently)
/// from the vectorizer and returns their ids for the scorer to drop their models.
fn shed_if_over(
    limits: &crate::config::LimitsConfig,
    sink: &VectorizerSink,
    telemetry: &Telemetry,
) -> Vec<u64> {
    if limits.shed_memory_bytes == 0 {
        return Vec::new();
    }
    let Some(rss) = crate::telemetry::resident_bytes().filter(|&rss| rss >= limits.shed_memory_bytes) else {
        return Vec::new();
    };
    let mut v = sink.lock();
    let n = v.entity_count().div_ceil(10);
    let shed = v.shed(n);
    drop(v);
    telemetry.entities_shed.with(&[]).add(shed.len() as f64);
    warn!(
        rss,
        limit = limits.shed_memory_bytes,
        shed = shed.len(),
        "Resident memory is at limits.shed_memory_bytes: dropped the entities seen least recently, with their models."
    );
    shed
}

/// Hands freed memory back to the system (glibc keeps it otherwise, and the memory limits read
/// the resident size).
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel; it touches no live
    // allocation and is thread-safe in glibc.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Loads saved state into `scorer`; problems are logged and the entities warm up instead.
fn restore(scorer: &mut Scorer, vectorizer: &Vectorizer, dir: &std::path::Path, fit_every: Duration) {
    let (profile, features) = scorer.profile();
    let (profile, features) = (profile.to_string(), features.to_vec());
    match state::load(dir, &profile, &features) {
        Ok(None) => info!(dir = %dir.display(), "No saved state; entities warm up from live data."),
        Ok(Some(saved)) => {
            let now = now_ms();
            let (mut ok, mut failed) = (0, 0);
            for e in saved.entities {
                let labels: Vec<LabelRef<'_>> =
                    e.labels.iter().map(|(k, v)| LabelRef { name: k.as_str(), value: v.as_str() }).collect();
                let id = vectorizer.entity_id(&labels);
                // Stagger the next refits over one period so restored entities do not refit at once.
                let offset = (id % (fit_every.as_millis().max(1) as u64)) as i64;
                match scorer.restore(id, e.clone(), now - offset) {
                    Ok(()) => ok += 1,
                    Err(error) => {
                        failed += 1;
                        warn!(%error, labels = ?e.labels, "Cannot refit a saved entity; it warms up again.");
                    }
                }
            }
            info!(file = %state::path_in(dir).display(), entities = ok, failed, "Restored model state.");
        }
        Err(error) => warn!(%error, "Ignoring saved state; entities warm up from live data."),
    }
}

/// Saves `scorer`'s and `alerts`' state to `dir`, logging the outcome.
fn save_state(scorer: &Scorer, alerts: &AlertTracker, dir: &std::path::Path) {
    let (profile, features) = scorer.profile();
    let fitted = scorer.fitted();
    let entities = fitted.iter().map(|(labels, m)| (*labels, m.history()));
    match state::save_each(dir, profile, features, now_ms(), fitted.len(), entities) {
        Ok(file) => debug!(file = %file.display(), entities = fitted.len(), "Saved model state."),
        Err(error) => warn!(%error, "Cannot save model state."),
    }
    if let Err(error) = crate::alert::state::save(dir, &alerts.snapshot(now_ms())) {
        warn!(%error, "Cannot save alert state.");
    }
}

/// Counts every feature that combined several series of one entity without the profile asking,
/// and warns once per entity and feature, naming the labels that set the series apart.
fn report_merged(t: &Telemetry, check: &CheckScores) {
    for m in &check.merged {
        let feature = check.features.get(m.feature as usize).map_or("?", String::as_str);
        t.merged_series.with(&[&check.profile, feature]).add(f64::from(m.series - 1));
        if let Some(apart) = &m.first {
            warn!(
                entity = %entity_string(&m.labels),
                feature,
                series = m.series,
                apart = %entity_string(apart),
                "Several series feed one feature of one entity and are merged: the entity labels do not \
                 separate them. Keep the sender's labels (honor_labels: true on a scrape job), add the \
                 label that differs to vectorize.entity_labels, or set merge_series: true on the feature \
                 if one entity really has several (docs/troubleshooting.md)."
            );
        }
    }
}

/// What a check says once its scores are published: how long samples waited for their scores,
/// how long flags took from the data's time, entities by state, when it finished.
fn record_published(t: &Telemetry, s: &CheckStats, check: &CheckScores) {
    let now = now_ms();
    for r in &s.received_ms {
        t.score_latency.observe((now - r).max(0) as f64 / 1000.0);
    }
    for o in &s.onsets_ms {
        t.detection_delay.observe((now - o).max(0) as f64 / 1000.0);
    }
    let mut states = [0u64; ModelState::ALL.len()];
    for e in &check.entities {
        states[e.state as usize] += 1;
    }
    for (state, n) in ModelState::ALL.iter().zip(states) {
        t.entity_states.with(&[state.as_str()]).set(n as f64);
    }
    t.last_check.with(&[]).set(now as f64 / 1000.0);
}

fn record(t: &Telemetry, s: &CheckStats) {
    t.vectors_scored.with(&[]).add(s.scored as f64);
    t.model_fits.with(&[]).add(s.fits as f64);
    for (sev, n) in Severity::ANOMALOUS.iter().zip(s.anomalies) {
        if n > 0 {
            t.anomalies.with(&[sev.as_str()]).add(n as f64);
        }
    }
    if s.errors > 0 {
        t.errors.with(&["detect", "score"]).add(s.errors as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::SampleSink;
    use crate::sample::{LabelRef, SampleRef, SeriesRef};

    #[test]
    fn over_the_shedding_limit_a_tenth_of_the_entities_go_and_are_counted() {
        let cfg = crate::config::Config::default();
        let sink = VectorizerSink::new(Vectorizer::new(&cfg.vectorize).unwrap(), 0);
        let names: Vec<String> = (0..25).map(|i| format!("n{i}")).collect();
        let series: Vec<[LabelRef<'_>; 3]> = names
            .iter()
            .map(|n| {
                [
                    LabelRef { name: "__name__", value: "dwcp_latency_ms" },
                    LabelRef { name: "instance", value: n },
                    LabelRef { name: "job", value: "dwcp" },
                ]
            })
            .collect();
        let samples = [SampleRef { value: 1.0, timestamp_ms: 1_700_000_000_000 }];
        let views: Vec<SeriesRef<'_>> = series
            .iter()
            .map(|l| SeriesRef { labels: l.to_vec(), samples: samples.to_vec(), histograms: 0 })
            .collect();
        sink.accept(&views.iter().collect::<Vec<_>>());
        let t = Telemetry::default();
        let roomy = crate::config::LimitsConfig { shed_memory_bytes: u64::MAX, ..Default::default() };
        assert!(shed_if_over(&roomy, &sink, &t).is_empty());
        let tight = crate::config::LimitsConfig { shed_memory_bytes: 1, ..Default::default() };
        assert_eq!(shed_if_over(&tight, &sink, &t).len(), 3);
        assert_eq!(sink.lock().entity_count(), 22);
        assert_eq!(t.entities_shed.value(&[]), 3.0);
        release_freed_memory();
    }
}
