#![no_main]
//! A scraped page in the Prometheus text format (or anything else a target serves).
use dwcp_anomaly::internals::ingest::scrape;
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let target = [("job".to_string(), "fuzz".to_string()), ("instance".to_string(), "h:1".to_string())];
    for honor in [false, true] {
        let parsed = scrape::parse(text, 1_700_000_000_000, &target, honor);
        let _ = scrape::ingest(&parsed, &common::limits().series, &common::sink());
    }
});
