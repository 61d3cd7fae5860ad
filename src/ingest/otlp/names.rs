//! Metric and label names for OTLP data, as Prometheus's OTLP translator builds them.
//!
//! The metric name is split into tokens of ASCII letters and digits; the unit's Prometheus
//! word (`ms` → `milliseconds`, `By/s` → `bytes_per_second`) is appended unless a token
//! already says it; monotonic cumulative sums end in `_total` and dimensionless gauges (unit
//! `1`) in `_ratio`. Attribute keys keep their characters where Prometheus allows them and
//! get `_` elsewhere. See `prometheus/otlptranslator` (`BuildCompliantMetricName`,
//! `NormalizeLabel`).

use std::borrow::Cow;

/// What kind of OTLP metric a name is built for: it decides the `_total` / `_ratio` suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// A gauge.
    Gauge,
    /// A monotonic sum with cumulative temporality (a Prometheus counter).
    Counter,
    /// Anything else (non-monotonic sums, histograms, summaries).
    Other,
}

/// The Prometheus metric name for an OTLP metric `name` with `unit`.
pub fn metric_name(name: &str, unit: &str, kind: NameKind) -> String {
    let mut tokens: Vec<&str> =
        name.split(|c: char| !c.is_ascii_alphanumeric()).filter(|t| !t.is_empty()).collect();
    let (main, per) = unit_words(unit);
    if let Some(main) = main.as_deref()
        && !tokens.contains(&main)
    {
        tokens.push(main);
    }
    if let Some(per) = per.as_deref()
        && !tokens.contains(&per)
    {
        tokens.push("per");
        tokens.push(per);
    }
    match kind {
        NameKind::Counter => {
            tokens.retain(|t| *t != "total");
            tokens.push("total");
        }
        NameKind::Gauge if unit == "1" => {
            tokens.retain(|t| *t != "ratio");
            tokens.push("ratio");
        }
        _ => {}
    }
    let joined = tokens.join("_");
    if joined.starts_with(|c: char| c.is_ascii_digit()) { format!("_{joined}") } else { joined }
}

/// Splits a UCUM unit into its Prometheus words: `ms` → (`milliseconds`, none),
/// `By/s` → (`bytes`, `second`). Annotations in braces (`{packets}`) and `1` carry no word.
fn unit_words(unit: &str) -> (Option<String>, Option<String>) {
    let mut clean = String::with_capacity(unit.len());
    let mut depth = 0u32;
    for c in unit.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            c if depth == 0 => clean.push(c),
            _ => {}
        }
    }
    let (main, per) = match clean.split_once('/') {
        Some((m, p)) => (m.trim(), p.trim()),
        None => (clean.trim(), ""),
    };
    let word = |u: &str, table: fn(&str) -> Option<&'static str>| match u {
        "" | "1" => None,
        u => Some(
            table(u).map_or_else(|| u.chars().filter(char::is_ascii_alphanumeric).collect(), String::from),
        )
        .filter(|w: &String| !w.is_empty()),
    };
    (word(main, main_unit), word(per, per_unit))
}

fn main_unit(u: &str) -> Option<&'static str> {
    Some(match u {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "%" => "percent",
        _ => return None,
    })
}

fn per_unit(u: &str) -> Option<&'static str> {
    Some(match u {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        _ => return None,
    })
}

/// The Prometheus label name for an attribute key: characters outside `[a-zA-Z0-9_]` become
/// `_`; a key starting with a digit or a single `_` gets the prefix `key_` / `key`.
pub fn label_name(key: &str) -> Cow<'_, str> {
    let valid_chars = key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let digit_start = key.starts_with(|c: char| c.is_ascii_digit());
    let underscore_start = key.starts_with('_') && !key.starts_with("__");
    if valid_chars && !digit_start && !underscore_start && !key.is_empty() {
        return Cow::Borrowed(key);
    }
    let mut out: String =
        key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if digit_start {
        out.insert_str(0, "key_");
    } else if underscore_start {
        out.insert_str(0, "key");
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_prometheus_translator() {
        use NameKind::*;
        let cases = [
            ("dwcp_latency_ms", "", Gauge, "dwcp_latency_ms"),
            ("http.server.duration", "ms", Other, "http_server_duration_milliseconds"),
            ("system.network.io", "By", Counter, "system_network_io_bytes_total"),
            ("requests_total", "", Counter, "requests_total"),
            ("requests.total.count", "{requests}", Counter, "requests_count_total"),
            ("throughput", "By/s", Gauge, "throughput_bytes_per_second"),
            ("cpu.utilization", "1", Gauge, "cpu_utilization_ratio"),
            ("cpu.utilization", "1", Other, "cpu_utilization"),
            ("disk.latency.seconds", "s", Gauge, "disk_latency_seconds"),
            ("queue.length", "{items}/min", Gauge, "queue_length_per_min"),
            ("temp", "Cel", Gauge, "temp_celsius"),
            ("2xx.responses", "", Counter, "_2xx_responses_total"),
            ("weird", "m³", Gauge, "weird_m"),
        ];
        for (name, unit, kind, want) in cases {
            assert_eq!(metric_name(name, unit, kind), want, "{name} [{unit}] {kind:?}");
        }
    }

    #[test]
    fn label_names_are_sanitised() {
        assert_eq!(label_name("host.name"), "host_name");
        assert_eq!(label_name("link_id"), "link_id");
        assert!(matches!(label_name("link_id"), Cow::Borrowed(_)));
        assert_eq!(label_name("0day"), "key_0day");
        assert_eq!(label_name("_private"), "key_private");
        assert_eq!(label_name("__reserved"), "__reserved");
        assert_eq!(label_name("k8s.pod/name"), "k8s_pod_name");
    }
}
