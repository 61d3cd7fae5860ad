//! Every query of `dashboards/*.json` returns data from a real Prometheus: the simulator with
//! an injected CPU saturation, scraped by the service (input) and by Prometheus (the observed
//! values); the service remote-writes its scores into that Prometheus, which also scrapes the
//! service's own metrics as `job="dwcp-anomaly"`; an alert webhook that refuses connections
//! and a second remote-write target with nothing listening give the failure panels data. The template variables get real values, each panel's
//! expressions run through `/api/v1/query_range`, each variable's through the label API.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const ANOMALOUS: &str = "dwcp-node-02";

/// Every `expr` of a dashboard, and every template variable's `label_values(...)` query.
fn queries(dashboard: &Value) -> (Vec<String>, Vec<String>) {
    fn walk(v: &Value, exprs: &mut Vec<String>, vars: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    match (k.as_str(), x) {
                        ("expr", Value::String(e)) => exprs.push(e.clone()),
                        ("definition", Value::String(q)) if q.starts_with("label_values(") => {
                            vars.push(q.clone())
                        }
                        _ => walk(x, exprs, vars),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, exprs, vars)),
            _ => {}
        }
    }
    let (mut exprs, mut vars) = (Vec::new(), Vec::new());
    walk(dashboard, &mut exprs, &mut vars);
    (exprs, vars)
}

