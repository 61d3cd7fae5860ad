//! Keeping the good points of an OTLP message with invalid UTF-8 in some strings.
//!
//! prost refuses a whole message when one `string` field is not UTF-8, which would lose every
//! good point sent beside a bad one. When that happens the raw message is walked with the
//! OTLP metrics schema and every byte of an invalid UTF-8 sequence inside a string field is
//! overwritten with NUL: lengths do not change, so the message stays well-formed and decodes.
//! NUL is never part of a valid label, so [`drop_masked`] then removes every data point whose
//! labels came from a masked string (its resource's attributes, its metric's name or unit,
//! its own attributes) and counts them as `invalid_utf8`; strings the mapping does not use
//! (descriptions, scope names, schema URLs, exemplars) are only masked.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{Metric, metric::Data};

use crate::proto::wire::{LEN, Reader, WireError};

/// The OTLP messages on the path to a string; each names what its length-delimited fields are.
#[derive(Clone, Copy)]
enum Msg {
    Request,
    ResourceMetrics,
    Resource,
    EntityRef,
    ScopeMetrics,
    Scope,
    Metric,
    /// Gauge, Sum, Histogram, ExponentialHistogram, Summary: field 1 holds the points.
    Points(Point),
    Point(Point),
    Exemplar,
    KeyValue,
    AnyValue,
    /// ArrayValue (field 1 AnyValue) and KeyValueList (field 1 KeyValue).
    List(&'static Msg),
}

/// The kinds of data point, by where their attributes and exemplars are.
#[derive(Clone, Copy)]
enum Point {
    Number,
    Histogram,
    Exponential,
    Summary,
}

/// What a length-delimited field holds.
enum Field {
    Str,
    Msg(Msg),
    Other,
}

/// Deeper than any OTLP metrics message nests; a hostile AnyValue nesting stops here.
const MAX_DEPTH: usize = 64;

impl Msg {
    fn field(self, n: u32) -> Field {
        use Field::{Msg as M, Other, Str};
        match (self, n) {
            (Msg::Request, 1) => M(Msg::ResourceMetrics),
            (Msg::ResourceMetrics, 1) => M(Msg::Resource),
            (Msg::ResourceMetrics, 2) => M(Msg::ScopeMetrics),
            (Msg::ResourceMetrics | Msg::ScopeMetrics, 3) => Str,
            (Msg::Resource, 1) => M(Msg::KeyValue),
            (Msg::Resource, 3) => M(Msg::EntityRef),
            (Msg::EntityRef, 1..=4) => Str,
            (Msg::ScopeMetrics, 1) => M(Msg::Scope),
            (Msg::ScopeMetrics, 2) => M(Msg::Metric),
            (Msg::Scope, 1 | 2) => Str,
            (Msg::Scope, 3) => M(Msg::KeyValue),
            (Msg::Metric, 1..=3) => Str,
            (Msg::Metric, 5 | 7) => M(Msg::Points(Point::Number)),
            (Msg::Metric, 9) => M(Msg::Points(Point::Histogram)),
            (Msg::Metric, 10) => M(Msg::Points(Point::Exponential)),
            (Msg::Metric, 11) => M(Msg::Points(Point::Summary)),
            (Msg::Metric, 12) => M(Msg::KeyValue),
            (Msg::Points(p), 1) => M(Msg::Point(p)),
            (Msg::Point(Point::Number | Point::Summary), 7)
            | (Msg::Point(Point::Histogram), 9)
            | (Msg::Point(Point::Exponential), 1) => M(Msg::KeyValue),
            (Msg::Point(Point::Number), 5) | (Msg::Point(Point::Histogram), 8) => M(Msg::Exemplar),
            (Msg::Point(Point::Exponential), 11) => M(Msg::Exemplar),
            (Msg::Exemplar, 7) => M(Msg::KeyValue),
            (Msg::KeyValue, 1) => Str,
            (Msg::KeyValue, 2) => M(Msg::AnyValue),
            (Msg::AnyValue, 1) => Str,
            (Msg::AnyValue, 5) => M(Msg::List(&Msg::AnyValue)),
            (Msg::AnyValue, 6) => M(Msg::List(&Msg::KeyValue)),
            (Msg::List(inner), 1) => M(*inner),
            _ => Other,
        }
    }
}

/// Overwrites every byte of every invalid UTF-8 sequence in the string fields of an encoded
/// `ExportMetricsServiceRequest` with NUL; returns how many strings were masked. A buffer
/// that is not a well-formed message is an error (prost's would be the better message).
pub fn mask_invalid_utf8(buf: &mut [u8]) -> Result<usize, WireError> {
    let mut bad = Vec::new();
    collect(buf, Msg::Request, 0, &mut bad)?;
    let base = buf.as_ptr() as usize;
    let ranges: Vec<_> = bad.iter().map(|s| (s.as_ptr() as usize - base, s.len())).collect();
    for &(start, len) in &ranges {
        mask(&mut buf[start..start + len]);
    }
    Ok(ranges.len())
}

/// Collects the string fields of `msg` in `buf` that are not UTF-8.
fn collect<'a>(buf: &'a [u8], msg: Msg, depth: usize, bad: &mut Vec<&'a [u8]>) -> Result<(), WireError> {
    if depth > MAX_DEPTH {
        return Err(WireError::Truncated);
    }
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (n, wt) = r.key()?;
        if wt != LEN {
            r.skip(wt)?;
            continue;
        }
        let payload = r.bytes()?;
        match msg.field(n) {
            Field::Str if std::str::from_utf8(payload).is_err() => bad.push(payload),
            Field::Msg(inner) => collect(payload, inner, depth + 1, bad)?,
            Field::Str | Field::Other => {}
        }
    }
    Ok(())
}

