//! A restart of `serve` neither re-pages a firing alert nor forgets to resolve it: the alert
//! state is saved in the state directory at shutdown and taken over at start. The receiver is
//! the generic JSON webhook, served by wiremock on loopback.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{eventually, free_port, push_simulated, start_service, stop, trained_state};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Event kinds the webhook received, in order.
async fn kinds(server: &MockServer) -> Vec<String> {
    let reqs = server.received_requests().await.unwrap_or_default();
    reqs.iter()
        .filter_map(|r| serde_json::from_slice::<serde_json::Value>(&r.body).ok())
        .filter_map(|v| v["kind"].as_str().map(str::to_string))
        .collect()
}

fn config(state: &Path, webhook: &str) -> String {
    format!(
        "check_interval: 1s\nstate_dir: {}\n\
         alert:\n  webhook_url: {webhook}\n  webhook_min_severity: info\n  resolve_after: 3\n",
        state.display()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_neither_repages_nor_forgets_to_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let state = trained_state(dir.path());

    let hook = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&hook).await;

    let port = free_port();
    let mut first = start_service("serve1", dir.path(), port, &config(&state, &hook.uri())).await;
    // Normal traffic, then a spike that lasts beyond the first service's life.
    push_simulated(port, "12s", Some("4s:60s"));
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
    let second = start_service("serve2", dir.path(), port2, &config(&state, &hook.uri())).await;
    let log2 = std::fs::read_to_string(&second.log).unwrap();
    assert!(log2.contains("Restored alert state."), "{log2}\n--- first service ---\n{log}");
    // The spike goes on, then traffic is normal again.
    push_simulated(port2, "6s", Some("0s:6s"));
    push_simulated(port2, "10s", None);
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
