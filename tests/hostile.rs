//! Hostile input against a real process on loopback (issue 27): oversized labels,
//! invalid UTF-8, truncated and random protobuf, snappy and gzip bombs, wrong content types,
//! unknown OTLP JSON fields, non-finite values and far-future timestamps; then 100,000 new
//! entities in one burst, remote-write 2.0 and OTLP/gRPC garbage, and scrape pages too big or
//! unreadable. Each answer has the status and the reason; the good series in the same request
//! are kept; entities that existed keep being written; the process stays alive and small.

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

/// An encoded OTLP request of one `dwcp_latency_ms` point for each of two instances, the second
/// one's `service.instance.id` ending in bytes that are not UTF-8.
fn otlp_with_bad_utf8(good: &str, bad: &str) -> Vec<u8> {
    use dwcp_anomaly::internals::proto::otlp::{gauges, string_kv as kv};
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use prost::Message;
    let t = NOW() as u64 * 1_000_000;
    let resource = |instance: &str| {
        let attributes = vec![kv("service.name", "dwcp"), kv("service.instance.id", instance)];
        gauges(attributes, &[], t, [("dwcp_latency_ms", 5.0)])
    };
    let req =
        ExportMetricsServiceRequest { resource_metrics: vec![resource(good), resource(&format!("{bad}~~"))] };
    let mut bytes = req.encode_to_vec();
    let at = bytes.windows(2).position(|w| w == b"~~").unwrap();
    bytes[at..at + 2].copy_from_slice(b"\xff\x80");
    bytes
}

/// Sends already-encoded request bytes over gRPC as they are (a typed client cannot send
/// invalid UTF-8) and decodes the `ExportMetricsServiceResponse`.
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), tonic::Status> {
        prost::bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<Self::Item>, tonic::Status> {
        prost::Message::decode(src).map(Some).map_err(|e| tonic::Status::internal(e.to_string()))
    }
}

