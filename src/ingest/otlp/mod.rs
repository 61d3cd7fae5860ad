//! OTLP metrics receiver: maps `ExportMetricsServiceRequest`s to samples the way Prometheus's
//! OTLP translator does, for OTLP/gRPC and OTLP/HTTP (protobuf or JSON, gzip or not).
//!
//! Mapping, per data point:
//! - the metric name is normalised (`names::metric_name`: unit words, `_total` for monotonic
//!   cumulative sums, `_ratio` for gauges of unit `1`);
//! - labels are the point's attributes (keys sanitised), plus `job` from
//!   `service.namespace/service.name` and `instance` from `service.instance.id` of the
//!   resource, plus the resource attributes listed in `otlp.promote_resource_attributes`;
//! - gauges and cumulative sums give one sample; histograms give `_bucket{le}` (cumulative,
//!   with `+Inf`), `_sum` and `_count`; summaries give `{quantile}`, `_sum` and `_count`;
//! - a point flagged "no recorded value" becomes a Prometheus stale marker.
//!
//! Rejected, each counted by reason and reported in `partial_success` while every other
//! point of the request is stored: delta temporality (`delta_temporality`; put the
//! collector's `deltatocumulative` processor in front), exponential histograms
//! (`exponential_histogram`), a point without value (`missing_value`), NaN or ±Inf
//! (`non_finite_value`), a resource block without a resource (`missing_resource`), a point
//! whose labels would come from a string that is not UTF-8 (`invalid_utf8`: see `utf8`), and
//! every reason remote-write series can fail for.

pub mod names;
mod utf8;

use std::borrow::Cow;
use std::io::Read;

use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, DataPointFlags, Metric, NumberDataPoint, metric::Data, number_data_point,
};
use prost::Message;

use crate::sample::{
    LABEL_INSTANCE, LABEL_JOB, LABEL_NAME, RejectReason, STALE_NAN_BITS, SampleRef, SeriesRef,
    one_sample_series,
};

use super::remote_write::Limits;
use super::{IngestError, IngestOutcome, SampleSink, SeriesLimits, store};
use names::NameKind;

/// Content type of OTLP/HTTP protobuf bodies.
pub const CONTENT_TYPE_PROTOBUF: &str = "application/x-protobuf";
/// Content type of OTLP/HTTP JSON bodies.
pub const CONTENT_TYPE_JSON: &str = "application/json";

/// How an OTLP/HTTP body (and its response) is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Binary protobuf.
    Protobuf,
    /// Protobuf JSON mapping (camelCase, 64-bit integers as strings).
    Json,
}

impl Encoding {
    /// From a `Content-Type` header; `None` when neither protobuf nor JSON.
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let media = ct.split(';').next().unwrap_or_default().trim();
        if media.eq_ignore_ascii_case(CONTENT_TYPE_PROTOBUF) {
            Some(Encoding::Protobuf)
        } else if media.eq_ignore_ascii_case(CONTENT_TYPE_JSON) {
            Some(Encoding::Json)
        } else {
            None
        }
    }

    /// The `Content-Type` of a body in this encoding.
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => CONTENT_TYPE_PROTOBUF,
            Encoding::Json => CONTENT_TYPE_JSON,
        }
    }
}

/// Mapping options (the `otlp` config section).
#[derive(Debug, Clone, Default)]
pub struct MapOptions {
    /// Resource attributes copied onto every series as labels (keys sanitised).
    pub promote_resource_attributes: Vec<String>,
    /// Labels per series and their lengths.
    pub limits: super::SeriesLimits,
}

impl MapOptions {
    /// The mapping `cfg` sets (`otlp.promote_resource_attributes`, the `ingest` limits).
    pub fn from_config(cfg: &crate::config::Config) -> Self {
        Self {
            promote_resource_attributes: cfg.otlp.promote_resource_attributes.clone(),
            limits: super::SeriesLimits::from_config(&cfg.ingest),
        }
    }
}

/// What one OTLP request did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OtlpOutcome {
    /// Per-sample counts, as for remote-write.
    pub samples: IngestOutcome,
    /// Data points in the request.
    pub points: u64,
    /// Data points not stored (invalid, or refused by a limit downstream).
    pub rejected_points: u64,
}

