//! `humantime` durations in YAML (`10s`, `5m`, `1h 30m`), never bare integers.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

/// Serializes as a humantime string, e.g. `5m`.
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

/// Parses a humantime string; a bare number is rejected with a hint.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(text.trim())
        .map_err(|e| D::Error::custom(format!("invalid duration {text:?} ({e}); expected e.g. 10s, 5m, 1h")))
}
