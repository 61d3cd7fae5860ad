//! The vectorizer as the ingest stage's sink: what every ingest path writes into.

use parking_lot::{Mutex, MutexGuard};

use super::Vectorizer;
use crate::ingest::{ObserveStats, SampleSink};
use crate::sample::SeriesRef;

/// The vectorizer behind a short lock, shared by the ingest paths (writers) and the check
/// (which takes the assembled vectors out).
pub struct VectorizerSink {
    vectorizer: Mutex<Vectorizer>,
}

impl VectorizerSink {
    /// Wraps `vectorizer`.
    pub fn new(vectorizer: Vectorizer) -> Self {
        Self { vectorizer: Mutex::new(vectorizer) }
    }

    /// The vectorizer, locked; hold the guard briefly (ingest waits on it).
    pub fn lock(&self) -> MutexGuard<'_, Vectorizer> {
        self.vectorizer.lock()
    }
}

impl SampleSink for VectorizerSink {
    fn accept(&self, series: &[&SeriesRef<'_>]) -> ObserveStats {
        let mut stats = ObserveStats::default();
        let mut v = self.vectorizer.lock();
        for s in series {
            v.observe(&s.labels, &s.samples, &mut stats);
        }
        stats
    }
}
