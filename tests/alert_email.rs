//! Email against a real SMTP server on loopback (Python `aiosmtpd`, installed by the README's
//! test command from `training/requirements-test.txt`): envelope, subject, both bodies; a 550
//! refusal is final; a server that is not there is retried, then given up on.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{ALERT_T0, alert_event, eventually, free_port};
use dwcp_anomaly::internals::alert::dispatch::Dispatcher;
use dwcp_anomaly::internals::alert::email::Email;
use dwcp_anomaly::internals::alert::{AlertEvent, AlertKind, Links};
use dwcp_anomaly::internals::config::{AlertConfig, SmtpTls};
use dwcp_anomaly::internals::detect::Severity;
use dwcp_anomaly::internals::telemetry::Telemetry;
use serde_json::Value;
use tokio::sync::watch;

/// The SMTP sink process, killed when dropped.
struct Sink {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_sink(dir: &Path) -> Sink {
    start_sink_tls(dir, &[])
}

/// The sink; with `[cert, key]` files it offers STARTTLS and requires it.
fn start_sink_tls(dir: &Path, tls: &[&Path]) -> Sink {
    let port = free_port();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/smtp_sink.py");
    let out = dir.join("mail");
    let mut child = Command::new(common::python())
        .arg(&script)
        .arg(port.to_string())
        .arg(&out)
        .args(tls)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("Python runs");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(
        line.trim(),
        "ready",
        "the SMTP sink did not start: is aiosmtpd installed? `bash scripts/test.sh` installs \
         training/requirements-test.txt"
    );
    Sink { child, dir: out, port }
}

fn messages(dir: &Path) -> Vec<Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| {
        p.extension().is_some_and(|x| x == "json")
            && !p.file_name().unwrap().to_string_lossy().starts_with('.')
    });
    files.sort();
    files.iter().map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()).collect()
}

fn config(port: u16, to: &[&str]) -> AlertConfig {
    AlertConfig {
        email_enabled: true,
        email_to: to.iter().map(|s| s.to_string()).collect(),
        email_from: "dwcp-anomaly <dwcp@example.org>".into(),
        email_smtp_host: "127.0.0.1".into(),
        email_smtp_port: port,
        email_smtp_tls: SmtpTls::None,
        retries: 2,
        retry_backoff: Duration::from_millis(5),
        retry_max_backoff: Duration::from_millis(20),
        timeout: Duration::from_secs(5),
        ..AlertConfig::default()
    }
}

fn links() -> Links {
    Links { external_url: "http://dwcp:9490".into(), runbook_url: "https://runbooks.example/dwcp".into() }
}

fn event(kind: AlertKind) -> AlertEvent {
    alert_event(kind, Severity::Critical, 0.97, &[("cpu_pct", 0.8, 97.5, 45.0)], ALERT_T0 + 60_000)
}

async fn deliver(cfg: &AlertConfig, events: &[AlertEvent]) -> Arc<Telemetry> {
    let t = Arc::new(Telemetry::default());
    let (_tx, rx) = watch::channel(false);
    let mut d = Dispatcher::new(false, Arc::clone(&t));
    d.add(Email::new(cfg, links()).unwrap(), cfg.email_min_severity, cfg, &rx);
    for e in events {
        d.dispatch(e);
    }
    d.close().await;
    t
}

