#!/usr/bin/env bash
# How long `nmt-analyze gates` takes: the gate histograms of each bundle over the first N
# pairs of a corpus (the G2-LSTM paper's 10,000 training pairs by default), one bundle at a
# time, wall time and peak memory of each (docs/BENCHMARKS.md records them).
#
#   bench/analysis/run.sh [--pairs N] [--src FILE --tgt FILE] [--threads N] [BUNDLE...]
#
# Defaults: Multi30k's training set from ../shared/data and the two shipped bundles.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
cd "$ROOT"
PAIRS=10000
SRC="$ROOT/../shared/data/multi30k/train.de"
TGT="$ROOT/../shared/data/multi30k/train.en"
THREADS=2
BUNDLES=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --pairs) PAIRS="$2"; shift 2 ;;
    --src) SRC="$2"; shift 2 ;;
    --tgt) TGT="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    -h|--help) usage 8 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) BUNDLES+=("$1"); shift ;;
  esac
done
[[ ${#BUNDLES[@]} -gt 0 ]] || BUNDLES=(checkpoints/multi30k-de-en checkpoints/multi30k-de-en-g2)
for f in "$SRC" "$TGT"; do
  [[ -f "$f" ]] || die "bench/analysis: $f not found (pass --src/--tgt)"
done
cargo build --release -q -p analysis --bin nmt-analyze
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}" OMP_NUM_THREADS="$THREADS"
OUT="$(mktemp -d -t analysis-bench-XXXXXX)"
printf '%-34s %8s %10s %10s %10s\n' bundle pairs seconds "pairs/s" "peak MB"
for b in "${BUNDLES[@]}"; do
  /usr/bin/time -f '%e %M' -o "$OUT/time" target/release/nmt-analyze gates --model "$b" \
    --src "$SRC" --tgt "$TGT" --sentences "$PAIRS" --out "$OUT/$(basename "$b")" --quiet \
    --device cpu > /dev/null 2> "$OUT/stderr" || { cat "$OUT/stderr" >&2; exit 1; }
  read -r secs kb < "$OUT/time"
  awk -v b="$b" -v n="$PAIRS" -v s="$secs" -v kb="$kb" \
    'BEGIN { printf "%-34s %8d %10.1f %10.0f %10.0f\n", b, n, s, n / s, kb / 1024 }'
done
rm -rf "$OUT"
