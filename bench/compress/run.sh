#!/usr/bin/env bash
# Beam-5 translation speed of compressed bundles against their original, on Multi30k test
# 2016 (nmt-translate, wall time including the load), the bundles interleaved round after
# round so that the machine's drift hits each alike. Compressed models translate
# differently, and the length of what they write changes the work of a beam search, so
# besides sentences/s the output words/s are given: the fairer measure of per-step cost.
#
#   bench/compress/run.sh [--rounds N] [--threads N] [--data DIR] BUNDLE[@NMT_TRANSLATE]...
#
# BUNDLE@NMT_TRANSLATE runs that bundle with another build of nmt-translate (e.g. one of an
# earlier commit, to compare code side by side); the default is this tree's release build.
# Prints one line per run and the medians per bundle with their ratios to the first bundle.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
cd "$ROOT"
ROUNDS=3
THREADS=2
DATA="$ROOT/../shared/data/multi30k"
BUNDLES=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --data) DATA="$2"; shift 2 ;;
    -h|--help) usage 12 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) BUNDLES+=("$1"); shift ;;
  esac
done
[[ ${#BUNDLES[@]} -gt 0 ]] || die "bench/compress: name the bundles (the original first)"
cargo build --release -q -p model --bin nmt-translate
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}" OMP_NUM_THREADS="$THREADS"
TMP="$(mktemp -d -t compress-bench-XXXXXX)"
for round in $(seq "$ROUNDS"); do
  for i in "${!BUNDLES[@]}"; do
    bundle="${BUNDLES[$i]%@*}" bin=target/release/nmt-translate
    [[ "${BUNDLES[$i]}" == *@* ]] && bin="${BUNDLES[$i]#*@}"
    /usr/bin/time -f '%e' -o "$TMP/$i.$round.time" "$bin" \
      --model "$bundle" --input "$DATA/test.de" --quiet --device cpu > "$TMP/$i.$round.out"
    echo "$round ${BUNDLES[$i]} $(cat "$TMP/$i.$round.time") s, $(wc -l < "$TMP/$i.$round.out") lines, $(wc -w < "$TMP/$i.$round.out") words"
  done
done
python3 - "$TMP" "$ROUNDS" "${BUNDLES[@]}" <<'PY'
import statistics, sys
tmp, rounds, bundles = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
rows = []
for i, b in enumerate(bundles):
    secs = [float(open(f"{tmp}/{i}.{r}.time").read()) for r in range(1, rounds + 1)]
    out = open(f"{tmp}/{i}.1.out").read()
    lines, words = len(out.splitlines()), len(out.split())
    s = statistics.median(secs)
    rows.append((b, lines / s, words / s, words))
print(f"{'bundle':<56} {'sent/s':>8} {'ratio':>6} {'words/s':>8} {'ratio':>6} {'words':>7}")
for b, sps, wps, words in rows:
    print(f"{b:<56} {sps:>8.1f} {sps / rows[0][1]:>5.2f}x {wps:>8.0f} {wps / rows[0][2]:>5.2f}x {words:>7}")
PY
rm -rf "$TMP"
