//! Prometheus remote-write 1.0 wire format (`prometheus.WriteRequest`), hand-written.
//!
//! The decoder borrows label strings straight from the request buffer instead of building
//! owned `String`s the way a generated (prost) decoder does: decode + vectorize is the
//! service's hottest path and borrowing is about ten times faster. The encoder writes the
//! same messages for remote-write out and for `simulate`. Field numbers follow
//! `prompb/remote.proto` and `prompb/types.proto`:
//!
//! ```text
//! WriteRequest { repeated TimeSeries timeseries = 1; repeated MetricMetadata metadata = 3; }
//! TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2;
//!                repeated Exemplar exemplars = 3; repeated Histogram histograms = 4; }
//! Label        { string name = 1; string value = 2; }
//! Sample       { double value = 1; int64 timestamp = 2; }
//! ```

use super::wire::{self, Reader, WireError};
use crate::sample::{LabelRef, SampleRef, SeriesRef};

/// A decoded `WriteRequest` borrowing from the decompressed body.
#[derive(Debug, Default, Clone)]
pub struct WriteRequestRef<'a> {
    /// The request's series in wire order.
    pub series: Vec<SeriesRef<'a>>,
    /// Series left out because a label name or value is not UTF-8 (protobuf `string`s must
    /// be), and their samples: the message around them is intact, so the rest is kept.
    pub invalid_utf8: (u64, u64),
}

/// Decodes a protobuf `WriteRequest` (already snappy-decompressed).
pub fn decode(buf: &[u8]) -> Result<WriteRequestRef<'_>, WireError> {
    let mut out = WriteRequestRef::default();
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match (field, wt) {
            (1, wire::LEN) => {
                let bytes = r.bytes()?;
                match decode_series(bytes) {
                    Ok(s) => out.series.push(s),
                    Err(WireError::Utf8) => {
                        out.invalid_utf8.0 += 1;
                        out.invalid_utf8.1 += count_samples(bytes)?;
                    }
                    Err(e) => return Err(e),
                }
            }
            _ => r.skip(wt)?,
        }
    }
    Ok(out)
}

/// Samples in an encoded `TimeSeries`, without reading its labels.
fn count_samples(buf: &[u8]) -> Result<u64, WireError> {
    let (mut n, mut r) = (0, Reader::new(buf));
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        n += u64::from(field == 2 && wt == wire::LEN);
        r.skip(wt)?;
    }
    Ok(n)
}

fn decode_series(buf: &[u8]) -> Result<SeriesRef<'_>, WireError> {
    let mut s = SeriesRef::default();
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match (field, wt) {
            (1, wire::LEN) => s.labels.push(decode_label(r.bytes()?)?),
            (2, wire::LEN) => s.samples.push(decode_sample(r.bytes()?)?),
            (4, wire::LEN) => {
                r.bytes()?;
                s.histograms += 1;
            }
            _ => r.skip(wt)?,
        }
    }
    Ok(s)
}

fn decode_label(buf: &[u8]) -> Result<LabelRef<'_>, WireError> {
    let mut l = LabelRef { name: "", value: "" };
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match (field, wt) {
            (1, wire::LEN) => l.name = r.str()?,
            (2, wire::LEN) => l.value = r.str()?,
            _ => r.skip(wt)?,
        }
    }
    Ok(l)
}

/// Decodes one `Sample` (the same message in remote-write 1.0 and 2.0).
pub(super) fn decode_sample(buf: &[u8]) -> Result<SampleRef, WireError> {
    let mut s = SampleRef { value: 0.0, timestamp_ms: 0 };
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match (field, wt) {
            (1, wire::I64) => s.value = f64::from_bits(r.fixed64()?),
            (2, wire::VARINT) => s.timestamp_ms = r.varint()? as i64,
            _ => r.skip(wt)?,
        }
    }
    Ok(s)
}

/// Builds an encoded `WriteRequest` series by series, reusing one buffer.
///
/// ```
/// use dwcp_anomaly::internals::proto::remote_write::Encoder;
/// let mut enc = Encoder::default();
/// enc.series(&[("__name__", "up"), ("job", "a")], &[(1.0, 1_700_000_000_000)]);
/// let bytes = enc.finish();
/// let req = dwcp_anomaly::internals::proto::remote_write::decode(&bytes).unwrap();
/// assert_eq!(req.series[0].labels[1].value, "a");
/// ```
#[derive(Debug, Default)]
pub struct Encoder {
    buf: Vec<u8>,
    scratch: Vec<u8>,
    series: usize,
}

