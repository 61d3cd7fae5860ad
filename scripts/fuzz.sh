#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ for SECONDS each (default 60) and prints, per target, the
# executions and the time spent; stops at the first crash, whose input libFuzzer leaves under
# fuzz/artifacts/<target>/ (turn it into a regression test in the normal suite).
#
#   scripts/fuzz.sh 300
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). Not run by CI.
set -euo pipefail
seconds="${1:-60}"
cd "$(dirname "$0")/../fuzz"
targets=$(cargo +nightly fuzz list)
cargo +nightly fuzz build -O
# Run the built binaries rather than `cargo fuzz run`, which rebuilds first: sources edited while
# the targets run do not change what is being fuzzed half-way.
bin=target/x86_64-unknown-linux-gnu/release
printf '%-18s %12s %8s\n' target executions seconds
for t in $targets; do
    mkdir -p "corpus/$t"
    log=$(mktemp)
    start=$(date +%s)
    mkdir -p "artifacts/$t"
    if ! "$bin/$t" "corpus/$t" -artifact_prefix="artifacts/$t/" -max_total_time="$seconds" \
        -rss_limit_mb=2048 -max_len=1048576 >"$log" 2>&1; then
        tail -40 "$log"
        echo "fuzz target $t failed; the input is under fuzz/artifacts/$t/" >&2
        exit 1
    fi
    runs=$(grep -oE 'Done [0-9]+ runs' "$log" | grep -oE '[0-9]+' || echo '?')
    printf '%-18s %12s %8s\n' "$t" "$runs" "$(($(date +%s) - start))"
    rm -f "$log"
done
