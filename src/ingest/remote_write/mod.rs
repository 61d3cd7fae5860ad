//! Prometheus remote-write receiver, 1.0 (`prometheus.WriteRequest`) and 2.0
//! (`io.prometheus.write.v2.Request`, chosen by the `proto` parameter of `Content-Type`):
//! snappy block + protobuf.
//!
//! Limits are checked before any allocation proportional to the input: the compressed size
//! by the HTTP layer, the decompressed size from snappy's header. Each series is validated on
//! its own; invalid ones are counted by reason and dropped while the rest of the request is
//! stored. Following Prometheus's own receiver, a request that contained invalid series gets
//! 400 with the counts (the sender does not retry it; the valid series are already stored).

use crate::proto::remote_write;
use crate::proto::remote_write_v2;
use crate::sample::{LABEL_NAME, RejectReason, SeriesRef, is_label_name};

use super::{IngestError, IngestOutcome, SampleSink, store};

/// Content type of remote-write 1.0 (and the default when the `proto` parameter is absent).
pub const CONTENT_TYPE: &str = "application/x-protobuf";
/// Latest plausible timestamp: 9999-12-31T23:59:59Z in milliseconds.
const MAX_TIMESTAMP_MS: i64 = 253_402_300_799_000;

/// Size limits for one request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest decompressed body.
    pub max_decoded_bytes: usize,
    /// Labels per series and their lengths.
    pub series: super::SeriesLimits,
}

impl Limits {
    /// The limits `cfg` sets.
    pub fn from_config(cfg: &crate::config::IngestConfig) -> Self {
        Self { max_decoded_bytes: cfg.max_decoded_bytes, series: super::SeriesLimits::from_config(cfg) }
    }
}

/// Remote-write protocol version of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// 1.0: `prometheus.WriteRequest`.
    V1,
    /// 2.0: `io.prometheus.write.v2.Request`.
    V2,
}

/// Checks the `Content-Type` and `Content-Encoding` headers of a remote-write request and
/// returns the protocol version the content type names.
pub fn check_headers(
    content_type: Option<&str>,
    content_encoding: Option<&str>,
) -> Result<Version, IngestError> {
    let mut version = Version::V1;
    if let Some(ct) = content_type {
        let mut parts = ct.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default();
        let proto = parts.find_map(|p| p.strip_prefix("proto="));
        version = match proto {
            _ if !media.eq_ignore_ascii_case(CONTENT_TYPE) => None,
            None | Some("prometheus.WriteRequest") => Some(Version::V1),
            Some("io.prometheus.write.v2.Request") => Some(Version::V2),
            Some(_) => None,
        }
        .ok_or_else(|| IngestError::Unsupported {
            header: "Content-Type",
            value: ct.to_string(),
            expected: "application/x-protobuf with proto=prometheus.WriteRequest (remote-write 1.0, the \
                       default) or proto=io.prometheus.write.v2.Request (2.0)",
        })?;
    }
    match content_encoding {
        None => Ok(version),
        Some(enc) if enc.eq_ignore_ascii_case("snappy") => Ok(version),
        Some(enc) => Err(IngestError::Unsupported {
            header: "Content-Encoding",
            value: enc.to_string(),
            expected: "snappy",
        }),
    }
}

/// Decompresses a snappy block within `limits`.
pub fn decompress(body: &[u8], limits: Limits) -> Result<Vec<u8>, IngestError> {
    let len = snap::raw::decompress_len(body).map_err(IngestError::Snappy)?;
    if len > limits.max_decoded_bytes {
        return Err(IngestError::TooLarge {
            what: "decoded body",
            size: len,
            limit: limits.max_decoded_bytes,
        });
    }
    snap::raw::Decoder::new().decompress_vec(body).map_err(IngestError::Snappy)
}

