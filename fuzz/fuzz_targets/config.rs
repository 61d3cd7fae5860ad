#![no_main]
//! The YAML configuration: parsing and validation never panic, whatever the file holds.
use dwcp_anomaly::internals::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(cfg) = Config::parse(text) {
        let _ = cfg.validate();
    }
});
