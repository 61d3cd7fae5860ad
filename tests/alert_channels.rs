//! Slack, PagerDuty and the generic webhook against wiremock: the exact JSON those services
//! document, severity routing, retry after a 5xx, no retry after a 4xx, and a hanging channel
//! that delays nobody else.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{ALERT_T0, alert_event};
use dwcp_anomaly::internals::alert::dispatch::Dispatcher;
use dwcp_anomaly::internals::alert::pagerduty::PagerDuty;
use dwcp_anomaly::internals::alert::slack::Slack;
use dwcp_anomaly::internals::alert::webhook::{SIGNATURE_HEADER, Webhook, signature};
use dwcp_anomaly::internals::alert::{AlertEvent, AlertKind, Links};
use dwcp_anomaly::internals::config::{AlertConfig, MinSeverity};
use dwcp_anomaly::internals::detect::Severity;
use dwcp_anomaly::internals::rfc3339;
use dwcp_anomaly::internals::telemetry::Telemetry;
use serde_json::{Value, json};
use tokio::sync::watch;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const T0: i64 = ALERT_T0;

fn event(kind: AlertKind, severity: Severity, at: i64) -> AlertEvent {
    let confidence = if kind == AlertKind::Resolved { 0.0 } else { 0.93 };
    let features = [("latency_ms", 0.75, 310.0, 40.0), ("jitter_ms", 0.2, 9.5, f64::NAN)];
    alert_event(kind, severity, confidence, &features, at)
}

fn links() -> Links {
    Links { external_url: "http://dwcp:9490".into(), runbook_url: "https://runbooks.example/dwcp".into() }
}

fn client() -> reqwest::Client {
    dwcp_anomaly::internals::retry::http_client().timeout(Duration::from_secs(5)).build().unwrap()
}

fn fast_retries() -> AlertConfig {
    AlertConfig {
        retries: 3,
        retry_backoff: Duration::from_millis(5),
        retry_max_backoff: Duration::from_millis(20),
        ..AlertConfig::default()
    }
}

async fn bodies(server: &MockServer) -> Vec<Value> {
    let reqs = server.received_requests().await.unwrap_or_default();
    reqs.iter().map(|r| serde_json::from_slice(&r.body).expect("JSON body")).collect()
}

async fn ok_server(status: u16) -> MockServer {
    let s = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(status)).mount(&s).await;
    s
}

const ENTITY_URL: &str = "http://dwcp:9490/?entity=instance%3D%22n1%22%2Cjob%3D%22dwcp%22";

#[tokio::test]
async fn slack_gets_a_block_kit_message_per_event() {
    let server = ok_server(200).await;
    let (tx, rx) = watch::channel(false);
    let mut d = Dispatcher::new(false, Arc::new(Telemetry::default()));
    let slack = Slack::new(client(), &format!("{}/services/T0/B0/x", server.uri()), "#ops", links());
    d.add(slack, MinSeverity::Warning, &AlertConfig::default(), &rx);
    d.dispatch(&event(AlertKind::Firing, Severity::Critical, T0));
    d.dispatch(&event(AlertKind::Resolved, Severity::Critical, T0 + 90_000));
    d.close().await;
    drop(tx);
    let got = bodies(&server).await;
    let title = "🔴 critical anomaly on instance=\"n1\",job=\"dwcp\": latency_ms";
    let expected = json!({
        "channel": "#ops",
        "text": title,
        "attachments": [{
            "color": "#E01E5A",
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": title}},
                {"type": "section", "fields": [
                    {"type": "mrkdwn", "text": "*Entity*\ninstance=\"n1\",job=\"dwcp\""},
                    {"type": "mrkdwn", "text": "*Severity*\ncritical"},
                    {"type": "mrkdwn", "text": "*Confidence*\n0.93"},
                    {"type": "mrkdwn", "text": "*Started*\n2026-01-01T00:00:00Z"},
                ]},
                {"type": "section", "text": {"type": "mrkdwn", "text":
                    "• *latency_ms* — 75 % of the anomaly, value 310, usually 40\n• *jitter_ms* — 20 % of the anomaly, value 9.5, usually unknown"}},
                {"type": "actions", "elements": [
                    {"type": "button", "text": {"type": "plain_text", "text": "Open in dwcp-anomaly"}, "url": ENTITY_URL},
                    {"type": "button", "text": {"type": "plain_text", "text": "Runbook"}, "url": "https://runbooks.example/dwcp"},
                ]},
            ],
        }],
    });
    assert_eq!(got.len(), 2, "{got:#?}");
    assert_eq!(got[0], expected);
    let resolved = &got[1];
    assert_eq!(resolved["attachments"][0]["color"], "#2EB67D");
    assert_eq!(resolved["text"], "✅ critical resolved anomaly on instance=\"n1\",job=\"dwcp\": latency_ms");
    assert_eq!(resolved["attachments"][0]["blocks"][1]["fields"][3]["text"], "*Duration*\n90s");
}

