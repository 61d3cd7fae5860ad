//! Ingest errors: each maps to one HTTP status in `http::ApiError`.

use thiserror::Error;

use crate::proto::wire::WireError;

/// Why a whole request was refused.
#[derive(Debug, Error)]
pub enum IngestError {
    /// Body or decoded body over the configured limit (413).
    #[error("{what} is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// Which size.
        what: &'static str,
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// More series or samples in one request than `ingest.<key>` allows (413).
    #[error("request holds {count} {what}, over ingest.{key} = {limit}; send smaller batches")]
    TooMany {
        /// `series` or `samples`.
        what: &'static str,
        /// How many the request holds.
        count: usize,
        /// The limit's configuration key.
        key: &'static str,
        /// The limit.
        limit: usize,
    },
    /// Content type or encoding this endpoint does not accept (415).
    #[error("unsupported {header} {value:?}: {expected}")]
    Unsupported {
        /// Header name.
        header: &'static str,
        /// Header value found.
        value: String,
        /// What is accepted.
        expected: &'static str,
    },
    /// Body is not valid snappy (400).
    #[error("snappy decompression failed: {0}")]
    Snappy(#[source] snap::Error),
    /// Body is not a valid protobuf message (400).
    #[error("cannot decode protobuf WriteRequest: {0}")]
    Protobuf(#[source] WireError),
    /// Body cannot be decoded: bad gzip, protobuf or JSON (400).
    #[error("cannot decode {what}: {reason}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// The decoder's message.
        reason: String,
    },
    /// Every series was invalid, or some were (400, after keeping the valid ones).
    #[error("{0}")]
    InvalidSeries(String),
}