impl OtlpOutcome {
    /// Counts `points` data points rejected whole for `reason` (one sample each).
    pub fn reject(&mut self, reason: RejectReason, points: u64) {
        if points == 0 {
            return;
        }
        self.points += points;
        self.rejected_points += points;
        self.samples.samples_received += points;
        self.samples.reject(reason, points);
    }

    /// The response: `partial_success` set when any point was rejected.
    pub fn response(&self) -> ExportMetricsServiceResponse {
        let partial_success = (self.rejected_points > 0).then(|| ExportMetricsPartialSuccess {
            rejected_data_points: self.rejected_points as i64,
            error_message: self.samples.summary(),
        });
        ExportMetricsServiceResponse { partial_success }
    }
}

/// Decodes an OTLP/HTTP body: `Content-Type` protobuf or JSON, `Content-Encoding` gzip or none.
pub fn decode_http(
    body: &[u8],
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    limits: Limits,
) -> Result<(Decoded, Encoding), IngestError> {
    let ct = content_type.unwrap_or_default();
    let encoding = Encoding::from_content_type(ct).ok_or_else(|| IngestError::Unsupported {
        header: "Content-Type",
        value: ct.to_string(),
        expected: "application/x-protobuf or application/json (OTLP/HTTP)",
    })?;
    let raw: Cow<'_, [u8]> = match content_encoding.map(str::trim) {
        None | Some("") | Some("identity") => Cow::Borrowed(body),
        Some(enc) if enc.eq_ignore_ascii_case("gzip") => Cow::Owned(gunzip(body, limits)?),
        Some(enc) => {
            return Err(IngestError::Unsupported {
                header: "Content-Encoding",
                value: enc.to_string(),
                expected: "gzip or none",
            });
        }
    };
    if raw.len() > limits.max_decoded_bytes {
        return Err(IngestError::TooLarge { what: "body", size: raw.len(), limit: limits.max_decoded_bytes });
    }
    let decoded = match encoding {
        Encoding::Protobuf => decode_protobuf(&raw)?,
        Encoding::Json => {
            Decoded::from(serde_json::from_slice::<ExportMetricsServiceRequest>(&raw).map_err(|e| {
                IngestError::Decode { what: "JSON ExportMetricsServiceRequest", reason: e.to_string() }
            })?)
        }
    };
    Ok((decoded, encoding))
}

/// A decoded request, less the data points left out because their labels were not UTF-8.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decoded {
    /// What is left to map.
    pub request: ExportMetricsServiceRequest,
    /// Data points removed for invalid UTF-8 (counted as rejected when the rest is ingested).
    pub invalid_utf8_points: u64,
}

impl From<ExportMetricsServiceRequest> for Decoded {
    fn from(request: ExportMetricsServiceRequest) -> Self {
        Self { request, invalid_utf8_points: 0 }
    }
}

/// Decodes a protobuf `ExportMetricsServiceRequest`. A string that is not UTF-8 costs only the
/// data points whose labels it would be part of, not the whole message (see `utf8`).
pub fn decode_protobuf(raw: &[u8]) -> Result<Decoded, IngestError> {
    let first = match ExportMetricsServiceRequest::decode(raw) {
        Ok(request) => return Ok(request.into()),
        Err(e) => e,
    };
    let error =
        || IngestError::Decode { what: "protobuf ExportMetricsServiceRequest", reason: first.to_string() };
    let mut owned = raw.to_vec();
    if !matches!(utf8::mask_invalid_utf8(&mut owned), Ok(n) if n > 0) {
        return Err(error());
    }
    let mut request = ExportMetricsServiceRequest::decode(&*owned).map_err(|_| error())?;
    let invalid_utf8_points = utf8::drop_masked(&mut request);
    Ok(Decoded { request, invalid_utf8_points })
}

fn gunzip(body: &[u8], limits: Limits) -> Result<Vec<u8>, IngestError> {
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limits.max_decoded_bytes));
    let cap = limits.max_decoded_bytes as u64 + 1;
    flate2::read::GzDecoder::new(body)
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| IngestError::Decode { what: "gzip body", reason: e.to_string() })?;
    if out.len() > limits.max_decoded_bytes {
        return Err(IngestError::TooLarge {
            what: "decompressed body",
            size: out.len(),
            limit: limits.max_decoded_bytes,
        });
    }
    Ok(out)
}

