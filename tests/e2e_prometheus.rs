//! End-to-end with real Prometheus processes on loopback:
//!
//! `simulate serve` (scrape target) → Prometheus A (scrapes, remote-writes) → dwcp-anomaly
//! (scores) → remote-write out → Prometheus B (receiver). The test reads the injected
//! anomaly's window from A (`dwcp_sim_anomaly_active`) and asserts in B that `anomaly_flag`
//! is 1 for the affected entity during that window and 0 for the others.

mod common;

use std::time::Duration;

use common::*;

const ANOMALOUS: &str = "dwcp-node-02";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_reach_prometheus_b_for_the_anomalous_entity_only() {
    let dir = tempfile::tempdir().unwrap();
    let (sim_port, a_port, b_port, svc_port) = (free_port(), free_port(), free_port(), free_port());
    let client =
        dwcp_anomaly::internals::retry::http_client().timeout(Duration::from_secs(5)).build().unwrap();

    let b = start_prometheus("prom-b", b_port, "global:\n  scrape_interval: 15s\n", dir.path(), true);

    let svc_cfg = dir.path().join("service.yaml");
    std::fs::write(
        &svc_cfg,
        format!(
            "check_interval: 1s\nlisten: 127.0.0.1:{svc_port}\ndetect:\n  min_fit_points: 20\n  threshold: 0.8\n  \
             zscore:\n    window: 120\nexport:\n  remote_write:\n    - url: http://127.0.0.1:{b_port}/api/v1/write\n      \
             max_retries: 20\n"
        ),
    )
    .unwrap();
    let svc = spawn("service", &service_bin(), &serve_args(&svc_cfg, 0), dir.path());

    // The anomaly starts 60 s after the simulator and lasts 30 s.
    let args = ["--entities", "3", "--step", "1s", "--seed", "7", "--anomaly", "2:latency_jitter:60s:30s"];
    let sim = spawn_simulator(dir.path(), sim_port, &args);

    let a_cfg = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: dwcp\n    honor_labels: true\n    \
         static_configs:\n      - targets: ['127.0.0.1:{sim_port}']\nremote_write:\n  - url: http://127.0.0.1:{svc_port}/api/v1/write\n    \
         queue_config:\n      batch_send_deadline: 1s\n      min_backoff: 100ms\n      max_backoff: 1s\n"
    );
    let a = start_prometheus("prom-a", a_port, &a_cfg, dir.path(), false);
    let (a_url, b_url) = (format!("http://127.0.0.1:{a_port}"), format!("http://127.0.0.1:{b_port}"));
    let procs = [&b, &svc, &sim, &a];
    let logs =
        || procs.iter().map(|p| format!("--- {} ---\n{}", p.name, p.tail())).collect::<Vec<_>>().join("\n");

    for url in [&a_url, &b_url] {
        eventually(Duration::from_secs(30), "prometheus ready", || get_ok(&client, format!("{url}/-/ready")))
            .await;
    }
    eventually(Duration::from_secs(30), "service ready", || {
        get_ok(&client, format!("http://127.0.0.1:{svc_port}/-/ready"))
    })
    .await;

    // Models warm up, then scores arrive in B for every entity.
    let ready = eventually(Duration::from_secs(60), "ready model state in Prometheus B", || async {
        let r = prom_query(&client, &b_url, "anomaly_model_state{state=\"ready\"} == 1").await;
        (r.len() == 3).then_some(r)
    })
    .await;
    assert_eq!(ready[0].0["profile"], "dwcp", "{ready:?}");
    assert_eq!(ready[0].0["job"], "dwcp", "{ready:?}");

    // Wait until the anomaly ended in A, then read its window.
    let window = eventually(Duration::from_secs(120), "the injected anomaly to end", || async {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
        let series = prom_range(
            &client,
            &a_url,
            &format!("dwcp_sim_anomaly_active{{instance=\"{ANOMALOUS}\"}} == 1"),
            now - 300.0,
            now,
        )
        .await;
        let pts: Vec<f64> = series.iter().flat_map(|(_, p)| p.iter().map(|x| x.0)).collect();
        let (first, last) =
            (pts.iter().cloned().fold(f64::INFINITY, f64::min), pts.iter().cloned().fold(0.0, f64::max));
        (pts.len() >= 20 && now - last > 5.0).then_some((first, last))
    })
    .await;
    let (start, end) = (window.0 + 5.0, window.1 - 2.0);

    // B may lag a few seconds behind the scoring.
    let flags = eventually(Duration::from_secs(30), "flags covering the anomaly window in B", || async {
        let r = prom_range(&client, &b_url, "anomaly_flag", start, end + 5.0).await;
        let covered = r.iter().filter(|(_, p)| p.last().is_some_and(|x| x.0 >= end)).count();
        (r.len() == 3 && covered == 3).then_some(r)
    })
    .await;
    for (labels, points) in &flags {
        let instance = labels["instance"].as_str().unwrap_or_default();
        let inside: Vec<f64> = points.iter().filter(|(t, _)| *t >= start && *t <= end).map(|p| p.1).collect();
        assert!(inside.len() >= 15, "{instance}: only {} points in the window\n{}", inside.len(), logs());
        let flagged = inside.iter().filter(|v| **v == 1.0).count();
        if instance == ANOMALOUS {
            assert!(
                flagged as f64 >= 0.9 * inside.len() as f64,
                "{instance}: flagged {flagged} of {} points during the anomaly\n{}",
                inside.len(),
                logs()
            );
        } else {
            assert_eq!(flagged, 0, "{instance}: false positives during the anomaly window\n{}", logs());
        }
    }

    // The severity and the top features say what happened: latency and jitter.
    let shares = prom_range(
        &client,
        &b_url,
        &format!("anomaly_feature_score{{instance=\"{ANOMALOUS}\"}}"),
        start,
        end,
    )
    .await;
    let mut mean: Vec<(String, f64)> = shares
        .iter()
        .map(|(l, p)| {
            let name = l["feature"].as_str().unwrap_or_default().to_string();
            (name, p.iter().map(|x| x.1).sum::<f64>() / p.len().max(1) as f64)
        })
        .collect();
    mean.sort_by(|a, b| b.1.total_cmp(&a.1));
    let top: Vec<&str> = mean.iter().take(2).map(|(n, _)| n.as_str()).collect();
    assert!(top.contains(&"latency_ms") && top.contains(&"jitter_ms"), "mean feature shares {mean:?}");
    let sev = prom_query(
        &client,
        &b_url,
        &format!("max_over_time(anomaly_severity{{instance=\"{ANOMALOUS}\"}}[3m])"),
    )
    .await;
    assert!(sev.first().is_some_and(|(_, v)| *v >= 2.0), "severity {sev:?}");

    // The service counted what it received and sent.
    let own = get_ok(&client, &format!("http://127.0.0.1:{svc_port}/metrics")).await.unwrap_or_default();
    let sent = own
        .lines()
        .find(|l| l.starts_with("dwcp_anomaly_export_samples_sent_total"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(sent > 100.0, "exporter sent {sent} samples\n{}", logs());
}