#[tokio::test]
async fn pagerduty_triggers_escalates_and_resolves_one_dedup_key() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/enqueue"))
        .respond_with(
            ResponseTemplate::new(202)
                .set_body_json(json!({"status": "success", "message": "Event processed", "dedup_key": "x"})),
        )
        .mount(&server)
        .await;
    let (_tx, rx) = watch::channel(false);
    let mut d = Dispatcher::new(false, Arc::new(Telemetry::default()));
    let pd = PagerDuty::new(client(), &format!("{}/v2/enqueue", server.uri()), "R0UTINGKEY", links());
    d.add(pd, MinSeverity::Warning, &AlertConfig::default(), &rx);
    d.dispatch(&event(AlertKind::Firing, Severity::Warning, T0));
    let mut esc = event(AlertKind::Escalated, Severity::Critical, T0 + 10_000);
    esc.features.swap(0, 1); // the top feature moved: the incident keeps its key
    d.dispatch(&esc);
    d.dispatch(&event(AlertKind::Resolved, Severity::Critical, T0 + 60_000));
    d.close().await;
    let got = bodies(&server).await;
    let key = "dwcp-anomaly/instance=\"n1\",job=\"dwcp\"/latency_ms";
    assert_eq!(
        got[0],
        json!({
            "routing_key": "R0UTINGKEY",
            "event_action": "trigger",
            "dedup_key": key,
            "payload": {
                "summary": "warning anomaly on instance=\"n1\",job=\"dwcp\": latency_ms",
                "source": "n1",
                "severity": "warning",
                "timestamp": "2026-01-01T00:00:00Z",
                "component": "dwcp",
                "group": "dwcp",
                "class": "DWCPAnomaly",
                "custom_details": {
                    "entity": "instance=\"n1\",job=\"dwcp\"",
                    "confidence": 0.93,
                    "started_at": "2026-01-01T00:00:00Z",
                    "features": [
                        {"name": "latency_ms", "contribution": 0.75, "value": 310.0, "expected": 40.0},
                        {"name": "jitter_ms", "contribution": 0.2, "value": 9.5, "expected": null},
                    ],
                },
            },
            "links": [
                {"href": ENTITY_URL, "text": "Open in dwcp-anomaly"},
                {"href": "https://runbooks.example/dwcp", "text": "Runbook"},
            ],
            "client": "dwcp-anomaly",
            "client_url": "http://dwcp:9490/",
        })
    );
    assert_eq!((got[1]["event_action"].as_str(), got[1]["dedup_key"].as_str()), (Some("trigger"), Some(key)));
    assert_eq!(got[1]["payload"]["severity"], "critical");
    assert_eq!(got[2], json!({"routing_key": "R0UTINGKEY", "event_action": "resolve", "dedup_key": key}));
}

#[tokio::test]
async fn the_webhook_body_is_the_documented_json_and_its_signature_verifies() {
    let server = ok_server(204).await;
    let (_tx, rx) = watch::channel(false);
    let mut d = Dispatcher::new(false, Arc::new(Telemetry::default()));
    d.add(
        Webhook::new(client(), &server.uri(), "s3cret", links()),
        MinSeverity::Info,
        &AlertConfig::default(),
        &rx,
    );
    let ev = event(AlertKind::Firing, Severity::Warning, T0 + 5_000);
    d.dispatch(&ev);
    d.close().await;
    let reqs = server.received_requests().await.unwrap();
    assert_eq!(reqs.len(), 1);
    let body: Value = serde_json::from_slice(&reqs[0].body).unwrap();
    assert_eq!(body, ev.to_json(&links()));
    assert_eq!(body["status"], "firing");
    assert_eq!(body["entity"], json!({"instance": "n1", "job": "dwcp"}));
    assert_eq!(body["timestamp"], rfc3339::format(T0 + 5_000));
    assert_eq!(body["features"][1]["expected"], Value::Null);
    let sig = reqs[0].headers.get(SIGNATURE_HEADER).expect("signed").to_str().unwrap();
    assert_eq!(sig, signature(b"s3cret", &reqs[0].body));
    assert_ne!(sig, signature(b"other", &reqs[0].body));
}