/// One series built from a data point: labels (possibly owned) and one sample.
struct Built<'a> {
    labels: Labels<'a>,
    sample: SampleRef,
    /// The data point it came from (a histogram point builds several series).
    point: u32,
}

/// Prometheus names of one OTLP metric: the base name and its histogram/summary series.
struct MetricNames {
    base: String,
    bucket: String,
    sum: String,
    count: String,
}

impl MetricNames {
    fn new(m: &Metric) -> Self {
        let kind = match &m.data {
            Some(Data::Gauge(_)) => NameKind::Gauge,
            Some(Data::Sum(s)) if s.is_monotonic => NameKind::Counter,
            _ => NameKind::Other,
        };
        let base = names::metric_name(&m.name, &m.unit, kind);
        Self {
            bucket: format!("{base}_bucket"),
            sum: format!("{base}_sum"),
            count: format!("{base}_count"),
            base,
        }
    }
}

/// [`ingest`] of a decoded request, counting the points decoding left out.
pub fn ingest_decoded(d: &Decoded, opts: &MapOptions, sink: &dyn SampleSink) -> OtlpOutcome {
    let mut out = ingest(&d.request, opts, sink);
    out.reject(RejectReason::InvalidUtf8, d.invalid_utf8_points);
    out
}

/// Maps, validates and stores one request; every valid point is stored whatever the others do.
pub fn ingest(req: &ExportMetricsServiceRequest, opts: &MapOptions, sink: &dyn SampleSink) -> OtlpOutcome {
    // Names first, so that every series of a metric borrows its name instead of copying it.
    let metric_names: Vec<MetricNames> = req
        .resource_metrics
        .iter()
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .map(MetricNames::new)
        .collect();
    let mut mapper = Mapper::default();
    let mut names_iter = metric_names.iter();
    for rm in &req.resource_metrics {
        let Some(resource) = &rm.resource else {
            for m in rm.scope_metrics.iter().flat_map(|s| &s.metrics) {
                names_iter.next();
                mapper.reject(RejectReason::MissingResource, point_count(m));
            }
            continue;
        };
        let base = ResourceLabels::new(&resource.attributes, opts);
        for m in rm.scope_metrics.iter().flat_map(|s| &s.metrics) {
            let names = names_iter.next().expect("one name per metric");
            mapper.metric(m, names, &base);
        }
    }
    let Mapper { built, mut out, .. } = mapper;
    // Series views borrowing from `built`; a point is rejected when any of its series is.
    let views: Vec<SeriesRef<'_>> = built.iter().map(|b| one_sample_series(&b.labels, b.sample)).collect();
    out.samples.samples_received += views.len() as u64;
    let mut last_bad = None;
    let mut bad_points = 0;
    let stats = store(&views, &opts.limits, sink, &mut out.samples, |i| {
        if last_bad != Some(built[i].point) {
            last_bad = Some(built[i].point);
            bad_points += 1;
        }
    });
    out.rejected_points += bad_points;
    out.rejected_points += stats.max_entities + stats.out_of_order;
    out
}

/// Walks a request and builds its series.
#[derive(Default)]
struct Mapper<'a> {
    built: Vec<Built<'a>>,
    out: OtlpOutcome,
}

type Labels<'a> = Vec<(Cow<'a, str>, Cow<'a, str>)>;

impl<'a> Mapper<'a> {
    /// Counts `points` data points rejected whole for `reason`.
    fn reject(&mut self, reason: RejectReason, points: u64) {
        self.out.reject(reason, points);
    }

    /// Starts a data point; returns its number.
    fn point(&mut self) -> u32 {
        self.out.points += 1;
        self.out.points as u32
    }

