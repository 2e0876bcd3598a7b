#!/usr/bin/env bash
# The everyday experiment's training runs (docs/RESULTS.md, "Everyday German↔English"), one
# after another on this machine, each resumed where it stopped: start it again after an
# interruption (a new session, a kill) and it goes on with the first unfinished run.
#
#   scripts/everyday-runs.sh [--out DIR] [--bin DIR] [--wait PID] [RUN...]
#
#   RUN          NAME=PRESET:SEED, e.g. everyday-de-en-s1=everyday-de-en:1 (PRESET names
#                configs/PRESET.toml); default: the experiment's five runs, in this order:
#                de→en and en→de baselines with seed 1 (the two shipped directions), de→en
#                G2 with seed 1, then de→en baseline and G2 with seed 2
#   --out DIR    where the run folders are (default ../runs)
#   --bin DIR    where nmt-train is (default target/release)
#   --wait PID   first wait for process PID to end (a run started by hand in one of the
#                folders, which must not be resumed twice at once)
#
# A run is finished when its folder holds `averaged/` (the presets average their last 3
# checkpoints at the end). Runs go at `nice 19`, each logging to DIR/NAME.out.
set -euo pipefail
. "$(dirname "$0")/../bench/lib.sh"
OUT="$ROOT/../runs"
BIN="$ROOT/target/release"
WAIT=""
RUNS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --bin) BIN="$(cd "$2" && pwd)"; shift 2 ;;
    --wait) WAIT="$2"; shift 2 ;;
    -h|--help) usage 17 ;;
    -*) die "everyday-runs: unknown option $1 (see --help)" ;;
    *) RUNS+=("$1"); shift ;;
  esac
done
if [[ ${#RUNS[@]} -eq 0 ]]; then
  RUNS=(
    everyday-de-en-s1=everyday-de-en:1
    everyday-en-de-s1=everyday-en-de:1
    everyday-de-en-g2-s1=everyday-de-en-g2:1
    everyday-de-en-s2=everyday-de-en:2
    everyday-de-en-g2-s2=everyday-de-en-g2:2
  )
fi
need everyday-runs "$BIN/nmt-train"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
if [[ -n "$WAIT" ]]; then
  echo "everyday-runs: waiting for process $WAIT" >&2
  while kill -0 "$WAIT" 2>/dev/null; do sleep 30; done
fi
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
for spec in "${RUNS[@]}"; do
  name="${spec%%=*}"
  IFS=: read -r preset seed <<<"${spec#*=}"
  [[ -n "$name" && -n "$preset" && -n "$seed" && "$spec" == *=* ]] ||
    die "everyday-runs: bad RUN '$spec' (NAME=PRESET:SEED)"
  run="$OUT/$name"
  if [[ -f "$run/averaged/config.json" ]]; then
    echo "everyday-runs: $name is finished" >&2
    continue
  fi
  if [[ -e "$run/last" ]]; then
    echo "everyday-runs: resuming $name" >&2
    args=(--run-dir "$run" --resume)
  else
    need everyday-runs "$ROOT/configs/$preset.toml"
    echo "everyday-runs: starting $name ($preset, seed $seed)" >&2
    args=(--config "$ROOT/configs/$preset.toml" --run-dir "$run" --seed "$seed")
  fi
  nice -n 19 "$BIN/nmt-train" "${args[@]}" --quiet >>"$OUT/$name.out" 2>&1 ||
    die "everyday-runs: $name failed (see $OUT/$name.out)"
done
echo "everyday-runs: every run is finished" >&2
