//! Wire formats shared by ingest (decode) and export / simulate (encode).
//!
//! A leaf module like `config`: it knows bytes, not stages, so `ingest` and `export` can both
//! use it without importing each other.

pub mod onnx;
pub mod otlp;
pub mod remote_write;
pub mod remote_write_v2;
pub mod wire;
