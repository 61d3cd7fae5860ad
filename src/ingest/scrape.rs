//! Scrape ingest: the service pulls `/metrics` pages itself, for small setups without a
//! Prometheus server.
//!
//! Each target has its own task: every `interval` a GET (with `timeout`) fetches the page,
//! the Prometheus text format (OpenMetrics tolerated) is parsed with `prometheus-parse`, and
//! every sample becomes a series labelled like Prometheus labels scraped series: `job` from
//! config, `instance` the target's `host:port`, the configured extra labels; clashing labels of
//! the target are renamed `exported_<name>` unless `honor_labels`. Histograms become
//! `_bucket{le}` series (with `_sum`/`_count` as the page has them), summaries `{quantile}`.
//! Samples without a timestamp get the scrape's. Each target's health is in
//! `dwcp_anomaly_scrape_up`, `_duration_seconds` and `_samples`.
//!
//! `prometheus-parse` is lenient: label values containing `,` or `=` are split wrongly and
//! lines it cannot read are skipped, not reported.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;
use tracing::{debug, warn};

use crate::config::ScrapeConfig;
use crate::sample::{LABEL_INSTANCE, LABEL_JOB, LABEL_NAME, SampleRef, SeriesRef, one_sample_series};
use crate::telemetry::Telemetry;

use super::remote_write::Limits;
use super::{IngestOutcome, SampleSink, SeriesLimits, store};

/// `Accept` header of a scrape, as Prometheus sends it.
const ACCEPT: &str =
    "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1";

/// One parsed sample: labels (sorted) and value.
type Owned = (Vec<(String, String)>, SampleRef);

/// Parses a metrics page and labels its samples; `target` are the labels the target's
/// series get (`job`, `instance`, extra labels).
pub fn parse(text: &str, now_ms: i64, target: &[(String, String)], honor_labels: bool) -> Vec<Owned> {
    let now = chrono::DateTime::from_timestamp_millis(now_ms).unwrap_or_default();
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let Ok(scrape) = prometheus_parse::Scrape::parse_at(lines, now) else { return Vec::new() };
    let mut out = Vec::with_capacity(scrape.samples.len());
    for s in &scrape.samples {
        let ts = s.timestamp.timestamp_millis();
        let mut push = |name: String, extra: Option<(&str, String)>, value: f64| {
            let mut labels: Vec<(String, String)> = Vec::with_capacity(s.labels.len() + target.len() + 2);
            for (k, v) in s.labels.iter() {
                let clash = target.iter().any(|(t, _)| t == k);
                let key = if clash && !honor_labels { format!("exported_{k}") } else { k.clone() };
                labels.push((key, v.clone()));
            }
            for (k, v) in target {
                if !(honor_labels && s.labels.contains_key(k)) {
                    labels.push((k.clone(), v.clone()));
                }
            }
            labels.extend(extra.map(|(k, v)| (k.to_string(), v)));
            labels.push((LABEL_NAME.to_string(), name));
            labels.sort();
            out.push((labels, SampleRef { value, timestamp_ms: ts }));
        };
        match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => push(s.metric.clone(), None, *v),
            prometheus_parse::Value::Histogram(buckets) => {
                for b in buckets {
                    let le =
                        if b.less_than.is_infinite() { "+Inf".to_string() } else { b.less_than.to_string() };
                    push(format!("{}_bucket", s.metric), Some(("le", le)), b.count);
                }
            }
            prometheus_parse::Value::Summary(qs) => {
                for q in qs {
                    push(s.metric.clone(), Some(("quantile", q.quantile.to_string())), q.count);
                }
            }
        }
    }
    out
}

/// Validates and stores parsed samples.
pub fn ingest(samples: &[Owned], limits: &SeriesLimits, sink: &dyn SampleSink) -> IngestOutcome {
    let views: Vec<SeriesRef<'_>> = samples.iter().map(|(labels, s)| one_sample_series(labels, *s)).collect();
    let mut out = IngestOutcome {
        series: views.len() as u64,
        samples_received: views.len() as u64,
        ..IngestOutcome::default()
    };
    store(&views, limits, sink, &mut out, |_| {});
    out
}

/// The labels every series of `cfg`'s target gets.
pub fn target_labels(cfg: &ScrapeConfig) -> Vec<(String, String)> {
    let instance = reqwest::Url::parse(&cfg.url)
        .ok()
        .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?)))
        .unwrap_or_else(|| cfg.url.clone());
    let mut labels = vec![(LABEL_JOB.to_string(), cfg.job.clone()), (LABEL_INSTANCE.to_string(), instance)];
    labels.extend(cfg.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    labels
}

