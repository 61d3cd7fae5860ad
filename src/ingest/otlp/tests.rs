use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value as AV};
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogram, Gauge, Histogram, HistogramDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary,
    SummaryDataPoint, summary_data_point::ValueAtQuantile,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use parking_lot::Mutex;

use super::*;
use crate::ingest::ObserveStats;

/// Records every accepted series as `name{k=v,...} value`.
#[derive(Default)]
struct Collect(Mutex<Vec<String>>);

impl SampleSink for Collect {
    fn accept(&self, series: &[&SeriesRef<'_>]) -> ObserveStats {
        let mut got = self.0.lock();
        let mut stats = ObserveStats::default();
        for s in series {
            let labels: Vec<String> = s.labels.iter().map(|l| format!("{}={}", l.name, l.value)).collect();
            for x in &s.samples {
                let v = if x.value.to_bits() == STALE_NAN_BITS {
                    "stale".to_string()
                } else {
                    x.value.to_string()
                };
                got.push(format!("{} {v} @{}", labels.join(","), x.timestamp_ms));
            }
            stats.accepted += s.samples.len() as u64;
        }
        stats
    }
}

const T_NS: u64 = 1_700_000_000_123_456_789;

fn kv(k: &str, v: AV) -> KeyValue {
    KeyValue { key: k.into(), value: Some(AnyValue { value: Some(v) }), ..Default::default() }
}

fn s(v: &str) -> AV {
    AV::StringValue(v.into())
}

fn point(attrs: Vec<KeyValue>, v: number_data_point::Value) -> NumberDataPoint {
    NumberDataPoint { attributes: attrs, time_unix_nano: T_NS, value: Some(v), ..Default::default() }
}

fn metric(name: &str, unit: &str, data: Data) -> Metric {
    Metric { name: name.into(), unit: unit.into(), data: Some(data), ..Default::default() }
}

fn resource(attrs: Vec<KeyValue>, metrics: Vec<Metric>) -> ResourceMetrics {
    ResourceMetrics {
        resource: Some(Resource { attributes: attrs, ..Default::default() }),
        scope_metrics: vec![ScopeMetrics { metrics, ..Default::default() }],
        ..Default::default()
    }
}

fn service(name: &str, instance: &str) -> Vec<KeyValue> {
    vec![kv("service.name", s(name)), kv("service.instance.id", s(instance))]
}

fn run(req: &ExportMetricsServiceRequest, opts: &MapOptions) -> (OtlpOutcome, Vec<String>) {
    let sink = Collect::default();
    let out = ingest(req, opts, &sink);
    let got = sink.0.into_inner();
    (out, got)
}

fn gauge(v: f64) -> NumberDataPoint {
    point(vec![kv("link", s("a"))], number_data_point::Value::AsDouble(v))
}

#[test]
fn gauges_and_counters_map_like_prometheus() {
    let req = ExportMetricsServiceRequest {
        resource_metrics: vec![resource(
            vec![
                kv("service.name", s("dwcp")),
                kv("service.namespace", s("net")),
                kv("service.instance.id", s("host-1")),
                kv("host.arch", s("amd64")),
                kv("region", s("eu")),
            ],
            vec![
                metric("dwcp_latency_ms", "", Data::Gauge(Gauge { data_points: vec![gauge(12.5)] })),
                metric(
                    "dwcp.errors",
                    "{errors}",
                    Data::Sum(Sum {
                        data_points: vec![point(
                            vec![kv("link.id", AV::IntValue(7)), kv("up", AV::BoolValue(true))],
                            number_data_point::Value::AsInt(42),
                        )],
                        aggregation_temporality: AggregationTemporality::Cumulative as i32,
                        is_monotonic: true,
                    }),
                ),
            ],
        )],
    };
    let opts = MapOptions { promote_resource_attributes: vec!["region".into()], ..MapOptions::default() };
    let (out, got) = run(&req, &opts);
    assert_eq!(
        got,
        [
            "__name__=dwcp_latency_ms,instance=host-1,job=net/dwcp,link=a,region=eu 12.5 @1700000000123",
            "__name__=dwcp_errors_total,instance=host-1,job=net/dwcp,link_id=7,region=eu,up=true 42 @1700000000123",
        ]
    );
    assert_eq!((out.points, out.rejected_points), (2, 0));
    assert_eq!(out.response().partial_success, None);
}

#[test]
fn job_and_instance_come_from_the_resource_not_the_point() {
    let p = point(
        vec![kv("job", s("spoof")), kv("host.name", s("h")), kv("region", s("point"))],
        number_data_point::Value::AsDouble(1.0),
    );
    let mut attrs = service("svc", "i-1");
    attrs.push(kv("region", s("resource")));
    let req = ExportMetricsServiceRequest {
        resource_metrics: vec![resource(
            attrs,
            vec![metric("g", "", Data::Gauge(Gauge { data_points: vec![p] }))],
        )],
    };
    let opts = MapOptions { promote_resource_attributes: vec!["region".into()], ..MapOptions::default() };
    let (_, got) = run(&req, &opts);
    assert_eq!(got, ["__name__=g,host_name=h,instance=i-1,job=svc,region=point 1 @1700000000123"]);
}

#[test]
fn histograms_and_summaries_expand_to_prometheus_series() {
    let cumulative = AggregationTemporality::Cumulative as i32;
    let h = HistogramDataPoint {
        time_unix_nano: T_NS,
        count: 6,
        sum: Some(2.5),
        bucket_counts: vec![1, 2, 3],
        explicit_bounds: vec![0.1, 1.0],
        ..Default::default()
    };
    let q = SummaryDataPoint {
        time_unix_nano: T_NS,
        count: 4,
        sum: 8.0,
        quantile_values: vec![ValueAtQuantile { quantile: 0.5, value: 2.0 }],
        ..Default::default()
    };
    let req = ExportMetricsServiceRequest {
        resource_metrics: vec![resource(
            service("svc", "i"),
            vec![
                metric(
                    "rpc.duration",
                    "s",
                    Data::Histogram(Histogram { data_points: vec![h], aggregation_temporality: cumulative }),
                ),
                metric("q", "", Data::Summary(Summary { data_points: vec![q] })),
            ],
        )],
    };
    let (out, got) = run(&req, &MapOptions::default());
    let names: Vec<&str> = got.iter().map(|g| g.split_once(' ').unwrap().1).collect();
    assert_eq!(names.len(), 8, "{got:#?}");
    assert!(
        got[0].starts_with("__name__=rpc_duration_seconds_bucket,instance=i,job=svc,le=0.1 1 "),
        "{got:#?}"
    );
    assert!(got[1].contains("le=1 3 "), "{got:#?}");
    assert!(got[2].contains("le=+Inf 6 "), "{got:#?}");
    assert!(got[3].starts_with("__name__=rpc_duration_seconds_sum,") && got[3].contains(" 2.5 "));
    assert!(got[4].starts_with("__name__=rpc_duration_seconds_count,") && got[4].contains(" 6 "));
    assert!(got[5].starts_with("__name__=q,instance=i,job=svc,quantile=0.5 2 "), "{got:#?}");
    assert!(got[6].starts_with("__name__=q_sum,") && got[7].starts_with("__name__=q_count,"));
    assert_eq!((out.points, out.rejected_points), (2, 0));
}

#[test]
fn bad_points_are_rejected_by_reason_and_the_good_ones_kept() {
    let delta = AggregationTemporality::Delta as i32;
    let no_value = NumberDataPoint { time_unix_nano: T_NS, ..Default::default() };
    let bad_label = point(vec![kv("", s("x"))], number_data_point::Value::AsDouble(1.0));
    let no_time =
        NumberDataPoint { value: Some(number_data_point::Value::AsDouble(1.0)), ..Default::default() };
    let req = ExportMetricsServiceRequest {
        resource_metrics: vec![
            resource(
                service("svc", "i"),
                vec![
                    metric(
                        "g",
                        "",
                        Data::Gauge(Gauge {
                            data_points: vec![
                                gauge(1.0),
                                gauge(f64::NAN),
                                gauge(f64::INFINITY),
                                no_value,
                                bad_label,
                                no_time,
                            ],
                        }),
                    ),
                    metric(
                        "d",
                        "",
                        Data::Sum(Sum {
                            data_points: vec![gauge(1.0), gauge(2.0)],
                            aggregation_temporality: delta,
                            is_monotonic: true,
                        }),
                    ),
                    metric("e", "", Data::ExponentialHistogram(ExponentialHistogram::default())),
                    Metric { name: "empty".into(), ..Default::default() },
                ],
            ),
            ResourceMetrics {
                resource: None,
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![metric("g", "", Data::Gauge(Gauge { data_points: vec![gauge(3.0)] }))],
                    ..Default::default()
                }],
                ..Default::default()
            },
        ],
    };
    let (out, got) = run(&req, &MapOptions::default());
    assert_eq!(got, ["__name__=g,instance=i,job=svc,link=a 1 @1700000000123"]);
    let mut rejected = out.samples.rejected.clone();
    rejected.sort();
    assert_eq!(
        rejected,
        [
            (RejectReason::InvalidLabelName, 1),
            (RejectReason::InvalidTimestamp, 1),
            (RejectReason::MissingResource, 1),
            (RejectReason::DeltaTemporality, 2),
            (RejectReason::MissingValue, 2),
            (RejectReason::NonFiniteValue, 2),
        ]
    );
    // 6 gauge points + 2 delta + 0 exponential + 1 metric without data + 1 without resource.
    assert_eq!(out.points, 10);
    assert_eq!(out.rejected_points, 9);
    let ps = out.response().partial_success.expect("partial success");
    assert_eq!(ps.rejected_data_points, 9);
    assert!(ps.error_message.contains("delta_temporality=2"), "{}", ps.error_message);
}

