#!/usr/bin/env bash
# Training throughput of one process against a data-parallel job on one machine: the
# Multi30k preset (configs/multi30k-de-en.toml), target tokens per second of wall time, for
#   alone-2t      1 process, training.threads = 2 (the step split between 2 worker threads)
#   alone-2t-uf2  1 process, threads = 2, update_freq = 2 (the job's updates, one process)
#   job-2x1t      2 ranks launched by torchrun, threads = 1 each (Gloo all-reduce)
# Each case runs --steps updates from the same start; the first logged interval is warm-up
# and left out. The cases alternate round after round so that drift hits each alike. Other
# nmt-train processes on the machine are paused (SIGSTOP) while it runs and resumed after.
#
#   bench/distributed/run.sh [--steps N] [--rounds N] [--data DIR] [--out DIR]
#
# Prints one line per run and the median tokens/s per case with its ratio to alone-2t.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
cd "$ROOT"
STEPS=60
ROUNDS=2
DATA="$ROOT/../shared/data/multi30k"
OUT=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --steps) STEPS="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --data) DATA="$(cd "$2" && pwd)"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    -h|--help) usage 13 ;;
    *) die "bench/distributed: unknown option $1 (see --help)" ;;
  esac
done
[[ -f "$DATA/train.de" ]] || die "bench/distributed: $DATA/train.de not found (--data DIR)"
TORCHRUN="$ROOT/.venv/bin/torchrun"
[[ -x "$TORCHRUN" ]] || die "bench/distributed: $TORCHRUN not found (scripts/setup-libtorch.sh)"
cargo build --release -q -p training --bin nmt-train
BIN="$ROOT/target/release/nmt-train"
OUT="${OUT:-$(mktemp -d -t dist-bench-XXXXXX)}"
mkdir -p "$OUT"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"

# Pause other training runs for the measurement.
paused=$(pgrep -x nmt-train || true)
resume_others() { [[ -n "$paused" ]] && kill -CONT $paused 2>/dev/null || true; }
trap resume_others EXIT
[[ -n "$paused" ]] && { echo "pausing nmt-train $paused"; kill -STOP $paused; }

COMMON=(--config configs/multi30k-de-en.toml --quiet
  --set "data.train=\"$DATA/train\"" --set "data.valid=\"$DATA/valid\""
  --set training.log_every=10 --set training.validate_every=0
  --set training.valid_bleu=false --set data.valid_max_sentences=16 --set training.device=\"cpu\")

# The vocabulary once, copied into every run folder.
if [[ ! -d "$OUT/vocab" ]]; then
  "$BIN" "${COMMON[@]}" --run-dir "$OUT/vocab-run" --max-steps 1 >"$OUT/vocab-run.log" 2>&1 \
    || { echo "bench/distributed: the vocabulary run failed: see $OUT/vocab-run.log" >&2; exit 1; }
  cp -r "$OUT/vocab-run/vocab" "$OUT/vocab"
fi

run_case() { # NAME ROUND
  local dir="$OUT/$1.$2"
  rm -rf "$dir"; mkdir -p "$dir"; cp -r "$OUT/vocab" "$dir/vocab"
  case "$1" in
    alone-2t) "$BIN" "${COMMON[@]}" --max-steps "$STEPS" --run-dir "$dir" --set training.threads=2 ;;
    alone-2t-uf2) "$BIN" "${COMMON[@]}" --max-steps "$STEPS" --run-dir "$dir" --set training.threads=2 --set training.update_freq=2 ;;
    job-2x1t) "$TORCHRUN" --no-python --nproc-per-node 2 --master-port $((29600 + RANDOM % 1000)) \
        "$BIN" "${COMMON[@]}" --max-steps "$STEPS" --run-dir "$dir" --set training.threads=1 ;;
  esac >"$dir.stdout" 2>"$dir.stderr" || { echo "$1 failed: see $dir.stderr" >&2; exit 1; }
  python3 - "$dir/train.jsonl" "$1" "$2" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
steady = recs[1:]  # the first interval holds the warm-up
tps = sum(r["tokens_per_sec"] for r in steady) / len(steady)
print(f"{sys.argv[3]} {sys.argv[2]} {tps:.0f} target tokens/s (steps {steady[0]['step']}-{steady[-1]['step']})")
PY
}

: > "$OUT/results.txt"
for round in $(seq "$ROUNDS"); do
  for name in alone-2t alone-2t-uf2 job-2x1t; do
    run_case "$name" "$round" | tee -a "$OUT/results.txt"
  done
done
python3 - "$OUT/results.txt" <<'PY'
import statistics, sys
by = {}
for line in open(sys.argv[1]):
    _, name, tps = line.split()[:3]
    by.setdefault(name, []).append(float(tps))
base = statistics.median(by["alone-2t"])
for name, v in by.items():
    m = statistics.median(v)
    print(f"{name:14s} median {m:8.0f} target tokens/s  x{m / base:.2f}")
PY
