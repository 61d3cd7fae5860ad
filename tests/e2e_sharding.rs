//! Scale-out as the design describes it: a real Prometheus splits the DWCP series over two
//! dwcp-anomaly instances with `hashmod` on the entity labels (`examples/prometheus.yml`).
//! Every entity must land on exactly one instance.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;

const ENTITIES: usize = 6;

/// Entities an instance has scored or is warming: the `instance` label of its
/// `anomaly_model_state` series.
async fn entities(client: &reqwest::Client, port: u16) -> Option<BTreeSet<String>> {
    let m = get_ok(client, format!("http://127.0.0.1:{port}/metrics")).await?;
    let set: BTreeSet<String> = m
        .lines()
        .filter(|l| l.starts_with("anomaly_model_state{") && l.ends_with(" 1"))
        .filter_map(|l| l.split("instance=\"").nth(1)?.split('"').next().map(str::to_string))
        .collect();
    Some(set)
}

fn shard(port: u16, i: usize) -> String {
    format!(
        "  - url: http://127.0.0.1:{port}/api/v1/write\n    queue_config:\n      batch_send_deadline: 1s\n    \
         write_relabel_configs:\n      - source_labels: [__name__]\n        regex: dwcp_.*\n        action: keep\n      \
         - source_labels: [job, instance]\n        modulus: 2\n        target_label: __tmp_shard\n        action: hashmod\n      \
         - source_labels: [__tmp_shard]\n        regex: \"{i}\"\n        action: keep\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hashmod_split_gives_every_entity_to_exactly_one_instance() {
    let dir = tempfile::tempdir().unwrap();
    let (sim_port, a_port, p0, p1) = (free_port(), free_port(), free_port(), free_port());
    let client =
        dwcp_anomaly::internals::retry::http_client().timeout(Duration::from_secs(5)).build().unwrap();
    let svc0 = start_service("shard0", dir.path(), p0, "check_interval: 1s\n").await;
    let svc1 = start_service("shard1", dir.path(), p1, "check_interval: 1s\n").await;
    let sim = spawn_simulator(dir.path(), sim_port, &["--entities", &ENTITIES.to_string(), "--step", "1s"]);
    let a_cfg = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: dwcp\n    honor_labels: true\n    \
         static_configs:\n      - targets: ['127.0.0.1:{sim_port}']\nremote_write:\n{}{}",
        shard(p0, 0),
        shard(p1, 1)
    );
    let a = start_prometheus("prom-a", a_port, &a_cfg, dir.path(), false);
    let logs = || {
        [&svc0, &svc1, &sim, &a]
            .iter()
            .map(|p| format!("--- {} ---\n{}", p.name, p.tail()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let (s0, s1) = eventually(Duration::from_secs(60), "all entities placed", || async {
        let (s0, s1) = (entities(&client, p0).await?, entities(&client, p1).await?);
        (s0.len() + s1.len() >= ENTITIES).then_some((s0, s1))
    })
    .await;
    assert!(s0.is_disjoint(&s1), "an entity on both shards: {s0:?} / {s1:?}\n{}", logs());
    assert_eq!(s0.len() + s1.len(), ENTITIES, "{s0:?} / {s1:?}\n{}", logs());
    assert!(!s0.is_empty() && !s1.is_empty(), "one shard got everything: {s0:?} / {s1:?}");
}
