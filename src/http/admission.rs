//! Whether an ingest request may start: at most `ingest.max_concurrent_requests` at once, none
//! while the process's resident memory is at or over `limits.max_memory_bytes`, none while the
//! last check finished more than `limits.max_check_lag` late, and none while the samples of the
//! last second exceed `ingest.max_samples_per_second`.
//!
//! Both refusals are retryable and say so — HTTP 503 with `Retry-After`, gRPC `UNAVAILABLE` —
//! because every sender retries them: Prometheus retries 5xx always but 429 only with
//! `retry_on_http_429`, so a 429 would make a default Prometheus drop the batch. The refusal
//! comes before the body is decoded, so a refused request costs no memory, and everything
//! already accepted is still scored. Refusals are counted by protocol and limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::Mutex;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::telemetry::Telemetry;

/// The memory reading is reused for this long (reading `/proc` costs a few microseconds).
const MEMORY_READ_EVERY_MS: i64 = 100;

/// The admission state of the ingest endpoints.
pub struct Admission {
    slots: Arc<Semaphore>,
    max_requests: usize,
    max_memory: u64,
    max_lag_s: f64,
    rss: AtomicU64,
    read_at_ms: AtomicI64,
    /// `ingest.max_samples_per_second` and its bucket (0: unlimited).
    sample_rate: f64,
    samples: Mutex<SampleBucket>,
}

/// Samples that may still come this second; negative after a big request (paid off by time).
#[derive(Debug)]
struct SampleBucket {
    tokens: f64,
    at: Instant,
}

impl Admission {
    /// `max_requests` at once; `max_memory` bytes resident at most (0: no ceiling); checks at
    /// most `max_check_lag` late (zero: no bound).
    pub fn new(max_requests: usize, max_memory: u64, max_check_lag: std::time::Duration) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max_requests)),
            max_requests,
            max_memory,
            max_lag_s: max_check_lag.as_secs_f64(),
            rss: AtomicU64::new(0),
            read_at_ms: AtomicI64::new(i64::MIN),
            sample_rate: 0.0,
            samples: Mutex::new(SampleBucket { tokens: 0.0, at: Instant::now() }),
        }
    }

    /// The same admission letting in at most `per_second` samples a second, in bursts of as
    /// many (0: unlimited). A request is let in while the bucket holds any sample and pays for
    /// all of its samples once decoded ([`Admission::spend`]).
    pub fn with_sample_rate(mut self, per_second: u64) -> Self {
        self.sample_rate = per_second as f64;
        *self.samples.get_mut() = SampleBucket { tokens: self.sample_rate, at: Instant::now() };
        self
    }

    /// Pays for the `samples` a request held.
    pub fn spend(&self, samples: u64) {
        if self.sample_rate > 0.0 {
            let mut b = self.samples.lock();
            b.tokens = (b.tokens - samples as f64).max(-self.sample_rate);
        }
    }

    /// The sample rate alone: refused while the bucket is empty.
    fn check_rate(&self, protocol: &str, telemetry: &Telemetry) -> Result<(), String> {
        if self.sample_rate <= 0.0 {
            return Ok(());
        }
        let mut b = self.samples.lock();
        let now = Instant::now();
        b.tokens = (b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * self.sample_rate)
            .min(self.sample_rate);
        b.at = now;
        if b.tokens > 0.0 {
            return Ok(());
        }
        drop(b);
        Err(refused(
            telemetry,
            protocol,
            "max_samples_per_second",
            format!("over ingest.max_samples_per_second = {}", self.sample_rate),
        ))
    }

    /// A slot for one request of `protocol`, or the reason it must retry later (counted).
    pub fn admit(&self, protocol: &str, telemetry: &Telemetry) -> Result<OwnedSemaphorePermit, String> {
        self.check_memory(protocol, telemetry)?;
        self.check_lag(protocol, telemetry)?;
        self.check_rate(protocol, telemetry)?;
        Arc::clone(&self.slots).try_acquire_owned().map_err(|_| {
            refused(
                telemetry,
                protocol,
                "max_concurrent_requests",
                format!("ingest.max_concurrent_requests = {} requests in progress", self.max_requests),
            )
        })
    }

    /// The memory ceiling alone (for the gRPC interceptor, before the message is read).
    pub fn check_memory(&self, protocol: &str, telemetry: &Telemetry) -> Result<(), String> {
        if self.max_memory == 0 {
            return Ok(());
        }
        let rss = self.resident();
        if rss < self.max_memory {
            return Ok(());
        }
        Err(refused(
            telemetry,
            protocol,
            "max_memory_bytes",
            format!("resident memory {rss} bytes is at limits.max_memory_bytes = {}", self.max_memory),
        ))
    }

    /// The scoring lag alone: refused while the last check finished over `max_check_lag` late.
    pub fn check_lag(&self, protocol: &str, telemetry: &Telemetry) -> Result<(), String> {
        if self.max_lag_s <= 0.0 {
            return Ok(());
        }
        let lag = telemetry.check_lag.value(&[]);
        if lag <= self.max_lag_s {
            return Ok(());
        }
        Err(refused(
            telemetry,
            protocol,
            "max_check_lag",
            format!(
                "the last check finished {lag:.1}s late, over limits.max_check_lag = {}s",
                self.max_lag_s
            ),
        ))
    }

    /// Resident memory, re-read at most every [`MEMORY_READ_EVERY_MS`].
    fn resident(&self) -> u64 {
        let now = crate::rfc3339::now_ms();
        let at = self.read_at_ms.load(Ordering::Relaxed);
        if now.saturating_sub(at) >= MEMORY_READ_EVERY_MS
            && self.read_at_ms.compare_exchange(at, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
            && let Some(rss) = crate::telemetry::resident_bytes()
        {
            self.rss.store(rss, Ordering::Relaxed);
        }
        self.rss.load(Ordering::Relaxed)
    }
}

