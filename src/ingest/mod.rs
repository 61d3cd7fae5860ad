//! Ingest: decodes what senders push (remote-write, OTLP) and hands validated series to a [`SampleSink`].
//!
//! First stage of the flow (**ingest** → vectorize). Ingest never scores: it checks each
//! series (name, labels, timestamps), counts what it rejects by reason, and passes the valid
//! series on in the same request. A request is refused as a whole only when its body cannot
//! be decoded at all.

mod error;
pub mod otlp;
pub mod remote_write;
pub mod scrape;

use crate::sample::{RejectReason, SeriesRef};
use crate::telemetry::Telemetry;

pub use error::IngestError;

/// Size limits of `ingest`: per series (`max_labels_per_series`, `max_label_name_length`,
/// `max_label_value_length`), checked with each series' validity so that a series over one is
/// rejected by reason and the rest of its request kept; and per request
/// (`max_series_per_request`, `max_samples_per_request`), checked right after decoding so that
/// a request over one is refused whole (413) before anything is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesLimits {
    /// Labels per series, `__name__` included.
    pub max_labels: usize,
    /// Bytes per label name.
    pub max_name_bytes: usize,
    /// Bytes per label value.
    pub max_value_bytes: usize,
    /// Series per request.
    pub max_series: usize,
    /// Samples (OTLP: data points) per request.
    pub max_samples: usize,
}

impl Default for SeriesLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl SeriesLimits {
    /// The defaults of `ingest` (a test keeps them equal to the configuration's).
    pub const DEFAULT: Self = Self {
        max_labels: 128,
        max_name_bytes: 1024,
        max_value_bytes: 4096,
        max_series: 100_000,
        max_samples: 1_000_000,
    };

    /// The limits `cfg` sets.
    pub fn from_config(cfg: &crate::config::IngestConfig) -> Self {
        Self {
            max_labels: cfg.max_labels_per_series,
            max_name_bytes: cfg.max_label_name_length,
            max_value_bytes: cfg.max_label_value_length,
            max_series: cfg.max_series_per_request,
            max_samples: cfg.max_samples_per_request,
        }
    }

    /// Refuses a whole request of `series` series and `samples` samples over a per-request
    /// limit (checked before anything of it is stored).
    pub fn check_request(&self, series: usize, samples: usize) -> Result<(), IngestError> {
        for (what, key, count, limit) in [
            ("series", "max_series_per_request", series, self.max_series),
            ("samples", "max_samples_per_request", samples, self.max_samples),
        ] {
            if count > limit {
                return Err(IngestError::TooMany { what, count, key, limit });
            }
        }
        Ok(())
    }

    /// The first limit `s` exceeds.
    pub fn check(&self, s: &SeriesRef<'_>) -> Result<(), RejectReason> {
        if s.labels.len() > self.max_labels {
            return Err(RejectReason::TooManyLabels);
        }
        for l in &s.labels {
            if l.name.len() > self.max_name_bytes {
                return Err(RejectReason::LabelNameTooLong);
            }
            if l.value.len() > self.max_value_bytes {
                return Err(RejectReason::LabelValueTooLong);
            }
        }
        Ok(())
    }

    /// The configuration key and value behind a limit's reason (for error bodies).
    pub fn describe(&self, reason: RejectReason) -> Option<String> {
        let (key, value) = match reason {
            RejectReason::TooManyLabels => ("max_labels_per_series", self.max_labels),
            RejectReason::LabelNameTooLong => ("max_label_name_length", self.max_name_bytes),
            RejectReason::LabelValueTooLong => ("max_label_value_length", self.max_value_bytes),
            _ => return None,
        };
        Some(format!("{}: over ingest.{key} = {value}", reason.as_str()))
    }
}

/// Validates each series against `limits` and its own form (counting the invalid ones by
/// reason in `out` and reporting their position to `invalid`), stores the valid ones in `sink`
/// and adds its counts to `out`.
pub(crate) fn store<'s, 'a: 's>(
    series: impl IntoIterator<Item = &'s SeriesRef<'a>>,
    limits: &SeriesLimits,
    sink: &dyn SampleSink,
    out: &mut IngestOutcome,
    mut invalid: impl FnMut(usize),
) -> ObserveStats {
    let series = series.into_iter();
    let mut valid: Vec<&SeriesRef<'_>> = Vec::with_capacity(series.size_hint().0);
    for (i, s) in series.enumerate() {
        let checked = limits.check(s).inspect_err(|r| out.note_limit(limits.describe(*r)));
        match checked.and_then(|()| remote_write::validate(s)) {
            Ok(()) => valid.push(s),
            Err(reason) => {
                out.reject(reason, s.samples.len() as u64);
                invalid(i);
            }
        }
    }
    let stats = sink.accept(&valid);
    out.samples_accepted += stats.accepted;
    out.samples_unmatched += stats.unmatched;
    for (reason, n) in [
        (RejectReason::MaxEntities, stats.max_entities),
        (RejectReason::NewEntityRate, stats.new_entity_rate),
    ] {
        if n > 0 {
            out.note_limit(sink.describe(reason));
        }
        out.reject(reason, n);
    }
    out.reject(RejectReason::OutOfOrder, stats.out_of_order);
    stats
}

