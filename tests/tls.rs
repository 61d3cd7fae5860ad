//! `tls_server_config` of the web configuration file: a real Prometheus remote-writes to the
//! service over TLS (once with `basic_auth`, once with a bearer token, trusting the test's CA
//! through `tls_config.ca_file`) and its series are scored; mutual TLS refuses a client without
//! a certificate; a rotated certificate is served after SIGHUP without a restart and a broken
//! one leaves the previous pair serving; scores go out to a real Prometheus and an alert to a
//! real Alertmanager, each behind its own `--web.config.file` (TLS and basic auth), trusting the
//! test's CA through `tls_config.ca_file`. Certificates are made by the test (rcgen).

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};

const PASSWORD: &str = "correct-horse-battery";
const TOKEN: &str = "tok-0123456789abcdef0123";

/// A certificate authority made for one test.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        Self { issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap() }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf for 127.0.0.1 and localhost: (certificate PEM, key PEM, certificate DER).
    fn leaf(&self, name: &str, usage: ExtendedKeyUsagePurpose) -> (String, String, Vec<u8>) {
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }
}

/// Writes the server's pair and the CA, and a web config with TLS and both credentials.
fn write_web(
    dir: &Path,
    ca: &Ca,
    server: &(String, String, Vec<u8>),
    client_auth: &str,
) -> std::path::PathBuf {
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("server.crt"), &server.0).unwrap();
    std::fs::write(dir.join("server.key"), &server.1).unwrap();
    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    let web = dir.join("web.yml");
    // Relative paths: read from the web config's directory, as exporter-toolkit does.
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_ca_file: ca.pem\n  \
             client_auth_type: {client_auth}\n  min_version: TLS12\nbasic_auth_users:\n  ops: {hash}\n\
             bearer_tokens:\n  - {TOKEN}\n"
        ),
    )
    .unwrap();
    web
}

/// A client that trusts `ca` only and opens a new connection per request.
fn client(ca: &Ca, identity: Option<&(String, String, Vec<u8>)>) -> reqwest::Client {
    let mut b = dwcp_anomaly::internals::retry::http_client()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap()])
        .tls_info(true)
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5));
    if let Some((cert, key, _)) = identity {
        b = b.identity(reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap());
    }
    b.build().unwrap()
}

/// DER of the certificate the server presented for `url`, when the request succeeded.
async fn served_cert(client: &reqwest::Client, url: &str) -> Option<Vec<u8>> {
    let r = client.get(url).send().await.ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.extensions().get::<reqwest::tls::TlsInfo>().and_then(|i| i.peer_certificate()).map(<[u8]>::to_vec)
}

/// `/metrics` of the service at `base`, read with the bearer token.
async fn metrics_with_token(client: &reqwest::Client, base: &str) -> Option<String> {
    let r = client.get(format!("{base}/metrics")).bearer_auth(TOKEN).send().await.ok()?;
    r.text().await.ok()
}

