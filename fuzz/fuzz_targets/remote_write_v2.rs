#![no_main]
//! Remote-write 2.0 (`io.prometheus.write.v2.Request`): symbols, references, validation.
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let sink = common::sink();
    let compressed = dwcp_anomaly::internals::proto::remote_write::compress(data);
    let _ = dwcp_anomaly::internals::ingest::remote_write::ingest_v2(&compressed, common::limits(), &sink);
});