    #[allow(clippy::too_many_arguments)]
    fn emit(
        &mut self,
        point: u32,
        attrs: &Labels<'a>,
        name: &'a str,
        extra: Option<(&'static str, String)>,
        value: f64,
        time_unix_nano: u64,
        flags: u32,
    ) {
        let mut labels = Vec::with_capacity(attrs.len() + 2);
        labels.extend(attrs.iter().cloned());
        if let Some((k, v)) = extra {
            labels.push((Cow::Borrowed(k), Cow::Owned(v)));
        }
        labels.push((Cow::Borrowed(LABEL_NAME), Cow::Borrowed(name)));
        let value = if no_recorded_value(flags) { f64::from_bits(STALE_NAN_BITS) } else { value };
        let sample = SampleRef { value, timestamp_ms: (time_unix_nano / NS_PER_MS) as i64 };
        self.built.push(Built { labels: finish(labels), sample, point });
    }

    fn metric(&mut self, m: &'a Metric, names: &'a MetricNames, base: &ResourceLabels<'a>) {
        let cumulative = AggregationTemporality::Cumulative as i32;
        match &m.data {
            None => self.reject(RejectReason::MissingValue, 1),
            Some(Data::ExponentialHistogram(_)) => {
                self.reject(RejectReason::ExponentialHistogram, point_count(m))
            }
            Some(Data::Sum(s)) if s.aggregation_temporality != cumulative => {
                self.reject(RejectReason::DeltaTemporality, point_count(m))
            }
            Some(Data::Histogram(h)) if h.aggregation_temporality != cumulative => {
                self.reject(RejectReason::DeltaTemporality, point_count(m))
            }
            Some(Data::Gauge(g)) => self.numbers(&g.data_points, &names.base, base),
            Some(Data::Sum(s)) => self.numbers(&s.data_points, &names.base, base),
            Some(Data::Histogram(h)) => {
                for p in &h.data_points {
                    if !p.bucket_counts.is_empty() && p.bucket_counts.len() != p.explicit_bounds.len() + 1 {
                        self.reject(RejectReason::MissingValue, 1);
                        continue;
                    }
                    let id = self.point();
                    let attrs = base.with_point(&p.attributes);
                    let (t, f) = (p.time_unix_nano, p.flags);
                    let mut cum = 0u64;
                    for (i, c) in p.bucket_counts.iter().enumerate() {
                        cum += c;
                        let le = p.explicit_bounds.get(i).map_or_else(|| "+Inf".to_string(), f64::to_string);
                        self.emit(id, &attrs, &names.bucket, Some(("le", le)), cum as f64, t, f);
                    }
                    if let Some(sum) = p.sum {
                        self.emit(id, &attrs, &names.sum, None, sum, t, f);
                    }
                    self.emit(id, &attrs, &names.count, None, p.count as f64, t, f);
                }
            }
            Some(Data::Summary(s)) => {
                for p in &s.data_points {
                    let id = self.point();
                    let attrs = base.with_point(&p.attributes);
                    let (t, f) = (p.time_unix_nano, p.flags);
                    for q in &p.quantile_values {
                        self.emit(
                            id,
                            &attrs,
                            &names.base,
                            Some(("quantile", q.quantile.to_string())),
                            q.value,
                            t,
                            f,
                        );
                    }
                    self.emit(id, &attrs, &names.sum, None, p.sum, t, f);
                    self.emit(id, &attrs, &names.count, None, p.count as f64, t, f);
                }
            }
        }
    }

    fn numbers(&mut self, points: &'a [NumberDataPoint], name: &'a str, base: &ResourceLabels<'a>) {
        for p in points {
            let value = match p.value {
                _ if no_recorded_value(p.flags) => f64::NAN,
                Some(number_data_point::Value::AsDouble(d)) if d.is_finite() => d,
                Some(number_data_point::Value::AsDouble(_)) => {
                    self.reject(RejectReason::NonFiniteValue, 1);
                    continue;
                }
                Some(number_data_point::Value::AsInt(i)) => i as f64,
                None => {
                    self.reject(RejectReason::MissingValue, 1);
                    continue;
                }
            };
            let id = self.point();
            let attrs = base.with_point(&p.attributes);
            self.emit(id, &attrs, name, None, value, p.time_unix_nano, p.flags);
        }
    }
}

/// Refuses a request over `ingest.max_series_per_request` (counted as metrics) or
/// `max_samples_per_request` (counted as data points) before anything of it is mapped.
pub fn check_request(req: &ExportMetricsServiceRequest, limits: &SeriesLimits) -> Result<(), IngestError> {
    let metrics = || req.resource_metrics.iter().flat_map(|rm| &rm.scope_metrics).flat_map(|sm| &sm.metrics);
    let points: u64 = metrics().map(point_count).sum();
    limits.check_request(metrics().count(), points as usize)
}

fn point_count(m: &Metric) -> u64 {
    (match &m.data {
        Some(Data::Gauge(g)) => g.data_points.len(),
        Some(Data::Sum(s)) => s.data_points.len(),
        Some(Data::Histogram(h)) => h.data_points.len(),
        Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(Data::Summary(s)) => s.data_points.len(),
        None => 1,
    }) as u64
}

/// Labels every series of a resource carries, split by precedence: point attributes override
/// `promoted` resource attributes, and `service` (`job`, `instance`) overrides both.
struct ResourceLabels<'a> {
    promoted: Labels<'a>,
    service: Labels<'a>,
}

