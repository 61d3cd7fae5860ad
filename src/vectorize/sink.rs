//! The vectorizer as the ingest stage's sink: what every ingest path writes into.

use std::time::Instant;

use parking_lot::{Mutex, MutexGuard};

use super::Vectorizer;
use crate::ingest::{ObserveStats, SampleSink};
use crate::sample::{RejectReason, SeriesRef};

/// The vectorizer behind a short lock, shared by the ingest paths (writers) and the check
/// (which takes the assembled vectors out).
pub struct VectorizerSink {
    vectorizer: Mutex<Vectorizer>,
    /// `vectorize.max_new_entities_per_second` as a token bucket (None: unlimited).
    new_entities: Option<Mutex<TokenBucket>>,
    per_second: u32,
}

impl VectorizerSink {
    /// Wraps `vectorizer`; at most `new_per_second` new entities are created per second,
    /// with bursts of as many (0: unlimited).
    pub fn new(vectorizer: Vectorizer, new_per_second: u32) -> Self {
        let new_entities = (new_per_second > 0).then(|| Mutex::new(TokenBucket::new(new_per_second as f64)));
        Self { vectorizer: Mutex::new(vectorizer), new_entities, per_second: new_per_second }
    }

    /// The vectorizer, locked; hold the guard briefly (ingest waits on it).
    pub fn lock(&self) -> MutexGuard<'_, Vectorizer> {
        self.vectorizer.lock()
    }
}

impl SampleSink for VectorizerSink {
    fn accept(&self, series: &[&SeriesRef<'_>]) -> ObserveStats {
        let mut stats = ObserveStats::default();
        let mut bucket = self.new_entities.as_ref().map(|b| b.lock());
        let mut v = self.vectorizer.lock();
        if let Some(b) = bucket.as_mut() {
            v.set_new_entity_budget(b.take_all(Instant::now()));
        }
        for s in series {
            v.observe(&s.labels, &s.samples, &mut stats);
        }
        if let Some(b) = bucket.as_mut() {
            b.give_back(v.new_entity_budget());
        }
        stats
    }

    fn describe(&self, reason: RejectReason) -> Option<String> {
        let (key, value) = match reason {
            RejectReason::MaxEntities => ("max_entities", self.vectorizer.lock().max_entities() as u64),
            RejectReason::NewEntityRate => ("max_new_entities_per_second", self.per_second as u64),
            _ => return None,
        };
        Some(format!("{}: over vectorize.{key} = {value}", reason.as_str()))
    }
}

/// Tokens refilled at `rate` per second up to `rate`.
#[derive(Debug)]
struct TokenBucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    fn new(rate: f64) -> Self {
        Self { rate, tokens: rate, at: Instant::now() }
    }

    /// Refills up to `now` and takes every whole token.
    fn take_all(&mut self, now: Instant) -> u64 {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.rate);
        let whole = self.tokens.floor();
        self.tokens -= whole;
        whole as u64
    }

    /// Returns the tokens left unused.
    fn give_back(&mut self, n: u64) {
        self.tokens = (self.tokens + n as f64).min(self.rate);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_bucket_refills_at_its_rate_and_holds_at_most_one_second() {
        let mut b = TokenBucket::new(100.0);
        let t0 = b.at;
        assert_eq!(b.take_all(t0), 100);
        assert_eq!(b.take_all(t0), 0);
        assert_eq!(b.take_all(t0 + Duration::from_millis(250)), 25);
        b.give_back(20);
        assert_eq!(b.take_all(t0 + Duration::from_millis(250)), 20);
        // An idle minute refills one second's worth, not sixty.
        assert_eq!(b.take_all(t0 + Duration::from_secs(60)), 100);
    }
}
