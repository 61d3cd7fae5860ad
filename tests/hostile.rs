//! Hostile input against a real process on loopback (issue 27, first part): oversized labels,
//! invalid UTF-8, truncated and random protobuf, snappy and gzip bombs, wrong content types,
//! unknown OTLP JSON fields, non-finite values and far-future timestamps. Each answer has the
//! status and the reason; the good series in the same request are kept; the process stays
//! alive and small.

mod common;

use std::io::Write as _;
use std::time::Duration;

use common::*;
use dwcp_anomaly::internals::proto::remote_write::{Encoder, compress};

const NOW: fn() -> i64 = dwcp_anomaly::internals::rfc3339::now_ms;

fn good(instance: &str) -> Vec<(String, String)> {
    [("__name__", "dwcp_latency_ms"), ("instance", instance), ("job", "dwcp")]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .to_vec()
}

/// Labels, value and timestamp of a one-sample series.
type Series = (Vec<(String, String)>, f64, i64);

/// An uncompressed remote-write 1.0 body of `series`.
fn raw(series: &[Series]) -> Vec<u8> {
    let mut enc = Encoder::default();
    for (labels, value, ts) in series {
        enc.series(labels, &[(*value, *ts)]);
    }
    enc.finish()
}

async fn post(client: &reqwest::Client, url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> (u16, String) {
    let mut req = client.post(url).body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

const RW: [(&str, &str); 3] = [
    ("Content-Encoding", "snappy"),
    ("Content-Type", "application/x-protobuf"),
    ("X-Prometheus-Remote-Write-Version", "0.1.0"),
];

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    kb * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_their_reason_and_the_good_series_in_them_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = "ingest:\n  max_request_bytes: 1048576\n  max_decoded_bytes: 4194304\n";
    let svc = start_service("serve", dir.path(), port, config).await;
    let client =
        dwcp_anomaly::internals::retry::http_client().timeout(Duration::from_secs(10)).build().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let rw_url = format!("{base}/api/v1/write");

    // A 1 MB label value beside a good series: the bad one refused by its limit, named.
    let huge = vec![
        ("__name__".to_string(), "dwcp_latency_ms".to_string()),
        ("instance".to_string(), "x".repeat(1 << 20)),
    ];
    let body = compress(&raw(&[(good("n1"), 12.0, NOW()), (huge, 1.0, NOW())]));
    let (status, text) = post(&client, &rw_url, &RW, body).await;
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("label_value_too_long") && text.contains("ingest.max_label_value_length = 4096"),
        "{text}"
    );
    assert!(text.contains("accepted 1 of 2 samples"), "{text}");

    // Invalid UTF-8 in one series' label value: that series only.
    let mut enc = Encoder::default();
    enc.series(&good("n2"), &[(13.0, NOW())]);
    let mut bytes = enc.finish();
    enc.series(&[("__name__", "dwcp_latency_ms"), ("instance", "zz")], &[(1.0, NOW())]);
    let mut bad = enc.finish();
    let at = bad.windows(2).position(|w| w == b"zz").unwrap();
    bad[at] = 0xc3;
    bad[at + 1] = 0x28;
    bytes.extend(bad);
    let (status, text) = post(&client, &rw_url, &RW, compress(&bytes)).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("invalid_utf8=1") && text.contains("accepted 1 of 2"), "{text}");

    // Non-finite values are samples like any other (NaN is Prometheus's stale marker); a
    // timestamp past year 9999 is refused by reason.
    let series = [
        (good("n3"), f64::NAN, NOW()),
        (good("n4"), f64::INFINITY, NOW()),
        (good("n5"), 1.0, 300_000_000_000_000),
    ];
    let (status, text) = post(&client, &rw_url, &RW, compress(&raw(&series))).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("invalid_timestamp=1") && text.contains("accepted 2 of 3"), "{text}");

    // Whole requests that cannot be read: truncated protobuf, random bytes, a snappy block
    // that declares 1 GiB, a wrong content type.
    let valid = raw(&[(good("n6"), 1.0, NOW())]);
    let (status, text) = post(&client, &rw_url, &RW, compress(&valid[..valid.len() / 2])).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("protobuf"), "{text}");
    let noise: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let (status, text) = post(&client, &rw_url, &RW, noise).await;
    assert!(status == 400 || status == 413, "{status} {text}");
    let mut bomb = vec![0x80, 0x80, 0x80, 0x80, 0x04]; // varint 1 << 30: the declared length
    bomb.extend([0u8; 64]);
    let (status, text) = post(&client, &rw_url, &RW, bomb).await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("1073741824") && text.contains("4194304"), "{text}");
    let (status, text) = post(
        &client,
        &rw_url,
        &[("Content-Type", "text/plain"), ("Content-Encoding", "snappy")],
        compress(&valid),
    )
    .await;
    assert_eq!(status, 415, "{text}");

    // OTLP/HTTP: a gzip bomb (64 MiB of zeros in ~64 KiB) and JSON with fields nobody knows.
    let otlp_url = format!("{base}/v1/metrics");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    for _ in 0..64 {
        gz.write_all(&[0u8; 1 << 20]).unwrap();
    }
    let gz = gz.finish().unwrap();
    assert!(gz.len() < 1 << 20);
    let headers = [("Content-Type", "application/x-protobuf"), ("Content-Encoding", "gzip")];
    let (status, text) = post(&client, &otlp_url, &headers, gz).await;
    assert_eq!(status, 413, "{text}");
    let json = br#"{"resourceMetrics":[{"resource":{"attributes":[],"futureField":1},"scopeMetrics":[]}],"extra":{"a":[1,2]}}"#;
    let (status, text) =
        post(&client, &otlp_url, &[("Content-Type", "application/json")], json.to_vec()).await;
    assert_eq!(status, 200, "{text}");

    // Counted by reason; the good series' entities exist; alive and small.
    let metrics = get_ok(&client, format!("{base}/metrics")).await.unwrap();
    for reason in ["label_value_too_long", "invalid_utf8", "invalid_timestamp"] {
        let line = format!("dwcp_anomaly_samples_rejected_total{{reason=\"{reason}\"}}");
        assert!(metrics.lines().any(|l| l.starts_with(&line) && !l.ends_with(" 0")), "{line}\n{metrics}");
    }
    for instance in ["n1", "n2", "n3", "n4"] {
        let tag = format!("instance=\"{instance}\"");
        eventually(Duration::from_secs(10), &format!("entity {instance}"), || async {
            let m = get_ok(&client, format!("{base}/metrics")).await?;
            m.lines().any(|l| l.starts_with("anomaly_model_state{") && l.contains(&tag)).then_some(())
        })
        .await;
    }
    assert!(get_ok(&client, format!("{base}/-/healthy")).await.is_some(), "{}", svc.tail());
    let rss = rss_bytes(svc.pid());
    assert!(rss < 256 << 20, "RSS {} MiB after the hostile requests", rss >> 20);
}
