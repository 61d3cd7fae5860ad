//! `docs/getting-started.md` section 3 as a reader runs it: the commands are taken from the
//! page (ports changed to free ones, the files of `examples/local/` copied with the same
//! change), then: scores of every simulated entity in Prometheus, the injected anomaly's alert
//! in Alertmanager with its severity, no merged series. The same stack with `honor_labels`
//! taken out of the Prometheus config makes the service warn and count the merged series.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The lines ending in ` &` of the first ```sh block of section 3, and the section's text.
fn section_commands() -> (Vec<String>, String) {
    let doc = std::fs::read_to_string(Path::new(ROOT).join("docs/getting-started.md")).unwrap();
    let section = doc.split("\n## 3. ").nth(1).unwrap().split("\n## 4. ").next().unwrap().to_string();
    let block = section.split("```sh\n").nth(1).unwrap().split("```").next().unwrap();
    let commands = block.lines().filter_map(|l| l.strip_suffix(" &")).map(str::to_string).collect();
    (commands, section)
}

struct Stack {
    /// Port of each documented port, in the commands and the copied files.
    ports: Vec<(u16, u16)>,
    dir: PathBuf,
}

impl Stack {
    fn new(dir: &Path) -> Self {
        let ports = [9490, 9491, 9090, 9093, 4317].into_iter().map(|p| (p, free_port())).collect();
        Self { ports, dir: dir.to_path_buf() }
    }

    fn port(&self, documented: u16) -> u16 {
        self.ports.iter().find(|(d, _)| *d == documented).unwrap().1
    }

    fn localise(&self, text: &str) -> String {
        let mut t = text.replace("examples/local/", &format!("{}/", self.dir.join("local").display()));
        for (doc, free) in &self.ports {
            t = t.replace(&format!("127.0.0.1:{doc}"), &format!("127.0.0.1:{free}"));
        }
        t
    }

    /// Copies `examples/local/` with the ports changed; `edit` may change a file's text.
    fn copy_files(&self, edit: impl Fn(&str, String) -> String) {
        std::fs::create_dir_all(self.dir.join("local")).unwrap();
        for entry in std::fs::read_dir(Path::new(ROOT).join("examples/local")).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let text = self.localise(&std::fs::read_to_string(&path).unwrap());
            std::fs::write(self.dir.join("local").join(&name), edit(&name, text)).unwrap();
        }
    }

    /// Starts one documented command in the stack's directory.
    fn start(&self, command: &str) -> Proc {
        let line = self.localise(command);
        let mut words = line.split_whitespace().map(str::to_string);
        let program = words.next().unwrap();
        let (name, bin) = match program.as_str() {
            "./target/release/dwcp-anomaly" => ("dwcp-anomaly", service_bin()),
            other => (other, require(other, other)),
        };
        let args: Vec<String> = words.collect();
        // The service's two commands (simulate, serve) get their subcommand in the log's name.
        let name = match args.first() {
            Some(sub) if !sub.starts_with('-') => format!("{name}-{sub}"),
            _ => name.to_string(),
        };
        spawn(&name, &bin, &args, &self.dir)
    }
}

// One test, two stacks one after the other: side by side on two cores they slowed each other
// past the waits.
#[tokio::test(flavor = "multi_thread")]
async fn the_local_stack_of_getting_started_scores_alerts_and_keeps_entities_apart() {
    without_honor_labels_the_service_reports_the_merged_nodes().await;
    let (commands, section) = section_commands();
    assert_eq!(commands.len(), 4, "simulator, service, Prometheus, Alertmanager: {commands:?}");
    let dir = tempfile::tempdir().unwrap();
    let stack = Stack::new(dir.path());
    stack.copy_files(|_, text| text);
    let _procs: Vec<Proc> = commands.iter().map(|c| stack.start(c)).collect();
    let client = dwcp_anomaly::internals::retry::http_client().build().unwrap();
    let prom = format!("http://127.0.0.1:{}", stack.port(9090));
    // The page's first check: scores of every entity in Prometheus.
    let scores =
        eventually(Duration::from_secs(240), "ensemble scores of the three nodes in Prometheus", || async {
            let r = prom_query(&client, &prom, "anomaly_score{detector=\"ensemble\"}").await;
            (r.len() == 3).then_some(r)
        })
        .await;
    let mut instances: Vec<&str> =
        scores.iter().filter_map(|(labels, _)| labels["instance"].as_str()).collect();
    instances.sort();
    assert_eq!(instances, ["dwcp-node-01", "dwcp-node-02", "dwcp-node-03"], "{scores:?}");

    // The second: the injected CPU saturation's alert in Alertmanager, with its severity.
    let am = format!("http://127.0.0.1:{}", stack.port(9093));
    let alert = eventually(Duration::from_secs(180), "the DWCPAnomaly alert of dwcp-node-02", || async {
        let alerts = get_json(&client, &format!("{am}/api/v2/alerts"), &[]).await?;
        alerts.as_array()?.iter().find(|a| a["labels"]["instance"] == "dwcp-node-02").cloned()
    })
    .await;
    assert_eq!(alert["labels"]["alertname"], "DWCPAnomaly", "{alert}");
    let severity = alert["labels"]["severity"].as_str().unwrap_or_default();
    assert!(["warning", "critical"].contains(&severity), "{alert}");
    assert!(section.contains("critical") && section.contains("pager"), "the page says where critical goes");
    let merged = prom_query(&client, &prom, "sum(dwcp_anomaly_vectorize_merged_series_total)").await;
    let merged: f64 = merged.first().map_or(0.0, |(_, v)| *v);
    assert_eq!(merged, 0.0, "honor_labels keeps the nodes apart");
}

/// The stack without `honor_labels` on the simulator's scrape job: the service reports the merge.
async fn without_honor_labels_the_service_reports_the_merged_nodes() {
    let (commands, _) = section_commands();
    let dir = tempfile::tempdir().unwrap();
    let stack = Stack::new(dir.path());
    // The scrape job of the simulator without honor_labels (the scores job keeps it).
    stack.copy_files(|name, text| {
        if name == "prometheus.yml" { text.replacen("    honor_labels: true\n", "", 1) } else { text }
    });
    let procs: Vec<Proc> = commands.iter().take(3).map(|c| stack.start(c)).collect();
    let client = dwcp_anomaly::internals::retry::http_client().build().unwrap();
    let service = format!("http://127.0.0.1:{}", stack.port(9490));
    eventually(Duration::from_secs(60), "dwcp_anomaly_vectorize_merged_series_total above 0", || async {
        let text = get_ok(&client, format!("{service}/metrics")).await?;
        text.lines()
            .filter(|l| l.starts_with("dwcp_anomaly_vectorize_merged_series_total{"))
            .any(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()).is_some_and(|v| v > 0.0))
            .then_some(())
    })
    .await;
    let log = std::fs::read_to_string(&procs[1].log).unwrap();
    assert!(log.contains("Several series feed one feature of one entity"), "{log}");
    drop(procs);
}
