#!/usr/bin/env bash
# Load benchmark of nmt-serve on loopback, bounded in time (about 4 × DURATION + setup).
#
#   bench/serve/run.sh                 # untrained 256-unit bundle built here
#   BUNDLE=checkpoints/multi30k-de-en bench/serve/run.sh
#
# Cases (wrk, 2 threads, POST /v1/translate, one Multi30k test sentence per request,
# beam 5):
#   batched   32 connections, dynamic batching (defaults: 64 sentences, 5 ms wait)
#   batch1    32 connections, --max-batch-sentences 1 (no batching)
#   overload  128 connections (4×) against --queue-capacity 32: 503s expected,
#             memory must stay flat (VmRSS sampled every second)
# Reported: requests/s, p50/p99 latency, non-2xx answers and socket errors, peak RSS (VmHWM).
# Needs: wrk (Debian package `wrk`), python3, curl.
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-20}
CONNECTIONS=${CONNECTIONS:-32}
PORT=${PORT:-18080}
THREADS=${TORCH_THREADS:-$(nproc)}
DATA=${DATA:-../shared/data/multi30k}
WORK=$(mktemp -d /tmp/nmt-serve-bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

command -v wrk >/dev/null || { echo "wrk not installed (apt-get install -y wrk)" >&2; exit 1; }
# PROFILE=dev uses the dev profile (dependencies at opt-level 2; libtorch does the work either way).
PROFILE=${PROFILE:-release}
if [[ $PROFILE == release ]]; then OUT=target/release; else OUT=target/debug; fi
cargo build --profile "$PROFILE" -q -p serving --bin nmt-serve --example untrained_bundle
BIN=$OUT/nmt-serve

if [[ -z "${BUNDLE:-}" ]]; then
  BUNDLE="$WORK/untrained-de-en"
  "$OUT/examples/untrained_bundle" --out "$BUNDLE" \
    --lines "$DATA/train.de" --lines "$DATA/train.en" --vocab-size 8000 \
    --embed-dim 256 --hidden-dim 256 --layers 2 >&2
fi

# One request body per test sentence; wrk picks them round-robin.
python3 - "$DATA/test.de" > "$WORK/post.lua" <<'PY'
import json, sys
lines = [l.strip() for l in open(sys.argv[1], encoding="utf-8") if l.strip()][:500]
bodies = [json.dumps({"text": l, "beam_size": 5}) for l in lines]
print("local bodies = {" + ",".join(json.dumps(b) for b in bodies) + "}")
print("""local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i % #bodies + 1
  return wrk.format(nil, "/v1/translate", nil, bodies[i])
end""")
PY

run_case() {
  local name=$1 connections=$2; shift 2
  "$BIN" --model "$BUNDLE" --addr "127.0.0.1:$PORT" --device cpu --torch-threads "$THREADS" \
    --workers 2 "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  local pid=$!
  for _ in $(seq 1 600); do
    curl -fs "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
    sleep 0.1
  done
  # Warm-up, not measured.
  wrk -t2 -c"$connections" -d2s -s "$WORK/post.lua" "http://127.0.0.1:$PORT" >/dev/null
  local rss_log="$WORK/$name.rss"
  ( while kill -0 "$pid" 2>/dev/null; do
      awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null; sleep 1
    done ) >"$rss_log" &
  local sampler=$!
  wrk -t2 -c"$connections" -d"${DURATION}s" --timeout 90s --latency -s "$WORK/post.lua" \
    "http://127.0.0.1:$PORT" >"$WORK/$name.wrk"
  local hwm
  hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  curl -fs "http://127.0.0.1:$PORT/metrics" >"$WORK/$name.metrics" || true
  kill -TERM "$pid"; wait "$pid" || true
  kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
  python3 - "$name" "$connections" "$WORK/$name.wrk" "$hwm" "$rss_log" "$WORK/$name.metrics" <<'PY'
import re, sys
name, conns, path, hwm, rss_log, metrics = sys.argv[1:]
w = open(path).read()
def lat(p):
    m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)" % p, w, re.M)
    if not m: return float("nan")
    v, u = float(m.group(1)), m.group(2)
    return v / 1000 if u == "us" else v * 1000 if u == "s" else v
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", w).group(1))
total = int(re.search(r"(\d+) requests in", w).group(1))
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", w)
non2xx = int(non2xx.group(1)) if non2xx else 0
sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", w)
non2xx += sum(int(x) for x in sock.groups()) if sock else 0
rss = [int(x) for x in open(rss_log).read().split()] or [0]
third = max(1, len(rss) // 3)
batch = ""
try:
    m = open(metrics).read()
    s = float(re.search(r"^nmt_batch_sentences_sum ([\d.e+]+)", m, re.M).group(1))
    c = float(re.search(r"^nmt_batch_sentences_count ([\d.e+]+)", m, re.M).group(1))
    batch = "%.1f" % (s / c) if c else ""
except Exception:
    pass
ok_rps = rps * (total - non2xx) / total if total else 0
print("| %s | %s | %.1f | %.1f | %.0f | %.0f | %d | %s | %.0f | %.0f → %.0f |" % (
    name, conns, rps, ok_rps, lat(50), lat(99), non2xx, batch, int(hwm) / 1024,
    sum(rss[:third]) / third / 1024, sum(rss[-third:]) / third / 1024))
PY
}

echo "bundle: $BUNDLE; torch threads: $THREADS; duration: ${DURATION}s per case; $(nproc) cores"
echo
echo "| case | connections | requests/s | 2xx/s | p50 ms | p99 ms | non-2xx | mean batch | peak RSS MiB | RSS MiB first → last third |"
echo "|---|---|---|---|---|---|---|---|---|---|"
run_case batched "$CONNECTIONS"
run_case batch1 "$CONNECTIONS" --max-batch-sentences 1
run_case overload $((CONNECTIONS * 4)) --queue-capacity "$CONNECTIONS"
