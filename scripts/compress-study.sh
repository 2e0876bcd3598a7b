#!/usr/bin/env bash
# The compression study of docs/RESULTS.md (round/clip, low rank, int8): compresses each bundle with each
# setting (nmt-bundle compress), scores every copy on Multi30k test 2016 with beam 5
# (nmt-eval translate), and prints one line per bundle: name, weights size, BLEU, 13a
# lowercased BLEU, chrF.
#
#   scripts/compress-study.sh --out DIR [--bin DIR] [--data DIR] [--only TAG,...] [BUNDLE...]
#
# Defaults: the two shipped bundles, target/release, ../shared/data/multi30k, every setting
# (--only int8-recurrent,int8-gates: those settings alone, by the tags below).
set -euo pipefail
. "$(dirname "$0")/../bench/lib.sh"
cd "$ROOT"
OUT=""
ONLY=""
BIN="$ROOT/target/release"
DATA="$ROOT/../shared/data/multi30k"
BUNDLES=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) mkdir -p "$2"; OUT="$(cd "$2" && pwd)"; shift 2 ;;
    --bin) BIN="$(cd "$2" && pwd)"; shift 2 ;;
    --data) DATA="$(cd "$2" && pwd)"; shift 2 ;;
    --only) ONLY=",$2,"; shift 2 ;;
    -h|--help) usage 10 ;;
    -*) die "compress-study: unknown option $1 (see --help)" ;;
    *) BUNDLES+=("$1"); shift ;;
  esac
done
[[ -n "$OUT" ]] || die "compress-study: --out DIR is required"
[[ ${#BUNDLES[@]} -gt 0 ]] || BUNDLES=(checkpoints/multi30k-de-en checkpoints/multi30k-de-en-g2)
need compress-study "$BIN/nmt-bundle" "$BIN/nmt-eval" "$DATA/test.de" "$DATA/test.en"
# name:arguments of nmt-bundle compress
SETTINGS=(
  "gates-r0.0625-c1:--round 0.0625 --clip 1 --params gates"
  "gates-r0.125-c1:--round 0.125 --clip 1 --params gates"
  "gates-r0.25-c1:--round 0.25 --clip 1 --params gates"
  "gates-r0.5:--round 0.5 --params gates"
  "gates-r0.5-c1:--round 0.5 --clip 1 --params gates"
  "gates-r1-c1:--round 1 --clip 1 --params gates"
  "recurrent-r0.5-c1:--round 0.5 --clip 1 --params recurrent"
  "svd32-gates:--svd-rank 32 --params gates"
  "svd16-gates:--svd-rank 16 --params gates"
  "svd32-recurrent:--svd-rank 32 --params recurrent"
  "svd16-recurrent:--svd-rank 16 --params recurrent"
  "int8-recurrent:--int8 --params recurrent"
  "int8-gates:--int8 --params gates"
  "int8-all:--int8 --params all"
)
score() {
  OMP_WAIT_POLICY=PASSIVE "$BIN/nmt-eval" translate --model "$1" --src "$DATA/test.de" \
    --ref "$DATA/test.en" --json --quiet --device cpu > "$2"
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print('%.2f %.2f %.2f' % (d['bleu'], d['bleu_tokenized_lowercased'], d['chrf']))" "$2"
}
printf '%-44s %10s %7s %7s %7s\n' bundle bytes BLEU "lc13a" chrF
for b in "${BUNDLES[@]}"; do
  name="$(basename "$b")"
  printf '%-44s %10s %s\n' "$name" "$(stat -c %s "$b/model.safetensors")" "$(score "$b" "$OUT/$name.eval.json")"
  for s in "${SETTINGS[@]}"; do
    tag="${s%%:*}"; read -r -a args <<<"${s#*:}"
    [[ -z "$ONLY" || "$ONLY" == *",$tag,"* ]] || continue
    copy="$OUT/$name-$tag"
    "$BIN/nmt-bundle" compress "$b" "$copy" "${args[@]}" > "$copy.info.json"
    printf '%-44s %10s %s\n' "$name-$tag" "$(stat -c %s "$copy/model.safetensors")" "$(score "$copy" "$copy.eval.json")"
  done
done
