//! Prometheus remote-write 2.0 (`io.prometheus.write.v2.Request`), hand-written like 1.0.
//!
//! Labels are references into the request's symbol table; they are resolved to strings that
//! borrow from the buffer, so 2.0 series reach ingest as the same [`SeriesRef`] as 1.0.
//! Field numbers follow `prompb/io/prometheus/write/v2/types.proto`:
//!
//! ```text
//! Request    { repeated string symbols = 4; repeated TimeSeries timeseries = 5; }
//! TimeSeries { repeated uint32 labels_refs = 1; repeated Sample samples = 2;
//!              repeated Histogram histograms = 3; repeated Exemplar exemplars = 4;
//!              Metadata metadata = 5; int64 created_timestamp = 6; }
//! Sample     { double value = 1; int64 timestamp = 2; }
//! ```

use super::remote_write::{LabelRef, SampleRef, SeriesRef, decode_sample};
use super::wire::{self, Reader, WireError};

/// Content type of a remote-write 2.0 request.
pub const CONTENT_TYPE: &str = "application/x-protobuf;proto=io.prometheus.write.v2.Request";

/// Why one 2.0 series cannot be resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefError {
    /// A label reference beyond the symbol table.
    OutOfRange {
        /// The reference.
        index: u32,
        /// Symbols in the table.
        symbols: usize,
    },
    /// An odd number of label references (names and values come in pairs).
    OddCount(usize),
}

impl std::fmt::Display for RefError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RefError::OutOfRange { index, symbols } => {
                write!(f, "label reference {index} is outside the symbol table of {symbols} symbols")
            }
            RefError::OddCount(n) => write!(f, "{n} label references; names and values come in pairs"),
        }
    }
}

/// One decoded 2.0 series: resolved, or the reason its labels cannot be.
#[derive(Debug, Clone)]
pub struct SeriesV2<'a> {
    /// The series with its labels resolved, or why they could not be.
    pub series: Result<SeriesRef<'a>, RefError>,
    /// Samples in the series (also when its labels are bad, for counting).
    pub samples: usize,
    /// Native histogram samples carried.
    pub histograms: usize,
    /// Exemplars carried (not stored).
    pub exemplars: usize,
}

/// Decodes a protobuf 2.0 `Request` (already snappy-decompressed).
pub fn decode(buf: &[u8]) -> Result<Vec<SeriesV2<'_>>, WireError> {
    // Symbols may follow the series on the wire: collect them first.
    let mut symbols: Vec<&str> = Vec::new();
    let mut series: Vec<&[u8]> = Vec::new();
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match (field, wt) {
            (4, wire::LEN) => symbols.push(r.str()?),
            (5, wire::LEN) => series.push(r.bytes()?),
            _ => r.skip(wt)?,
        }
    }
    series.into_iter().map(|s| decode_series(s, &symbols)).collect()
}

fn decode_series<'a>(buf: &'a [u8], symbols: &[&'a str]) -> Result<SeriesV2<'a>, WireError> {
    let mut refs: Vec<u32> = Vec::new();
    let mut samples: Vec<SampleRef> = Vec::new();
    let (mut histograms, mut exemplars) = (0, 0);
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match (field, wt) {
            // Packed (the proto3 default) or one varint per entry.
            (1, wire::LEN) => {
                let mut p = Reader::new(r.bytes()?);
                while !p.is_empty() {
                    refs.push(p.varint()? as u32);
                }
            }
            (1, wire::VARINT) => refs.push(r.varint()? as u32),
            (2, wire::LEN) => samples.push(decode_sample(r.bytes()?)?),
            (3, wire::LEN) => {
                r.bytes()?;
                histograms += 1;
            }
            (4, wire::LEN) => {
                r.bytes()?;
                exemplars += 1;
            }
            _ => r.skip(wt)?,
        }
    }
    let n = samples.len();
    let series = resolve(&refs, symbols).map(|labels| SeriesRef { labels, samples, histograms });
    Ok(SeriesV2 { series, samples: n, histograms, exemplars })
}

fn resolve<'a>(refs: &[u32], symbols: &[&'a str]) -> Result<Vec<LabelRef<'a>>, RefError> {
    if !refs.len().is_multiple_of(2) {
        return Err(RefError::OddCount(refs.len()));
    }
    let sym = |i: u32| {
        symbols.get(i as usize).copied().ok_or(RefError::OutOfRange { index: i, symbols: symbols.len() })
    };
    refs.chunks_exact(2).map(|p| Ok(LabelRef { name: sym(p[0])?, value: sym(p[1])? })).collect()
}
