//! Overload against a real process on loopback (issue 27): twenty senders push 1,000 entities
//! as fast as they can for 30 s — at least five times the 100,000 samples/s the service is set
//! to take (`ingest.max_samples_per_second`). The service must refuse the excess as retryable
//! (503 + `Retry-After`), stay up and under its memory ceiling, keep scoring every entity at
//! every check, and count every sample it answered 2xx as stored by the vectorizer — no more,
//! no less.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use dwcp_anomaly::internals::proto::remote_write::{Encoder, compress};
use dwcp_anomaly::internals::simulate::METRICS;
use dwcp_anomaly::internals::telemetry::names::{
    CHECK_DURATION, INGEST_REFUSED, SAMPLES_ACCEPTED, SAMPLES_RECEIVED, SAMPLES_REJECTED, VECTORS_SCORED,
};

const SENDERS: usize = 20;
const ENTITIES_PER_SENDER: usize = 50;
/// What the instance is set to take; the senders offer at least five times as much.
const CAPACITY: u64 = 100_000;
const OVERLOAD: Duration = Duration::from_secs(30);
const CEILING: u64 = 1 << 30;

/// What the senders saw.
#[derive(Default)]
struct Seen {
    offered: AtomicU64,
    acked: AtomicU64,
    refused: AtomicU64,
    other: AtomicU64,
}

/// One sender's request, encoded once: every metric of its entities, one sample each; new
/// timestamps are written into it in place, so that the senders cost little next to the
/// service (the timestamp's varint keeps its length: 6 bytes until 2039).
struct Template {
    raw: Vec<u8>,
    at: Vec<usize>,
    samples: u64,
}

const MARK: i64 = 1_234_567_890_123;

fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out
}

impl Template {
    fn new(sender: usize) -> Self {
        let mut enc = Encoder::default();
        for e in 0..ENTITIES_PER_SENDER {
            let instance = format!("s{sender}-e{e}");
            for m in METRICS {
                let labels = [("__name__", m), ("instance", instance.as_str()), ("job", "dwcp")];
                enc.series(&labels, &[(10.0 + (e % 7) as f64, MARK)]);
            }
        }
        let raw = enc.finish();
        let mark = varint(MARK as u64);
        let at: Vec<usize> =
            raw.windows(mark.len()).enumerate().filter(|(_, w)| *w == mark).map(|(i, _)| i).collect();
        let samples = (ENTITIES_PER_SENDER * METRICS.len()) as u64;
        assert_eq!(at.len() as u64, samples, "one timestamp per series");
        Self { raw, at, samples }
    }

    /// The request with every sample at `ts`, compressed.
    fn at(&mut self, ts: i64) -> Vec<u8> {
        let v = varint(ts as u64);
        assert_eq!(v.len(), 6);
        for &i in &self.at {
            self.raw[i..i + 6].copy_from_slice(&v);
        }
        compress(&self.raw)
    }
}

/// Posts one remote-write 1.0 request.
async fn push(client: &reqwest::Client, url: &str, body: Vec<u8>) -> reqwest::Result<reqwest::Response> {
    client
        .post(url)
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(body)
        .send()
        .await
}

