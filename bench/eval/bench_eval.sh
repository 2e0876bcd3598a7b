#!/usr/bin/env bash
# Scoring speed of nmt-eval vs sacreBLEU on newstest2014 (3003 lines), same data,
# same run. Figures go to docs/BENCHMARKS.md ("Evaluation").
#
#   bench/eval/bench_eval.sh            # 10 runs each
#   RUNS=20 bench/eval/bench_eval.sh
#
# Hypothesis: a deterministic corruption of the English reference (every 5th word
# dropped, every 7th line reversed), so scores are realistic rather than 0 or 100.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-10}
DATA=../shared/data/wmt14
PY=.venv/bin/python
[[ -f $DATA/test.en ]] || { echo "bench_eval: $DATA/test.en missing" >&2; exit 1; }
$PY -c 'import sacrebleu, sys; sys.exit(sacrebleu.__version__ != "2.6.0")' 2>/dev/null \
  || $PY -m pip install --quiet --disable-pip-version-check sacrebleu==2.6.0

TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
REF=$TMP/ref.en HYP=$TMP/hyp.en
cp "$DATA/test.en" "$REF"
awk '{ if (NR % 7 == 0) { s=$NF; for (i=NF-1; i>=1; i--) s=s" "$i; print s }
       else { s=""; for (i=1; i<=NF; i++) if (i % 5) s=s (s==""?"":" ") $i; print s } }' "$REF" > "$HYP"
echo "== $(wc -l <"$REF") lines, $(nproc) cores, $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)"

echo "== in-process (library call, tokenization included; median of $RUNS)"
NMT_EVAL_BENCH_REF=$REF NMT_EVAL_BENCH_HYP=$HYP NMT_EVAL_BENCH_RUNS=$RUNS \
  cargo bench -q -p evaluation --bench score_newstest2014 2>/dev/null
REF=$REF HYP=$HYP RUNS=$RUNS $PY - <<'PY'
import os, time, statistics
from sacrebleu.metrics import BLEU, CHRF
ref = open(os.environ["REF"], encoding="utf-8").read().splitlines()
hyp = open(os.environ["HYP"], encoding="utf-8").read().splitlines()
runs = int(os.environ["RUNS"])
def bench(name, f):
    ts, score = [], None
    for _ in range(runs):
        t = time.perf_counter(); score = f(); ts.append(time.perf_counter() - t)
    # Fresh metric objects each run: sacreBLEU's tokenizers cache lines (lru_cache),
    # and a cached second run would time a dictionary lookup, not scoring.
    print(f"sacrebleu {name:<16} {statistics.median(ts) * 1e3:8.1f} ms  (score {score:.4f}, {len(hyp)} lines, median of {runs})")
def fresh_bleu():
    import importlib, sacrebleu.tokenizers.tokenizer_13a as t13, sacrebleu.tokenizers.tokenizer_re as tre
    t13.Tokenizer13a.__call__.cache_clear(); tre.TokenizerRegexp.__call__.cache_clear()
bench("corpus_bleu", lambda: (fresh_bleu(), BLEU().corpus_score(hyp, [ref]).score)[1])
bench("corpus_chrf", lambda: CHRF().corpus_score(hyp, [ref]).score)
bench("corpus_chrf++", lambda: CHRF(word_order=2).corpus_score(hyp, [ref]).score)
def sent():
    fresh_bleu(); m = BLEU(effective_order=True)
    s = [m.sentence_score(h, [r]).score for h, r in zip(hyp, ref)]
    return sum(s) / len(s)
bench("sentence_bleu", sent)
PY

echo "== end to end (process start, file reading, scoring; median of $RUNS)"
cargo build -q --release -p nmt-eval --bin nmt-eval
BIN=${CARGO_TARGET_DIR:-target}/release/nmt-eval
time_cmd() {  # name, command...
  local name=$1; shift
  local ts=() out
  for _ in $(seq "$RUNS"); do
    local t0 t1; t0=$(date +%s%N); out=$("$@"); t1=$(date +%s%N)
    ts+=($(( (t1 - t0) / 1000000 )))
  done
  local med; med=$(printf '%s\n' "${ts[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p")
  printf '%-34s %6d ms  %s\n' "$name" "$med" "$out"
}
time_cmd "nmt-eval bleu" "$BIN" bleu -r "$REF" -i "$HYP" -b
time_cmd "sacrebleu -m bleu" .venv/bin/sacrebleu "$REF" -i "$HYP" -m bleu -b -w 2
time_cmd "nmt-eval chrf" "$BIN" chrf -r "$REF" -i "$HYP" -b
time_cmd "sacrebleu -m chrf" .venv/bin/sacrebleu "$REF" -i "$HYP" -m chrf -b -w 2
