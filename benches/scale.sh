#!/usr/bin/env bash
# The service at scale (issue 28): for each entity count, start a release `serve` with
# benches/scale.yaml, drive it with `simulate push` (remote-write, 7 DWCP series per entity, one
# sample per series every INTERVAL) for DURATION, and print one table row from its own metrics:
# entities held and fitted, RSS (end and peak), bytes per entity (RSS growth since the service was ready), check duration p50/p99 and CPU seconds per check (over
# checks after the first WARMUP), accepted samples/s, and what the pusher saw.
#
#   benches/scale.sh                      # 1000 10000 100000 entities, 3 min each
#   DURATION=70m benches/scale.sh 10000   # long enough for every model to fit and fill
#
# Models fit after `detect.min_fit_points` checks (5 min at 10 s) and their history fills after
# `fit_window` checks (1 h): a short run measures ingest and warm-up, a run past 1 h the steady
# state. Environment: DURATION (3m), INTERVAL (10s), WARMUP (60s), CONFIG (benches/scale.yaml),
# PROTOCOL (remote-write, otlp-http or otlp-grpc), BIN (a built binary to run instead of building
# target/release/dwcp-anomaly: a copy keeps a long run apart from the next build), LOGDIR (keep
# the service logs there; RUST_LOG=dwcp_anomaly::pipeline=debug,info logs each check and its fits).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-3m}
INTERVAL=${INTERVAL:-10s}
WARMUP=${WARMUP:-60s}
CONFIG=${CONFIG:-benches/scale.yaml}
PROTOCOL=${PROTOCOL:-remote-write}
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(1000 10000 100000)
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
  BIN=target/release/dwcp-anomaly
fi
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
secs() { python3 -c "import re,sys;m=re.fullmatch(r'(\d+)(ms|s|m|h)','$1');print(int(m[1])*{'ms':0.001,'s':1,'m':60,'h':3600}[m[2]])"; }
source benches/lib.sh
# Only the service's own series: the score series of 100k entities are most of /metrics.
selfmetrics() { curl -sf "http://127.0.0.1:$1/metrics" | grep -E '^(dwcp_anomaly_|process_)' || true; }
summarize() { # before after entities elapsed_s base_rss_kib rss_kib hwm_kib push_report
  python3 - "$@" <<'PY'
import re, sys
before, after, n, elapsed, base, rss, hwm, report = sys.argv[1:]
def parse(path):
    out = {}
    for line in open(path):
        name, _, value = line.rpartition(' ')
        try: out[name] = float(value)
        except ValueError: pass
    return out
b, a = parse(before), parse(after)
d = lambda k: a.get(k, 0.0) - b.get(k, 0.0)
buckets = sorted((float(re.search(r'le="([^"]+)"', k)[1].replace('+Inf', 'inf')), d(k))
                 for k in a if k.startswith('dwcp_anomaly_check_duration_seconds_bucket'))
checks = d('dwcp_anomaly_check_duration_seconds_count')
def quantile(q):
    if checks <= 0: return float('nan')
    prev_le, prev_c = 0.0, 0.0
    for le, c in buckets:
        if c >= q * checks:
            if le == float('inf'): return prev_le
            return prev_le + (le - prev_le) * (q * checks - prev_c) / max(c - prev_c, 1e-9)
        prev_le, prev_c = le, c
    return float('nan')
accepted = sum(d(k) for k in a if k.startswith('dwcp_anomaly_ingest_samples_accepted_total'))
cpu = d('process_cpu_seconds_total')
n, base, rss, hwm = int(n), int(base), int(rss), int(hwm)
entities = int(a.get('dwcp_anomaly_entities', 0))
ready = int(sum(v for k, v in a.items() if k.startswith('dwcp_anomaly_entities_by_state') and 'state="ready"' in k))
print(f"| {n} | {entities} | {ready} | {rss/1024:.0f} MiB | {hwm/1024:.0f} MiB | {(rss-base)/max(entities,1):.1f} KiB "
      f"| {quantile(0.5):.3f} s | {quantile(0.99):.3f} s | {cpu/max(checks,1):.3f} s | {int(checks)} "
      f"| {accepted/float(elapsed):,.0f} | {report} |")
PY
}
echo "| entities | held | ready (fitted) | RSS | peak RSS | (RSS − RSS at start)/entity | check p50 | check p99 | CPU s/check | checks | accepted samples/s | pusher |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
for n in "${counts[@]}"; do
  http=$(port); grpc=$(port)
  "$BIN" serve --config "$CONFIG" --listen "127.0.0.1:$http" --otlp-grpc-listen "127.0.0.1:$grpc" \
    --state-dir "$work/state-$n" >"${LOGDIR:-$work}/serve-$n.log" 2>&1 &
  svc=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$http/-/ready" >/dev/null && break; sleep 0.2; done
  base=$(awk '/^VmRSS/{print $2}' "/proc/$svc/status")
  case $PROTOCOL in
    remote-write) target=(--remote-write "http://127.0.0.1:$http/api/v1/write") ;;
    otlp-http) target=(--otlp-http "http://127.0.0.1:$http/v1/metrics") ;;
    otlp-grpc) target=(--otlp-grpc "http://127.0.0.1:$grpc") ;;
    *) echo "PROTOCOL must be remote-write, otlp-http or otlp-grpc" >&2; exit 2 ;;
  esac
  "$BIN" simulate --entities "$n" --interval "$INTERVAL" push "${target[@]}" --duration "$DURATION" \
    >"$work/push-$n.out" 2>"$work/push-$n.log" &
  pusher=$!
  sleep "$(secs "$WARMUP")"
  selfmetrics "$http" >"$work/before-$n"
  t0=$(date +%s.%N)
  wait "$pusher" || true
  sleep 2  # the last check after the last push
  # Memory before the last scrape: rendering /metrics builds one string of every entity's score
  # series (at 10k entities, many MB), which the allocator may keep and this would count.
  rss=$(awk '/^VmRSS/{print $2}' "/proc/$svc/status"); hwm=$(awk '/^VmHWM/{print $2}' "/proc/$svc/status")
  selfmetrics "$http" >"$work/after-$n"
  elapsed=$(python3 -c "import time;print(time.time()-$t0)")
  summarize "$work/before-$n" "$work/after-$n" "$n" "$elapsed" "$base" "$rss" "$hwm" "$(tail -1 "$work/push-$n.out")"
  kill "$svc"; wait "$svc" 2>/dev/null || true
done
