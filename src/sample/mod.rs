//! The sample: the data model every stage shares, and nothing else.
//!
//! Every ingest path (remote-write 1.0 and 2.0, OTLP, scrape) decodes into these borrowed
//! views; the vectorizer consumes them; configuration parses its series selectors here.
//! This module is a leaf: it imports no other module of the crate.

mod selector;

pub use selector::{Matcher, Selector, SelectorError};

/// Label key of the job.
pub const LABEL_JOB: &str = "job";
/// Label key of the scrape target.
pub const LABEL_INSTANCE: &str = "instance";
/// The metric-name label.
pub const LABEL_NAME: &str = "__name__";
/// Label that carries the metric name of a `per_series` entity (`__name__` cannot be copied).
pub const LABEL_METRIC_NAME: &str = "metric_name";

/// Bit pattern Prometheus uses to mark a series as ended (a NaN).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// One label borrowed from the request buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelRef<'a> {
    /// Label name, e.g. `__name__`.
    pub name: &'a str,
    /// Label value.
    pub value: &'a str,
}

/// One sample: value and timestamp in milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleRef {
    /// Sample value; may be NaN (Prometheus stale markers are a NaN bit pattern).
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
}

/// One decoded time series, labels in wire order.
#[derive(Debug, Default, Clone)]
pub struct SeriesRef<'a> {
    /// Labels as sent (validation happens in `ingest`).
    pub labels: Vec<LabelRef<'a>>,
    /// Float samples as sent.
    pub samples: Vec<SampleRef>,
    /// Number of native histogram samples carried (not supported; counted by ingest).
    pub histograms: usize,
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
    /// More labels than `ingest.max_labels_per_series`.
    TooManyLabels,
    /// A label name longer than `ingest.max_label_name_length`.
    LabelNameTooLong,
    /// A label value longer than `ingest.max_label_value_length`.
    LabelValueTooLong,
    /// Remote-write 1.0: a label name or value that is not UTF-8.
    InvalidUtf8,
    /// A new entity beyond `vectorize.max_new_entities_per_second` (retryable: the answer says
    /// to retry, and the entity is created when the sender does).
    NewEntityRate,
}

impl RejectReason {
    /// Every reason, for pre-registering counters.
    pub const ALL: [RejectReason; 19] = [
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
        RejectReason::TooManyLabels,
        RejectReason::LabelNameTooLong,
        RejectReason::LabelValueTooLong,
        RejectReason::InvalidUtf8,
        RejectReason::NewEntityRate,
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
            RejectReason::TooManyLabels => "too_many_labels",
            RejectReason::LabelNameTooLong => "label_name_too_long",
            RejectReason::LabelValueTooLong => "label_value_too_long",
            RejectReason::InvalidUtf8 => "invalid_utf8",
            RejectReason::NewEntityRate => "new_entity_rate",
        }
    }
}

/// A series view of one sample over owned or borrowed label pairs (OTLP and scrape build their
/// labels, remote-write borrows them from the request).
pub fn one_sample_series<N: AsRef<str>, V: AsRef<str>>(
    labels: &[(N, V)],
    sample: SampleRef,
) -> SeriesRef<'_> {
    SeriesRef {
        labels: labels.iter().map(|(n, v)| LabelRef { name: n.as_ref(), value: v.as_ref() }).collect(),
        samples: vec![sample],
        histograms: 0,
    }
}

/// Whether `s` is a valid Prometheus metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
pub fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Whether `s` is a valid Prometheus label name (`[a-zA-Z_][a-zA-Z0-9_]*`).
pub fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
