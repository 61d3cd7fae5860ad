//! Names of the service's own metrics (`dwcp_anomaly_*`), in one place.

/// Samples received, by protocol.
pub const SAMPLES_RECEIVED: &str = "dwcp_anomaly_ingest_samples_received_total";
/// Samples stored by the vectorizer, by protocol: received = accepted + rejected + unmatched.
pub const SAMPLES_ACCEPTED: &str = "dwcp_anomaly_ingest_samples_accepted_total";
/// Samples rejected, by reason.
pub const SAMPLES_REJECTED: &str = "dwcp_anomaly_samples_rejected_total";
/// Samples of series that no profile feature selects.
pub const SAMPLES_UNMATCHED: &str = "dwcp_anomaly_ingest_samples_unmatched_total";
/// Series merged into another series of the same entity and feature at a check, without the
/// profile asking (`merge_series`): the entity labels do not separate them.
pub const MERGED_SERIES: &str = "dwcp_anomaly_vectorize_merged_series_total";
/// Ingest requests, by protocol and HTTP status code.
pub const REQUESTS: &str = "dwcp_anomaly_ingest_requests_total";
/// Live entities.
pub const ENTITIES: &str = "dwcp_anomaly_entities";
/// Vectors scored.
pub const VECTORS_SCORED: &str = "dwcp_anomaly_vectors_scored_total";
/// Anomalous vectors, by severity.
pub const ANOMALIES: &str = "dwcp_anomaly_anomalies_total";
/// Anomaly events (an entity's alert firing or escalating), by profile, top feature and
/// severity: the dashboard's count by metric and severity distribution.
pub const EVENTS: &str = "dwcp_anomaly_events_total";
/// Errors inside running components, by stage.
pub const ERRORS: &str = "dwcp_anomaly_errors_total";
/// Duration of one check (assemble + score + publish).
pub const CHECK_DURATION: &str = "dwcp_anomaly_check_duration_seconds";
/// Seconds the last check finished after the next one was due (0 while checks keep up).
pub const CHECK_LAG: &str = "dwcp_anomaly_check_lag_seconds";
/// Unix time the last check finished: `time() - …` grows when checks stall.
pub const LAST_CHECK: &str = "dwcp_anomaly_last_check_timestamp_seconds";
/// Live entities by model state (warming, ready, stale).
pub const ENTITY_STATES: &str = "dwcp_anomaly_entities_by_state";
/// Entity models (re)fitted.
pub const MODEL_FITS: &str = "dwcp_anomaly_model_fits_total";
/// Fits still due when the time for fits after a check (`detect.fit_share`) ran out.
pub const FITS_DEFERRED: &str = "dwcp_anomaly_model_fits_deferred_total";
/// Flag onset to detection: from the data time of the newest sample in the vector that raised
/// an entity's flag to the check that published it.
pub const DETECTION_DELAY: &str = "dwcp_anomaly_detection_delay_seconds";
/// Sample receipt to score: from the receipt of an entity's first sample since the previous
/// check to the check that published its score.
pub const SCORE_LATENCY: &str = "dwcp_anomaly_score_latency_seconds";
/// Ingest requests refused to protect the service (retryable), by protocol and the limit.
pub const INGEST_REFUSED: &str = "dwcp_anomaly_ingest_refused_total";
/// Entities dropped with their models to bring memory under `limits.shed_memory_bytes`.
pub const ENTITIES_SHED: &str = "dwcp_anomaly_entities_shed_total";
/// Requests refused for their credentials, by listener and reason.
pub const AUTH_FAILURES: &str = "dwcp_anomaly_auth_failures_total";
/// Samples (series points) written by exporters.
pub const EXPORT_SENT: &str = "dwcp_anomaly_export_samples_sent_total";
/// Samples an exporter gave up on, by reason.
pub const EXPORT_FAILED: &str = "dwcp_anomaly_export_samples_failed_total";
/// Export retries.
pub const EXPORT_RETRIES: &str = "dwcp_anomaly_export_retries_total";
/// Checks waiting in an exporter's queue.
pub const EXPORT_QUEUE: &str = "dwcp_anomaly_export_queue_depth";
/// Alert notifications delivered, by channel and severity.
pub const ALERTS_SENT: &str = "dwcp_anomaly_alerts_sent_total";
/// Alert notifications not delivered, by channel and reason.
pub const ALERTS_FAILED: &str = "dwcp_anomaly_alerts_failed_total";
/// Alert delivery retries, by channel.
pub const ALERT_RETRIES: &str = "dwcp_anomaly_alert_retries_total";
/// Notifications waiting in a channel's queue.
pub const ALERT_QUEUE: &str = "dwcp_anomaly_alert_queue_depth";
/// 1 when the last scrape of a target succeeded, by target.
pub const SCRAPE_UP: &str = "dwcp_anomaly_scrape_up";
/// Duration of the last scrape of a target, by target.
pub const SCRAPE_DURATION: &str = "dwcp_anomaly_scrape_duration_seconds";
/// Samples in the last scrape of a target, by target.
pub const SCRAPE_SAMPLES: &str = "dwcp_anomaly_scrape_samples";
/// Constant 1 with version and backend labels.
pub const BUILD_INFO: &str = "dwcp_anomaly_build_info";
