#![no_main]
//! Snappy blocks: the declared length is checked before anything is allocated.
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let limits = common::limits();
    if let Ok(out) = dwcp_anomaly::internals::ingest::remote_write::decompress(data, limits) {
        assert!(out.len() <= limits.max_decoded_bytes);
    }
});
