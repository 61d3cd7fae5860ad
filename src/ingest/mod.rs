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

/// Validates each series (counting the invalid ones by reason in `out` and reporting their
/// position to `invalid`), stores the valid ones in `sink` and adds its counts to `out`.
pub(crate) fn store<'s, 'a: 's>(
    series: impl IntoIterator<Item = &'s SeriesRef<'a>>,
    sink: &dyn SampleSink,
    out: &mut IngestOutcome,
    mut invalid: impl FnMut(usize),
) -> ObserveStats {
    let series = series.into_iter();
    let mut valid: Vec<&SeriesRef<'_>> = Vec::with_capacity(series.size_hint().0);
    for (i, s) in series.enumerate() {
        match remote_write::validate(s) {
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
    out.reject(RejectReason::MaxEntities, stats.max_entities);
    out.reject(RejectReason::OutOfOrder, stats.out_of_order);
    stats
}

/// Receives validated series (the pipeline's vectorizer in `serve`).
pub trait SampleSink: Send + Sync {
    /// Stores the series; returns what was accepted or refused downstream.
    fn accept(&self, series: &[&SeriesRef<'_>]) -> ObserveStats;
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
}

impl ObserveStats {
    /// Adds another call's counts.
    pub fn merge(&mut self, o: &ObserveStats) {
        self.accepted += o.accepted;
        self.unmatched += o.unmatched;
        self.max_entities += o.max_entities;
        self.out_of_order += o.out_of_order;
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

    /// Rejected samples whose cause lies with the sender (invalid data, not our limits).
    pub fn invalid(&self) -> u64 {
        self.rejected
            .iter()
            .filter(|(r, _)| !matches!(r, RejectReason::MaxEntities | RejectReason::OutOfOrder))
            .map(|(_, n)| n)
            .sum()
    }

    /// Counts this outcome in the service's own metrics (`protocol`: `remote_write`,
    /// `otlp_http`, ...).
    pub fn record(&self, protocol: &str, telemetry: &Telemetry) {
        telemetry.record_ingest(protocol, self.samples_received, self.samples_unmatched, &self.rejected);
    }

    /// A one-line summary, e.g. `rejected 2 samples: duplicate_label=1 unsorted_labels=1`.
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> =
            self.rejected.iter().map(|(r, n)| format!("{}={n}", r.as_str())).collect();
        parts.sort();
        format!(
            "accepted {} of {} samples; rejected {}: {}",
            self.samples_accepted,
            self.samples_received,
            self.rejected.iter().map(|(_, n)| n).sum::<u64>(),
            parts.join(" ")
        )
    }
}
