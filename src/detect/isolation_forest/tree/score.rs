//! Scoring: branch-free lockstep walks for one vector, blocked walks for a batch, and
//! per-feature credit along each path.

use std::hint::select_unpredictable;

use super::{BATCH_BLOCK, Forest, LANES, PATH_RING, SCORE_LANES, X_SLOTS};
use crate::detect::{DetectError, normalise};

impl Forest {
    /// Mean path length `E[h(x)]` over the trees.
    pub fn path_length(&self, x: &[f64]) -> Result<f64, DetectError> {
        self.check(x)?;
        Ok(self.sum_paths_only(x) / self.roots.len() as f64)
    }

    /// Anomaly score `2^(-E[h(x)] / c(ψ))` in (0, 1]. Does not allocate.
    pub fn score(&self, x: &[f64]) -> Result<f64, DetectError> {
        self.check(x)?;
        Ok(self.score_of_sum(self.sum_paths_only(x)))
    }

    /// Score as [`score`](Self::score), plus each feature's share of the isolation written
    /// into `contributions` (`n_features` long, normalised to sum to 1). Does not allocate.
    ///
    /// Every tree credits the features split on along `x`'s path; the split that created the
    /// leaf gets the tree's weight, each one above it half of the one below (splits near the
    /// leaf are the ones that cut `x` off), and a tree's weight is `2^-h` for path length
    /// `h`, halving per extra level, so the trees that isolate `x` early dominate. (Weighting
    /// trees by their own score `2^(-h / c(ψ))` instead spreads the credit so evenly that a
    /// point far out in one feature of five gets only ~22 % on it.) Paths longer than ~1000
    /// underflow to zero credit; all-zero contributions stay zero.
    pub fn score_into(&self, x: &[f64], contributions: &mut [f64]) -> Result<f64, DetectError> {
        self.check(x)?;
        if contributions.len() != self.n_features {
            let found = contributions.len();
            return Err(DetectError::Shape { expected: self.n_features, found });
        }
        contributions.fill(0.0);
        let total = self.sum_paths::<true, LANES>(x, contributions);
        normalise(contributions);
        Ok(self.score_of_sum(total))
    }

    /// Scores many vectors: `rows` holds them back to back (row-major, `n_features` each)
    /// and `out` receives one score per row. Does not allocate (a block of rows is copied to
    /// the stack). Walks one tree for `LANES` (8) rows at a time so each tree stays in L1
    /// while a block of rows passes; at 100 trees x 256 samples the whole forest (~190 KB)
    /// fits L2 anyway and this is ~15 % faster per vector than [`score`](Self::score) (see
    /// `benches/README.md`).
    pub fn score_batch(&self, rows: &[f64], out: &mut [f64]) -> Result<(), DetectError> {
        let nf = self.n_features;
        if rows.len() != out.len() * nf {
            return Err(DetectError::Shape { expected: out.len() * nf, found: rows.len() });
        }
        let mut copies = [[f64::NAN; X_SLOTS]; BATCH_BLOCK];
        let mut refs: [&[f64]; BATCH_BLOCK] = [&[]; BATCH_BLOCK];
        for (rows, out) in rows.chunks(BATCH_BLOCK * nf).zip(out.chunks_mut(BATCH_BLOCK)) {
            let nan = rows.iter().any(|v| v.is_nan());
            if nf < X_SLOTS {
                for (c, r) in copies.iter_mut().zip(rows.chunks_exact(nf)) {
                    c[..nf].copy_from_slice(r);
                }
                let xs = &copies[..out.len()];
                if nan {
                    self.score_block::<_, true, true>(xs, out);
                } else {
                    self.score_block::<_, false, true>(xs, out);
                }
            } else {
                for (x, r) in refs.iter_mut().zip(rows.chunks_exact(nf)) {
                    *x = r;
                }
                let xs = &refs[..out.len()];
                if nan {
                    self.score_block::<_, true, false>(xs, out);
                } else {
                    self.score_block::<_, false, false>(xs, out);
                }
            }
        }
        Ok(())
    }

