#!/usr/bin/env bash
# The G2-LSTM comparison (docs/RESULTS.md): several training runs side by side on one
# machine (a GPU lends itself to it; each run is small), each scored on the test set with
# beam 5 from its best checkpoint, and one table of the results.
#
#   scripts/g2-experiment.sh --out DIR [options] RUN...
#
#   RUN              NAME=PRESET:SEED[:KEY=VALUE[,KEY=VALUE...]], e.g.
#                    baseline-s1=multi30k-de-en:1   g2-s1=multi30k-de-en-g2:1
#                    gru-s1=multi30k-de-en:1:model.cell=gru
#                    (PRESET names configs/PRESET.toml; KEY=VALUE are --set overrides)
#   --out DIR        one run folder per RUN in DIR; a folder that exists is resumed
#   --bin DIR        where nmt-train and nmt-eval are (default target/release)
#   --data DIR       Multi30k folder with train/valid/test.{de,en} (default ../shared/data/multi30k)
#   --device D       cpu, cuda, cuda:N (default auto)
#   --max-steps N    the same update budget for every run (default: the preset's epochs)
#   --threads N      libtorch threads per run (default 2)
#   --deadline S     stop training after S seconds (SIGKILL; the runs resume exactly with the
#                    same command later) and score what has a best checkpoint
#
# Writes DIR/summary.md (the table) and DIR/summary.jsonl (one record per run).
set -euo pipefail
. "$(dirname "$0")/../bench/lib.sh"
OUT=""
BIN="$ROOT/target/release"
DATA="$ROOT/../shared/data/multi30k"
DEVICE=auto
MAX_STEPS=""
THREADS=2
DEADLINE=0
RUNS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --bin) BIN="$(cd "$2" && pwd)"; shift 2 ;;
    --data) DATA="$(cd "$2" && pwd)"; shift 2 ;;
    --device) DEVICE="$2"; shift 2 ;;
    --max-steps) MAX_STEPS="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --deadline) DEADLINE="$2"; shift 2 ;;
    -h|--help) usage 22 ;;
    -*) die "g2-experiment: unknown option $1 (see --help)" ;;
    *) RUNS+=("$1"); shift ;;
  esac