/// Receives validated series (the pipeline's vectorizer in `serve`).
pub trait SampleSink: Send + Sync {
    /// Stores the series; returns what was accepted or refused downstream.
    fn accept(&self, series: &[&SeriesRef<'_>]) -> ObserveStats;

    /// The configuration key and value behind a refusal of this sink (for answers), e.g.
    /// `max_entities: over vectorize.max_entities = 10000`.
    fn describe(&self, _reason: RejectReason) -> Option<String> {
        None
    }
}

/// What a [`SampleSink`] stored and refused of the series handed to it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ObserveStats {
    /// Samples stored.
    pub accepted: u64,
    /// Samples of series no profile feature selects.
    pub unmatched: u64,
    /// Samples refused because of `max_entities`.
    pub max_entities: u64,
    /// Samples refused as out of order or duplicate.
    pub out_of_order: u64,
    /// Samples refused because of `max_new_entities_per_second` (the sender should retry).
    pub new_entity_rate: u64,
}

impl ObserveStats {
    /// Adds another call's counts.
    pub fn merge(&mut self, o: &ObserveStats) {
        self.accepted += o.accepted;
        self.unmatched += o.unmatched;
        self.max_entities += o.max_entities;
        self.out_of_order += o.out_of_order;
        self.new_entity_rate += o.new_entity_rate;
    }
}

/// Counts of one request, by outcome.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IngestOutcome {
    /// Series in the request.
    pub series: u64,
    /// Samples received (valid or not).
    pub samples_received: u64,
    /// Samples stored downstream.
    pub samples_accepted: u64,
    /// Samples of series no profile feature selects.
    pub samples_unmatched: u64,
    /// Rejected samples by reason (series-level reasons count each of the series' samples).
    pub rejected: Vec<(RejectReason, u64)>,
    /// The limits series were rejected for, with their keys and values (for the answer).
    pub limits_hit: Vec<String>,
}

impl IngestOutcome {
    /// Adds `n` rejected samples for `reason`.
    pub fn reject(&mut self, reason: RejectReason, n: u64) {
        if n == 0 {
            return;
        }
        match self.rejected.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, c)) => *c += n,
            None => self.rejected.push((reason, n)),
        }
    }

    /// Names a limit that rejected samples in the answer, once.
    fn note_limit(&mut self, described: Option<String>) {
        if let Some(d) = described
            && !self.limits_hit.contains(&d)
        {
            self.limits_hit.push(d);
        }
    }

    /// Rejected samples whose cause lies with the sender (invalid data, not our limits).
    pub fn invalid(&self) -> u64 {
        self.rejected
            .iter()
            .filter(|(r, _)| {
                !matches!(
                    r,
                    RejectReason::MaxEntities | RejectReason::OutOfOrder | RejectReason::NewEntityRate
                )
            })
            .map(|(_, n)| n)
            .sum()
    }

    /// Samples refused for a limit that passes (`new_entity_rate`): the sender should send the
    /// request again later, and the answer says so (the rest of it is stored already).
    pub fn retry_later(&self) -> u64 {
        self.rejected.iter().filter(|(r, _)| *r == RejectReason::NewEntityRate).map(|(_, n)| n).sum()
    }

    /// Counts this outcome in the service's own metrics (`protocol`: `remote_write`,
    /// `otlp_http`, ...).
    pub fn record(&self, protocol: &str, telemetry: &Telemetry) {
        telemetry.record_ingest(
            protocol,
            self.samples_received,
            self.samples_accepted,
            self.samples_unmatched,
            &self.rejected,
        );
    }

    /// A one-line summary, e.g. `rejected 2 samples: duplicate_label=1 unsorted_labels=1`.
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> =
            self.rejected.iter().map(|(r, n)| format!("{}={n}", r.as_str())).collect();
        parts.sort();
        let mut s = format!(
            "accepted {} of {} samples; rejected {}: {}",
            self.samples_accepted,
            self.samples_received,
            self.rejected.iter().map(|(_, n)| n).sum::<u64>(),
            parts.join(" ")
        );
        for l in &self.limits_hit {
            s.push_str("; ");
            s.push_str(l);
        }
        s
    }
}
