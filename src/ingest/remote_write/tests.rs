use parking_lot::Mutex;
use prost::Message;

use super::*;
use crate::ingest::ObserveStats;
use crate::proto::remote_write::{Encoder, compress};

/// Remote-write messages as generated from `prompb` by prost: an independent encoder.
mod prompb {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct WriteRequest {
        #[prost(message, repeated, tag = "1")]
        pub timeseries: Vec<TimeSeries>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimeSeries {
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<Label>,
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<Sample>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        #[prost(double, tag = "1")]
        pub value: f64,
        #[prost(int64, tag = "2")]
        pub timestamp: i64,
    }
}

/// Remote-write 2.0 messages as prost generates them from
/// `prompb/io/prometheus/write/v2/types.proto` (field numbers copied from it).
mod v2 {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Request {
        #[prost(string, repeated, tag = "4")]
        pub symbols: Vec<String>,
        #[prost(message, repeated, tag = "5")]
        pub timeseries: Vec<TimeSeries>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimeSeries {
        #[prost(uint32, repeated, tag = "1")]
        pub labels_refs: Vec<u32>,
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<super::prompb::Sample>,
        #[prost(message, repeated, tag = "4")]
        pub exemplars: Vec<Exemplar>,
        #[prost(int64, tag = "6")]
        pub created_timestamp: i64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Exemplar {
        #[prost(uint32, repeated, tag = "1")]
        pub labels_refs: Vec<u32>,
        #[prost(double, tag = "2")]
        pub value: f64,
        #[prost(int64, tag = "3")]
        pub timestamp: i64,
    }
}

#[derive(Default)]
struct Collect(Mutex<Vec<String>>);

impl SampleSink for Collect {
    fn accept(&self, series: &[&SeriesRef<'_>]) -> ObserveStats {
        let mut names = self.0.lock();
        let mut stats = ObserveStats::default();
        for s in series {
            names.push(
                s.labels.iter().map(|l| format!("{}={}", l.name, l.value)).collect::<Vec<_>>().join(","),
            );
            stats.accepted += s.samples.len() as u64;
        }
        stats
    }
}

type Labels<'a> = &'a [(&'a str, &'a str)];
type Samples<'a> = &'a [(f64, i64)];

const LIMITS: Limits = Limits { max_decoded_bytes: 1 << 20, series: crate::ingest::SeriesLimits::DEFAULT };
const TS: i64 = 1_700_000_000_000;

fn body(series: &[(Labels<'_>, Samples<'_>)]) -> Vec<u8> {
    let mut enc = Encoder::default();
    for (labels, samples) in series {
        enc.series(labels, samples);
    }
    compress(&enc.finish())
}

fn good(name: &'static str) -> (Labels<'static>, Samples<'static>) {
    let labels: &'static [(&str, &str)] = match name {
        "a" => &[("__name__", "a"), ("instance", "x")],
        _ => &[("__name__", "b"), ("instance", "y")],
    };
    (labels, &[(1.0, TS)])
}

#[test]
fn decodes_a_prost_encoded_request() {
    let req = prompb::WriteRequest {
        timeseries: vec![prompb::TimeSeries {
            labels: vec![
                prompb::Label { name: "__name__".into(), value: "dwcp_latency_ms".into() },
                prompb::Label { name: "instance".into(), value: "n1".into() },
            ],
            samples: vec![prompb::Sample { value: 12.5, timestamp: TS }],
        }],
    };
    let sink = Collect::default();
    let out = ingest(&compress(&req.encode_to_vec()), LIMITS, &sink).unwrap();
    assert_eq!(out.samples_accepted, 1);
    assert_eq!(sink.0.lock()[0], "__name__=dwcp_latency_ms,instance=n1");
    // And our encoder's bytes decode with prost.
    let mut enc = Encoder::default();
    enc.series(&[("__name__", "m"), ("job", "j")], &[(2.0, TS), (3.0, TS + 1)]);
    let back = prompb::WriteRequest::decode(enc.finish().as_slice()).unwrap();
    assert_eq!(back.timeseries[0].labels[1].value, "j");
    assert_eq!(back.timeseries[0].samples[1].value, 3.0);
}

#[test]
fn each_invalid_series_is_rejected_by_reason_and_the_good_ones_kept() {
    let cases: [(Labels<'_>, Samples<'_>, RejectReason); 6] = [
        (&[("instance", "x")], &[(1.0, TS)], RejectReason::MissingMetricName),
        (&[("__name__", ""), ("instance", "x")], &[(1.0, TS)], RejectReason::MissingMetricName),
        (&[("__name__", "m"), ("a", "1"), ("a", "2")], &[(1.0, TS)], RejectReason::DuplicateLabel),
        (&[("__name__", "m"), ("b", "1"), ("a", "2")], &[(1.0, TS)], RejectReason::UnsortedLabels),
        (&[("__name__", "m"), ("bad-name", "1")], &[(1.0, TS)], RejectReason::InvalidLabelName),
        (&[("__name__", "m")], &[(1.0, -5)], RejectReason::InvalidTimestamp),
    ];
    for (labels, samples, reason) in cases {
        let (ga, sa) = good("a");
        let (gb, sb) = good("b");
        let sink = Collect::default();
        let out = ingest(&body(&[(ga, sa), (labels, samples), (gb, sb)]), LIMITS, &sink).unwrap();
        assert_eq!(out.rejected, vec![(reason, 1)], "{reason:?}");
        assert_eq!(out.samples_accepted, 2, "{reason:?}");
        assert_eq!(out.invalid(), 1);
        assert!(out.summary().contains(reason.as_str()), "{}", out.summary());
        assert_eq!(sink.0.lock().len(), 2);
    }
}

#[test]
fn series_over_a_size_limit_are_rejected_by_reason_naming_the_limit_and_the_good_ones_kept() {
    let config = crate::ingest::SeriesLimits::from_config(&crate::config::IngestConfig::default());
    assert_eq!(config, crate::ingest::SeriesLimits::DEFAULT);
    let many: Vec<(String, String)> = (0..200).map(|i| (format!("l{i:03}"), "v".to_string())).collect();
    let mut many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    many.insert(0, ("__name__", "m"));
    let long_name = "n".repeat(2000);
    let huge_value = "x".repeat(1 << 20);
    let long_name_labels = [("__name__", "m"), (long_name.as_str(), "1")];
    let huge_value_labels = [("__name__", "m"), ("instance", huge_value.as_str())];
    let cases: [(Labels<'_>, RejectReason, &str); 3] = [
        (&many, RejectReason::TooManyLabels, "ingest.max_labels_per_series = 128"),
        (&long_name_labels, RejectReason::LabelNameTooLong, "ingest.max_label_name_length = 1024"),
        (&huge_value_labels, RejectReason::LabelValueTooLong, "ingest.max_label_value_length = 4096"),
    ];
    let limits = Limits { max_decoded_bytes: 4 << 20, ..LIMITS };
    for (labels, reason, named) in cases {
        let (ga, sa) = good("a");
        let sink = Collect::default();
        let out = ingest(&body(&[(ga, sa), (labels, &[(1.0, TS)])]), limits, &sink).unwrap();
        assert_eq!(out.rejected, vec![(reason, 1)], "{reason:?}");
        assert_eq!(out.samples_accepted, 1, "{reason:?}");
        assert_eq!(sink.0.lock().len(), 1);
        let summary = out.summary();
        assert!(summary.contains(reason.as_str()) && summary.contains(named), "{summary}");
    }
}

#[test]
fn requests_over_a_per_request_limit_are_refused_whole_naming_the_limit() {
    let (ga, sa) = good("a");
    let (gb, _) = good("b");
    let two = body(&[(ga, sa), (gb, &[(1.0, TS), (2.0, TS + 1), (3.0, TS + 2)])]);
    let series = Limits { series: crate::ingest::SeriesLimits { max_series: 1, ..LIMITS.series }, ..LIMITS };
    let samples =
        Limits { series: crate::ingest::SeriesLimits { max_samples: 3, ..LIMITS.series }, ..LIMITS };
    for (limits, named) in [
        (series, "2 series, over ingest.max_series_per_request = 1"),
        (samples, "4 samples, over ingest.max_samples_per_request = 3"),
    ] {
        let sink = Collect::default();
        let e = ingest(&two, limits, &sink).unwrap_err();
        assert!(e.to_string().contains(named), "{e}");
        assert!(sink.0.lock().is_empty(), "nothing of a refused request is stored");
    }
    let sink = Collect::default();
    assert_eq!(ingest(&two, LIMITS, &sink).unwrap().samples_accepted, 4);
}

#[test]
fn duplicate_hidden_behind_disorder_is_a_duplicate() {
    let s = SeriesRef {
        labels: vec![
            crate::sample::LabelRef { name: "__name__", value: "m" },
            crate::sample::LabelRef { name: "b", value: "1" },
            crate::sample::LabelRef { name: "a", value: "1" },
            crate::sample::LabelRef { name: "b", value: "2" },
        ],
        samples: vec![],
        histograms: 0,
    };
    assert_eq!(validate(&s), Err(RejectReason::UnsortedLabels));
}

#[test]
fn native_histograms_are_counted_not_fatal() {
    let mut raw = Vec::new();
    let mut ts = Vec::new();
    crate::proto::wire::put_len_field(&mut ts, 4, &[8, 1]);
    crate::proto::wire::put_len_field(&mut raw, 1, &ts);
    let sink = Collect::default();
    let out = ingest(&compress(&raw), LIMITS, &sink).unwrap();
    assert_eq!(
        out.rejected,
        vec![(RejectReason::NativeHistogram, 1), (RejectReason::MissingMetricName, 0)]
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .collect::<Vec<_>>()
    );
}

#[test]
fn undecodable_bodies_are_errors_naming_the_cause() {
    let sink = Collect::default();
    let e = ingest(b"not snappy at all", LIMITS, &sink).unwrap_err();
    assert!(matches!(e, IngestError::Snappy(_)), "{e}");
    let e = ingest(&compress(&[0x0a, 0x05, 0x01]), LIMITS, &sink).unwrap_err();
    assert!(e.to_string().starts_with("cannot decode protobuf WriteRequest"), "{e}");
    let big = compress(&vec![0u8; 2 << 20]);
    let e = ingest(&big, LIMITS, &sink).unwrap_err();
    assert!(matches!(e, IngestError::TooLarge { .. }), "{e}");
    assert!(sink.0.lock().is_empty());
}

#[test]
fn content_type_and_encoding_are_checked() {
    assert!(check_headers(Some("application/x-protobuf"), Some("snappy")).is_ok());
    assert!(check_headers(None, None).is_ok());
    assert!(
        check_headers(Some("application/x-protobuf;proto=prometheus.WriteRequest"), Some("snappy")).is_ok()
    );
    let v2 =
        check_headers(Some("application/x-protobuf;proto=io.prometheus.write.v2.Request"), Some("snappy"));
    assert!(matches!(v2, Ok(Version::V2)), "{v2:?}");
    let v3 =
        check_headers(Some("application/x-protobuf;proto=io.prometheus.write.v3.Request"), Some("snappy"));
    assert!(matches!(v3, Err(IngestError::Unsupported { header: "Content-Type", .. })));
    assert!(check_headers(Some("application/json"), None).is_err());
    assert!(matches!(
        check_headers(None, Some("gzip")),
        Err(IngestError::Unsupported { header: "Content-Encoding", .. })
    ));
}

/// A 2.0 request: symbols `["", "__name__", "dwcp_latency_ms", "instance", "a", "b"]`,
/// series with the given label references, one sample each.
fn v2_request(series: &[&[u32]]) -> Vec<u8> {
    let symbols = ["", "__name__", "dwcp_latency_ms", "instance", "a", "b"].map(String::from).to_vec();
    let timeseries = series
        .iter()
        .map(|refs| v2::TimeSeries {
            labels_refs: refs.to_vec(),
            samples: vec![prompb::Sample { value: 1.5, timestamp: TS }],
            exemplars: vec![v2::Exemplar { labels_refs: vec![], value: 1.0, timestamp: TS }],
            created_timestamp: 0,
        })
        .collect();
    compress(&v2::Request { symbols, timeseries }.encode_to_vec())
}

#[test]
fn v2_series_resolve_through_the_symbol_table() {
    let sink = Collect::default();
    let out = ingest_v2(&v2_request(&[&[1, 2, 3, 4], &[1, 2, 3, 5]]), LIMITS, &sink).unwrap();
    assert_eq!(
        *sink.0.lock(),
        ["__name__=dwcp_latency_ms,instance=a", "__name__=dwcp_latency_ms,instance=b"]
    );
    assert_eq!(out.outcome.samples_accepted, 2);
    assert_eq!(out.written, Written { samples: 2, histograms: 0, exemplars: 0 });
    assert!(out.first_bad_ref.is_none());
}

#[test]
fn v2_bad_references_reject_their_series_only() {
    let sink = Collect::default();
    let out = ingest_v2(&v2_request(&[&[1, 2, 3, 99], &[1, 2, 3], &[1, 2, 3, 4]]), LIMITS, &sink).unwrap();
    assert_eq!(*sink.0.lock(), ["__name__=dwcp_latency_ms,instance=a"]);
    assert_eq!(out.outcome.rejected, [(RejectReason::InvalidSymbolRef, 2)]);
    assert_eq!(
        out.first_bad_ref.unwrap().to_string(),
        "label reference 99 is outside the symbol table of 6 symbols"
    );
    assert_eq!(out.written.samples, 1);
    // Truncated protobuf is refused whole.
    let raw = v2::Request { symbols: vec!["".into(), "x".into()], timeseries: vec![] }.encode_to_vec();
    let err = ingest_v2(&compress(&raw[..raw.len() - 1]), LIMITS, &sink).unwrap_err();
    assert!(matches!(err, IngestError::Protobuf(_)), "{err}");
}
