#!/usr/bin/env bash
# What G2-LSTM's gates cost in training: target tokens/s of the multi30k-de-en shape with
# standard gates on libtorch's fused kernels (the baseline as nmt-train runs it), standard
# gates on the step executor, Gumbel gates and sharpened gates (both on the step executor),
# on the same weights and batches, interleaved so that the machine's drift hits every row.
#
#   bench/gates/run.sh [--work DIR] [--threads N] [--rounds N] [--train-batches N]
#
# Prints one JSON line per measurement and a table with the median per mode and its ratio to
# the fused baseline (docs/BENCHMARKS.md records it).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
cd "$ROOT"
WORK=""
THREADS=2
ROUNDS=3
TRAIN_BATCHES=6
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --work) mkdir -p "$2"; WORK="$(cd "$2" && pwd)"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --train-batches) TRAIN_BATCHES="$2"; shift 2 ;;
    -h|--help) usage 10 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
WORK="$(work_folder "$WORK" gates-bench)"
cargo bench -p model --no-run --bench prepare >&2
cargo bench -p training --no-run --bench train_throughput >&2
[[ -f "$WORK/train_batches.safetensors" ]] || run_bench prepare --out "$WORK" --train-batches "$TRAIN_BATCHES" >&2
RESULTS="$WORK/gates.jsonl"
: > "$RESULTS"
for round in $(seq "$ROUNDS"); do
  for mode in "standard fused" "standard step" "gumbel auto" "sharpened auto"; do
    set -- $mode
    echo "== round $round: gates $1, executor $2 ==" >&2
    run_bench train_throughput --bundle "$WORK/bundle" --batches "$WORK/train_batches.safetensors" \
      --threads "$THREADS" --warmup 1 --gates "$1" --executor "$2" | tee -a "$RESULTS" >&2
  done
done
python3 - "$RESULTS" "$THREADS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {}
for r in rows:
    by.setdefault((r["gates"], r["executor"]), []).append(r["tokens_per_s"])
base = statistics.median(by[("standard", "fused")])
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"CPU: {cpu}; threads: {sys.argv[2]}; {len(rows)} runs")
print("| gates | executor | target tokens/s (median of %d) | vs fused baseline |" % len(by[("standard", "fused")]))
print("|---|---|---|---|")
for (gates, executor), v in by.items():
    m = statistics.median(v)
    print(f"| {gates} | {executor} | {m:.0f} | {m / base:.2f}x |")
PY
