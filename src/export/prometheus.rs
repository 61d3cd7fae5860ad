//! `/metrics`: the latest check's score series plus the service's own metrics, in the
//! Prometheus text exposition format (version 0.0.4).

use std::fmt::Write as _;

use crate::telemetry::{Telemetry, fmt_value, write_labels};

use super::{Series, for_each_series};
use crate::check::CheckScores;

/// Content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders the latest check and the service's own metrics.
pub fn render(check: &CheckScores, telemetry: &Telemetry) -> String {
    let mut out = String::with_capacity(64 * 1024);
    for which in Series::ALL {
        let _ = writeln!(out, "# HELP {} {}\n# TYPE {} gauge", which.name(), which.help(), which.name());
        for_each_series(check, which, |labels, value| {
            out.push_str(which.name());
            write_labels(&mut out, labels[1..].iter().copied());
            out.push(' ');
            out.push_str(&fmt_value(value));
            out.push('\n');
        });
    }
    telemetry.render(&mut out);
    out
}
