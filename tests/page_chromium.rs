//! The live page in a real browser: headless Chromium (Debian `chromium`) loads `/` while a
//! simulated spike is flagged and must show that entity with its severity; the entity view
//! (the link alerts carry, labels given in the other order) must show its detector scores.
//! Screenshots of both go to `<CARGO_TARGET_TMPDIR>/test-output/page_chromium/`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{eventually, free_port, get_ok, push_simulated, start_service, trained_state};

const CHROMIUM: &str = "/usr/bin/chromium";

fn chromium() -> PathBuf {
    let p = PathBuf::from(CHROMIUM);
    assert!(
        p.is_file(),
        "{CHROMIUM} not found: install it with `apt-get install -y --no-install-recommends chromium` \
         (scripts/test.sh does this)"
    );
    p
}

/// Runs headless Chromium on `url` with `extra` arguments (`--dump-dom` or `--screenshot=…`);
/// returns stdout.
fn run_chromium(profile: &Path, url: &str, extra: &[String]) -> String {
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(out.status.success(), "chromium {extra:?} {url}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The DOM's text (tags dropped, entities of the page's escaping undone, whitespace collapsed).
fn text(dom: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    let mut in_style = false;
    for (i, c) in dom.char_indices() {
        match c {
            '<' => {
                in_tag = true;
                in_style = dom[i..].starts_with("<style");
                out.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag && !in_style => out.push(c),
            _ => {}
        }
        if in_style && dom[..=i].ends_with("</style") {
            in_style = false;
        }
    }
    let out = out.replace("&quot;", "\"").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&");
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn screenshot(profile: &Path, url: &str, file: &Path) {
    run_chromium(
        profile,
        url,
        &[format!("--screenshot={}", file.display()), "--window-size=1400,1000".into()],
    );
    let png = std::fs::read(file).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{}: {} bytes", file.display(), png.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_shows_a_flagged_entity_in_headless_chromium() {
    chromium();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("test-output/page_chromium");
    std::fs::create_dir_all(&out).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = trained_state(dir.path());
    let port = free_port();
    let config = format!("check_interval: 1s\nstate_dir: {}\n", state.display());
    let service = start_service("serve", dir.path(), port, &config).await;
    let base = format!("http://127.0.0.1:{port}");

    // Normal traffic, then a spike (4 s in) that is still the newest sample afterwards.
    tokio::task::spawn_blocking(move || push_simulated(port, "10s", Some("4s:60s"))).await.unwrap();
    let client = dwcp_anomaly::internals::retry::http_client().build().unwrap();
    let (labels, severity) =
        eventually(Duration::from_secs(20), "the spike flagged warning or worse", || async {
            let body = get_ok(&client, format!("{base}/api/v1/status")).await?;
            let v: serde_json::Value = serde_json::from_str(&body).ok()?;
            v["entities"].as_array()?.iter().find_map(|e| {
                let sev = e["score"]["severity"].as_str()?;
                (e["score"]["anomalous"] == true && (sev == "warning" || sev == "critical"))
                    .then(|| (e["labels"].as_object().unwrap().clone(), sev.to_string()))
            })
        })
        .await;
    let instance = labels["instance"].as_str().unwrap().to_string();
    assert_eq!(instance, "dwcp-node-01");

    let profile = dir.path().join("chromium");
    let dom = run_chromium(&profile, &format!("{base}/"), &["--dump-dom".into()]);
    let page = text(&dom);
    assert!(page.contains("1 anomalous"), "{page}\n--- service ---\n{}", service.tail());
    // The entity's row: its labels, then state, severity, confidence.
    let row = format!("job={} instance={instance} ready {severity}", labels["job"].as_str().unwrap());
    assert!(page.contains(&row), "no row {row:?} in: {page}");
    assert!(page.contains("Recent anomalies") && page.contains(&format!("instance={instance}")), "{page}");
    assert!(dom.contains("<polyline class=\"line\""), "no sparkline: {dom}");
    screenshot(&profile, &format!("{base}/"), &out.join("page.png"));

    // The entity view, labels in the reverse of the service's order (as some alert texts give them).
    let mut pairs: Vec<String> =
        labels.iter().map(|(k, v)| format!("{k}=\"{}\"", v.as_str().unwrap())).collect();
    pairs.reverse();
    let entity = pairs.join(",");
    let enc: String = entity.bytes().map(|b| format!("%{b:02X}")).collect();
    let url = format!("{base}/?entity={enc}");
    let page = text(&run_chromium(&profile, &url, &["--dump-dom".into()]));
    assert!(page.contains(&format!("severity {severity}")), "{page}");
    assert!(page.contains("ensemble") && page.contains("zscore"), "no detector scores: {page}");
    assert!(page.contains("latency_ms"), "no feature timelines: {page}");
    screenshot(&profile, &url, &out.join("entity.png"));

    let missing =
        text(&run_chromium(&profile, &format!("{base}/?entity=job%3D%22nope%22"), &["--dump-dom".into()]));
    assert!(missing.contains("No such entity"), "{missing}");
    eprintln!("screenshots in {}", out.display());
}