/// Scrapes `cfg`'s target every `interval` until `shutdown`. A page over
/// `ingest.max_decoded_bytes`, or with more samples than `ingest.max_samples_per_request`, fails
/// the scrape whole (`up` 0, as Prometheus's `body_size_limit` and `sample_limit` do).
pub async fn run(
    cfg: ScrapeConfig,
    limits: Limits,
    sink: Arc<dyn SampleSink>,
    telemetry: Arc<Telemetry>,
    mut shutdown: watch::Receiver<bool>,
) {
    let client = match crate::retry::http_client()
        .timeout(cfg.timeout)
        .user_agent(concat!("dwcp-anomaly/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            warn!(target = %cfg.url, error = %e, "Cannot build the scrape client; target not scraped.");
            return;
        }
    };
    let labels = target_labels(&cfg);
    let (up, duration, samples) = (
        telemetry.scrape_up.with(&[&cfg.url]),
        telemetry.scrape_duration.with(&[&cfg.url]),
        telemetry.scrape_samples.with(&[&cfg.url]),
    );
    // A failing target is warned about when it starts failing, not at every interval.
    let mut was_up = true;
    let mut ticks = tokio::time::interval(cfg.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let start = Instant::now();
        let now_ms = crate::rfc3339::now_ms();
        let result = fetch(&client, &cfg.url, limits.max_decoded_bytes).await.and_then(|text| {
            let parsed = parse(&text, now_ms, &labels, cfg.honor_labels);
            limits.series.check_request(parsed.len(), parsed.len()).map_err(|e| e.to_string())?;
            Ok(parsed)
        });
        duration.set(start.elapsed().as_secs_f64());
        match result {
            Ok(parsed) => {
                let out = ingest(&parsed, &limits.series, sink.as_ref());
                out.record("scrape", &telemetry);
                up.set(1.0);
                was_up = true;
                samples.set(parsed.len() as f64);
                debug!(target = %cfg.url, samples = parsed.len(), "Scraped.");
            }
            Err(e) => {
                up.set(0.0);
                samples.set(0.0);
                if std::mem::replace(&mut was_up, false) {
                    warn!(target = %cfg.url, error = %e, "Scrape failed.");
                } else {
                    debug!(target = %cfg.url, error = %e, "Scrape failed.");
                }
            }
        }
    }
}

/// The page at `url`, read no further than `max_bytes`.
async fn fetch(client: &reqwest::Client, url: &str, max_bytes: usize) -> Result<String, String> {
    let mut resp = client
        .get(url)
        .header("Accept", ACCEPT)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| e.to_string())?;
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > max_bytes {
            return Err(format!("page is over ingest.max_decoded_bytes = {max_bytes} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    String::from_utf8(body).map_err(|e| format!("page is not UTF-8: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"# HELP dwcp_latency_ms Latency.
# TYPE dwcp_latency_ms gauge
dwcp_latency_ms{instance="dwcp-node-01",job="sim",link="up"} 38.5
# TYPE requests_total counter
requests_total{code="200"} 1027 1700000000000
# TYPE rpc_seconds histogram
rpc_seconds_bucket{le="0.1"} 3
rpc_seconds_bucket{le="+Inf"} 5
rpc_seconds_sum 0.7
rpc_seconds_count 5
not a valid line
"#;

    fn target(honor: bool) -> Vec<String> {
        let t = [("instance".to_string(), "h:9100".to_string()), ("job".to_string(), "node".to_string())];
        let mut got: Vec<String> = parse(PAGE, 1_800_000_000_000, &t, honor)
            .into_iter()
            .map(|(l, s)| {
                let l: Vec<String> = l.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("{} {} @{}", l.join(","), s.value, s.timestamp_ms)
            })
            .collect();
        got.sort();
        got
    }

    #[test]
    fn samples_get_target_labels_and_clashes_are_renamed() {
        assert_eq!(
            target(false),
            [
                "__name__=dwcp_latency_ms,exported_instance=dwcp-node-01,exported_job=sim,instance=h:9100,job=node,link=up 38.5 @1800000000000",
                "__name__=requests_total,code=200,instance=h:9100,job=node 1027 @1700000000000",
                "__name__=rpc_seconds_bucket,instance=h:9100,job=node,le=+Inf 5 @1800000000000",
                "__name__=rpc_seconds_bucket,instance=h:9100,job=node,le=0.1 3 @1800000000000",
                "__name__=rpc_seconds_count,instance=h:9100,job=node 5 @1800000000000",
                "__name__=rpc_seconds_sum,instance=h:9100,job=node 0.7 @1800000000000",
            ]
        );
    }

    #[test]
    fn honor_labels_keeps_the_targets_own() {
        let got = target(true);
        assert!(
            got[0].starts_with("__name__=dwcp_latency_ms,instance=dwcp-node-01,job=sim,link=up 38.5"),
            "{got:?}"
        );
        assert!(got[1].contains("instance=h:9100,job=node"), "{got:?}");
    }

    #[test]
    fn openmetrics_pages_are_tolerated() {
        let page = "# TYPE dwcp_cpu_usage_percent gauge\n# UNIT dwcp_cpu_usage_percent percent\n\
                    dwcp_cpu_usage_percent{instance=\"n1\"} 41.5\n# TYPE jobs counter\n\
                    jobs_total 7\njobs_created 1.7e9\n# EOF\n";
        let got = parse(page, 1_800_000_000_000, &[("job".into(), "x".into())], false);
        let names: Vec<(&str, f64)> = got
            .iter()
            .map(|(l, s)| (l.iter().find(|(k, _)| k == "__name__").unwrap().1.as_str(), s.value))
            .collect();
        assert!(names.contains(&("dwcp_cpu_usage_percent", 41.5)), "{names:?}");
        assert!(names.contains(&("jobs_total", 7.0)), "{names:?}");
        assert!(got.iter().all(|(l, _)| l.iter().any(|(k, v)| k == "job" && v == "x")));
    }

    #[test]
    fn target_labels_name_host_and_port() {
        let cfg: ScrapeConfig = serde_json::from_value(serde_json::json!({
            "url": "http://127.0.0.1:9100/metrics", "job": "node", "labels": {"dc": "eu"}
        }))
        .unwrap();
        assert_eq!(
            target_labels(&cfg),
            [
                ("job".into(), "node".into()),
                ("instance".into(), "127.0.0.1:9100".into()),
                ("dc".into(), "eu".into())
            ]
        );
    }
}
