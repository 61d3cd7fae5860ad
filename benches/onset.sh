#!/usr/bin/env bash
# Where a release instance starts refusing (issue 27): for each entity count, one `serve` with
# the embedded defaults plus room for the entities and a 1 GiB memory ceiling
# (`limits.max_memory_bytes`), pushed by `simulate push` (remote-write 1.0, CONCURRENCY senders,
# 2000 samples per request) at shorter and shorter intervals, STEP_SECONDS of wall time per rate
# (the pusher is stopped with SIGINT and drains what it queued). One row per rate: samples/s
# asked for (entities × 7 / interval), generated and acknowledged over the pusher's measured wall
# time, answers asking to retry (503 + Retry-After), samples dropped after the retries, steps the
# generator could not produce on time (the senders were waiting for answers), and RSS.
#
#   benches/onset.sh                    # 1000 and 10000 entities
#   INTERVALS="1s 100ms 20ms" benches/onset.sh 1000
set -euo pipefail
cd "$(dirname "$0")/.."
INTERVALS=${INTERVALS:-1s 100ms 20ms 10ms 5ms 2ms 1ms}
STEP_SECONDS=${STEP_SECONDS:-20}
CONCURRENCY=${CONCURRENCY:-64}
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(1000 10000)
cargo build --release --quiet
BIN=target/release/dwcp-anomaly
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
source benches/lib.sh
echo "| entities | interval | asked samples/s | generated samples/s | acked samples/s | retry answers | dropped | late steps | RSS |"
echo "|---|---|---|---|---|---|---|---|---|"
for n in "${counts[@]}"; do
  http=$(port)
  cat >"$work/onset.yaml" <<YAML
listen: 127.0.0.1:$http
vectorize:
  max_entities: 200000
limits:
  max_memory_bytes: 1073741824
YAML
  "$BIN" serve --config "$work/onset.yaml" --otlp-grpc-listen 127.0.0.1:0 --state-dir "$work/state-$n" \
    >"$work/serve-$n.log" 2>&1 &
  svc=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$http/-/ready" >/dev/null && break; sleep 0.2; done
  for interval in $INTERVALS; do
    report=$(timeout -s INT "${STEP_SECONDS}s" "$BIN" simulate --entities "$n" --interval "$interval" push \
      --remote-write "http://127.0.0.1:$http/api/v1/write" \
      --concurrency "$CONCURRENCY" --batch 2000 2>>"$work/push-$n.log" || true)
    rss=$(awk '/^VmRSS/{print $2}' "/proc/$svc/status")
    python3 - "$n" "$interval" "$rss" "$report" <<'PY'
import re, sys
n, interval, rss, report = sys.argv[1:]
r = dict(kv.split('=') for kv in report.split())
secs = float(r['seconds'])
m = re.fullmatch(r'(\d+)(ms|s)', interval)
asked = int(n) * 7 / (int(m[1]) * (0.001 if m[2] == 'ms' else 1))
print(f"| {n} | {interval} | {asked:,.0f} | {int(r['offered'])/secs:,.0f} | {int(r['acked'])/secs:,.0f} "
      f"| {r['refusals']} | {r['dropped']} | {r['late_steps']} of {r['steps']} | {int(rss)/1024:.0f} MiB |")
PY
  done
  kill "$svc"; wait "$svc" 2>/dev/null || true
done
