//! What TLS and authentication cost on remote-write ingest: the same load — pre-encoded
//! remote-write 1.0 requests of 500 `dwcp` entities × 7 series, sent for 10 s by 8 concurrent
//! keep-alive senders — against the release service started three times: plain HTTP, TLS with a
//! bearer token, TLS with basic auth (bcrypt cost 10, verified once and cached). Prints accepted
//! samples per second for each.
//!
//!     cargo bench --bench ingest_tls
//!
//! Sender and service share the machine's cores, the same in every mode.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dwcp_anomaly::internals::proto::remote_write::{Encoder, compress};
use dwcp_anomaly::internals::simulate::METRICS;
use rcgen::{CertificateParams, KeyPair};

const ENTITIES: usize = 500;
const SENDERS: usize = 8;
const RUN: Duration = Duration::from_secs(10);
const TOKEN: &str = "bench-token-0123456789abcdef";
const PASSWORD: &str = "bench-password";

/// One request per step: every entity's 7 series, one sample each at `step` seconds.
fn bodies(steps: usize) -> Vec<Arc<Vec<u8>>> {
    let now = dwcp_anomaly::internals::rfc3339::now_ms();
    (0..steps)
        .map(|step| {
            let mut enc = Encoder::default();
            let ts = now + step as i64 * 1000;
            for e in 0..ENTITIES {
                let instance = format!("node-{e:04}");
                for (i, m) in METRICS.iter().enumerate() {
                    let labels = [("__name__", *m), ("instance", instance.as_str()), ("job", "dwcp")];
                    enc.series(&labels, &[(10.0 + i as f64 + (step % 7) as f64 * 0.1, ts)]);
                }
            }
            Arc::new(compress(&enc.finish()))
        })
        .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start(dir: &Path, name: &str, web: Option<&Path>) -> (Child, u16) {
    let port = free_port();
    let cfg = dir.join(format!("{name}.yaml"));
    let mut text =
        format!("listen: 127.0.0.1:{port}\nlog:\n  level: warn\nvectorize:\n  max_entities: 100000\n");
    if let Some(w) = web {
        text.push_str(&format!("web_config_file: {}\n", w.display()));
    }
    std::fs::write(&cfg, text).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_dwcp-anomaly"))
        .args(["serve", "--config", cfg.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (child, port)
}

async fn run(
    client: reqwest::Client,
    url: String,
    auth: Option<String>,
    bodies: &[Arc<Vec<u8>>],
) -> (f64, u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while client
        .get(url.replace("/api/v1/write", "/-/ready"))
        .send()
        .await
        .map(|r| r.status().is_success())
        .ok()
        != Some(true)
    {
        assert!(Instant::now() < deadline, "service not ready at {url}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let accepted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..SENDERS {
        let (client, url, auth) = (client.clone(), url.clone(), auth.clone());
        let (accepted, refused) = (Arc::clone(&accepted), Arc::clone(&refused));
        let bodies: Vec<Arc<Vec<u8>>> = bodies.iter().skip(s).step_by(SENDERS).cloned().collect();
        tasks.push(tokio::spawn(async move {
            let mut i = 0;
            while start.elapsed() < RUN {
                let mut req = client
                    .post(&url)
                    .header("Content-Encoding", "snappy")
                    .header("Content-Type", "application/x-protobuf")
                    .header("X-Prometheus-Remote-Write-Version", "0.1.0")
                    .body(bodies[i % bodies.len()].as_ref().clone());
                if let Some(a) = &auth {
                    req = req.header("Authorization", a);
                }
                match req.send().await {
                    Ok(r) if r.status().is_success() => {
                        accepted.fetch_add((ENTITIES * METRICS.len()) as u64, Ordering::Relaxed);
                    }
                    _ => {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
                i += 1;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    (accepted.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64(), refused.load(Ordering::Relaxed))
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap().self_signed(&key).unwrap();
    std::fs::write(d.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(d.join("key.pem"), key.serialize_pem()).unwrap();
    let tls = "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n";
    std::fs::write(d.join("bearer.yml"), format!("{tls}bearer_tokens:\n  - {TOKEN}\n")).unwrap();
    let hash = bcrypt::hash(PASSWORD, 10).unwrap();
    std::fs::write(d.join("basic.yml"), format!("{tls}basic_auth_users:\n  ops: {hash}\n")).unwrap();
    let bodies = bodies(64);
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("ops:{PASSWORD}"))
    );
    let modes: [(&str, Option<&str>, Option<String>); 3] = [
        ("plain HTTP, no auth", None, None),
        ("TLS + bearer token", Some("bearer.yml"), Some(format!("Bearer {TOKEN}"))),
        ("TLS + basic auth", Some("basic.yml"), Some(basic)),
    ];
    println!(
        "remote-write ingest, {ENTITIES} entities x 7 series per request, {SENDERS} senders, {RUN:?} each"
    );
    let mut base = None;
    for (name, web, auth) in modes {
        let (mut child, port) =
            start(d, &name.replace([' ', ',', '+'], "_"), web.map(|w| d.join(w)).as_deref());
        let scheme = if web.is_some() { "https" } else { "http" };
        let client = dwcp_anomaly::internals::retry::http_client()
            .tls_certs_only([reqwest::Certificate::from_pem(cert.pem().as_bytes()).unwrap()])
            .build()
            .unwrap();
        let url = format!("{scheme}://127.0.0.1:{port}/api/v1/write");
        let (rate, refused) = rt.block_on(run(client, url, auth, &bodies));
        let _ = child.kill();
        let _ = child.wait();
        let base = *base.get_or_insert(rate);
        println!(
            "{name:<22} {:>10.0} samples/s  {:>6.1} % of plain  ({refused} requests refused)",
            rate,
            100.0 * rate / base
        );
    }
}