/// A MIME part decoded from quoted-printable (soft breaks joined, `=XX` bytes restored).
fn quoted_printable(part: &str) -> String {
    let joined = part.replace("=\r\n", "").replace("=\n", "");
    let b = joined.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (b[i], hex) {
            (b'=', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The unfolded value of header `name` in a raw message.
fn header(data: &str, name: &str) -> String {
    let head = data.split("\r\n\r\n").next().unwrap_or_default().replace("\r\n ", " ");
    head.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_string))
        .unwrap_or_else(|| panic!("no {name} header in\n{data}"))
}

#[tokio::test]
async fn a_critical_anomaly_is_mailed_in_text_and_html_and_its_end_too() {
    let dir = tempfile::tempdir().unwrap();
    let sink = start_sink(dir.path());
    let cfg = config(sink.port, &["oncall@example.org", "Ops Team <ops@example.org>"]);
    let t = deliver(&cfg, &[event(AlertKind::Firing), event(AlertKind::Resolved)]).await;
    let got = eventually(Duration::from_secs(10), "two messages", || async {
        let m = messages(&sink.dir);
        (m.len() == 2).then_some(m)
    })
    .await;
    assert_eq!(got[0]["mail_from"], "dwcp@example.org");
    assert_eq!(got[0]["rcpt_tos"], serde_json::json!(["oncall@example.org", "ops@example.org"]));
    let data = got[0]["data"].as_str().unwrap();
    assert_eq!(
        header(data, "Subject"),
        "[DWCP CRITICAL] critical anomaly on instance=\"n1\",job=\"dwcp\": cpu_pct"
    );
    assert!(header(data, "Content-Type").starts_with("multipart/alternative"), "{data}");
    let text_at = data.find("Content-Type: text/plain").expect("a text/plain part");
    let html_at = data.find("Content-Type: text/html").expect("a text/html part");
    let (text, html) = (quoted_printable(&data[text_at..html_at]), quoted_printable(&data[html_at..]));
    let (text, html) = (text.as_str(), html.as_str());
    assert!(text.contains("cpu_pct: 80% of the anomaly, value 97.5, usually 45"), "{text}");
    assert!(text.contains("Runbook: https://runbooks.example/dwcp"), "{text}");
    assert!(html.contains("<td>cpu_pct</td><td>80%</td><td>97.5</td><td>45</td>"), "{html}");
    for part in [text, html] {
        assert!(part.contains("entity=instance%3D%22n1%22%2Cjob%3D%22dwcp%22"), "{part}");
    }
    let resolved = got[1]["data"].as_str().unwrap();
    assert!(
        header(resolved, "Subject").starts_with("[DWCP RESOLVED] critical resolved anomaly"),
        "{resolved}"
    );
    assert_eq!(t.alerts_sent.value(&["email", "critical"]), 2.0);
}

#[tokio::test]
async fn a_refused_mailbox_is_final_and_a_missing_server_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let sink = start_sink(dir.path());
    let t = deliver(&config(sink.port, &["reject-me@example.org"]), &[event(AlertKind::Firing)]).await;
    assert_eq!(t.alerts_failed.value(&["email", "rejected"]), 1.0);
    assert_eq!(t.alert_retries.value(&["email"]), 0.0);
    assert!(messages(&sink.dir).is_empty());

    let nobody = free_port();
    let t = deliver(&config(nobody, &["oncall@example.org"]), &[event(AlertKind::Firing)]).await;
    assert_eq!(t.alert_retries.value(&["email"]), 2.0);
    assert_eq!(t.alerts_failed.value(&["email", "retries_exhausted"]), 1.0);
}

#[tokio::test]
async fn starttls_is_required_when_asked_for_and_a_bad_sender_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let sink = start_sink(dir.path());
    let mut cfg = config(sink.port, &["oncall@example.org"]);
    cfg.email_smtp_tls = SmtpTls::Starttls;
    let t = deliver(&cfg, &[event(AlertKind::Firing)]).await;
    let failed = t.alerts_failed.value(&["email", "rejected"])
        + t.alerts_failed.value(&["email", "retries_exhausted"]);
    assert_eq!(failed, 1.0, "the sink offers no STARTTLS, so nothing may be sent in clear");
    assert!(messages(&sink.dir).is_empty());
    cfg.email_from = "not an address".into();
    let err = Email::new(&cfg, links()).err().expect("a bad sender is refused").to_string();
    assert!(err.starts_with("alert.email_from:"), "{err}");
}

#[tokio::test]
async fn starttls_verifies_the_server_against_tls_config_ca_file() {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap().signed_by(&key, &ca).unwrap();
    let d = dir.path();
    let (cert_file, key_file, ca_file) = (d.join("smtp.crt"), d.join("smtp.key"), d.join("ca.pem"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let sink = start_sink_tls(d, &[&cert_file, &key_file]);

    // Without the CA the server's certificate is not trusted: nothing is delivered.
    let mut cfg = config(sink.port, &["oncall@example.org"]);
    cfg.email_smtp_tls = SmtpTls::Starttls;
    let t = deliver(&cfg, &[event(AlertKind::Firing)]).await;
    assert_eq!(t.alerts_sent.value(&["email", "critical"]), 0.0);
    assert!(messages(&sink.dir).is_empty());

    // With it, the message goes through STARTTLS.
    cfg.tls_config = Some(dwcp_anomaly::internals::config::TlsClientConfig {
        ca_file: Some(ca_file),
        ..Default::default()
    });
    let t = deliver(&cfg, &[event(AlertKind::Firing)]).await;
    let got = eventually(Duration::from_secs(10), "the message over STARTTLS", || async {
        let m = messages(&sink.dir);
        (m.len() == 1).then_some(m)
    })
    .await;
    assert_eq!(got[0]["rcpt_tos"], serde_json::json!(["oncall@example.org"]));
    assert_eq!(t.alerts_sent.value(&["email", "critical"]), 1.0);
}