#[test]
fn no_recorded_value_becomes_a_stale_marker() {
    let mut p = gauge(0.0);
    p.value = None;
    p.flags = DataPointFlags::NoRecordedValueMask as u32;
    let req = ExportMetricsServiceRequest {
        resource_metrics: vec![resource(
            service("svc", "i"),
            vec![metric("g", "", Data::Gauge(Gauge { data_points: vec![p] }))],
        )],
    };
    let (out, got) = run(&req, &MapOptions::default());
    assert_eq!(got, ["__name__=g,instance=i,job=svc,link=a stale @1700000000123"]);
    assert_eq!(out.rejected_points, 0);
}

#[test]
fn http_bodies_decode_as_protobuf_json_and_gzip() {
    let req = ExportMetricsServiceRequest {
        resource_metrics: vec![resource(
            service("svc", "i"),
            vec![metric("g", "", Data::Gauge(Gauge { data_points: vec![gauge(2.0)] }))],
        )],
    };
    let limits = Limits { max_decoded_bytes: 1 << 20, series: crate::ingest::SeriesLimits::DEFAULT };
    let pb = req.encode_to_vec();
    let (got, enc) = decode_http(&pb, Some("application/x-protobuf"), None, limits).unwrap();
    assert_eq!((got, enc), (req.clone().into(), Encoding::Protobuf));

    let json = r#"{"resourceMetrics":[{"resource":{"attributes":[
        {"key":"service.name","value":{"stringValue":"svc"}},
        {"key":"service.instance.id","value":{"stringValue":"i"}}]},
      "scopeMetrics":[{"metrics":[{"name":"g","gauge":{"dataPoints":[
        {"attributes":[{"key":"link","value":{"stringValue":"a"}}],
         "timeUnixNano":"1700000000123456789","asDouble":2.0}]}}]}]}]}"#;
    let (got, enc) =
        decode_http(json.as_bytes(), Some("application/json; charset=utf-8"), None, limits).unwrap();
    assert_eq!((got, enc), (req.clone().into(), Encoding::Json));

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &pb).unwrap();
    let gz = gz.finish().unwrap();
    let (got, _) = decode_http(&gz, Some("application/x-protobuf"), Some("gzip"), limits).unwrap();
    assert_eq!(got, req.into());

    let err = |body: &[u8], ct: Option<&str>, ce: Option<&str>, limits: Limits| {
        decode_http(body, ct, ce, limits).unwrap_err().to_string()
    };
    assert!(err(&pb, Some("text/plain"), None, limits).contains("unsupported Content-Type \"text/plain\""));
    assert!(err(&pb, None, None, limits).contains("Content-Type"));
    assert!(err(&pb, Some("application/x-protobuf"), Some("br"), limits).contains("Content-Encoding \"br\""));
    assert!(
        err(&pb, Some("application/x-protobuf"), Some("gzip"), limits).contains("cannot decode gzip body")
    );
    assert!(
        err(b"\xff\xff\xff", Some("application/x-protobuf"), None, limits).contains("cannot decode protobuf")
    );
    assert!(
        err(br#"{"resourceMetrics": 7}"#, Some("application/json"), None, limits)
            .contains("cannot decode JSON ExportMetricsServiceRequest")
    );
    let tiny = Limits { max_decoded_bytes: 10, series: crate::ingest::SeriesLimits::DEFAULT };
    assert!(
        err(&gz, Some("application/x-protobuf"), Some("gzip"), tiny).contains("over the limit of 10 bytes")
    );
}

