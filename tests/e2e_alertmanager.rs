//! End to end with a real Alertmanager (Debian `prometheus-alertmanager`) on loopback: the
//! service posts a spike's alert through API v2; Alertmanager lists it with the documented
//! labels, routes it by severity to a webhook receiver this test serves, and resolves it when
//! the entity is normal again.

mod common;

use std::time::Duration;

use common::{eventually, free_port, push_simulated, require, spawn, start_service, trained_state};
use serde_json::Value;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Notifications Alertmanager sent to the receiver: (receiver, status, alerts).
async fn notifications(server: &MockServer) -> Vec<(String, String, Vec<Value>)> {
    let reqs = server.received_requests().await.unwrap_or_default();
    reqs.iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .map(|v| {
            let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
            (s("receiver"), s("status"), v["alerts"].as_array().cloned().unwrap_or_default())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn alertmanager_receives_routes_and_resolves_the_alert() {
    let am_bin = require("prometheus-alertmanager", "prometheus-alertmanager");
    let dir = tempfile::tempdir().unwrap();
    let state = trained_state(dir.path());

    let receiver = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&receiver).await;
    let am_port = free_port();
    let am_cfg = dir.path().join("alertmanager.yml");
    std::fs::write(
        &am_cfg,
        format!(
            "route:\n  receiver: ignore\n  group_by: [alertname, instance]\n  group_wait: 1s\n  \
             group_interval: 1s\n  repeat_interval: 1h\n  routes:\n    - matchers: ['severity=~\"warning|critical\"']\n      \
             receiver: oncall\nreceivers:\n  - name: ignore\n  - name: oncall\n    webhook_configs:\n      \
             - url: {}/hook\n        send_resolved: true\n",
            receiver.uri()
        ),
    )
    .unwrap();
    let am_args: Vec<String> = vec![
        format!("--config.file={}", am_cfg.display()),
        format!("--web.listen-address=127.0.0.1:{am_port}"),
        "--cluster.listen-address=".into(),
        format!("--storage.path={}", dir.path().join("am-data").display()),
    ];
    let am = spawn("alertmanager", &am_bin, &am_args, dir.path());
    let client = dwcp_anomaly::internals::retry::http_client().build().unwrap();
    let am_base = format!("http://127.0.0.1:{am_port}");
    eventually(Duration::from_secs(20), "alertmanager ready", || {
        common::get_ok(&client, format!("{am_base}/-/ready"))
    })
    .await;

    let port = free_port();
    let config = format!(
        "check_interval: 1s\nstate_dir: {}\nalert:\n  alertmanager_urls: [{am_base}]\n  \
         alertmanager_resend: 2s\n  resolve_after: 3\n  runbook_url: https://runbooks.example/dwcp\n",
        state.display()
    );
    let svc = start_service("serve", dir.path(), port, &config).await;
    push_simulated(port, "14s", Some("4s:10s"));

    let alert = eventually(Duration::from_secs(20), "the alert in Alertmanager", || async {
        let body = common::get_ok(&client, format!("{am_base}/api/v2/alerts")).await?;
        let alerts: Vec<Value> = serde_json::from_str(&body).ok()?;
        alerts.into_iter().find(|a| a["labels"]["alertname"] == "DWCPAnomaly")
    })
    .await;
    let labels = &alert["labels"];
    assert_eq!(labels["instance"], "dwcp-node-01", "{alert:#}");
    assert_eq!(labels["job"], "dwcp", "{alert:#}");
    assert_eq!(labels["profile"], "dwcp", "{alert:#}");
    assert!(["warning", "critical"].contains(&labels["severity"].as_str().unwrap()), "{alert:#}");
    assert!(labels["feature"].as_str().is_some_and(|f| !f.is_empty()), "{alert:#}");
    assert_eq!(alert["annotations"]["runbook_url"], "https://runbooks.example/dwcp", "{alert:#}");
    assert!(alert["annotations"]["summary"].as_str().unwrap().contains("dwcp-node-01"), "{alert:#}");
    let gen_url = alert["generatorURL"].as_str().unwrap();
    assert!(gen_url.starts_with(&format!("http://127.0.0.1:{port}/?entity=")), "{gen_url}");
    let page = common::get_ok(&client, gen_url).await.expect("the generator URL serves the entity's page");
    assert!(page.contains("dwcp-node-01"), "{page}");

    let firing = eventually(Duration::from_secs(20), "Alertmanager's firing notification", || async {
        let n = notifications(&receiver).await;
        n.into_iter().find(|(_, status, _)| status == "firing")
    })
    .await;
    assert_eq!(firing.0, "oncall", "routed by severity");
    assert_eq!(firing.2[0]["labels"]["alertname"], "DWCPAnomaly");

    push_simulated(port, "8s", None);
    eventually(Duration::from_secs(20), "the resolved notification", || async {
        let n = notifications(&receiver).await;
        n.into_iter().find(|(_, status, _)| status == "resolved")
    })
    .await;
    let body = common::get_ok(&client, format!("{am_base}/api/v2/alerts")).await.unwrap();
    let active: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert!(
        active.iter().all(|a| a["labels"]["alertname"] != "DWCPAnomaly"),
        "still active after the resolve: {active:#?}\n{}",
        svc.tail()
    );
    drop(am);
}
