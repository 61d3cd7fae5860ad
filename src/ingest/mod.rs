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

use crate::proto::remote_write::{LabelRef, SampleRef, SeriesRef};
use crate::vectorize::ObserveStats;

pub use error::IngestError;

/// A series view of one sample over owned or borrowed label pairs (OTLP and scrape build their
/// labels, remote-write borrows them from the request).
pub(crate) fn one_sample_series<N: AsRef<str>, V: AsRef<str>>(
    labels: &[(N, V)],
    sample: SampleRef,
) -> SeriesRef<'_> {
    SeriesRef {
        labels: labels.iter().map(|(n, v)| LabelRef { name: n.as_ref(), value: v.as_ref() }).collect(),
        samples: vec![sample],
        histograms: 0,
    }
}

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

/// Why a series or sample was rejected: the `reason` label of
/// `dwcp_anomaly_samples_rejected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RejectReason {
    /// No `__name__` label, or an empty one.
    MissingMetricName,
    /// A label name that is empty or not `[a-zA-Z_][a-zA-Z0-9_]*`.
    InvalidLabelName,
    /// The same label name twice.
    DuplicateLabel,
    /// Labels not sorted by name.
    UnsortedLabels,
    /// Timestamp not a positive millisecond count before year 10000.
    InvalidTimestamp,
    /// Native histogram samples (not supported by the detectors).
    NativeHistogram,
    /// A new entity beyond `vectorize.max_entities`.
    MaxEntities,
    /// Not newer than the series' previous sample.
    OutOfOrder,
    /// OTLP: a resource block without a resource (no `job`/`instance` can be derived).
    MissingResource,
    /// OTLP: a sum or histogram with delta temporality.
    DeltaTemporality,
    /// OTLP: an exponential histogram (not supported by the detectors).
    ExponentialHistogram,
    /// OTLP: a data point (or metric) without a value, or a histogram whose bucket counts do
    /// not match its bounds.
    MissingValue,
    /// OTLP: NaN or ±Inf.
    NonFiniteValue,
    /// Remote-write 2.0: a label reference outside the symbol table, or an odd count.
    InvalidSymbolRef,
}

impl RejectReason {
    /// Every reason, for pre-registering counters.
    pub const ALL: [RejectReason; 14] = [
        RejectReason::MissingMetricName,
        RejectReason::InvalidLabelName,
        RejectReason::DuplicateLabel,
        RejectReason::UnsortedLabels,
        RejectReason::InvalidTimestamp,
        RejectReason::NativeHistogram,
        RejectReason::MaxEntities,
        RejectReason::OutOfOrder,
        RejectReason::MissingResource,
        RejectReason::DeltaTemporality,
        RejectReason::ExponentialHistogram,
        RejectReason::MissingValue,
        RejectReason::NonFiniteValue,
        RejectReason::InvalidSymbolRef,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::MissingMetricName => "missing_metric_name",
            RejectReason::InvalidLabelName => "invalid_label_name",
            RejectReason::DuplicateLabel => "duplicate_label",
            RejectReason::UnsortedLabels => "unsorted_labels",
            RejectReason::InvalidTimestamp => "invalid_timestamp",
            RejectReason::NativeHistogram => "native_histogram",
            RejectReason::MaxEntities => "max_entities",
            RejectReason::OutOfOrder => "out_of_order",
            RejectReason::MissingResource => "missing_resource",
            RejectReason::DeltaTemporality => "delta_temporality",
            RejectReason::ExponentialHistogram => "exponential_histogram",
            RejectReason::MissingValue => "missing_value",
            RejectReason::NonFiniteValue => "non_finite_value",
            RejectReason::InvalidSymbolRef => "invalid_symbol_ref",
        }
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
