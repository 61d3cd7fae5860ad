#![no_main]
//! OTLP/HTTP JSON: decoding, the per-request limits, mapping, validation.
use dwcp_anomaly::internals::config::Config;
use dwcp_anomaly::internals::ingest::otlp;
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let sink = common::sink();
    let opts = otlp::MapOptions::from_config(&Config::default());
    for encoding in [None] {
        if let Ok((req, _)) = otlp::decode_http(data, Some("application/json"), encoding, common::limits())
            && otlp::check_request(&req.request, &opts.limits).is_ok()
        {
            let _ = otlp::ingest_decoded(&req, &opts, &sink);
        }
    }
});
