//! A restart of `serve` neither re-pages a firing alert nor forgets to resolve it: the alert
//! state is saved in the state directory at shutdown and taken over at start. The receiver is
//! the generic JSON webhook, served by wiremock on loopback.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Proc, eventually, free_port, get_ok, service_bin, spawn};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn run(args: &[&str]) {
    let out = Command::new(service_bin()).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Event kinds the webhook received, in order.
async fn kinds(server: &MockServer) -> Vec<String> {
    let reqs = server.received_requests().await.unwrap_or_default();
    reqs.iter()
        .filter_map(|r| serde_json::from_slice::<serde_json::Value>(&r.body).ok())
        .filter_map(|v| v["kind"].as_str().map(str::to_string))
        .collect()
}

fn start(name: &str, dir: &Path, port: u16, state: &Path, webhook: &str) -> Proc {
    let cfg = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &cfg,
        format!(
            "check_interval: 1s\nlisten: 127.0.0.1:{port}\nstate_dir: {}\n\
             alert:\n  webhook_url: {webhook}\n  webhook_min_severity: info\n  resolve_after: 3\n",
            state.display()
        ),
    )
    .unwrap();
    spawn(name, &service_bin(), &["serve".into(), "--config".into(), cfg.display().to_string()], dir)
}

/// Pushes `duration` of one simulated entity in real time, with a spike from `anomaly` on.
fn push(port: u16, duration: &str, anomaly: Option<&str>) {
    let url = format!("http://127.0.0.1:{port}/api/v1/write");
    let mut args = vec!["simulate", "--entities", "1", "--step", "1s", "--seed", "3"];
    let spec;
    if let Some(a) = anomaly {
        spec = format!("1:spike:{a}");
        args.extend(["--anomaly", &spec]);
    }
    args.extend(["push", "--url", &url, "--duration", duration]);
    run(&args);
}

fn stop(p: &mut Proc) {
    let status = Command::new("kill").args(["-TERM", &p.pid().to_string()]).status().unwrap();
    assert!(status.success());
    let start = Instant::now();
    while p.alive() {
        assert!(start.elapsed() < Duration::from_secs(15), "still running after SIGTERM\n{}", p.tail());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_neither_repages_nor_forgets_to_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let (data, state) = (dir.path().join("data"), dir.path().join("state"));
    run(&[
        "simulate",
        "--entities",
        "1",
        "--step",
        "10s",
        "--seed",
        "3",
        "csv",
        "--out",
        data.to_str().unwrap(),
        "--duration",
        "2h",
    ]);
    run(&["train", "--data", data.to_str().unwrap(), "--state-dir", state.to_str().unwrap()]);

    let hook = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&hook).await;
    let client = dwcp_anomaly::http_client().build().unwrap();

    let port = free_port();
    let mut first = start("serve1", dir.path(), port, &state, &hook.uri());
    eventually(Duration::from_secs(20), "first service ready", || {
        get_ok(&client, format!("http://127.0.0.1:{port}/-/ready"))
    })
    .await;
    // Normal traffic, then a spike that lasts beyond the first service's life.
    push(port, "12s", Some("4s:60s"));
    let fired = eventually(Duration::from_secs(15), "a firing notification", || async {
        let k = kinds(&hook).await;
        k.iter().any(|k| k == "firing").then_some(k)
    })
    .await;
    assert!(!fired.contains(&"resolved".to_string()), "resolved during the spike: {fired:?}");
    stop(&mut first);
    let log = std::fs::read_to_string(&first.log).unwrap();
    let before = kinds(&hook).await;

    let port2 = free_port();
    let second = start("serve2", dir.path(), port2, &state, &hook.uri());
    eventually(Duration::from_secs(20), "second service ready", || {
        get_ok(&client, format!("http://127.0.0.1:{port2}/-/ready"))
    })
    .await;
    let log2 = std::fs::read_to_string(&second.log).unwrap();
    assert!(log2.contains("Restored alert state."), "{log2}\n--- first service ---\n{log}");
    // The spike goes on, then traffic is normal again.
    push(port2, "6s", Some("0s:6s"));
    push(port2, "10s", None);
    let after = eventually(Duration::from_secs(15), "a resolved notification", || async {
        let k = kinds(&hook).await;
        k.iter().any(|k| k == "resolved").then_some(k)
    })
    .await;
    let new = &after[before.len()..];
    assert!(
        !new.iter().any(|k| k == "firing"),
        "the restart re-paged: before {before:?}, after the restart {new:?}\n{}",
        second.tail()
    );
}