impl Encoder {
    /// Appends one series. Labels must already be sorted by name with `__name__` first.
    pub fn series<N: AsRef<str>, V: AsRef<str>>(&mut self, labels: &[(N, V)], samples: &[(f64, i64)]) {
        self.scratch.clear();
        for (name, value) in labels {
            let (name, value) = (name.as_ref().as_bytes(), value.as_ref().as_bytes());
            let len = wire::len_field_size(1, name.len()) + wire::len_field_size(2, value.len());
            wire::put_key(&mut self.scratch, 1, wire::LEN);
            wire::put_varint(&mut self.scratch, len as u64);
            wire::put_len_field(&mut self.scratch, 1, name);
            wire::put_len_field(&mut self.scratch, 2, value);
        }
        for &(value, ts) in samples {
            put_sample(&mut self.scratch, value, ts);
        }
        wire::put_len_field(&mut self.buf, 1, &self.scratch);
        self.series += 1;
    }

    /// Number of series appended since the last `finish`.
    pub fn len(&self) -> usize {
        self.series
    }

    /// True when no series was appended since the last `finish`.
    pub fn is_empty(&self) -> bool {
        self.series == 0
    }

    /// Returns the encoded (uncompressed) request and resets the encoder.
    pub fn finish(&mut self) -> Vec<u8> {
        self.series = 0;
        std::mem::take(&mut self.buf)
    }
}

/// Appends one `Sample` as field 2 of a series (the same in remote-write 1.0 and 2.0).
pub(super) fn put_sample(buf: &mut Vec<u8>, value: f64, ts: i64) {
    let len = 1 + 8 + 1 + wire::varint_size(ts as u64);
    wire::put_key(buf, 2, wire::LEN);
    wire::put_varint(buf, len as u64);
    wire::put_key(buf, 1, wire::I64);
    buf.extend_from_slice(&value.to_bits().to_le_bytes());
    wire::put_key(buf, 2, wire::VARINT);
    wire::put_varint(buf, ts as u64);
}

/// Snappy block-compresses an encoded request, as remote-write requires.
pub fn compress(encoded: &[u8]) -> Vec<u8> {
    // Infallible for in-memory buffers below snappy's 4 GiB limit; the encoder never builds one.
    snap::raw::Encoder::new().compress_vec(encoded).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_labels_samples_and_special_values() {
        let mut enc = Encoder::default();
        enc.series(
            &[("__name__", "dwcp_latency_ms"), ("instance", "n1")],
            &[(1.5, 1000), (f64::NAN, 2000), (-3.0, 3000)],
        );
        enc.series(&[("__name__", "x")], &[]);
        assert_eq!(enc.len(), 2);
        let bytes = enc.finish();
        assert!(enc.is_empty());
        let req = decode(&bytes).unwrap();
        assert_eq!(req.series.len(), 2);
        let s = &req.series[0];
        assert_eq!(s.labels[0], LabelRef { name: "__name__", value: "dwcp_latency_ms" });
        assert_eq!(s.labels[1].value, "n1");
        assert_eq!(s.samples[0], SampleRef { value: 1.5, timestamp_ms: 1000 });
        assert!(s.samples[1].value.is_nan());
        assert_eq!(s.samples[2].timestamp_ms, 3000);
        assert!(req.series[1].samples.is_empty());
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let mut enc = Encoder::default();
        enc.series(&[("__name__", "abc")], &[(1.0, 1)]);
        let bytes = enc.finish();
        for cut in 1..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut} decoded");
        }
    }

    #[test]
    fn a_series_with_invalid_utf8_is_left_out_and_the_rest_kept() {
        let mut enc = Encoder::default();
        enc.series(&[("__name__", "ok")], &[(1.0, 1)]);
        let good = enc.finish();
        enc.series(&[("__name__", "ab")], &[(2.0, 2), (3.0, 3)]);
        let mut bad = enc.finish();
        let at = bad.windows(2).position(|w| w == b"ab").unwrap() + 1;
        bad[at] = 0xff;
        // Two encoded requests end to end are one request with both series.
        let both = [good, bad].concat();
        let req = decode(&both).unwrap();
        assert_eq!(req.series.len(), 1);
        assert_eq!(req.series[0].labels[0].value, "ok");
        assert_eq!(req.invalid_utf8, (1, 2));
    }
}