#[tokio::test]
async fn a_500_is_retried_and_a_400_is_not() {
    let flaky = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(500)).up_to_n_times(1).mount(&flaky).await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&flaky).await;
    let refusing = ok_server(400).await;
    let t = Arc::new(Telemetry::default());
    let (_tx, rx) = watch::channel(false);
    let mut d = Dispatcher::new(false, Arc::clone(&t));
    d.add(Slack::new(client(), &flaky.uri(), "", links()), MinSeverity::Warning, &fast_retries(), &rx);
    d.add(Webhook::new(client(), &refusing.uri(), "", links()), MinSeverity::Warning, &fast_retries(), &rx);
    d.dispatch(&event(AlertKind::Firing, Severity::Warning, T0));
    d.close().await;
    assert_eq!(flaky.received_requests().await.unwrap().len(), 2, "one 500, then delivered");
    assert_eq!(t.alert_retries.value(&["slack"]), 1.0);
    assert_eq!(t.alerts_sent.value(&["slack", "warning"]), 1.0);
    assert_eq!(refusing.received_requests().await.unwrap().len(), 1, "a 400 is final");
    assert_eq!(t.alerts_failed.value(&["webhook", "rejected"]), 1.0);
    assert_eq!(t.alert_retries.value(&["webhook"]), 0.0);
}

#[tokio::test]
async fn a_dead_receiver_is_given_up_on_after_the_retries() {
    let t = Arc::new(Telemetry::default());
    let (_tx, rx) = watch::channel(false);
    let mut d = Dispatcher::new(false, Arc::clone(&t));
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dead = format!("http://127.0.0.1:{port}/hook");
    d.add(Webhook::new(client(), &dead, "", links()), MinSeverity::Warning, &fast_retries(), &rx);
    d.dispatch(&event(AlertKind::Firing, Severity::Critical, T0));
    d.close().await;
    assert_eq!(t.alert_retries.value(&["webhook"]), 3.0);
    assert_eq!(t.alerts_failed.value(&["webhook", "retries_exhausted"]), 1.0);
}

#[tokio::test]
async fn severity_routes_warning_to_chat_and_critical_also_to_the_pager() {
    let (slack, pd) = (ok_server(200).await, ok_server(202).await);
    let (_tx, rx) = watch::channel(false);
    let cfg = AlertConfig::default();
    let mut d = Dispatcher::new(true, Arc::new(Telemetry::default()));
    d.add(Slack::new(client(), &slack.uri(), "", links()), cfg.slack_min_severity, &cfg, &rx);
    d.add(PagerDuty::new(client(), &pd.uri(), "k", links()), cfg.pagerduty_min_severity, &cfg, &rx);
    d.dispatch(&event(AlertKind::Firing, Severity::Info, T0));
    d.dispatch(&event(AlertKind::Firing, Severity::Warning, T0));
    d.dispatch(&event(AlertKind::Escalated, Severity::Critical, T0));
    d.close().await;
    let severities = |b: Vec<Value>| -> Vec<String> {
        b.iter()
            .map(|v| v.to_string())
            .map(|s| if s.contains("critical") { "critical" } else { "warning" }.into())
            .collect()
    };
    assert_eq!(severities(bodies(&slack).await), ["warning", "critical"], "info is log-only");
    let paged = bodies(&pd).await;
    assert_eq!(paged.len(), 1, "only the critical pages: {paged:#?}");
    assert_eq!(paged[0]["payload"]["severity"], "critical");
}

#[tokio::test]
async fn a_hanging_channel_delays_no_other() {
    let slow = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(30)))
        .mount(&slow)
        .await;
    let fast = ok_server(200).await;
    let (tx, rx) = watch::channel(false);
    let mut d = Dispatcher::new(false, Arc::new(Telemetry::default()));
    let cfg = AlertConfig::default();
    d.add(Webhook::new(client(), &slow.uri(), "", links()), MinSeverity::Warning, &cfg, &rx);
    d.add(Slack::new(client(), &fast.uri(), "", links()), MinSeverity::Warning, &cfg, &rx);
    let start = Instant::now();
    for i in 0..3 {
        d.dispatch(&event(AlertKind::Firing, Severity::Warning, T0 + i));
    }
    while fast.received_requests().await.unwrap().len() < 3 {
        assert!(start.elapsed() < Duration::from_secs(4), "the fast channel waited for the slow one");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tx.send(true).unwrap();
    drop(d);
}