/// Decodes, validates and stores one request body (snappy-compressed).
pub fn ingest(body: &[u8], limits: Limits, sink: &dyn SampleSink) -> Result<IngestOutcome, IngestError> {
    let raw = decompress(body, limits)?;
    let req = remote_write::decode(&raw).map_err(IngestError::Protobuf)?;
    let (bad_series, bad_samples) = req.invalid_utf8;
    let samples: usize = req.series.iter().map(|s| s.samples.len() + s.histograms).sum();
    limits.series.check_request(req.series.len() + bad_series as usize, samples + bad_samples as usize)?;
    let mut out = IngestOutcome {
        series: req.series.len() as u64 + bad_series,
        samples_received: bad_samples,
        ..IngestOutcome::default()
    };
    out.reject(RejectReason::InvalidUtf8, bad_samples);
    for s in &req.series {
        out.samples_received += (s.samples.len() + s.histograms) as u64;
        out.reject(RejectReason::NativeHistogram, s.histograms as u64);
    }
    store(&req.series, &limits.series, sink, &mut out, |_| {});
    Ok(out)
}

/// What a remote-write 2.0 request stored, for the `X-Prometheus-Remote-Write-*-Written`
/// response headers. Samples of series no feature selects count as written: they were
/// received intact and are deliberately not kept.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Float samples.
    pub samples: u64,
    /// Native histogram samples (never stored).
    pub histograms: u64,
    /// Exemplars (never stored).
    pub exemplars: u64,
}

/// What one 2.0 request did.
#[derive(Debug, Clone)]
pub struct OutcomeV2 {
    /// Counts, as for 1.0.
    pub outcome: IngestOutcome,
    /// For the response headers.
    pub written: Written,
    /// The first bad label reference, to name in the error.
    pub first_bad_ref: Option<remote_write_v2::RefError>,
}

/// Decodes, validates and stores one 2.0 request body (snappy-compressed). A series whose
/// label references are bad is rejected (`invalid_symbol_ref`) and the rest stored.
pub fn ingest_v2(body: &[u8], limits: Limits, sink: &dyn SampleSink) -> Result<OutcomeV2, IngestError> {
    let raw = decompress(body, limits)?;
    let req = remote_write_v2::decode(&raw).map_err(IngestError::Protobuf)?;
    limits.series.check_request(req.len(), req.iter().map(|s| s.samples + s.histograms).sum())?;
    let mut out = IngestOutcome { series: req.len() as u64, ..IngestOutcome::default() };
    let mut first_bad_ref = None;
    for s in &req {
        out.samples_received += (s.samples + s.histograms) as u64;
        out.reject(RejectReason::NativeHistogram, s.histograms as u64);
        if let Err(e) = &s.series {
            out.reject(RejectReason::InvalidSymbolRef, s.samples as u64);
            first_bad_ref.get_or_insert(*e);
        }
    }
    let stats =
        store(req.iter().filter_map(|s| s.series.as_ref().ok()), &limits.series, sink, &mut out, |_| {});
    let written = Written { samples: stats.accepted + stats.unmatched, histograms: 0, exemplars: 0 };
    Ok(OutcomeV2 { outcome: out, written, first_bad_ref })
}

/// Checks one series: metric name, label names, order, duplicates, timestamps.
pub fn validate(s: &SeriesRef<'_>) -> Result<(), RejectReason> {
    let mut has_name = false;
    for (i, l) in s.labels.iter().enumerate() {
        if !is_label_name(l.name) {
            return Err(RejectReason::InvalidLabelName);
        }
        if l.name == LABEL_NAME {
            has_name = !l.value.is_empty();
        }
        if i > 0 {
            let prev = s.labels[i - 1].name;
            if prev == l.name {
                return Err(RejectReason::DuplicateLabel);
            }
            if prev > l.name {
                // Unsorted, unless the disorder hides a duplicate further back.
                if s.labels[..i].iter().any(|p| p.name == l.name) {
                    return Err(RejectReason::DuplicateLabel);
                }
                return Err(RejectReason::UnsortedLabels);
            }
        }
    }
    if !has_name {
        return Err(RejectReason::MissingMetricName);
    }
    if s.samples.iter().any(|x| x.timestamp_ms <= 0 || x.timestamp_ms > MAX_TIMESTAMP_MS) {
        return Err(RejectReason::InvalidTimestamp);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
