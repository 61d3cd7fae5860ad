#![no_main]
//! Remote-write 1.0 as the endpoint sees it: snappy, protobuf, validation, the vectorizer.
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let sink = common::sink();
    // The body as sent (snappy) and, to reach the protobuf decoder more often, as decoded.
    let _ = dwcp_anomaly::internals::ingest::remote_write::ingest(data, common::limits(), &sink);
    let compressed = dwcp_anomaly::internals::proto::remote_write::compress(data);
    let _ = dwcp_anomaly::internals::ingest::remote_write::ingest(&compressed, common::limits(), &sink);
});