/// Strings that are not UTF-8 cost the points whose labels they would be, not the message:
/// a bad resource attribute drops its resource's points, a bad metric name its metric's, a
/// bad point attribute (key or nested value) that point; a bad description drops nothing.
#[test]
fn invalid_utf8_costs_only_the_points_it_touches() {
    use opentelemetry_proto::tonic::common::v1::ArrayValue;
    let good = |link: &str| point(vec![kv("link", s(link))], number_data_point::Value::AsDouble(1.0));
    let nested = point(
        vec![kv("tags", AV::ArrayValue(ArrayValue { values: vec![AnyValue { value: Some(s("x~~")) }] }))],
        number_data_point::Value::AsDouble(2.0),
    );
    let mut described =
        metric("ok_metric", "", Data::Gauge(Gauge { data_points: vec![good("a"), good("b~~"), nested] }));
    described.description = "about ~~".into();
    let req = ExportMetricsServiceRequest {
        resource_metrics: vec![
            resource(
                service("svc", "good"),
                vec![
                    described,
                    metric("bad~~name", "", Data::Gauge(Gauge { data_points: vec![good("c"), good("d")] })),
                ],
            ),
            resource(
                service("svc", "bad~~instance"),
                vec![metric("g", "", Data::Gauge(Gauge { data_points: vec![good("e")] }))],
            ),
        ],
    };
    let mut pb = req.encode_to_vec();
    // "~~" becomes a byte that never starts a UTF-8 character and a lone continuation byte.
    let mut marks = 0;
    for i in 0..pb.len() - 1 {
        if &pb[i..i + 2] == b"~~" {
            pb[i..i + 2].copy_from_slice(b"\xff\x80");
            marks += 1;
        }
    }
    assert_eq!(marks, 5);
    assert!(
        ExportMetricsServiceRequest::decode(&*pb).is_err(),
        "prost must refuse it, or the test proves nothing"
    );
    let decoded = decode_protobuf(&pb).unwrap();
    assert_eq!(decoded.invalid_utf8_points, 5);
    let sink = Collect::default();
    let out = ingest_decoded(&decoded, &MapOptions::default(), &sink);
    assert_eq!(
        sink.0.into_inner(),
        vec![format!("__name__=ok_metric,instance=good,job=svc,link=a 1 @{}", T_NS / 1_000_000)]
    );
    assert_eq!((out.points, out.rejected_points), (6, 5));
    assert_eq!(out.samples.samples_received, 6);
    assert!(out.samples.summary().contains("invalid_utf8"), "{}", out.samples.summary());

    // Without a string to blame, a broken message is still refused whole.
    let mut truncated = req.encode_to_vec();
    truncated.truncate(truncated.len() - 3);
    assert!(decode_protobuf(&truncated).unwrap_err().to_string().contains("cannot decode protobuf"));
}