/// Counts a refusal and words it.
fn refused(telemetry: &Telemetry, protocol: &str, limit: &str, why: String) -> String {
    telemetry.ingest_refused.with(&[protocol, limit]).inc();
    format!("{why}; retry later")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn refuses_over_the_memory_ceiling_and_beyond_the_slots_and_counts_both() {
        let t = Telemetry::default();
        // Any process has more than 1 KiB resident.
        let tight = Admission::new(4, 1024, Duration::ZERO);
        let why = tight.admit("remote_write", &t).unwrap_err();
        assert!(why.contains("limits.max_memory_bytes = 1024"), "{why}");
        assert_eq!(t.ingest_refused.value(&["remote_write", "max_memory_bytes"]), 1.0);
        let one = Admission::new(1, 0, Duration::ZERO);
        let held = one.admit("otlp_http", &t).unwrap();
        let why = one.admit("otlp_http", &t).unwrap_err();
        assert!(why.contains("ingest.max_concurrent_requests = 1"), "{why}");
        drop(held);
        assert!(one.admit("otlp_http", &t).is_ok());
        assert_eq!(t.ingest_refused.value(&["otlp_http", "max_concurrent_requests"]), 1.0);
        // A generous ceiling lets requests in.
        assert!(Admission::new(1, u64::MAX, Duration::ZERO).admit("otlp_grpc", &t).is_ok());
    }

    #[test]
    fn refuses_beyond_the_sample_rate_until_time_pays_the_debt() {
        let t = Telemetry::default();
        let a = Admission::new(4, 0, Duration::ZERO).with_sample_rate(1000);
        assert!(a.admit("remote_write", &t).is_ok());
        a.spend(2500);
        let why = a.admit("remote_write", &t).unwrap_err();
        assert!(why.contains("ingest.max_samples_per_second = 1000"), "{why}");
        assert_eq!(t.ingest_refused.value(&["remote_write", "max_samples_per_second"]), 1.0);
        // The debt is at most one second's worth.
        std::thread::sleep(Duration::from_millis(1100));
        assert!(a.admit("remote_write", &t).is_ok());
        assert!(Admission::new(4, 0, Duration::ZERO).with_sample_rate(0).admit("x", &t).is_ok());
    }

    #[test]
    fn refuses_while_checks_finish_late_and_lets_in_once_they_catch_up() {
        let t = Telemetry::default();
        let a = Admission::new(4, 0, Duration::from_secs(30));
        t.check_lag.with(&[]).set(31.0);
        let why = a.admit("remote_write", &t).unwrap_err();
        assert!(why.contains("31.0s late, over limits.max_check_lag = 30s"), "{why}");
        assert_eq!(t.ingest_refused.value(&["remote_write", "max_check_lag"]), 1.0);
        t.check_lag.with(&[]).set(0.0);
        assert!(a.admit("remote_write", &t).is_ok());
        // Zero turns the bound off.
        t.check_lag.with(&[]).set(1e6);
        assert!(Admission::new(4, 0, Duration::ZERO).admit("remote_write", &t).is_ok());
    }
}
