//! An entity's refit history: its newest `capacity` vectors with their timestamps and whether
//! the vote flagged them, stored flat in one ring (no allocation per vector), each value as an
//! i16 code of its feature's [`Q16`] stream, each timestamp as u32 milliseconds from a base and
//! each flag as a bit: 18 bytes per 7-feature vector, where a queue of `FeatureVector`s took
//! about 110, f64 rows 65, f32 rows with i64 stamps 37 and f32 offsets 32 (issue 28).

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

    /// The value `p` stands for.
    pub(crate) fn unpack(self, p: f32) -> f64 {
        if p.is_finite() { self.0 + f64::from(p) } else { f64::from(p) }
    }
}

/// The code of a missing value in a [`Q16`] stream.
pub(crate) const MISSING: i16 = i16::MIN;
/// The largest code magnitude.
const MAX_CODE: f64 = i16::MAX as f64;
/// Finest step: 2^-1000 (below it `2^exp` is no longer a normal f64).
const MIN_EXP: i32 = -1000;

/// 2^e for `MIN_EXP <= e <= 1023`, exactly.
fn pow2(e: i32) -> f64 {
    f64::from_bits(((e + 1023) as u64) << 52)
}

/// The finest step kept for values around `v`: 2^-40 of it (2^-60 around 0).
fn fine_exp(v: f64) -> i32 {
    if v == 0.0 || !v.is_finite() { -60 } else { (v.abs().log2().floor() as i32 - 40).max(MIN_EXP) }
}

/// A stream of values stored as i16 codes, each `origin + code · 2^exp` ("block floating
/// point", issue 28): 2 bytes per value with 15 to 16 bits of the spread of the values held,
/// where f16 offsets kept 11 bits of each value's distance from a centre (and moved
/// accuracy). The step starts at 2^-40 of the first value and widens (in powers of
/// two, re-centred, every held code rewritten) when a value falls outside the codes' range;
/// [`narrow`](Self::narrow) gives precision back once the values that needed the range are
/// gone. The caller keeps the codes, in one slice with a stride, so a history of many
/// features stores one flat array. NaN and ±inf are stored as missing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Q16 {
    /// The value of code 0; NaN before the first finite value.
    origin: f64,
    exp: i32,
}

impl Q16 {
    /// No value seen yet.
    pub(crate) const UNSET: Self = Self { origin: f64::NAN, exp: 0 };

    /// The value one code stands for.
    pub(crate) fn step(self) -> f64 {
        pow2(self.exp)
    }

    /// The value `offset` codes from code 0 stand for (an offset computed in f64, e.g. a mean
    /// of codes).
    pub(crate) fn at(self, offset: f64) -> f64 {
        self.origin + offset * self.step()
    }

    /// The value `code` stands for.
    pub(crate) fn unpack(self, code: i16) -> f64 {
        if code == MISSING { f64::NAN } else { self.at(f64::from(code)) }
    }

    /// `v`'s code at the current step, when in range: the cell it falls in, rounded down.
    /// Rounding down (not to nearest) keeps equal values equal through every widening: a
    /// value coded before one has the code it would have been given after it, since
    /// ⌊⌊x⌋ / 2^k⌋ = ⌊x / 2^k⌋ and the origin moves by whole new steps.
    fn code(self, v: f64) -> Option<i16> {
        let c = ((v - self.origin) / self.step()).floor();
        (c.abs() <= MAX_CODE).then_some(c as i16)
    }

    /// `v` as a code. When it is out of range, the step widens and re-centres until `v` and
    /// every code in `held` (each `stride`-th from `start`; missing ones skipped) fit, and
    /// those codes are rewritten.
    pub(crate) fn pack(&mut self, v: f64, held: &mut [i16], start: usize, stride: usize) -> i16 {
        if !v.is_finite() {
            return MISSING;
        }
        if self.origin.is_nan() {
            *self = Self { origin: v, exp: fine_exp(v) };
            return 0;
        }
        if let Some(c) = self.code(v) {
            return c;
        }
        let (lo, hi) = Self::range(held, start, stride);
        let (lo, hi) = (self.unpack(lo).min(v), self.unpack(hi).max(v));
        let mut exp = self.exp;
        // Room for twice the span, so a drifting stream does not widen at every value.
        while exp < 1023 && hi - lo > MAX_CODE * pow2(exp) {
            exp += 1;
        }
        self.rescale(((lo + hi) / 2.0 - self.origin) / self.step(), exp, held, start, stride);
        self.code(v).unwrap_or(if v > self.origin { i16::MAX } else { -i16::MAX })
    }

    /// Re-centres the codes in `held` and, when they span less than an eighth of what a
    /// widening leaves them, takes the finest step at which they span at most half the codes'
    /// range (no finer than 2^-40 of their centre): called once per turn of a ring, it gives
    /// precision back after the values that widened it left. The values held keep their
    /// coarser cells, so until they leave, a value equal to one of them may code apart from it;
    /// hence only after a large shrink.
    pub(crate) fn narrow(&mut self, held: &mut [i16], start: usize, stride: usize) {
        let (lo, hi) = Self::range(held, start, stride);
        if lo > hi {
            return;
        }
        let centre = ((f64::from(lo) + f64::from(hi)) / 2.0).floor();
        let floor = fine_exp(self.origin + centre * self.step());
        let span = f64::from(hi) - f64::from(lo);
        let mut exp = self.exp;
        while span * 8.0 <= MAX_CODE && exp > floor && span * 2f64.powi(self.exp - exp + 1) <= MAX_CODE {
            exp -= 1;
        }
        if exp < self.exp || centre.abs() > MAX_CODE / 4.0 {
            self.rescale(centre, exp, held, start, stride);
        }
    }