fn substitute(q: &str) -> String {
    q.replace("$service_job", "dwcp-anomaly")
        .replace("$__rate_interval", "15s")
        .replace("$__range", "10m")
        .replace("$instance", ".*")
        .replace("$entity", ANOMALOUS)
        .replace("$feature", "cpu_pct")
        .replace("$job", "dwcp")
        .replace("$profile", ".*")
        .replace("$detector", ".*")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_returns_data_from_a_real_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let (sim_port, prom_port, svc_port) = (free_port(), free_port(), free_port());
    // Nothing listens here: the webhook and the second remote-write target fail, for the
    // failure panels.
    let dead = free_port();
    let client =
        dwcp_anomaly::internals::retry::http_client().timeout(Duration::from_secs(5)).build().unwrap();
    let sim_args: Vec<String> = [
        "simulate",
        "--entities",
        "3",
        "--step",
        "1s",
        "--anomaly",
        "2:cpu_saturation:45s:45s",
        "serve",
        "--listen",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("127.0.0.1:{sim_port}")])
    .collect();
    let _sim = spawn("simulate", &service_bin(), &sim_args, dir.path());
    let prom_cfg = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: dwcp\n    honor_labels: true\n    \
         static_configs:\n      - targets: ['127.0.0.1:{sim_port}']\n  - job_name: dwcp-anomaly\n    \
         static_configs:\n      - targets: ['127.0.0.1:{svc_port}']\n    metric_relabel_configs:\n      \
         - source_labels: [__name__]\n        regex: dwcp_anomaly_.*|process_.*\n        action: keep\n"
    );
    let _prom = start_prometheus("prom", prom_port, &prom_cfg, dir.path(), true);
    let svc_cfg = format!(
        "check_interval: 1s\ndetect:\n  min_fit_points: 20\nscrape:\n  - url: http://127.0.0.1:{sim_port}/metrics\n    \
         interval: 1s\n    timeout: 900ms\n    job: dwcp\n    honor_labels: true\nexport:\n  remote_write:\n    \
         - url: http://127.0.0.1:{prom_port}/api/v1/write\n      max_retries: 20\n    \
         - url: http://127.0.0.1:{dead}/api/v1/write\n      max_retries: 0\nalert:\n  \
         webhook_url: http://127.0.0.1:{dead}/hook\n  retries: 0\n"
    );
    let _svc = start_service("service", dir.path(), svc_port, &svc_cfg).await;

    // One remote-write request too (a series no feature selects), for the requests panel.
    let mut enc = dwcp_anomaly::internals::proto::remote_write::Encoder::default();
    enc.series(
        &[("__name__", "unrelated_metric"), ("job", "other")],
        &[(1.0, dwcp_anomaly::internals::rfc3339::now_ms())],
    );
    let body = dwcp_anomaly::internals::proto::remote_write::compress(&enc.finish());
    let sent = client
        .post(format!("http://127.0.0.1:{svc_port}/api/v1/write"))
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(sent.status().is_success(), "{}", sent.status());
    let prom = format!("http://127.0.0.1:{prom_port}");
    let instant = |q: String| {
        let (client, prom) = (client.clone(), prom.clone());
        async move {
            let r = prom_query(&client, &prom, &q).await;
            (!r.is_empty()).then_some(r)
        }
    };
    // The anomaly's event counted, its alert's delivery failed, and the critical severity seen.
    eventually(Duration::from_secs(150), "the injected anomaly counted and its webhook failing", || async {
        instant("dwcp_anomaly_events_total{job=\"dwcp-anomaly\"} > 0".into()).await?;
        instant("dwcp_anomaly_alerts_failed_total{job=\"dwcp-anomaly\"} > 0".into()).await?;
        instant("dwcp_anomaly_export_samples_failed_total{job=\"dwcp-anomaly\"} > 0".into()).await?;
        instant(format!("max_over_time(anomaly_severity{{instance=\"{ANOMALOUS}\"}}[5m]) == 3")).await
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    let now = dwcp_anomaly::internals::rfc3339::now_ms() / 1000;
    let (start, end) = ((now - 600).to_string(), now.to_string());
    let root = env!("CARGO_MANIFEST_DIR");
    let mut checked = 0;
    for file in ["dashboards/dwcp-anomaly.json", "dashboards/dwcp-anomaly-self.json"] {
        let dashboard: Value =
            serde_json::from_str(&std::fs::read_to_string(format!("{root}/{file}")).unwrap()).unwrap();
        let (exprs, vars) = queries(&dashboard);
        assert!(exprs.len() >= 10, "{file}: {exprs:?}");
        let mut empty = Vec::new();
        for e in &exprs {
            let q = substitute(e);
            let params = [("query", q.as_str()), ("start", &start), ("end", &end), ("step", "2")];
            let v =
                get_json(&client, &format!("{prom}/api/v1/query_range"), &params).await.unwrap_or_default();
            // A series of NaN only (a quantile of no observations) is no data either.
            let n = v["data"]["result"].as_array().map_or(0, |r| {
                r.iter()
                    .filter(|s| s["values"].as_array().into_iter().flatten().any(|p| p[1] != "NaN"))
                    .count()
            });
            if n == 0 {
                empty.push(format!("{q}\n  → {v}"));
            }
            checked += 1;
        }
        for var in &vars {
            // label_values(selector, label) → the label API with match[].
            let inner = var.trim_start_matches("label_values(").trim_end_matches(')');
            let (selector, label) = inner.rsplit_once(',').unwrap();
            let url = format!("{prom}/api/v1/label/{}/values", label.trim());
            let selector = substitute(selector.trim());
            let params = [("match[]", selector.as_str()), ("start", &start), ("end", &end)];
            let v = get_json(&client, &url, &params).await.unwrap_or_default();
            if v["data"].as_array().is_none_or(Vec::is_empty) {
                empty.push(format!("variable {var}\n  → {v}"));
            }
        }
        assert!(empty.is_empty(), "{file}: queries without data:\n{}", empty.join("\n"));
    }
    assert!(checked >= 30, "{checked} queries");

    // Count by metric and severity distribution show the injected anomaly's feature and severity.
    let by_feature =
        instant("sum by (feature) (increase(dwcp_anomaly_events_total{job=\"dwcp-anomaly\"}[10m]))".into())
            .await
            .unwrap_or_default();
    // A CPU saturation raises CPU, memory and latency (src/simulate): one of them leads.
    assert!(
        by_feature.iter().any(|(labels, n)| ["cpu_pct", "memory_pct", "latency_ms"]
            .iter()
            .any(|f| labels["feature"] == *f)
            && *n > 0.0),
        "{by_feature:?}"
    );
    let by_severity =
        instant("sum by (severity) (increase(dwcp_anomaly_events_total{job=\"dwcp-anomaly\"}[10m]))".into())
            .await
            .unwrap_or_default();
    assert!(
        by_severity.iter().any(|(labels, n)| labels["severity"] == "critical" && *n > 0.0),
        "{by_severity:?}"
    );
    // The flag onset was timed: samples every second, scraped every second, 1 s checks.
    let delay = instant(
        "dwcp_anomaly_detection_delay_seconds_sum / dwcp_anomaly_detection_delay_seconds_count".into(),
    )
    .await
    .unwrap_or_default();
    assert!(delay.iter().any(|(_, d)| *d > 0.0 && *d < 30.0), "onset → flag: {delay:?}");
}