/// NUL over the bytes of each invalid sequence of `s`, valid characters kept.
fn mask(mut s: &mut [u8]) {
    while let Err(e) = std::str::from_utf8(s) {
        let start = e.valid_up_to();
        let len = e.error_len().unwrap_or(s.len() - start);
        s[start..start + len].fill(0);
        s = &mut s[start + len..];
    }
}

fn masked(s: &str) -> bool {
    s.contains('\0')
}

fn value_masked(v: Option<&AnyValue>) -> bool {
    match v.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => masked(s),
        Some(any_value::Value::ArrayValue(a)) => a.values.iter().any(|v| value_masked(Some(v))),
        Some(any_value::Value::KvlistValue(l)) => attrs_masked(&l.values),
        _ => false,
    }
}

fn attrs_masked(attrs: &[KeyValue]) -> bool {
    attrs.iter().any(|kv| masked(&kv.key) || value_masked(kv.value.as_ref()))
}

/// Removes the data points whose labels would come from a masked string; returns how many.
pub fn drop_masked(req: &mut ExportMetricsServiceRequest) -> u64 {
    let mut dropped = 0;
    for rm in &mut req.resource_metrics {
        let resource_bad = rm.resource.as_ref().is_some_and(|r| attrs_masked(&r.attributes));
        for sm in &mut rm.scope_metrics {
            sm.metrics.retain_mut(|m| {
                if resource_bad || masked(&m.name) || masked(&m.unit) {
                    dropped += super::point_count(m);
                    return false;
                }
                let n = drop_points(m);
                dropped += n;
                // A metric that lost every point is gone, not a "metric without data".
                n == 0 || super::point_count(m) > 0
            });
        }
    }
    dropped
}

fn drop_points(m: &mut Metric) -> u64 {
    fn keep<P>(points: &mut Vec<P>, attrs: impl Fn(&P) -> &[KeyValue]) -> u64 {
        let before = points.len();
        points.retain(|p| !attrs_masked(attrs(p)));
        (before - points.len()) as u64
    }
    match &mut m.data {
        Some(Data::Gauge(g)) => keep(&mut g.data_points, |p| &p.attributes),
        Some(Data::Sum(s)) => keep(&mut s.data_points, |p| &p.attributes),
        Some(Data::Histogram(h)) => keep(&mut h.data_points, |p| &p.attributes),
        Some(Data::ExponentialHistogram(h)) => keep(&mut h.data_points, |p| &p.attributes),
        Some(Data::Summary(s)) => keep(&mut s.data_points, |p| &p.attributes),
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_only_the_invalid_bytes() {
        let mut s = b"ok\xffbad\xe2\x82end\xf0".to_vec();
        mask(&mut s);
        assert_eq!(s, b"ok\0bad\0\0end\0");
    }
}
