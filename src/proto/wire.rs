//! Minimal protobuf wire-format reader and writer (varints, fixed64, length-delimited).
//!
//! Enough for the remote-write messages; every read is bounds-checked so a hostile body
//! yields a [`WireError`], never a panic or an over-read.

use thiserror::Error;

/// Wire type of a varint field.
pub const VARINT: u8 = 0;
/// Wire type of a 64-bit fixed field (double, fixed64).
pub const I64: u8 = 1;
/// Wire type of a length-delimited field (bytes, strings, messages).
pub const LEN: u8 = 2;
/// Wire type of a 32-bit fixed field.
pub const I32: u8 = 5;

/// Why a protobuf body could not be decoded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum WireError {
    /// The buffer ended inside a field.
    #[error("truncated protobuf message")]
    Truncated,
    /// A varint ran past 10 bytes.
    #[error("malformed varint")]
    Varint,
    /// A wire type this format does not define (groups included).
    #[error("unsupported protobuf wire type {0}")]
    WireType(u8),
    /// A string field was not valid UTF-8.
    #[error("string field is not valid UTF-8")]
    Utf8,
    /// Field number 0 is reserved.
    #[error("invalid field number 0")]
    FieldZero,
}

/// A cursor over a protobuf-encoded buffer.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Starts reading at the beginning of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    /// True once every byte was consumed.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Reads a base-128 varint.
    #[inline]
    pub fn varint(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for (i, &b) in self.buf.iter().enumerate().take(10) {
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                self.buf = &self.buf[i + 1..];
                return Ok(value);
            }
        }
        if self.buf.len() < 10 { Err(WireError::Truncated) } else { Err(WireError::Varint) }
    }

    /// Reads a field key and returns `(field number, wire type)`.
    #[inline]
    pub fn key(&mut self) -> Result<(u32, u8), WireError> {
        let k = self.varint()?;
        let field = (k >> 3) as u32;
        if field == 0 {
            return Err(WireError::FieldZero);
        }
        Ok((field, (k & 7) as u8))
    }

    /// Reads a length-delimited payload.
    #[inline]
    pub fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let len = self.varint()?;
        if len > self.buf.len() as u64 {
            return Err(WireError::Truncated);
        }
        let (head, tail) = self.buf.split_at(len as usize);
        self.buf = tail;
        Ok(head)
    }

    /// Reads a length-delimited UTF-8 string.
    #[inline]
    pub fn str(&mut self) -> Result<&'a str, WireError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| WireError::Utf8)
    }

    /// Reads 8 little-endian bytes.
    #[inline]
    pub fn fixed64(&mut self) -> Result<u64, WireError> {
        let Some((head, tail)) = self.buf.split_first_chunk::<8>() else {
            return Err(WireError::Truncated);
        };
        self.buf = tail;
        Ok(u64::from_le_bytes(*head))
    }

    /// Skips one field's value of wire type `wt`.
    pub fn skip(&mut self, wt: u8) -> Result<(), WireError> {
        match wt {
            VARINT => self.varint().map(drop),
            I64 => self.fixed64().map(drop),
            LEN => self.bytes().map(drop),
            I32 => {
                if self.buf.len() < 4 {
                    return Err(WireError::Truncated);
                }
                self.buf = &self.buf[4..];
                Ok(())
            }
            other => Err(WireError::WireType(other)),
        }
    }
}

/// Number of bytes `v` takes as a varint.
pub fn varint_size(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Appends `v` as a varint.
pub fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Appends a field key.
pub fn put_key(buf: &mut Vec<u8>, field: u32, wt: u8) {
    put_varint(buf, (u64::from(field) << 3) | u64::from(wt));
}

/// Appends a length-delimited field.
pub fn put_len_field(buf: &mut Vec<u8>, field: u32, payload: &[u8]) {
    put_key(buf, field, LEN);
    put_varint(buf, payload.len() as u64);
    buf.extend_from_slice(payload);
}

/// Encoded size of a length-delimited field with a payload of `len` bytes.
pub fn len_field_size(field: u32, len: usize) -> usize {
    varint_size(u64::from(field) << 3) + varint_size(len as u64) + len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_every_width() {
        for v in [0u64, 1, 127, 128, 300, 1 << 35, u64::MAX] {
            let mut buf = Vec::new();
            put_varint(&mut buf, v);
            assert_eq!(buf.len(), varint_size(v));
            assert_eq!(Reader::new(&buf).varint().unwrap(), v);
        }
    }

    #[test]
    fn overlong_varint_is_rejected() {
        assert_eq!(Reader::new(&[0xff; 11]).varint(), Err(WireError::Varint));
        assert_eq!(Reader::new(&[0xff; 3]).varint(), Err(WireError::Truncated));
    }

    #[test]
    fn length_beyond_buffer_is_truncated() {
        assert_eq!(Reader::new(&[5, 1, 2]).bytes(), Err(WireError::Truncated));
    }
}
