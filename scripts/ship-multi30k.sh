#!/usr/bin/env bash
# Turns a finished multi30k-de-en training run into the shipped bundle:
# scores the run's best checkpoint on Multi30k test 2016 (beam 5, sacreBLEU
# defaults), makes a float16 copy, scores that too, and installs the float16
# copy in checkpoints/NAME when its BLEU is within 0.1 of float32 (the
# float32 bundle otherwise). Prints both scores as JSON lines and writes them
# to checkpoints/NAME.scores.jsonl.
#
#   scripts/ship-multi30k.sh [RUN_DIR] [NAME]
#       RUN_DIR default runs/multi30k-de-en; NAME default multi30k-de-en
#       (the G2 model: scripts/ship-multi30k.sh RUN_DIR multi30k-de-en-g2)
set -euo pipefail
cd "$(dirname "$0")/.."

RUN=${1:-runs/multi30k-de-en}
DATA=${DATA:-../shared/data/multi30k}
DEST=checkpoints/${2:-multi30k-de-en}
BIN=target/release
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}

best="$RUN/best/model"
[[ -f "$best/config.json" ]] || { echo "ship-multi30k: no best checkpoint in $RUN" >&2; exit 1; }
cargo build --release -q -p model --bin nmt-bundle -p nmt-eval --bin nmt-eval

work=$(mktemp -d "${TMPDIR:-/tmp}/ship-multi30k.XXXXXX")
trap 'rm -rf "$work"' EXIT

score() { # bundle, label, name to record
  "$BIN/nmt-eval" translate --model "$1" --src "$DATA/test.de" --ref "$DATA/test.en" \
    --beam 5 --device cpu --quiet --json --output "$work/$2.hyp.en" \
  | python3 -c 'import json,sys; d=json.load(sys.stdin); d["weights"]=sys.argv[1]; d["model"]=sys.argv[2]; print(json.dumps(d))' "$2" "$3"
}

"$BIN/nmt-bundle" convert "$best" "$work/f16" --dtype f16 >/dev/null
f32=$(score "$best" float32 "$best")
f16=$(score "$work/f16" float16 "float16 copy of $best")
echo "$f32"
echo "$f16"

pick=$(python3 - "$f32" "$f16" <<'PY'
import json, sys
f32, f16 = (json.loads(a) for a in sys.argv[1:])
print("float16" if abs(f32["bleu"] - f16["bleu"]) <= 0.1 else "float32")
PY
)
rm -rf "$DEST.new"
if [[ $pick == float16 ]]; then
  cp -r "$work/f16" "$DEST.new"
else
  "$BIN/nmt-bundle" convert "$best" "$DEST.new" --dtype f32 >/dev/null
fi
rm -rf "$DEST"
mv "$DEST.new" "$DEST"
printf '%s\n%s\n' "$f32" "$f16" > "$DEST.scores.jsonl"
echo "ship-multi30k: installed the $pick bundle in $DEST ($(du -sh "$DEST" | cut -f1))"
