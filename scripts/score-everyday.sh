#!/usr/bin/env bash
# Scores everyday models (docs/RESULTS.md, "Everyday German↔English") on every test set of
# the experiment with beam 5: Tatoeba test, Multi30k test 2016, IWSLT14 test (out of domain;
# sacreBLEU, and the paper's tokenized lowercased BLEU against iwslt14/fairseq_tok) and WMT14
# newstest2014 (out of domain), each with BLEU and chrF.
#
#   scripts/score-everyday.sh [--out DIR] [--bin DIR] [--data DIR] BUNDLE...
#
#   BUNDLE       a model bundle directory (e.g. ../runs/everyday-de-en-s1/best/model); its
#                config.json says the direction, which picks the test files
#   --out DIR    where translations and scores go (default: a new temporary folder)
#   --bin DIR    where nmt-eval is (default target/release)
#   --data DIR   the shared corpora (default ../shared/data)
#
# Writes DIR/NAME.TESTSET.hyp (translations), DIR/NAME.TESTSET.json (nmt-eval's scores) and
# DIR/scores.md, one table row per bundle. The tokenized IWSLT14 figure (de→en only: the
# fairseq set is German→English) Moses-tokenizes the output with sacremoses, installed
# into the project's .venv (pinned) when missing.
set -euo pipefail
. "$(dirname "$0")/../bench/lib.sh"
OUT=""
BIN="$ROOT/target/release"
DATA="$ROOT/../shared/data"
BUNDLES=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --bin) BIN="$(cd "$2" && pwd)"; shift 2 ;;
    --data) DATA="$(cd "$2" && pwd)"; shift 2 ;;
    -h|--help) usage 18 ;;
    -*) die "score-everyday: unknown option $1 (see --help)" ;;
    *) BUNDLES+=("$1"); shift ;;
  esac
done
[[ ${#BUNDLES[@]} -gt 0 ]] || die "score-everyday: name at least one BUNDLE (see --help)"
need score-everyday "$BIN/nmt-eval" "$DATA/tatoeba/test.de" "$DATA/multi30k/test.de" \
  "$DATA/iwslt14/test.de" "$DATA/wmt14/test.de" "$DATA/iwslt14/fairseq_tok/test.en"
OUT="$(work_folder "$OUT" score-everyday)"
mkdir -p "$OUT"

PY="$ROOT/.venv/bin/python"
SACREMOSES=0.1.1
moses_tokenize() {   # stdin → stdout, English, as fairseq's prepare-iwslt14.sh (then lowercased by nmt-eval -l)
  if ! "$PY" -c 'import sacremoses' 2>/dev/null; then
    echo "score-everyday: installing sacremoses==$SACREMOSES into .venv" >&2
    "$PY" -m pip install --quiet --disable-pip-version-check "sacremoses==$SACREMOSES" >&2
  fi
  "$PY" -c 'import sys; from sacremoses import MosesTokenizer as T
t = T(lang="en")
for line in sys.stdin:
    print(t.tokenize(line.rstrip("\n"), return_str=True, escape=True))'
}

# score NAME BUNDLE SRC_FILE REF_FILE TAG: translates and scores; prints "BLEU chrF".
score() {
  local name="$1" bundle="$2" src="$3" ref="$4" tag="$5"
  "$BIN/nmt-eval" translate --model "$bundle" --src "$src" --ref "$ref" --beam 5 --quiet \
    --output "$OUT/$name.$tag.hyp" --json >"$OUT/$name.$tag.json"
  "$PY" -c 'import json, sys; d = json.load(open(sys.argv[1]))
print("%.2f %.2f" % (d["bleu"], d["chrf"]))' "$OUT/$name.$tag.json"
}

{
  echo "| bundle | direction | Tatoeba BLEU / chrF | Multi30k 2016 BLEU / chrF | IWSLT14 BLEU / chrF | IWSLT14 tok. lc. BLEU | WMT14 BLEU / chrF |"
  echo "|---|---|---|---|---|---|---|"
} >"$OUT/scores.md"
for bundle in "${BUNDLES[@]}"; do
  need score-everyday "$bundle/config.json"
  read -r src tgt < <("$PY" -c 'import json, sys; c = json.load(open(sys.argv[1]))
print(c["src_lang"], c["tgt_lang"])' "$bundle/config.json")
  name="$(echo "$bundle" | tr '/' '_' | sed 's/^[._]*//')"
  row="| \`$bundle\` | $src→$tgt"
  for set in tatoeba/test multi30k/test iwslt14/test; do
    tag="${set%%/*}"
    read -r bleu chrf < <(score "$name" "$bundle" "$DATA/$set.$src" "$DATA/$set.$tgt" "$tag")
    row="$row | $bleu / $chrf"
  done
  if [[ "$src" == de && "$tgt" == en ]]; then
    moses_tokenize <"$OUT/$name.iwslt14.hyp" >"$OUT/$name.iwslt14.tok"
    tok="$("$BIN/nmt-eval" bleu -r "$DATA/iwslt14/fairseq_tok/test.en" -i "$OUT/$name.iwslt14.tok" \
      -t none -l -s none -b)"
    row="$row | $tok"
  else
    row="$row | (de→en only)"
  fi
  read -r bleu chrf < <(score "$name" "$bundle" "$DATA/wmt14/test.$src" "$DATA/wmt14/test.$tgt" wmt14)
  echo "$row | $bleu / $chrf |" >>"$OUT/scores.md"
  echo "score-everyday: $bundle done" >&2
done
cat "$OUT/scores.md"
