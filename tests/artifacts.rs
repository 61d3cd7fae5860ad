//! The files users copy — examples, Grafana dashboard, Prometheus rules — stay true to the
//! service: the example config validates, and every metric name they query is one the service
//! writes.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::service_bin;
use dwcp_anomaly::internals::export::Series;
use dwcp_anomaly::internals::telemetry::Telemetry;

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap()
}

/// Every series name the service can write: score series and its own `dwcp_anomaly_*`.
fn written() -> BTreeSet<String> {
    let mut out = String::new();
    Telemetry::default().render(&mut out);
    let mut names: BTreeSet<String> = out
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(String::from)
        .collect();
    let histograms: Vec<String> = out
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter(|l| l.ends_with(" histogram"))
        .filter_map(|l| l.split(' ').next())
        .flat_map(|n| ["_bucket", "_sum", "_count"].map(|s| format!("{n}{s}")))
        .collect();
    names.extend(histograms);
    names.extend(Series::ALL.iter().map(|s| s.name().to_string()));
    names
}

/// Names in `text` that look like the service's series (`anomaly_*`, `dwcp_anomaly_*`).
fn used(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    let mut i = 0;
    while i < bytes.len() {
        if word(bytes[i]) && (i == 0 || !word(bytes[i - 1])) {
            let start = i;
            while i < bytes.len() && word(bytes[i]) {
                i += 1;
            }
            let w = &text[start..i];
            if (w.starts_with("anomaly_") || w.starts_with("dwcp_anomaly_")) && !w.contains(':') {
                names.insert(w.to_string());
            }
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn dashboard_and_rules_query_only_series_the_service_writes() {
    let known = written();
    for file in [
        "dashboards/dwcp-anomaly.json",
        "dashboards/dwcp-anomaly-self.json",
        "rules/dwcp-anomaly.rules.yml",
        "rules/tests.yml",
    ] {
        let names = used(&read(file));
        assert!(names.len() >= 3, "{file}: too few series found: {names:?}");
        let unknown: Vec<&String> = names.iter().filter(|n| !known.contains(*n)).collect();
        assert!(unknown.is_empty(), "{file} queries series the service never writes: {unknown:?}");
    }
    for file in ["dashboards/dwcp-anomaly.json", "dashboards/dwcp-anomaly-self.json"] {
        let dash: serde_json::Value = serde_json::from_str(&read(file)).unwrap();
        assert!(dash["schemaVersion"].as_u64().unwrap() >= 39, "{file}");
        let mut ids: Vec<u64> =
            dash["panels"].as_array().unwrap().iter().filter_map(|p| p["id"].as_u64()).collect();
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n, "{file}: panel ids repeat");
        // Every target reads the data source chosen in the template variable.
        for panel in dash["panels"].as_array().unwrap() {
            for t in panel["targets"].as_array().into_iter().flatten() {
                let uid = t["datasource"]["uid"].as_str().unwrap_or_default();
                assert!(
                    uid.starts_with("${"),
                    "{file}: panel {:?} has a fixed data source {uid:?}",
                    panel["title"]
                );
            }
            // No fixed threshold lines: the live threshold is a series.
            let style = &panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"];
            assert!(
                style.is_null() || style == "off",
                "{file}: panel {:?} draws fixed thresholds",
                panel["title"]
            );
        }
    }
}

#[test]
fn the_example_config_validates_with_its_secrets_from_the_environment() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/dwcp-anomaly.yaml");
    let out = Command::new(service_bin())
        .args(["check-config", file.to_str().unwrap()])
        .env("DWCP_ANOMALY_SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T0/B0/XXXX")
        .env("DWCP_ANOMALY_PAGERDUTY_ROUTING_KEY", "R0UTING")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("slack_webhook_url: <secret>") && !stdout.contains("R0UTING"), "{stdout}");
    let out = Command::new(service_bin())
        .args(["check-config", file.to_str().unwrap()])
        .env_remove("DWCP_ANOMALY_SLACK_WEBHOOK_URL")
        .env_remove("DWCP_ANOMALY_PAGERDUTY_ROUTING_KEY")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("alert.slack_webhook_url"), "{stderr}");
}

#[test]
fn every_eval_example_config_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.starts_with("eval-") && name.ends_with(".yaml")) {
            continue;
        }
        let out =
            Command::new(service_bin()).args(["check-config", path.to_str().unwrap()]).output().unwrap();
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        checked += 1;
    }
    assert!(checked >= 3, "only {checked} eval example configs found");
}

#[test]
fn the_ensemble_example_is_what_eval_runs_without_a_config() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ensemble.yaml");
    let cfg = dwcp_anomaly::Config::load(Some(&path)).unwrap();
    assert_eq!(cfg.detect, dwcp_anomaly::internals::config::DetectConfig::ensemble());
}
