//! Statistics shared by the detectors: medians and their scale, order statistics over two
//! sorted sequences, and Student's t quantiles (through the regularised incomplete beta).

pub(crate) fn median_sorted(s: &[f64]) -> f64 {
    let n = s.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        0.5 * (s[n / 2 - 1] + s[n / 2])
    }
}

/// Median of finite `v` (reorders it); NaN when empty.
pub(crate) fn median(v: &mut [f64]) -> f64 {
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    let (lo, &mut hi, _) = v.select_nth_unstable_by(n / 2, f64::total_cmp);
    if n % 2 == 1 {
        hi
    } else {
        let below = lo.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        0.5 * (below + hi)
    }
}

/// Median absolute deviation of sorted `s` around `med`, in O(log n): the deviations left and
/// right of `med` are two sorted sequences, and their median is a k-th smallest of two.
pub(crate) fn mad_sorted(s: &[f64], med: f64) -> f64 {
    let n = s.len();
    if n == 0 {
        return f64::NAN;
    }
    let p = s.partition_point(|x| *x < med);
    let left = |i: usize| med - s[p - 1 - i];
    let right = |i: usize| s[p + i] - med;
    let kth = |k: usize| kth_of_two(&left, p, &right, n - p, k);
    if n % 2 == 1 { kth(n / 2) } else { 0.5 * (kth(n / 2 - 1) + kth(n / 2)) }
}

/// The `k`-th smallest (0-based) of the union of ascending sequences `a` (`na` long) and `b`.
pub(crate) fn kth_of_two(
    a: &dyn Fn(usize) -> f64,
    na: usize,
    b: &dyn Fn(usize) -> f64,
    nb: usize,
    k: usize,
) -> f64 {
    let take = k + 1;
    // i elements of the `take` smallest come from `a`, the rest from `b`.
    let (mut lo, mut hi) = (take.saturating_sub(nb), take.min(na));
    while lo <= hi {
        let i = (lo + hi) / 2;
        let j = take - i;
        let a_left = if i > 0 { a(i - 1) } else { f64::NEG_INFINITY };
        let a_right = if i < na { a(i) } else { f64::INFINITY };
        let b_left = if j > 0 { b(j - 1) } else { f64::NEG_INFINITY };
        let b_right = if j < nb { b(j) } else { f64::INFINITY };
        if a_left > b_right {
            hi = i - 1;
        } else if b_left > a_right {
            lo = i + 1;
        } else {
            return a_left.max(b_left);
        }
    }
    f64::NAN
}

/// `t` with P(T > t) = `q` for Student's t with `df` degrees of freedom (bisection).
pub(crate) fn t_upper_quantile(q: f64, df: f64) -> f64 {
    let tail = |t: f64| 0.5 * inc_beta(df / 2.0, 0.5, df / (df + t * t));
    let (mut lo, mut hi) = (0.0, 1.0);
    while tail(hi) > q && hi < 1e12 {
        lo = hi;
        hi *= 2.0;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if tail(mid) > q {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo <= 1e-12 * hi {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// Regularised incomplete beta function I_x(a, b) (Numerical Recipes `betai`).
pub(crate) fn inc_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front = (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_cf(a, b, x) / a
    } else {
        1.0 - front * beta_cf(b, a, 1.0 - x) / b
    }
}

/// Continued fraction of the incomplete beta function (modified Lentz).
pub(crate) fn beta_cf(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..500 {
        let m = f64::from(m);
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        d = if d.abs() < TINY { TINY } else { d };
        c = 1.0 + aa / c;
        c = if c.abs() < TINY { TINY } else { c };
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        d = if d.abs() < TINY { TINY } else { d };
        c = 1.0 + aa / c;
        c = if c.abs() < TINY { TINY } else { c };
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms; relative error ~1e-15).
pub(crate) fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection keeps the series in its accurate range.
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = G[0];
    let t = x + 7.5;
    for (i, g) in G.iter().enumerate().skip(1) {
        a += g / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}
