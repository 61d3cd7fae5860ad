//! An entity's refit history: its newest `capacity` vectors with their timestamps and whether
//! the vote flagged them, stored flat in one ring (no allocation per vector: 65 bytes per
//! 7-feature vector instead of about 110 as a queue of `FeatureVector`s).

use super::FeatureVector;

/// The newest `capacity` vectors of `width` features, oldest first.
#[derive(Debug, Clone)]
pub struct History {
    width: usize,
    capacity: usize,
    /// `len × width` values, row by row; once full, row `head` is the oldest.
    values: Vec<f64>,
    stamps: Vec<i64>,
    flags: Vec<bool>,
    head: usize,
}

impl History {
    /// An empty history of at most `capacity` vectors of `width` features. Memory grows with
    /// what is held, not with `capacity`.
    pub fn new(width: usize, capacity: usize) -> Self {
        Self {
            width,
            capacity: capacity.max(1),
            values: Vec::new(),
            stamps: Vec::new(),
            flags: Vec::new(),
            head: 0,
        }
    }

    /// Features per vector.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Vectors held.
    pub fn len(&self) -> usize {
        self.stamps.len()
    }

    /// Appends a vector (NaN-padded or cut to `width`), dropping the oldest when full.
    pub fn push(&mut self, timestamp_ms: i64, values: &[f64], flagged: bool) {
        let w = self.width;
        let row = values.iter().copied().chain(std::iter::repeat(f64::NAN)).take(w);
        if self.stamps.len() < self.capacity {
            self.values.extend(row);
            self.stamps.push(timestamp_ms);
            self.flags.push(flagged);
            if self.stamps.len() == self.capacity {
                // Full for good: give back what doubling reserved beyond it.
                self.values.shrink_to_fit();
                self.stamps.shrink_to_fit();
                self.flags.shrink_to_fit();
            }
        } else {
            let h = self.head;
            for (slot, v) in self.values[h * w..(h + 1) * w].iter_mut().zip(row) {
                *slot = v;
            }
            self.stamps[h] = timestamp_ms;
            self.flags[h] = flagged;
            self.head = (h + 1) % self.capacity;
        }
    }

    /// The `i`-th oldest vector: timestamp, values, flagged.
    fn row(&self, i: usize) -> (i64, &[f64], bool) {
        let j = (self.head + i) % self.len();
        (self.stamps[j], &self.values[j * self.width..(j + 1) * self.width], self.flags[j])
    }

    /// Every vector, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &[f64], bool)> + '_ {
        (0..self.len()).map(|i| self.row(i))
    }

    /// Whether the newest vector was flagged.
    #[cfg(test)]
    pub fn last_flagged(&self) -> Option<bool> {
        (self.len() > 0).then(|| self.row(self.len() - 1).2)
    }

    /// The vectors not flagged, oldest first, as the detectors fit on them.
    pub fn unflagged(&self) -> Vec<FeatureVector> {
        self.iter()
            .filter(|(_, _, flagged)| !flagged)
            .map(|(timestamp_ms, values, _)| FeatureVector { timestamp_ms, values: values.to_vec() })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_in_order_and_pads_short_vectors() {
        let mut h = History::new(2, 3);
        for i in 0..5 {
            h.push(i, &[i as f64, -(i as f64)], i % 2 == 0);
        }
        let rows: Vec<(i64, Vec<f64>, bool)> = h.iter().map(|(t, v, f)| (t, v.to_vec(), f)).collect();
        assert_eq!(
            rows,
            [(2, vec![2.0, -2.0], true), (3, vec![3.0, -3.0], false), (4, vec![4.0, -4.0], true)]
        );
        assert_eq!(h.last_flagged(), Some(true));
        assert_eq!(h.unflagged().iter().map(|x| x.timestamp_ms).collect::<Vec<_>>(), [3]);
        h.push(5, &[7.0], false);
        let (t, v, _) = h.iter().last().unwrap();
        assert_eq!((t, v[0]), (5, 7.0));
        assert!(v[1].is_nan());
        assert_eq!(History::new(2, 3).last_flagged(), None);
    }
}