    /// Scores the rows `xs` into `out` (same length, at most [`BATCH_BLOCK`]): each tree in
    /// turn walks [`LANES`] rows in lockstep (a last, partial group repeats its last row in
    /// the spare lanes and ignores them). `NAN` and `SHORT` as in [`step`](Self::step).
    #[inline(always)]
    fn score_block<T: AsRef<[f64]>, const NAN: bool, const SHORT: bool>(&self, xs: &[T], out: &mut [f64]) {
        out.fill(0.0);
        for (&root, &depth) in self.roots.iter().zip(&self.depths) {
            for (x, o) in xs.chunks(LANES).zip(out.chunks_mut(LANES)) {
                let lanes: [&T; LANES] = std::array::from_fn(|l| &x[l.min(x.len() - 1)]);
                let mut idx = [root as usize; LANES];
                for _ in 0..depth {
                    for (i, x) in idx.iter_mut().zip(&lanes) {
                        *i = self.step::<NAN, SHORT>(*i, x.as_ref());
                    }
                }
                for (o, &i) in o.iter_mut().zip(&idx) {
                    *o += self.nodes[i].value;
                }
            }
        }
        for o in out.iter_mut() {
            *o = self.score_of_sum(*o);
        }
    }

    fn check(&self, x: &[f64]) -> Result<(), DetectError> {
        if x.len() == self.n_features {
            Ok(())
        } else {
            Err(DetectError::Shape { expected: self.n_features, found: x.len() })
        }
    }

    fn score_of_sum(&self, total: f64) -> f64 {
        (-total * self.inv_norm).exp2()
    }

    /// Sum of path lengths over all trees, without contributions.
    fn sum_paths_only(&self, x: &[f64]) -> f64 {
        self.sum_paths::<false, SCORE_LANES>(x, &mut [])
    }

    /// Sum of path lengths over all trees, `L` in lockstep (see [`lockstep`](Self::lockstep)), choosing the
    /// missing-value test only when `x` has NaN, and the short walk over a stack copy of `x`
    /// when the features leave room for its NaN slot.
    #[inline(always)]
    fn sum_paths<const CREDIT: bool, const L: usize>(&self, x: &[f64], contributions: &mut [f64]) -> f64 {
        let nan = x.iter().any(|v| v.is_nan());
        if self.n_features < X_SLOTS {
            let mut xs = [f64::NAN; X_SLOTS];
            xs[..x.len()].copy_from_slice(x);
            if nan {
                self.lockstep::<true, CREDIT, true, L>(&xs, contributions)
            } else {
                self.lockstep::<false, CREDIT, true, L>(&xs, contributions)
            }
        } else if nan {
            self.lockstep::<true, CREDIT, false, L>(x, contributions)
        } else {
            self.lockstep::<false, CREDIT, false, L>(x, contributions)
        }
    }

    /// Sum of path lengths over all trees, `L` trees in lockstep (a last, partial group
    /// repeats its last tree in the spare lanes and ignores them). `NAN`: `x` may hold NaN
    /// (else the missing-value test is skipped). `CREDIT`: add each tree's credit to
    /// `contributions` (see [`score_into`](Self::score_into)); unnormalised. `SHORT`: `x` is
    /// the [`X_SLOTS`] copy (see [`step`](Self::step)). Trees are summed in order, so the
    /// total does not depend on the lane count.
    #[inline(always)]
    fn lockstep<const NAN: bool, const CREDIT: bool, const SHORT: bool, const L: usize>(
        &self,
        x: &[f64],
        contributions: &mut [f64],
    ) -> f64 {
        let mut total = 0.0;
        // Nodes visited per lane, by step; a lane parked on its leaf records the leaf again.
        let mut path = [[0u32; PATH_RING]; L];
        for (r, d) in self.roots.chunks(L).zip(self.depths.chunks(L)) {
            let steps = d.iter().copied().max().unwrap_or(0) as usize;
            if CREDIT && steps > PATH_RING {
                total += r.iter().map(|&r| self.walk_credit::<NAN>(r, x, contributions)).sum::<f64>();
                continue;
            }
            let mut idx = [0usize; L];
            for (l, i) in idx.iter_mut().enumerate() {
                *i = r[l.min(r.len() - 1)] as usize;
            }
            for s in 0..steps {
                for l in 0..L {
                    if CREDIT {
                        path[l][s % PATH_RING] = idx[l] as u32;
                    }
                    idx[l] = self.step::<NAN, SHORT>(idx[l], x);
                }
            }
            for l in 0..r.len() {
                let h = self.nodes[idx[l]].value;
                total += h;
                if CREDIT {
                    let visited = &path[l][..steps];
                    let depth = visited.iter().position(|&i| i as usize == idx[l]).unwrap_or(steps);
                    let mut w = exp2_neg(h);
                    for &i in visited[..depth].iter().rev() {
                        contributions[self.nodes[i as usize].index()] += w;
                        w *= 0.5;
                    }
                }
            }
        }
        total
    }

