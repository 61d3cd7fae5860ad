//! An entity's refit history: its newest `capacity` vectors with their timestamps and whether
//! the vote flagged them, stored flat in one ring (no allocation per vector), each value as an
//! f32 offset from its feature's base ([`F32Base`]), each timestamp as u32 milliseconds from a
//! base and each flag as a bit: 32 bytes per 7-feature vector, where a queue of
//! `FeatureVector`s took about 110, f64 rows 65 and f32 rows with i64 stamps 37 (issue 28).

use super::FeatureVector;

/// A stream of values stored as f32 offsets from a base, the first finite value seen: 4 bytes
/// instead of 8, precise to f32's 24 bits of the distance from the base rather than of the value
/// itself, so a counter near 1e9 that moves by tens keeps its decimals where a plain f32 would
/// round it to multiples of 64. NaN stays NaN.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct F32Base(f64);

impl F32Base {
    /// No value seen yet.
    pub(crate) const UNSET: Self = Self(f64::NAN);

    /// `v` as stored; the first finite value becomes the base.
    pub(crate) fn pack(&mut self, v: f64) -> f32 {
        if !v.is_finite() {
            return v as f32;
        }
        if self.0.is_nan() {
            self.0 = v;
        }
        (v - self.0) as f32
    }

    /// The value `offset` from the base stands for (an offset computed in f64, e.g. a mean of
    /// stored offsets).
    pub(crate) fn at(self, offset: f64) -> f64 {
        self.0 + offset
    }

    /// The value `p` stands for.
    pub(crate) fn unpack(self, p: f32) -> f64 {
        if p.is_finite() { self.0 + f64::from(p) } else { f64::from(p) }
    }
}

/// The newest `capacity` vectors of `width` features, oldest first.
#[derive(Debug, Clone)]
pub struct History {
    width: usize,
    capacity: usize,
    /// Per feature, what its values are offsets from.
    bases: Vec<F32Base>,
    /// `len × width` values, row by row; once full, row `head` is the oldest.
    values: Vec<f32>,
    /// Per row, milliseconds after `stamp_base` (49 days of range; [`Self::stamp`] re-bases).
    stamps: Vec<u32>,
    stamp_base: i64,
    /// Per row, a bit: flagged by the vote.
    flags: Vec<u64>,
    head: usize,
}

impl History {
    /// An empty history of at most `capacity` vectors of `width` features. Memory grows with
    /// what is held, not with `capacity`.
    pub fn new(width: usize, capacity: usize) -> Self {
        Self {
            width,
            capacity: capacity.max(1),
            bases: vec![F32Base::UNSET; width],
            values: Vec::new(),
            stamps: Vec::new(),
            stamp_base: 0,
            flags: Vec::new(),
            head: 0,
        }
    }

    /// `timestamp_ms` as an offset from the stamps' base. When it falls outside the u32 range
    /// the base moves to the oldest of the held stamps and it (every offset re-based); stamps
    /// still further apart than 49 days saturate (they are kept for checkpoints, not read by
    /// the detectors).
    fn stamp(&mut self, timestamp_ms: i64) -> u32 {
        if self.stamps.is_empty() {
            self.stamp_base = timestamp_ms;
        }
        let offset = timestamp_ms - self.stamp_base;
        if let Ok(o) = u32::try_from(offset) {
            return o;
        }
        let oldest =
            self.stamps.iter().map(|&o| self.stamp_base + i64::from(o)).min().unwrap_or(timestamp_ms);
        let base = oldest.min(timestamp_ms);
        let shift = self.stamp_base - base;
        for o in &mut self.stamps {
            *o = u32::try_from(i64::from(*o) + shift).unwrap_or(u32::MAX);
        }
        self.stamp_base = base;
        u32::try_from(timestamp_ms - base).unwrap_or(u32::MAX)
    }

    fn set_flag(&mut self, row: usize, flagged: bool) {
        let (word, bit) = (row / 64, row % 64);
        if word == self.flags.len() {
            self.flags.push(0);
        }
        if flagged {
            self.flags[word] |= 1 << bit;
        } else {
            self.flags[word] &= !(1 << bit);
        }
    }

    fn flag(&self, row: usize) -> bool {
        self.flags[row / 64] >> (row % 64) & 1 == 1
    }

    /// Features per vector.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Vectors held.
    pub fn len(&self) -> usize {
        self.stamps.len()
    }

    /// Whether no vector is held.
    pub fn is_empty(&self) -> bool {
        self.stamps.is_empty()
    }

    /// Time of the newest vector held.
    pub fn newest_ms(&self) -> Option<i64> {
        let len = self.len();
        (len > 0).then(|| self.stamp_base + i64::from(self.stamps[(self.head + len - 1) % len]))
    }