    /// Smallest and largest code in `held` (`i16::MAX`, `i16::MIN + 1` when none).
    fn range(held: &[i16], start: usize, stride: usize) -> (i16, i16) {
        let codes = held.iter().skip(start).step_by(stride).filter(|&&c| c != MISSING);
        codes.fold((i16::MAX, -i16::MAX), |(lo, hi), &c| (lo.min(c), hi.max(c)))
    }

    /// Moves the origin by `shift` steps (rounded) and the step to `2^exp`, rewriting `held`.
    /// A wider step moves the origin by whole new steps, so values on its grid stay exact.
    fn rescale(&mut self, shift: f64, exp: i32, held: &mut [i16], start: usize, stride: usize) {
        let unit = 2f64.powi(exp - self.exp).max(1.0);
        let shift = (shift / unit).round() * unit;
        let ratio = 2f64.powi(self.exp - exp);
        for c in held.iter_mut().skip(start).step_by(stride).filter(|c| **c != MISSING) {
            *c = ((f64::from(*c) - shift) * ratio).floor().clamp(-MAX_CODE, MAX_CODE) as i16;
        }
        self.origin += shift * self.step();
        self.exp = exp;
    }
}

/// The newest `capacity` vectors of `width` features, oldest first.
#[derive(Debug, Clone)]
pub struct History {
    width: usize,
    capacity: usize,
    /// Per feature, what its codes stand for.
    quants: Vec<Q16>,
    /// `len × width` codes, row by row; once full, row `head` is the oldest.
    values: Vec<i16>,
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
            quants: vec![Q16::UNSET; width],
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
        let len = self.stamps.len();
        let slot = if len < self.capacity {
            self.values.resize((len + 1) * w, MISSING);
            self.set_flag(len, flagged);
            self.stamps.push(stamp);
            len
        } else {
            let h = self.head;
            self.values[h * w..(h + 1) * w].fill(MISSING);
            self.stamps[h] = stamp;
            self.set_flag(h, flagged);
            self.head = (h + 1) % self.capacity;
            h
        };
        for (f, quant) in self.quants.iter_mut().enumerate() {
            let v = values.get(f).copied().unwrap_or(f64::NAN);
            self.values[slot * w + f] = quant.pack(v, &mut self.values, f, w);
        }
        if self.stamps.len() == self.capacity && self.head == 0 {
            if len + 1 == self.capacity {
                // Full for good: give back what doubling reserved beyond it.
                self.values.shrink_to_fit();
                self.stamps.shrink_to_fit();
                self.flags.shrink_to_fit();
            }
            for (f, quant) in self.quants.iter_mut().enumerate() {
                quant.narrow(&mut self.values, f, w);
            }
        }
    }

    /// The values stored in slot `j`.
    fn values_at(&self, j: usize) -> impl Iterator<Item = f64> + '_ {
        let codes = &self.values[j * self.width..(j + 1) * self.width];
        codes.iter().zip(&self.quants).map(|(&c, quant)| quant.unpack(c))
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

    /// Largest |stored − true| over the held values, with the true ones `truth` (oldest first).
    fn worst_error(h: &History, truth: &[f64]) -> f64 {
        let held: Vec<f64> = h.iter().map(|(_, v, _)| v[0]).collect();
        let truth = &truth[truth.len() - held.len()..];
        held.iter()
            .zip(truth)
            .map(|(a, b)| if b.is_nan() { f64::from(u8::from(!a.is_nan())) } else { (a - b).abs() })
            .fold(0.0, f64::max)
    }

    #[test]
    fn codes_keep_precision_relative_to_the_spread_held() {
        // Noise of sd 1 around 1e6, one spike of +1e4: while the spike is held every value is
        // within 2 · 1e4 / 32767 of the truth; two turns of the ring after it left, the step
        // has narrowed back and the values are within 1e-3.
        let mut rng = crate::rng::Rng::new(3);
        let (mut h, mut truth) = (History::new(1, 100), Vec::new());
        for i in 0..400 {
            let v = if i == 150 {
                1e6 + 1e4
            } else if i == 90 {
                f64::NAN
            } else {
                1e6 + rng.normal()
            };
            truth.push(v);
            h.push(i, &[v], false);
            let bound = if (150..250).contains(&i) {
                2.0 * 1e4 / 32767.0
            } else if i < 150 {
                1e-3
            } else {
                f64::INFINITY
            };
            assert!(worst_error(&h, &truth) <= bound, "at {i}: {} > {bound}", worst_error(&h, &truth));
        }
        assert!(worst_error(&h, &truth) <= 1e-3, "{}", worst_error(&h, &truth));
        // A stream drifting by 1e3 per vector for 5,000 vectors: always within its held span.
        let (mut h, mut truth) = (History::new(1, 360), Vec::new());
        for i in 0..5000 {
            let v = 1e3 * i as f64 + rng.normal();
            truth.push(v);
            h.push(i, &[v], false);
        }
        assert!(worst_error(&h, &truth) <= 2.0 * 360e3 / 32767.0, "{}", worst_error(&h, &truth));
        // Equal values read back equal through every widening, whichever side of it they
        // came in on.
        let mut h = History::new(1, 200);
        for i in 0..200 {
            let v = if i % 2 == 0 { 0.3 } else { 0.3 + 1.7f64.powi(i / 8) };
            h.push(i64::from(i), &[v], false);
        }
        let first = h.iter().next().unwrap().1[0];
        assert!(h.iter().step_by(2).all(|(_, v, _)| v[0] == first), "{first}");
        // A flat stream stays exact, zero included.
        let mut h = History::new(2, 50);
        for i in 0..200 {
            h.push(i, &[0.0, 42.125], false);
        }
        assert!(h.iter().all(|(_, v, _)| v == [0.0, 42.125]));
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