    /// Path length of `x` in the tree rooted at `root`, crediting its path's features (see
    /// [`score_into`](Self::score_into)); any depth.
    fn walk_credit<const NAN: bool>(&self, root: u32, x: &[f64], contributions: &mut [f64]) -> f64 {
        let (mut i, mut len) = (root as usize, 0);
        let mut ring = [0u32; PATH_RING];
        loop {
            let n = self.nodes[i];
            if n.is_leaf() {
                break;
            }
            ring[len % PATH_RING] = n.index() as u32;
            len += 1;
            i = self.step::<NAN, false>(i, x);
        }
        let h = self.nodes[i].value;
        credit(contributions, &ring, len, h);
        h
    }

    /// One branch-free step; leaves point to themselves. `NAN`: `x` may hold NaN.
    /// `SHORT`: `x` is [`X_SLOTS`] long with NaN in its last slot, the feature field is
    /// masked instead of bounds-checked, and a leaf (index [`LEAF_SLOT`]) reads that NaN, so
    /// it compares false and stays without a leaf test. `select_unpredictable`, not `if`:
    /// LLVM otherwise turns the select into a branch, which mispredicts on half the nodes
    /// (measured 3x slower).
    #[inline(always)]
    fn step<const NAN: bool, const SHORT: bool>(&self, i: usize, x: &[f64]) -> usize {
        let n = self.nodes[i];
        let v = if SHORT { x[n.feature as usize & (X_SLOTS - 1)] } else { x[n.index()] };
        let left = if NAN { n.goes_left(v) } else { v <= n.value };
        // Leaves go "right", to themselves.
        let go_left = if SHORT { left } else { left & !n.is_leaf() };
        select_unpredictable(go_left, i + 1, n.right as usize)
    }
}

/// Adds one tree's credit for a path of `len` splits whose features are in the ring `path`
/// and whose leaf has path length `h`: `2^-h` to the split above the leaf, halving upwards.
#[inline(always)]
fn credit(contributions: &mut [f64], path: &[u32; PATH_RING], len: usize, h: f64) {
    let mut w = exp2_neg(h);
    for k in (len.saturating_sub(PATH_RING)..len).rev() {
        contributions[path[k % PATH_RING] as usize] += w;
        w *= 0.5;
    }
}

/// `2^-h` for `h >= 0` to ~0.03 %, without a libm call (one per tree was 2/3 of the cost of
/// [`Forest::score_into`]); 0 beyond 2^-1000. Only weighs contributions, never scores.
#[inline(always)]
fn exp2_neg(h: f64) -> f64 {
    if h.is_nan() || h >= 1000.0 {
        return 0.0;
    }
    let k = h.floor();
    let f = (h - k) * std::f64::consts::LN_2;
    // e^-f on [0, ln 2): degree-5 Taylor, error < 0.03 %.
    let e = 1.0 - f * (1.0 - f / 2.0 * (1.0 - f / 3.0 * (1.0 - f / 4.0 * (1.0 - f / 5.0))));
    // 2^-k by building the exponent directly (k <= 999, a normal number).
    e * f64::from_bits((1023 - k as u64) << 52)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::isolation_forest::ForestParams;
    use crate::rng::Rng;

    #[test]
    fn lockstep_credit_matches_the_plain_walk() {
        let mut rng = Rng::new(5);
        let data: Vec<f64> = (0..600 * 3).map(|_| rng.normal()).collect();
        let rows: Vec<&[f64]> = data.chunks_exact(3).collect();
        let params = ForestParams { trees: 2 * LANES, sample_size: 64, seed: 6 };
        let f = Forest::train(&rows, 3, &params).unwrap();
        for x in [[0.1, -2.0, 3.0], [f64::NAN, 0.5, -0.5], [9.0, 0.0, 0.0]] {
            let mut lockstep = [0.0; 3];
            f.score_into(&x, &mut lockstep).unwrap();
            let mut plain = [0.0; 3];
            for &r in &f.roots {
                f.walk_credit::<true>(r, &x, &mut plain);
            }
            normalise(&mut plain);
            for (a, b) in lockstep.iter().zip(&plain) {
                assert!((a - b).abs() < 1e-12, "{lockstep:?} vs {plain:?}");
            }
        }
        assert!((exp2_neg(3.7) / 2f64.powf(-3.7) - 1.0).abs() < 3e-4);
        assert_eq!((exp2_neg(0.0), exp2_neg(1e6), exp2_neg(f64::NAN)), (1.0, 0.0, 0.0));
    }
}