const RW: [(&str, &str); 3] = [
    ("Content-Encoding", "snappy"),
    ("Content-Type", "application/x-protobuf"),
    ("X-Prometheus-Remote-Write-Version", "0.1.0"),
];

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

    // A duplicate and an older sample of a series already stored: counted as out of order, not
    // an error for the sender (Prometheus resends after a timeout); the new series beside them
    // is stored.
    let t = NOW();
    let (status, text) = post(&client, &rw_url, &RW, compress(&raw(&[(good("n7"), 1.0, t)]))).await;
    assert_eq!(status, 204, "{text}");
    let again = [(good("n7"), 1.0, t), (good("n7"), 2.0, t - 60_000), (good("n8"), 3.0, t)];
    let (status, text) = post(&client, &rw_url, &RW, compress(&raw(&again))).await;
    assert_eq!(status, 204, "{text}");

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
    let gzipped = [("Content-Type", "application/x-protobuf"), ("Content-Encoding", "gzip")];
    let (status, text) = post(&client, &otlp_url, &gzipped, gz).await;
    assert_eq!(status, 413, "{text}");
    // OTLP/HTTP protobuf with a resource whose instance is not UTF-8: a partial success, the
    // other resource's point stored.
    let pb = [("Content-Type", "application/x-protobuf")];
    let r = client
        .post(&otlp_url)
        .headers(headers(&pb))
        .body(otlp_with_bad_utf8("o1", "o2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let resp: opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse =
        prost::Message::decode(r.bytes().await.unwrap()).unwrap();
    let partial = resp.partial_success.expect("the bad point is named");
    assert_eq!(partial.rejected_data_points, 1, "{partial:?}");
    assert!(partial.error_message.contains("invalid_utf8=1"), "{partial:?}");
    let json = br#"{"resourceMetrics":[{"resource":{"attributes":[],"futureField":1},"scopeMetrics":[]}],"extra":{"a":[1,2]}}"#;
    let (status, text) =
        post(&client, &otlp_url, &[("Content-Type", "application/json")], json.to_vec()).await;
    assert_eq!(status, 200, "{text}");

    // Counted by reason; the good series' entities exist; alive and small.
    let metrics = get_ok(&client, format!("{base}/metrics")).await.unwrap();
    for reason in ["label_value_too_long", "invalid_utf8", "invalid_timestamp", "out_of_order"] {
        let line = format!("dwcp_anomaly_samples_rejected_total{{reason=\"{reason}\"}}");
        assert!(metrics.lines().any(|l| l.starts_with(&line) && !l.ends_with(" 0")), "{line}\n{metrics}");
    }
    for instance in ["n1", "n2", "n3", "n4", "n8", "o1"] {
        let tag = format!("instance=\"{instance}\"");
        eventually(Duration::from_secs(10), &format!("entity {instance}"), || async {
            let m = get_ok(&client, format!("{base}/metrics")).await?;
            m.lines().any(|l| l.starts_with("anomaly_model_state{") && l.contains(&tag)).then_some(())
        })
        .await;
    }
    assert!(get_ok(&client, format!("{base}/-/healthy")).await.is_some(), "{}", svc.tail());
    let rss = svc.rss_bytes();
    assert!(rss < 256 << 20, "RSS {} MiB after the hostile requests", rss >> 20);
}

/// Serves `/huge` (a page over the service's decoding limit) and `/garbage` (lines no parser
/// wants around one good sample) as a scrape target would.
async fn hostile_target(port: u16, huge_bytes: usize) {
    let huge: String = "dwcp_latency_ms{instance=\"huge\"} 1\n".repeat(huge_bytes / 34 + 1);
    let garbage = "\u{0}\u{1}{{{ not metrics\n# TYPE dwcp_latency_ms gauge\n\
                   dwcp_latency_ms{instance=\"scraped\",job=\"dwcp\"} 21.5\n\
                   dwcp_latency_ms{instance=\"scraped\" 1\n=== \u{fffd}\n";
    let app = axum::Router::new()
        .route("/huge", axum::routing::get(move || async move { huge.clone() }))
        .route("/garbage", axum::routing::get(move || async move { garbage }));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
}

/// A remote-write 1.0 body: one `dwcp_latency_ms` sample for each instance.
fn latency(instances: impl Iterator<Item = String>, value: f64) -> Vec<u8> {
    let now = NOW();
    compress(&raw(&instances.map(|i| (good(&i), value, now)).collect::<Vec<_>>()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_of_new_entities_big_batches_and_hostile_pages_leave_existing_entities_scored() {
    let dir = tempfile::tempdir().unwrap();
    let (port, grpc_port, target_port) = (free_port(), free_port(), free_port());
    hostile_target(target_port, 17 << 20).await;
    let config = format!(
        "check_interval: 1s\n\
         ingest:\n  max_request_bytes: 16777216\n  max_decoded_bytes: 16777216\n  \
         max_series_per_request: 60000\n\
         vectorize:\n  max_entities: 200000\n  max_new_entities_per_second: 2000\n\
         scrape:\n  - url: http://127.0.0.1:{target_port}/huge\n    interval: 1s\n    timeout: 900ms\n  \
         - url: http://127.0.0.1:{target_port}/garbage\n    interval: 1s\n    timeout: 900ms\n    \
         honor_labels: true\n"
    );
    let svc = start_service_grpc("serve", dir.path(), port, grpc_port, &config).await;
    let client =
        dwcp_anomaly::internals::retry::http_client().timeout(Duration::from_secs(30)).build().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let rw_url = format!("{base}/api/v1/write");
    let existing = || (0..10).map(|i| format!("existing-{i}"));

    // Ten entities exist and are written every second throughout.
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let pusher = {
        let (client, url) = (client.clone(), rw_url.clone());
        tokio::spawn(async move {
            let mut n = 0u32;
            loop {
                let (status, text) =
                    post(&client, &url, &RW, latency(existing(), 10.0 + f64::from(n % 3))).await;
                assert_eq!(status, 204, "{text}");
                n += 1;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop_rx.changed() => return n,
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;

    // 100,000 new entities in one request: over max_series_per_request, refused whole.
    let (status, text) =
        post(&client, &rw_url, &RW, latency((0..100_000).map(|i| format!("burst-{i}")), 1.0)).await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("100000 series, over ingest.max_series_per_request = 60000"), "{text}");
    // The same 100,000 in two requests beside an existing entity: 2,000 new ones a second get
    // in, the rest are refused as retryable; the existing entity's sample is stored.
    for half in [0..50_000, 50_000..100_000] {
        let instances = half.map(|i| format!("burst-{i}")).chain(std::iter::once("existing-0".to_string()));
        let r =
            client.post(&rw_url).headers(headers(&RW)).body(latency(instances, 5.0)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 503);
        assert_eq!(r.headers()["retry-after"], "1");
        let text = r.text().await.unwrap();
        assert!(
            text.contains("new_entity_rate=") && text.contains("max_new_entities_per_second = 2000"),
            "{text}"
        );
        let accepted: u64 =
            text.split("accepted ").nth(1).and_then(|t| t.split(' ').next()?.parse().ok()).unwrap();
        assert!((1..=4_001).contains(&accepted), "{text}");
    }

    // Remote-write 2.0: a truncated and a random body are refused whole with the reason.
    let v2 = [
        ("Content-Encoding", "snappy"),
        ("Content-Type", "application/x-protobuf;proto=io.prometheus.write.v2.Request"),
        ("X-Prometheus-Remote-Write-Version", "2.0.0"),
    ];
    let mut enc = dwcp_anomaly::internals::proto::remote_write_v2::EncoderV2::default();
    enc.series(&good("v2-good"), &[(3.0, NOW())]);
    let body = enc.finish();
    let (status, text) = post(&client, &rw_url, &v2, compress(&body[..body.len() - 3])).await;
    assert_eq!(status, 400, "{text}");
    let noise: Vec<u8> = (0..2048u32).map(|i| (i.wrapping_mul(2_246_822_519) >> 11) as u8).collect();
    let (status, text) = post(&client, &rw_url, &v2, compress(&noise)).await;
    assert_eq!(status, 400, "{text}");
    let (status, text) = post(&client, &rw_url, &v2, compress(&body)).await;
    assert_eq!(status, 204, "{text}");

    // OTLP/gRPC: a message over the decoding limit is refused by tonic; a NaN point beside a
    // good one is a partial success.
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
    };
    let attr = |k: &str, v: &str| KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(v.into())) }),
        ..Default::default()
    };
    let point = |v: f64| NumberDataPoint {
        time_unix_nano: NOW() as u64 * 1_000_000,
        value: Some(number_data_point::Value::AsDouble(v)),
        ..Default::default()
    };
    let request = |schema_url: String| ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(opentelemetry_proto::tonic::resource::v1::Resource {
                attributes: vec![attr("service.name", "dwcp"), attr("service.instance.id", "grpc-good")],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "dwcp_latency_ms".into(),
                    data: Some(metric::Data::Gauge(Gauge { data_points: vec![point(4.0), point(f64::NAN)] })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            schema_url,
        }],
    };
    let mut grpc = MetricsServiceClient::connect(format!("http://127.0.0.1:{grpc_port}"))
        .await
        .unwrap()
        .max_encoding_message_size(64 << 20);
    let err = grpc.export(request("x".repeat(17 << 20))).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::OutOfRange, "{err}");
    let ok = grpc.export(request(String::new())).await.unwrap().into_inner();
    let partial = ok.partial_success.expect("the NaN point is named");
    assert_eq!(partial.rejected_data_points, 1, "{partial:?}");
    // Invalid UTF-8 in one resource: its point only (prost alone would refuse the message).
    let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{grpc_port}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut raw_grpc = tonic::client::Grpc::new(channel);
    raw_grpc.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    );
    let body = otlp_with_bad_utf8("grpc-utf8-good", "grpc-utf8-bad");
    let ok = raw_grpc.unary(tonic::Request::new(body), path, RawCodec).await.unwrap().into_inner();
    let partial = ok.partial_success.expect("the bad point is named");
    assert_eq!(partial.rejected_data_points, 1, "{partial:?}");
    assert!(partial.error_message.contains("invalid_utf8=1"), "{partial:?}");

    // Scrape: the page over the limit fails its scrape; the garbage page yields its good line.
    let metrics = eventually(Duration::from_secs(15), "both targets scraped", || async {
        let m = get_ok(&client, format!("{base}/metrics")).await?;
        let up = |path: &str| {
            let prefix =
                format!("dwcp_anomaly_scrape_up{{target=\"http://127.0.0.1:{target_port}/{path}\"}}");
            m.lines().find(|l| l.starts_with(&prefix)).map(|l| l.ends_with(" 1"))
        };
        (up("huge") == Some(false) && up("garbage") == Some(true)).then_some(m)
    })
    .await;
    let log = std::fs::read_to_string(&svc.log).unwrap();
    assert!(log.contains("ingest.max_decoded_bytes"), "the failed scrape says why");
    let rejected = metric_value(&metrics, "dwcp_anomaly_samples_rejected_total{reason=\"new_entity_rate\"}");
    assert!(rejected >= 96_000.0, "{metrics}");

    // Every entity that existed before, and each good sample beside the hostile ones, is scored;
    // the process is alive and small.
    let wanted: Vec<String> =
        existing().chain(["v2-good", "grpc-good", "grpc-utf8-good", "scraped"].map(String::from)).collect();
    eventually(Duration::from_secs(15), "every good entity scored", || async {
        let m = get_ok(&client, format!("{base}/metrics")).await?;
        wanted
            .iter()
            .all(|i| {
                let tag = format!("instance=\"{i}\"");
                m.lines().any(|l| l.starts_with("anomaly_model_state{") && l.contains(&tag))
            })
            .then_some(())
    })
    .await;
    stop_tx.send(true).unwrap();
    let pushes = pusher.await.unwrap();
    assert!(pushes >= 3, "the existing entities were written throughout ({pushes} pushes)");
    assert!(get_ok(&client, format!("{base}/-/healthy")).await.is_some(), "{}", svc.tail());
    let rss = svc.rss_bytes();
    assert!(rss < 512 << 20, "RSS {} MiB after the burst", rss >> 20);
}

fn headers(h: &[(&str, &str)]) -> reqwest::header::HeaderMap {
    h.iter().map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap())).collect()
}
