//! Scrape ingest end to end: the service scrapes the simulator's `/metrics` page itself (no
//! Prometheus server), scores the entity and flags the injected spike; a target that is down
//! shows `dwcp_anomaly_scrape_up 0` and stops nothing else.

mod common;

use std::time::Duration;

use common::*;
use dwcp_anomaly::internals::telemetry::names::{SAMPLES_RECEIVED, SCRAPE_SAMPLES, SCRAPE_UP};

#[tokio::test(flavor = "multi_thread")]
async fn scraped_target_is_scored_and_its_spike_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let state = trained_state(dir.path());
    let sim_port = free_port();
    let args = ["--entities", "1", "--step", "1s", "--seed", "3", "--anomaly", "1:spike:6s:60s"];
    let sim = spawn_simulator(dir.path(), sim_port, &args);

    let (port, dead) = (free_port(), free_port());
    let target = format!("http://127.0.0.1:{sim_port}/metrics");
    let down = format!("http://127.0.0.1:{dead}/metrics");
    let config = format!(
        "check_interval: 1s\nstate_dir: {}\nscrape:\n  \
         - url: {target}\n    interval: 1s\n    timeout: 900ms\n    job: dwcp\n    honor_labels: true\n  \
         - url: {down}\n    interval: 1s\n    timeout: 500ms\n",
        state.display()
    );
    let svc = start_service("serve", dir.path(), port, &config).await;
    let http = dwcp_anomaly::internals::retry::http_client().build().unwrap();
    let text = eventually(Duration::from_secs(40), "the spike flagged from scraped samples", || async {
        let text = get_ok(&http, format!("http://127.0.0.1:{port}/metrics")).await?;
        text.lines()
            .any(|l| {
                l.starts_with("anomaly_flag{") && l.contains("instance=\"dwcp-node-01\"") && l.ends_with(" 1")
            })
            .then_some(text)
    })
    .await;
    let line = |prefix: String| text.lines().find(|l| l.starts_with(&prefix)).map(str::to_string);
    assert!(line("anomaly_flag{".into()).unwrap().contains("job=\"dwcp\""), "{text}");
    assert_eq!(
        line(format!("{SCRAPE_UP}{{target=\"{target}\"}}")).unwrap().rsplit(' ').next(),
        Some("1"),
        "{text}"
    );
    assert_eq!(
        line(format!("{SCRAPE_UP}{{target=\"{down}\"}}")).unwrap().rsplit(' ').next(),
        Some("0"),
        "{text}"
    );
    let samples: f64 = line(format!("{SCRAPE_SAMPLES}{{target=\"{target}\"}}"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap();
    assert!(samples >= 7.0, "{text}");
    assert!(line(format!("{SAMPLES_RECEIVED}{{protocol=\"scrape\"}}")).is_some(), "{text}\n{}", svc.tail());
    // The simulator logs the injection it serves, as the demo does.
    let sim_log = std::fs::read_to_string(&sim.log).unwrap();
    assert!(
        sim_log.lines().any(|l| l.contains("Injecting an anomaly.")
            && l.contains("dwcp-node-01")
            && l.contains("spike")),
        "{sim_log}"
    );
}

/// The getting-started trap: `simulate serve` scraped without `honor_labels` turns its five
/// nodes into one entity (job and instance of the scrape target). The service says so — a
/// warning naming the labels that differ, `dwcp_anomaly_vectorize_merged_series_total`, a
/// notice on the entity's page — and with `honor_labels: true` stays quiet.
#[tokio::test(flavor = "multi_thread")]
async fn series_collapsed_into_one_entity_are_reported_and_honor_labels_keeps_them_apart() {
    use dwcp_anomaly::internals::telemetry::names::MERGED_SERIES;
    let dir = tempfile::tempdir().unwrap();
    let sim_port = free_port();
    let _sim = spawn_simulator(dir.path(), sim_port, &["--entities", "5", "--step", "1s"]);
    let target = format!("http://127.0.0.1:{sim_port}/metrics");
    let http = dwcp_anomaly::internals::retry::http_client().build().unwrap();
    let merged_total = |text: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(MERGED_SERIES))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };

    // Without honor_labels: one entity job="dwcp",instance="127.0.0.1:<port>" gets five series per feature.
    let (port, honored) = (free_port(), free_port());
    let plain = format!(
        "check_interval: 1s\nscrape:\n  - url: {target}\n    interval: 1s\n    timeout: 900ms\n    job: dwcp\n"
    );
    let mut svc = start_service("plain", dir.path(), port, &plain).await;
    let text = eventually(Duration::from_secs(30), "merged series counted", || async {
        let text = get_ok(&http, format!("http://127.0.0.1:{port}/metrics")).await?;
        (merged_total(&text) >= 4.0).then_some(text)
    })
    .await;
    assert!(text.contains(&format!("{MERGED_SERIES}{{profile=\"dwcp\",feature=\"cpu_pct\"}}")), "{text}");
    let entity = format!("?entity=job%3D%22dwcp%22%2Cinstance%3D%22127.0.0.1%3A{sim_port}%22");
    eventually(Duration::from_secs(10), "the notice on the entity's page", || async {
        let page = get_ok(&http, format!("http://127.0.0.1:{port}/{entity}")).await?;
        page.contains("combines 5 series of this entity").then_some(())
    })
    .await;
    stop(&mut svc);
    let log = std::fs::read_to_string(&svc.log).unwrap();
    let warning =
        log.lines().find(|l| l.contains("Several series feed one feature of one entity")).expect(&log);
    assert!(warning.contains("exported_instance") && warning.contains("honor_labels"), "{warning}");

    // With honor_labels: five entities, nothing merged.
    let kept = format!("{plain}    honor_labels: true\n");
    let _svc = start_service("honored", dir.path(), honored, &kept).await;
    let text = eventually(Duration::from_secs(30), "five entities scored apart", || async {
        let text = get_ok(&http, format!("http://127.0.0.1:{honored}/metrics")).await?;
        (text.matches("anomaly_model_state{").count() >= 5 * 3).then_some(text)
    })
    .await;
    assert_eq!(merged_total(&text), 0.0, "{text}");
}