impl<'a> ResourceLabels<'a> {
    fn new(attrs: &'a [KeyValue], opts: &MapOptions) -> Self {
        let get = |key: &str| attrs.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref());
        let promoted = attrs
            .iter()
            .filter(|kv| opts.promote_resource_attributes.contains(&kv.key))
            .map(|kv| (names::label_name(&kv.key), value_string(kv.value.as_ref())))
            .collect();
        let mut service = Vec::with_capacity(2);
        if let Some(name) = get("service.name") {
            let name = value_string(Some(name));
            let job = match get("service.namespace") {
                Some(ns) => Cow::Owned(format!("{}/{name}", value_string(Some(ns)))),
                None => name,
            };
            service.push((Cow::Borrowed(LABEL_JOB), job));
        }
        if let Some(id) = get("service.instance.id") {
            service.push((Cow::Borrowed(LABEL_INSTANCE), value_string(Some(id))));
        }
        Self { promoted, service }
    }

    /// The labels of a data point with `attrs`, in precedence order (later wins in `finish`).
    fn with_point(&self, attrs: &'a [KeyValue]) -> Labels<'a> {
        let mut labels = Vec::with_capacity(self.promoted.len() + attrs.len() + self.service.len() + 2);
        labels.extend(self.promoted.iter().cloned());
        labels.extend(attrs.iter().map(|kv| (names::label_name(&kv.key), value_string(kv.value.as_ref()))));
        labels.extend(self.service.iter().cloned());
        labels
    }
}

/// An attribute value as a label value: strings as they are, numbers and booleans printed,
/// arrays and maps as JSON, bytes as lowercase hex.
fn value_string(v: Option<&AnyValue>) -> Cow<'_, str> {
    match v.and_then(|v| v.value.as_ref()) {
        None => Cow::Borrowed(""),
        Some(any_value::Value::StringValue(s)) => Cow::Borrowed(s),
        Some(any_value::Value::BoolValue(b)) => Cow::Borrowed(if *b { "true" } else { "false" }),
        Some(any_value::Value::IntValue(i)) => Cow::Owned(i.to_string()),
        Some(any_value::Value::DoubleValue(d)) => Cow::Owned(d.to_string()),
        Some(any_value::Value::BytesValue(b)) => Cow::Owned(hex(b)),
        Some(other) => Cow::Owned(any_json(other).to_string()),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|x| format!("{x:02x}")).collect()
}

fn any_json(v: &any_value::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        any_value::Value::StringValue(s) => J::from(s.as_str()),
        any_value::Value::BoolValue(b) => J::from(*b),
        any_value::Value::IntValue(i) => J::from(*i),
        any_value::Value::DoubleValue(d) => J::from(*d),
        any_value::Value::ArrayValue(a) => {
            J::Array(a.values.iter().map(|x| x.value.as_ref().map_or(J::Null, any_json)).collect())
        }
        any_value::Value::KvlistValue(l) => J::Object(
            l.values
                .iter()
                .map(|kv| {
                    (
                        kv.key.clone(),
                        kv.value.as_ref().and_then(|x| x.value.as_ref()).map_or(J::Null, any_json),
                    )
                })
                .collect(),
        ),
        any_value::Value::BytesValue(b) => J::from(hex(b)),
        #[allow(unreachable_patterns)]
        _ => J::Null,
    }
}

/// Sorts labels by name; for a name given twice the later one wins (point attributes over
/// promoted resource attributes, `job`/`instance`/`le`/`__name__` over attributes).
fn finish(mut labels: Labels<'_>) -> Labels<'_> {
    labels.reverse();
    labels.sort_by(|a, b| a.0.cmp(&b.0));
    labels.dedup_by(|later, earlier| later.0 == earlier.0);
    labels
}

const NS_PER_MS: u64 = 1_000_000;

fn no_recorded_value(flags: u32) -> bool {
    flags & DataPointFlags::NoRecordedValueMask as u32 != 0
}

#[cfg(test)]
mod tests;
