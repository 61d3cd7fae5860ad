#!/usr/bin/env python3
"""Isolation forest: this crate's Forest vs scikit-learn's IsolationForest, one run.

Both sides: 100 trees, max_samples 256, 7 standard-normal features, 10 000 training rows;
a batch of 100 000 vectors and one-vector calls. The Rust numbers come from
`cargo run --release --example iforest_bench` (run here); the ratios are
sklearn time / Rust time per vector (> 1: Rust is faster).

Usage: python3 benches/iforest_vs_sklearn.py   (from the crate root; needs scikit-learn)
"""

import os
import subprocess
import sys
import time

import numpy as np
from sklearn.ensemble import IsolationForest

FEATURES, TRAIN, SCORE, ONE_CALLS = 7, 10_000, 100_000, 300
CRATE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rust_numbers():
    out = subprocess.run(
        ["cargo", "run", "--release", "--quiet", "--example", "iforest_bench"],
        cwd=CRATE, check=True, capture_output=True, text=True,
    ).stdout
    vals = {}
    for line in out.splitlines():
        for kv in line.split():
            k, _, v = kv.partition("=")
            vals[k] = float(v)
    return vals


def best_of(reps, f):
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t)
    return best


def main():
    rng = np.random.default_rng(1)
    train = rng.standard_normal((TRAIN, FEATURES))
    xs = rng.standard_normal((SCORE, FEATURES))
    model = IsolationForest(n_estimators=100, max_samples=256, random_state=1).fit(train)

    batch_ns = best_of(3, lambda: model.score_samples(xs)) * 1e9 / SCORE
    one = xs[:1]
    model.score_samples(one)  # warm-up
    times = []
    for i in range(ONE_CALLS):
        x = xs[i : i + 1]
        t = time.perf_counter()
        model.score_samples(x)
        times.append(time.perf_counter() - t)
    one_ns = float(np.median(times)) * 1e9

    r = rust_numbers()
    rb, rs = r["rust_batch_ns_per_vector"], r["rust_single_ns_per_vector"]
    rc = r["rust_single_contrib_ns_per_vector"]
    print(f"scikit-learn {__import__('sklearn').__version__}, numpy {np.__version__}")
    print(f"sklearn batch of {SCORE}:    {batch_ns:10.1f} ns/vector")
    print(f"sklearn one-vector call:     {one_ns:10.1f} ns/vector (median of {ONE_CALLS})")
    print(f"rust    batch of {SCORE}:    {rb:10.1f} ns/vector")
    print(f"rust    one-vector score:    {rs:10.1f} ns/vector")
    print(f"rust    one-vector + contributions: {rc:.1f} ns/vector")
    print(f"ratio batch (sklearn / rust):      {batch_ns / rb:8.1f}x")
    print(f"ratio one-vector (sklearn / rust): {one_ns / rs:8.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