done
[[ -n "$OUT" ]] || die "g2-experiment: --out DIR is required"
[[ ${#RUNS[@]} -gt 0 ]] || die "g2-experiment: name at least one RUN (see --help)"
need g2-experiment "$BIN/nmt-train" "$BIN/nmt-eval" "$DATA/train.de" "$DATA/valid.en" "$DATA/test.de"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"

pids=()
names=()
for spec in "${RUNS[@]}"; do
  name="${spec%%=*}"
  rest="${spec#*=}"
  IFS=: read -r preset seed overrides <<<"$rest"
  [[ -n "$name" && -n "$preset" && -n "$seed" && "$spec" == *=* ]] ||
    die "g2-experiment: bad RUN '$spec' (NAME=PRESET:SEED[:KEY=VALUE,...])"
  config="$ROOT/configs/$preset.toml"
  [[ -f "$config" ]] || die "g2-experiment: $config not found"
  args=(--run-dir "$OUT/$name" --quiet --device "$DEVICE"
        --set "data.train=\"$DATA/train\"" --set "data.valid=\"$DATA/valid\""
        --set "training.threads=$THREADS")
  if [[ -f "$OUT/$name/config.toml" ]]; then
    args+=(--resume)
  else
    args+=(--config "$config" --seed "$seed")
    [[ -z "$MAX_STEPS" ]] || args+=(--max-steps "$MAX_STEPS")
    IFS=, read -r -a sets <<<"${overrides:-}"
    for s in "${sets[@]}"; do [[ -z "$s" ]] || args+=(--set "$s"); done
  fi
  mkdir -p "$OUT/$name"
  echo "g2-experiment: $name: nmt-train ${args[*]}" >&2
  "$BIN/nmt-train" "${args[@]}" >"$OUT/$name/stdout.log" 2>"$OUT/$name/stderr.log" &
  pids+=("$!")
  names+=("$name")
done

start=$SECONDS
while :; do
  alive=0
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=$((alive + 1)); done
  [[ $alive -gt 0 ]] || break
  if [[ "$DEADLINE" -gt 0 && $((SECONDS - start)) -ge "$DEADLINE" ]]; then
    echo "g2-experiment: deadline of ${DEADLINE}s reached; stopping $alive run(s) (resume with the same command)" >&2
    for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    break
  fi
  sleep 5
done
for i in "${!pids[@]}"; do
  if wait "${pids[$i]}"; then status=done; else status="exit $?"; fi
  echo "$status" >"$OUT/${names[$i]}/status"
  echo "g2-experiment: ${names[$i]}: $status" >&2
done

# Test 2016 with beam 5 from each best checkpoint, side by side.
for name in "${names[@]}"; do
  best="$OUT/$name/best/model"
  if [[ -f "$best/config.json" ]]; then
    ("$BIN/nmt-eval" translate --model "$best" --src "$DATA/test.de" --ref "$DATA/test.en" \
      --device "$DEVICE" --json --quiet >"$OUT/$name/test.json" 2>"$OUT/$name/test.err" ||
      echo "g2-experiment: $name: scoring failed (see $OUT/$name/test.err)" >&2) &
  fi
done
wait

python3 - "$OUT" "${names[@]}" <<'PY'
import json, os, sys
out, names = sys.argv[1], sys.argv[2:]
def lines(path):
    try:
        return [json.loads(l) for l in open(path) if l.strip()]
    except FileNotFoundError:
        return []
rows = []
for name in names:
    d = os.path.join(out, name)
    valid, train = lines(os.path.join(d, "valid.jsonl")), lines(os.path.join(d, "train.jsonl"))
    best = max(valid, key=lambda r: r.get("bleu") or -1, default=None)
    test = {}
    if os.path.exists(os.path.join(d, "test.json")):
        try:
            test = json.load(open(os.path.join(d, "test.json")))
        except json.JSONDecodeError:
            test = {}
    speeds = sorted(r["tokens_per_sec"] for r in train if r.get("tokens_per_sec"))
    status = open(os.path.join(d, "status")).read().strip() if os.path.exists(os.path.join(d, "status")) else "?"
    last = (train or valid or [{}])[-1]
    if valid and last is not valid[-1] and valid[-1]["step"] > last.get("step", 0):
        last = valid[-1]
    if not speeds:
        speeds = sorted(r["tokens_per_sec"] for r in valid if r.get("tokens_per_sec"))
    rows.append({
        "run": name,
        "status": status,
        "steps": last.get("step", 0),
        "train_secs": last.get("elapsed_secs", 0.0),
        "best_step": best and best["step"],
        "best_valid_bleu": best and best.get("bleu"),
        "valid_bleu_by_step": {r["step"]: r.get("bleu") for r in valid},
        "tokens_per_sec_median": speeds[len(speeds) // 2] if speeds else None,
        "test": test,
    })
with open(os.path.join(out, "summary.jsonl"), "w") as f:
    for r in rows:
        f.write(json.dumps(r) + "\n")
def fmt(x, p=2):
    return "–" if x is None else f"{x:.{p}f}"
def score(test, *keys):
    for k in keys:
        v = test.get(k)
        if isinstance(v, dict):
            v = v.get("score")
        if isinstance(v, (int, float)):
            return v
    return None
table = ["| run | status | updates | time (s) | target tok/s | best valid BLEU (step) | test BLEU | test BLEU, 13a lowercased |",
         "|---|---|---|---|---|---|---|---|"]
for r in rows:
    t = r["test"]
    table.append(f"| {r['run']} | {r['status']} | {r['steps']} | {r['train_secs']:.0f} | {fmt(r['tokens_per_sec_median'], 0)} | "
                 f"{fmt(r['best_valid_bleu'])} ({r['best_step']}) | {fmt(score(t, 'bleu'))} | "
                 f"{fmt(score(t, 'bleu_tokenized_lowercased'))} |")
open(os.path.join(out, "summary.md"), "w").write("\n".join(table) + "\n")
print("\n".join(table))
PY