/// Pushes until `stop`, as fast as answers come (a refused request is retried after 2 ms).
async fn sender(url: String, sender: usize, seen: Arc<Seen>, stop: Arc<AtomicBool>) {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let mut last_ts = 0;
    let mut template = Template::new(sender);
    let samples = template.samples;
    while !stop.load(Ordering::Relaxed) {
        last_ts = (last_ts + 1).max(dwcp_anomaly::internals::rfc3339::now_ms());
        let bytes = template.at(last_ts);
        seen.offered.fetch_add(samples, Ordering::Relaxed);
        let resp = push(&client, &url, bytes).await;
        match resp.map(|r| (r.status().as_u16(), r.headers().contains_key("retry-after"))) {
            Ok((204, _)) => {
                seen.acked.fetch_add(samples, Ordering::Relaxed);
            }
            Ok((503, true)) => {
                seen.refused.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            _ => {
                seen.other.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_many_times_its_capacity_it_refuses_as_retryable_keeps_scoring_and_loses_nothing_acked() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = format!(
        "check_interval: 1s\n\
         ingest:\n  max_samples_per_second: {CAPACITY}\n\
         limits:\n  max_memory_bytes: {CEILING}\n\
         detect:\n  min_fit_points: 5\n  fit_window: 30\n"
    );
    let svc = start_service("serve", dir.path(), port, &config).await;
    let base = format!("http://127.0.0.1:{port}");
    let url = format!("{base}/api/v1/write");
    let http = dwcp_anomaly::internals::retry::http_client().build().unwrap();
    let entities = (SENDERS * ENTITIES_PER_SENDER) as f64;

    // Every entity exists and is fitted before the overload starts (one vector per check).
    let mut templates: Vec<Template> = (0..SENDERS).map(Template::new).collect();
    let warm = async {
        loop {
            for t in templates.iter_mut() {
                let bytes = t.at(dwcp_anomaly::internals::rfc3339::now_ms());
                let r = push(&http, &url, bytes).await.unwrap();
                assert_eq!(r.status().as_u16(), 204);
            }
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
    };
    let ready = eventually(Duration::from_secs(30), "every entity scored", || async {
        let m = get_ok(&http, format!("{base}/metrics")).await?;
        let ready = metric_value(&m, "dwcp_anomaly_entities_by_state{state=\"ready\"}");
        (ready >= entities).then_some(())
    });
    tokio::select! {
        _ = warm => unreachable!(),
        _ = ready => {}
    }

    let before = get_ok(&http, format!("{base}/metrics")).await.unwrap();
    let seen = Arc::new(Seen::default());
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..SENDERS)
        .map(|s| tokio::spawn(sender(url.clone(), s, Arc::clone(&seen), Arc::clone(&stop))))
        .collect();
    let started = Instant::now();
    let mut max_rss = 0;
    while started.elapsed() < OVERLOAD {
        tokio::time::sleep(Duration::from_millis(500)).await;
        max_rss = max_rss.max(svc.rss_bytes());
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    // One more check so that the last accepted samples are scored.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = get_ok(&http, format!("{base}/metrics")).await.expect("alive after the overload");

    let (offered, acked, refused, other) = (
        seen.offered.load(Ordering::Relaxed),
        seen.acked.load(Ordering::Relaxed),
        seen.refused.load(Ordering::Relaxed),
        seen.other.load(Ordering::Relaxed),
    );
    eprintln!("offered {offered} samples, acked {acked}, {refused} requests refused, {other} other answers");
    assert_eq!(other, 0, "every answer was 204 or 503 with Retry-After");
    assert!(refused > 0, "nothing refused");
    assert!(offered >= 5 * acked, "the load ({offered} samples offered) was not 5x what was taken ({acked})");
    let delta = |name: &str| metric_value(&after, name) - metric_value(&before, name);
    // Every sample answered 2xx was received and stored, and nothing was refused after decoding.
    let protocol = "{protocol=\"remote_write\"}";
    assert_eq!(delta(&format!("{SAMPLES_ACCEPTED}{protocol}")), acked as f64);
    assert_eq!(delta(&format!("{SAMPLES_RECEIVED}{protocol}")), acked as f64);
    let rejected: f64 = after
        .lines()
        .filter(|l| l.starts_with(SAMPLES_REJECTED))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(rejected, 0.0, "{after}");
    let refused_by =
        format!("{INGEST_REFUSED}{{protocol=\"remote_write\",limit=\"max_samples_per_second\"}}");
    assert_eq!(delta(&refused_by), refused as f64);
    // The rate taken is the configured one (its one-second burst and one request's overshoot).
    let taken = acked as f64 / OVERLOAD.as_secs_f64();
    assert!(taken <= CAPACITY as f64 * 1.2, "{taken} samples/s taken");
    // Every entity scored at (nearly) every check while the load lasted.
    let checks = delta(&format!("{CHECK_DURATION}_count"));
    let scored = delta(VECTORS_SCORED);
    assert!(checks >= 25.0, "{checks} checks in {OVERLOAD:?}");
    assert!(
        scored >= 0.95 * entities * checks,
        "{scored} vectors scored in {checks} checks of {entities} entities"
    );
    assert!(max_rss < CEILING, "RSS reached {} MiB", max_rss >> 20);
    assert!(get_ok(&http, format!("{base}/-/healthy")).await.is_some(), "{}", svc.tail());
}
