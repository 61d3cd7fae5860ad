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

use super::remote_write::{decode_sample, put_sample};
use super::wire::{self, Reader, WireError};
use crate::sample::{LabelRef, SampleRef, SeriesRef};

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

/// Builds an encoded 2.0 `Request` series by series: labels go into one symbol table.
#[derive(Debug, Default)]
pub struct EncoderV2 {
    symbols: Vec<String>,
    index: std::collections::HashMap<String, u32>,
    series: Vec<u8>,
    scratch: Vec<u8>,
    refs: Vec<u8>,
    count: usize,
}

impl EncoderV2 {
    fn symbol(&mut self, s: &str) -> u32 {
        if self.symbols.is_empty() {
            self.symbols.push(String::new());
            self.index.insert(String::new(), 0);
        }
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.symbols.len() as u32;
        self.symbols.push(s.to_string());
        self.index.insert(s.to_string(), i);
        i
    }

    /// Appends one series. Labels must already be sorted by name with `__name__` first.
    pub fn series<N: AsRef<str>, V: AsRef<str>>(&mut self, labels: &[(N, V)], samples: &[(f64, i64)]) {
        self.refs.clear();
        for (name, value) in labels {
            let (n, v) = (self.symbol(name.as_ref()), self.symbol(value.as_ref()));
            wire::put_varint(&mut self.refs, u64::from(n));
            wire::put_varint(&mut self.refs, u64::from(v));
        }
        self.scratch.clear();
        wire::put_len_field(&mut self.scratch, 1, &self.refs);
        for &(value, ts) in samples {
            put_sample(&mut self.scratch, value, ts);
        }
        wire::put_len_field(&mut self.series, 5, &self.scratch);
        self.count += 1;
    }

    /// Number of series appended since the last `finish`.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when no series was appended since the last `finish`.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Returns the encoded (uncompressed) request and resets the encoder.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(self.series.len() + self.symbols.iter().map(|s| s.len() + 2).sum::<usize>());
        for s in &self.symbols {
            wire::put_len_field(&mut out, 4, s.as_bytes());
        }
        out.append(&mut self.series);
        self.symbols.clear();
        self.index.clear();
        self.count = 0;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoder_round_trips_through_the_decoder_with_shared_symbols() {
        let mut enc = EncoderV2::default();
        enc.series(&[("__name__", "anomaly_flag"), ("instance", "n1")], &[(1.0, 1000)]);
        enc.series(&[("__name__", "anomaly_flag"), ("instance", "n2")], &[(0.0, 1000), (1.0, 2000)]);
        assert_eq!(enc.len(), 2);
        let bytes = enc.finish();
        assert!(enc.is_empty());
        let req = decode(&bytes).unwrap();
        let s0 = req[0].series.as_ref().unwrap();
        assert_eq!(
            s0.labels,
            [
                LabelRef { name: "__name__", value: "anomaly_flag" },
                LabelRef { name: "instance", value: "n1" }
            ]
        );
        let s1 = req[1].series.as_ref().unwrap();
        assert_eq!(s1.labels[1].value, "n2");
        assert_eq!(s1.samples[1], SampleRef { value: 1.0, timestamp_ms: 2000 });
        // "", __name__, anomaly_flag, instance, n1, n2: each symbol once.
        let symbols = bytes.iter().filter(|&&b| b == 0x22).count();
        assert!(symbols >= 6, "{symbols}");
    }
}