    /// Appends a vector (NaN-padded or cut to `width`), dropping the oldest when full.
    pub fn push(&mut self, timestamp_ms: i64, values: &[f64], flagged: bool) {
        let w = self.width;
        let stamp = self.stamp(timestamp_ms);
        let row = values
            .iter()
            .copied()
            .chain(std::iter::repeat(f64::NAN))
            .zip(self.bases.iter_mut())
            .map(|(v, base)| base.pack(v));
        if self.stamps.len() < self.capacity {
            self.values.extend(row);
            let len = self.stamps.len();
            self.set_flag(len, flagged);
            self.stamps.push(stamp);
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
            self.stamps[h] = stamp;
            self.set_flag(h, flagged);
            self.head = (h + 1) % self.capacity;
        }
    }

    /// The values stored in slot `j`.
    fn values_at(&self, j: usize) -> impl Iterator<Item = f64> + '_ {
        let packed = &self.values[j * self.width..(j + 1) * self.width];
        packed.iter().zip(&self.bases).map(|(&p, base)| base.unpack(p))
    }

    /// The `i`-th oldest vector: timestamp, values, flagged.
    fn row(&self, i: usize) -> (i64, Vec<f64>, bool) {
        let j = (self.head + i) % self.len();
        (self.stamp_base + i64::from(self.stamps[j]), self.values_at(j).collect(), self.flag(j))
    }

    /// Every vector, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (i64, Vec<f64>, bool)> + '_ {
        (0..self.len()).map(|i| self.row(i))
    }

    /// The newest `last` vectors that `keep(age, flagged)` keeps (age 0 is the newest
    /// vector), oldest first, one column per feature.
    pub fn columns(&self, last: usize, keep: impl Fn(usize, bool) -> bool) -> Vec<Vec<f64>> {
        let len = self.len();
        let rows: Vec<usize> = (0..len)
            .rev()
            .map(|i| (self.head + i) % len)
            .enumerate()
            .filter(|&(age, j)| keep(age, self.flag(j)))
            .map(|(_, j)| j)
            .take(last)
            .collect();
        let mut cols = vec![Vec::with_capacity(rows.len()); self.width];
        for &j in rows.iter().rev() {
            for (col, v) in cols.iter_mut().zip(self.values_at(j)) {
                col.push(v);
            }
        }
        cols
    }

    /// Whether the newest vector was flagged.
    #[cfg(test)]
    pub fn last_flagged(&self) -> Option<bool> {
        (!self.is_empty()).then(|| self.row(self.len() - 1).2)
    }

    /// The vectors not flagged, oldest first, as the detectors fit on them.
    pub fn unflagged(&self) -> Vec<FeatureVector> {
        self.iter()
            .filter(|(_, _, flagged)| !flagged)
            .map(|(timestamp_ms, values, _)| FeatureVector { timestamp_ms, values })
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
        let rows: Vec<(i64, Vec<f64>, bool)> = h.iter().collect();
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
        let cols = h.columns(2, |_, _| true);
        assert_eq!(cols[0], [4.0, 7.0]);
        assert!(cols[1][1].is_nan());
        assert_eq!(h.columns(10, |_, _| true)[0].len(), 3);
        // Rows 3 (flagged) and 4, 5: the flagged one left out unless it is the newest.
        assert_eq!(h.columns(10, |age, flagged| age == 0 || !flagged)[0], [3.0, 7.0]);
    }

    #[test]
    fn stamps_far_apart_and_going_back_are_kept() {
        // 40 days apart, then 3 days back in time (below the base): the stamps re-base and
        // every one still reads back exactly. Flags past one 64-bit word.
        let day = 86_400_000_i64;
        let stamps = [1_700_000_000_000, 1_700_000_000_000 + 40 * day, 1_700_000_000_000 - 3 * day];
        let mut h = History::new(1, 100);
        for (i, t) in stamps.iter().chain(&[1_700_000_000_001; 70]).enumerate() {
            h.push(*t, &[i as f64], i % 3 == 0);
        }
        let rows: Vec<(i64, Vec<f64>, bool)> = h.iter().collect();
        assert_eq!(rows.iter().take(3).map(|r| r.0).collect::<Vec<_>>(), stamps);
        assert!(rows.iter().enumerate().all(|(i, r)| r.2 == (i % 3 == 0) && r.1[0] == i as f64));
    }

    #[test]
    fn large_values_keep_the_precision_of_their_spread() {
        // A plain f32 holds 1e9 + 0.25 as 1e9 (steps of 64 there); an offset from the first
        // value keeps the quarter.
        let mut h = History::new(1, 10);
        let values = [1e9, 1e9 + 0.25, f64::NAN, 1e9 - 3.5, 1e9 + 1234.125];
        for (t, v) in values.iter().enumerate() {
            h.push(t as i64, &[*v], false);
        }
        let back: Vec<f64> = h.iter().map(|(_, v, _)| v[0]).collect();
        assert_eq!(back[..2], values[..2]);
        assert!(back[2].is_nan());
        assert_eq!(back[3..], values[3..]);
        // A feature that starts missing takes its base from its first finite value.
        let mut base = F32Base::UNSET;
        assert!(base.pack(f64::NAN).is_nan());
        let p = base.pack(-7e12);
        assert_eq!((p, base.unpack(base.pack(-7e12 + 0.5))), (0.0, -7e12 + 0.5));
    }
}
