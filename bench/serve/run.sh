#!/usr/bin/env bash
# Load benchmark of nmt-serve on loopback, bounded in time (about 3 × (DURATION + 2 s) + setup).
#
#   bench/serve/run.sh                 # untrained 256-unit bundle built here
#   BUNDLE=checkpoints/multi30k-de-en bench/serve/run.sh
#   BIN=/path/to/nmt-serve LOAD=/path/to/load BUNDLE=... bench/serve/run.sh   # other builds, none made
#
# Cases (serving/examples/load.rs: closed-loop keep-alive clients, 2 threads, POST
# /v1/translate, one Multi30k test sentence per request, beam 5; a client sends its next
# request as soon as an answer is in, whatever its status, as a client that retries at once):
#   batched   32 connections, dynamic batching (defaults: 64 sentences, 5 ms wait)
#   batch1    32 connections, --max-batch-sentences 1 (no batching)
#   overload  128 connections (4×) against --queue-capacity 32: refusals (503) expected;
#             the accepted requests must keep the throughput and latency of `batched`,
#             and memory must stay flat (VmRSS sampled every second)
# Reported: requests/s, accepted (2xx) requests/s, p50/p99 latency of the accepted
# requests, p99 of all answers, non-2xx answers and socket errors, the mean batch, the
# server's CPU use (both cores = 200%), peak RSS (VmHWM).
# Extra server flags for every case: SERVE_ARGS="--reject-delay-ms 0".
# Needs: python3, curl.
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-20}
CONNECTIONS=${CONNECTIONS:-32}
PORT=${PORT:-18080}
THREADS=${TORCH_THREADS:-$(nproc)}
DATA=${DATA:-../shared/data/multi30k}
WORK=$(mktemp -d /tmp/nmt-serve-bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

# PROFILE=dev uses the dev profile (dependencies at opt-level 2; libtorch does the work either way).
PROFILE=${PROFILE:-release}
if [[ $PROFILE == release ]]; then OUT=target/release; else OUT=target/debug; fi
# BIN and LOAD (the load generator) may name binaries built elsewhere; then nothing is built.
if [[ -z "${BIN:-}" || -z "${LOAD:-}" || -z "${BUNDLE:-}" ]]; then
  cargo build --profile "$PROFILE" -q -p serving --bin nmt-serve --example untrained_bundle --example load
fi
BIN=${BIN:-$OUT/nmt-serve}
LOAD=${LOAD:-$OUT/examples/load}

if [[ -z "${BUNDLE:-}" ]]; then
  BUNDLE="$WORK/untrained-de-en"
  "$OUT/examples/untrained_bundle" --out "$BUNDLE" \
    --lines "$DATA/train.de" --lines "$DATA/train.en" --vocab-size 8000 \
    --embed-dim 256 --hidden-dim 256 --layers 2 >&2
fi

# One request body per test sentence; the clients take them in turn.
python3 - "$DATA/test.de" > "$WORK/bodies.jsonl" <<'PY'
import json, sys
lines = [l.strip() for l in open(sys.argv[1], encoding="utf-8") if l.strip()][:500]
for l in lines:
    print(json.dumps({"text": l, "beam_size": 5}, ensure_ascii=False))
PY

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run_case() {
  local name=$1 connections=$2; shift 2
  # shellcheck disable=SC2086
  "$BIN" --model "$BUNDLE" --addr "127.0.0.1:$PORT" --device cpu --torch-threads "$THREADS" \
    --workers 2 ${SERVE_ARGS:-} "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  local pid=$!
  for _ in $(seq 1 600); do
    curl -fs "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
    sleep 0.1
  done
  local rss_log="$WORK/$name.rss"
  ( while kill -0 "$pid" 2>/dev/null; do
      awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null; sleep 1
    done ) >"$rss_log" &
  local sampler=$!
  # 2 s of warm-up (not counted), then DURATION seconds measured; the server's CPU time is
  # read over the measured part.
  "$LOAD" --url "http://127.0.0.1:$PORT/v1/translate" --bodies "$WORK/bodies.jsonl" \
    --connections "$connections" --duration "$DURATION" --warmup 2 >"$WORK/$name.json" &
  local loader=$!
  sleep 2
  local t0; t0=$(cpu_ticks "$pid")
  sleep "$DURATION"
  local t1; t1=$(cpu_ticks "$pid")
  wait "$loader"
  local hwm
  hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  curl -fs "http://127.0.0.1:$PORT/metrics" >"$WORK/$name.metrics" || true
  kill -TERM "$pid"; wait "$pid" || true
  kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
  python3 - "$name" "$WORK/$name.json" "$hwm" "$rss_log" "$WORK/$name.metrics" \
    "$((t1 - t0))" "$(getconf CLK_TCK)" "$DURATION" <<'PY'
import json, re, sys
name, path, hwm, rss_log, metrics, ticks, hz, duration = sys.argv[1:]
r = json.load(open(path))
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
cpu = 100.0 * int(ticks) / int(hz) / float(duration)
fmt = lambda v: "–" if v is None else "%.0f" % v
print("| %s | %d | %.1f | %.1f | %s | %s | %s | %d | %s | %.0f%% | %.0f | %.0f → %.0f |" % (
    name, r["connections"], r["requests_per_s"], r["ok_per_s"], fmt(r["ok_p50_ms"]),
    fmt(r["ok_p99_ms"]), fmt(r["p99_ms"]), r["non_2xx"] + r["socket_errors"], batch, cpu,
    int(hwm) / 1024, sum(rss[:third]) / third / 1024, sum(rss[-third:]) / third / 1024))
PY
}

echo "bundle: $BUNDLE; server: $BIN ${SERVE_ARGS:-}; torch threads: $THREADS; duration: ${DURATION}s per case; $(nproc) cores"
echo
echo "| case | connections | requests/s | 2xx/s | 2xx p50 ms | 2xx p99 ms | all p99 ms | non-2xx | mean batch | server CPU | peak RSS MiB | RSS MiB first → last third |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
run_case batched "$CONNECTIONS"
run_case batch1 "$CONNECTIONS" --max-batch-sentences 1
run_case overload $((CONNECTIONS * 4)) --queue-capacity "$CONNECTIONS"