/// Whether `text` holds an ensemble score of a series labelled `label` (`name="value"`).
fn has_ensemble_score(text: &str, label: &str) -> bool {
    text.lines()
        .any(|l| l.starts_with("anomaly_score{") && l.contains("detector=\"ensemble\"") && l.contains(label))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_remote_writes_over_tls_with_basic_auth_and_with_a_bearer_token() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("dwcp test CA");
    let server = ca.leaf("dwcp-anomaly", ExtendedKeyUsagePurpose::ServerAuth);
    let web = write_web(dir.path(), &ca, &server, "NoClientCert");
    let (svc_port, sim_port, prom_port) = (free_port(), free_port(), free_port());
    let cfg = dir.path().join("service.yaml");
    std::fs::write(
        &cfg,
        format!(
            "listen: 127.0.0.1:{svc_port}\ncheck_interval: 1s\nweb_config_file: {}\ndetect:\n  min_fit_points: 10\n",
            web.display()
        ),
    )
    .unwrap();
    let svc = spawn("service", &service_bin(), &serve_args(&cfg, 0), dir.path());
    let tls = client(&ca, None);
    let base = format!("https://127.0.0.1:{svc_port}");
    eventually(Duration::from_secs(20), "service ready over TLS", || get_ok(&tls, format!("{base}/-/ready")))
        .await;
    // Plain HTTP on the TLS port gets no answer.
    let plain =
        dwcp_anomaly::internals::retry::http_client().timeout(Duration::from_secs(3)).build().unwrap();
    assert!(
        !plain
            .get(format!("http://127.0.0.1:{svc_port}/-/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    );

    let sim = spawn_simulator(dir.path(), sim_port, &["--entities", "2", "--step", "1s", "--seed", "3"]);
    let ca_file = dir.path().join("ca.pem");
    let queue =
        "    queue_config:\n      batch_send_deadline: 1s\n      min_backoff: 100ms\n      max_backoff: 1s\n";
    let prom_cfg = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: dwcp\n    honor_labels: true\n    \
         static_configs:\n      - targets: ['127.0.0.1:{sim_port}']\nremote_write:\n\
         \x20 - url: {base}/api/v1/write\n    name: basic\n    basic_auth:\n      username: ops\n      password: {PASSWORD}\n    \
         tls_config:\n      ca_file: {ca}\n    write_relabel_configs:\n      - target_label: job\n        replacement: dwcp-basic\n{queue}\
         \x20 - url: {base}/api/v1/write\n    name: bearer\n    authorization:\n      type: Bearer\n      credentials: {TOKEN}\n    \
         tls_config:\n      ca_file: {ca}\n    write_relabel_configs:\n      - target_label: job\n        replacement: dwcp-bearer\n{queue}",
        ca = ca_file.display()
    );
    let prom = start_prometheus("prom", prom_port, &prom_cfg, dir.path(), false);
    let procs = [&svc, &sim, &prom];
    let logs =
        || procs.iter().map(|p| format!("--- {} ---\n{}", p.name, p.tail())).collect::<Vec<_>>().join("\n");

    // Both senders' series are scored (each relabels `job`, so each makes its own entities):
    // the ensemble's score is on /metrics for each.
    let scored = eventually(Duration::from_secs(90), "scores for both remote-write senders", || async {
        let text = metrics_with_token(&tls, &base).await?;
        let has = |via: &str| has_ensemble_score(&text, &format!("job=\"dwcp-{via}\""));
        (has("basic") && has("bearer")).then_some(text)
    })
    .await;
    assert!(scored.contains("profile=\"dwcp\""), "{}", logs());
    // No credential reached the log.
    let log = std::fs::read_to_string(&svc.log).unwrap();
    for secret in [PASSWORD, TOKEN] {
        assert!(!log.contains(secret), "the log holds a secret: {log}");
    }
    assert!(log.contains("TLS on"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_refuses_clients_without_a_certificate_and_certificates_rotate_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("dwcp test CA");
    let first = ca.leaf("first", ExtendedKeyUsagePurpose::ServerAuth);
    let web = write_web(dir.path(), &ca, &first, "RequireAndVerifyClientCert");
    let port = free_port();
    let cfg = dir.path().join("service.yaml");
    std::fs::write(&cfg, format!("listen: 127.0.0.1:{port}\nweb_config_file: {}\n", web.display())).unwrap();
    let svc = spawn("service", &service_bin(), &serve_args(&cfg, 0), dir.path());
    let id = ca.leaf("prometheus", ExtendedKeyUsagePurpose::ClientAuth);
    let (with_cert, without_cert) = (client(&ca, Some(&id)), client(&ca, None));
    let url = format!("https://127.0.0.1:{port}/-/healthy");
    let served =
        eventually(Duration::from_secs(20), "service ready over mTLS", || served_cert(&with_cert, &url))
            .await;
    assert_eq!(served, first.2, "the first certificate is served");
    // Without a client certificate the handshake (or the first read) fails: no answer.
    assert!(without_cert.get(&url).send().await.is_err(), "a client without a certificate got an answer");
    // A certificate from another CA is refused as well.
    let other = Ca::new("someone else").leaf("intruder", ExtendedKeyUsagePurpose::ClientAuth);
    assert!(client(&ca, Some(&other)).get(&url).send().await.is_err());

    // Rotation: new files, SIGHUP, the new certificate on the next connection; same process.
    let second = ca.leaf("second", ExtendedKeyUsagePurpose::ServerAuth);
    std::fs::write(dir.path().join("server.crt"), &second.0).unwrap();
    std::fs::write(dir.path().join("server.key"), &second.1).unwrap();
    let hup = |p: &Proc| {
        let ok = std::process::Command::new("kill").args(["-HUP", &p.pid().to_string()]).status().unwrap();
        assert!(ok.success());
    };
    hup(&svc);
    eventually(Duration::from_secs(10), "the rotated certificate served", || async {
        (served_cert(&with_cert, &url).await? == second.2).then_some(())
    })
    .await;

    // A broken pair (a key that is not the certificate's) is refused; the second keeps serving.
    let third = ca.leaf("third", ExtendedKeyUsagePurpose::ServerAuth);
    std::fs::write(dir.path().join("server.crt"), &third.0).unwrap();
    std::fs::write(dir.path().join("server.key"), &first.1).unwrap();
    hup(&svc);
    eventually(Duration::from_secs(10), "the refusal logged", || async {
        std::fs::read_to_string(&svc.log).ok()?.contains("TLS certificate not reloaded").then_some(())
    })
    .await;
    for _ in 0..3 {
        assert_eq!(
            served_cert(&with_cert, &url).await.as_deref(),
            Some(second.2.as_slice()),
            "{}",
            svc.tail()
        );
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scores_and_alerts_go_out_over_tls_with_basic_auth_to_prometheus_and_alertmanager() {
    let am_bin = require("prometheus-alertmanager", "prometheus-alertmanager");
    let prom_bin = require("prometheus", "prometheus");
    let dir = tempfile::tempdir().unwrap();
    let state = trained_state(dir.path());
    let ca = Ca::new("receivers CA");
    let (cert, key, _) = ca.leaf("receivers", ExtendedKeyUsagePurpose::ServerAuth);
    let d = dir.path();
    std::fs::write(d.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(d.join("recv.crt"), cert).unwrap();
    std::fs::write(d.join("recv.key"), key).unwrap();
    std::fs::write(d.join("password"), PASSWORD).unwrap();
    // The receivers' own web config: TLS and basic auth, as their operators would set them.
    let web = d.join("receivers-web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\nbasic_auth_users:\n  ops: {}\n",
            d.join("recv.crt").display(),
            d.join("recv.key").display(),
            bcrypt::hash(PASSWORD, 4).unwrap()
        ),
    )
    .unwrap();
    let (am_port, prom_port, port) = (free_port(), free_port(), free_port());
    std::fs::write(d.join("am.yml"), "route:\n  receiver: ignore\nreceivers:\n  - name: ignore\n").unwrap();
    let am_args: Vec<String> = vec![
        format!("--config.file={}", d.join("am.yml").display()),
        format!("--web.listen-address=127.0.0.1:{am_port}"),
        format!("--web.config.file={}", web.display()),
        "--cluster.listen-address=".into(),
        format!("--storage.path={}", d.join("am-data").display()),
    ];
    let am = spawn("alertmanager", &am_bin, &am_args, d);
    std::fs::write(d.join("prom.yml"), "global:\n  scrape_interval: 15s\n").unwrap();
    let prom_args: Vec<String> = vec![
        format!("--config.file={}", d.join("prom.yml").display()),
        format!("--storage.tsdb.path={}", d.join("prom-data").display()),
        format!("--web.listen-address=127.0.0.1:{prom_port}"),
        format!("--web.config.file={}", web.display()),
        "--web.enable-remote-write-receiver".into(),
        "--log.level=warn".into(),
    ];
    let prom = spawn("prometheus", &prom_bin, &prom_args, d);
    let tls = client(&ca, None);
    let get = |url: String| {
        let req = tls.get(url).basic_auth("ops", Some(PASSWORD));
        async move {
            let r = req.send().await.ok()?;
            if r.status().is_success() { r.text().await.ok() } else { None }
        }
    };
    let (am_base, prom_base) =
        (format!("https://127.0.0.1:{am_port}"), format!("https://127.0.0.1:{prom_port}"));
    for base in [&am_base, &prom_base] {
        eventually(Duration::from_secs(30), "receiver ready over TLS", || get(format!("{base}/-/ready")))
            .await;
    }

    let ca_file = d.join("ca.pem");
    let password_file = d.join("password");
    let config = format!(
        "check_interval: 1s\nstate_dir: {state}\nexport:\n  remote_write:\n    - url: {prom_base}/api/v1/write\n      \
         basic_auth:\n        username: ops\n        password_file: {pw}\n      tls_config:\n        ca_file: {ca}\n\
         alert:\n  alertmanager_urls: [{am_base}]\n  alertmanager_username: ops\n  alertmanager_password_file: {pw}\n  \
         alertmanager_resend: 2s\n  tls_config:\n    ca_file: {ca}\n",
        state = state.display(),
        pw = password_file.display(),
        ca = ca_file.display(),
    );
    let svc = start_service("serve", d, port, &config).await;
    push_simulated(port, "14s", Some("4s:10s"));
    let procs = [&am, &prom, &svc];
    let logs =
        || procs.iter().map(|p| format!("--- {} ---\n{}", p.name, p.tail())).collect::<Vec<_>>().join("\n");

    let alert = eventually(Duration::from_secs(30), "the alert in Alertmanager over TLS", || async {
        let alerts: Vec<serde_json::Value> =
            serde_json::from_str(&get(format!("{am_base}/api/v2/alerts")).await?).ok()?;
        alerts.into_iter().find(|a| a["labels"]["alertname"] == "DWCPAnomaly")
    })
    .await;
    assert_eq!(alert["labels"]["job"], "dwcp", "{alert}\n{}", logs());
    let scores = eventually(Duration::from_secs(30), "scores in Prometheus over TLS", || async {
        let body =
            get(format!("{prom_base}/api/v1/query?query=anomaly_score%7Bdetector%3D%22ensemble%22%7D"))
                .await?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        let n = v["data"]["result"].as_array()?.len();
        (n > 0).then_some(n)
    })
    .await;
    assert!(scores >= 1, "{}", logs());
    assert!(!std::fs::read_to_string(&svc.log).unwrap().contains(PASSWORD));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_opentelemetry_sdk_exports_over_tls_with_a_bearer_token_to_grpc_and_http() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("dwcp test CA");
    let server = ca.leaf("dwcp-anomaly", ExtendedKeyUsagePurpose::ServerAuth);
    let web = write_web(dir.path(), &ca, &server, "NoClientCert");
    let replay = dir.path().join("replay");
    run_cli(&[
        "simulate",
        "--entities",
        "2",
        "--step",
        "1s",
        "--seed",
        "5",
        "csv",
        "--out",
        replay.to_str().unwrap(),
        "--duration",
        "12s",
    ]);
    let (port, grpc_port) = (free_port(), free_port());
    let cfg = dir.path().join("service.yaml");
    std::fs::write(
        &cfg,
        format!(
            "listen: 127.0.0.1:{port}\ncheck_interval: 1s\nweb_config_file: {}\ndetect:\n  min_fit_points: 5\n",
            web.display()
        ),
    )
    .unwrap();
    let svc = spawn("service", &service_bin(), &serve_args(&cfg, grpc_port), dir.path());
    let tls = client(&ca, None);
    let base = format!("https://127.0.0.1:{port}");
    eventually(Duration::from_secs(20), "service ready over TLS", || get_ok(&tls, format!("{base}/-/ready")))
        .await;

    let csv = |n: u32| replay.join(format!("dwcp-node-0{n}.csv")).display().to_string();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/otel_replay.py");
    let args: Vec<String> = vec![
        script.display().to_string(),
        "--interval".into(),
        "0.5".into(),
        "--target".into(),
        format!("dwcp-node-01=grpc:https://127.0.0.1:{grpc_port}:{}", csv(1)),
        "--target".into(),
        format!("dwcp-node-02=http:{base}/v1/metrics:{}", csv(2)),
    ];
    let env = [
        ("OTEL_REPLAY_CA_FILE", dir.path().join("ca.pem").display().to_string()),
        ("OTEL_REPLAY_BEARER_TOKEN", TOKEN.to_string()),
    ];
    let replay_proc = spawn_env("otel_replay", &python(), &args, dir.path(), &env);
    let metrics = eventually(Duration::from_secs(60), "both SDK exporters' entities scored", || async {
        let text = metrics_with_token(&tls, &base).await?;
        let scored = |inst: &str| has_ensemble_score(&text, &format!("instance=\"{inst}\""));
        (scored("dwcp-node-01") && scored("dwcp-node-02")).then_some(text)
    })
    .await;
    // Both protocols were accepted (counted by protocol), none refused for credentials.
    for protocol in ["otlp_grpc", "otlp_http"] {
        assert!(
            metrics.lines().any(|l| l.starts_with("dwcp_anomaly_ingest_samples_received_total{")
                && l.contains(&format!("protocol=\"{protocol}\""))
                && !l.ends_with(" 0")),
            "{protocol}: no samples\n{}\n{}",
            replay_proc.tail(),
            svc.tail()
        );
    }
    assert!(
        !metrics.lines().any(|l| l.starts_with("dwcp_anomaly_auth_failures_total{") && !l.ends_with(" 0"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scores_go_out_over_otlp_grpc_and_http_with_tls_and_a_bearer_token() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("receiver CA");
    let server = ca.leaf("receiver", ExtendedKeyUsagePurpose::ServerAuth);
    let web = write_web(dir.path(), &ca, &server, "NoClientCert");
    // The receiver: another instance of the service with TLS and a bearer token on both
    // OTLP listeners; it counts what arrives by protocol.
    let (recv_port, recv_grpc) = (free_port(), free_port());
    let recv_cfg = dir.path().join("receiver.yaml");
    std::fs::write(&recv_cfg, format!("listen: 127.0.0.1:{recv_port}\nweb_config_file: {}\n", web.display()))
        .unwrap();
    let receiver = spawn("receiver", &service_bin(), &serve_args(&recv_cfg, recv_grpc), dir.path());
    let tls = client(&ca, None);
    let recv = format!("https://127.0.0.1:{recv_port}");
    eventually(Duration::from_secs(20), "receiver ready", || get_ok(&tls, format!("{recv}/-/ready"))).await;

    let ca_file = dir.path().join("ca.pem");
    let target = |endpoint: String, protocol: &str| {
        format!(
            "    - endpoint: {endpoint}\n      protocol: {protocol}\n      headers:\n        authorization: Bearer {TOKEN}\n      \
             tls_config:\n        ca_file: {}\n",
            ca_file.display()
        )
    };
    let port = free_port();
    let config = format!(
        "check_interval: 1s\nexport:\n  otlp:\n{}{}",
        target(format!("https://127.0.0.1:{recv_grpc}"), "grpc"),
        target(format!("{recv}/v1/metrics"), "http_protobuf")
    );
    let svc = start_service("sender", dir.path(), port, &config).await;
    push_simulated(port, "4s", None);
    let received = |text: &str, protocol: &str| {
        text.lines()
            .filter(|l| {
                l.starts_with("dwcp_anomaly_ingest_samples_received_total{")
                    && l.contains(&format!("protocol=\"{protocol}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    let text = eventually(Duration::from_secs(30), "scores received over both protocols", || async {
        let text = metrics_with_token(&tls, &recv).await?;
        (received(&text, "otlp_grpc") > 0.0 && received(&text, "otlp_http") > 0.0).then_some(text)
    })
    .await;
    assert!(
        !text.lines().any(|l| l.starts_with("dwcp_anomaly_auth_failures_total{") && !l.ends_with(" 0")),
        "{}\n{}",
        svc.tail(),
        receiver.tail()
    );
}
