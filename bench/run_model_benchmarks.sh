#!/usr/bin/env bash
# Model speed of lstm-nmt against eager PyTorch, on the same weights, batches and threads.
#
#   bench/run_model_benchmarks.sh [--bundle DIR] [--work DIR] [--threads N] [--passes N]
#
#   --bundle DIR   benchmark this (e.g. trained) bundle; default: a random bundle with the
#                  shape of configs/multi30k-de-en.toml (embed 256, hidden 256, 2+2 layers,
#                  shared+tied embeddings, joint 8k unigram vocab)
#   --prepare-args "ARGS"  extra flags for the prepare bench, e.g. "--hidden-dim 512 --untied-output"
#   --work DIR     where the batches, bundle and outputs go (default: a new temp folder)
#   --threads N    intra-op threads on both sides (default 2); with N > 1 the beam search also
#                  runs N batches side by side, one thread each, on both sides
#   --passes N     timed passes over the training batches (default 1)
#   --train-batches N  training batches (default 6, each ~3700 target tokens)
#
# OMP_WAIT_POLICY defaults to PASSIVE here: on a shared, busy machine libgomp's
# spin-waiting threads make both sides 3-4x slower and the figures noise. Set
# OMP_WAIT_POLICY=ACTIVE (libgomp's default) on an idle machine to measure that.
#
# Steps: build the release bench binaries; prove the PyTorch port is the same model
# (logits, loss, gradients, beam search of small random models: bench/pytorch/check_reference.py,
# which exits non-zero on a mismatch); write the shared bundle and id batches; then
# training throughput and beam-5 search on Multi30k test, Rust and PyTorch back to back.
set -euo pipefail

. "$(dirname "$0")/lib.sh"
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
BUNDLE=""
WORK=""
THREADS=2
PASSES=1
TRAIN_BATCHES=6
PREPARE_ARGS=""
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --bundle) BUNDLE="$(cd "$2" && pwd)"; shift 2 ;;
    --work) mkdir -p "$2"; WORK="$(cd "$2" && pwd)"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --passes) PASSES="$2"; shift 2 ;;
    --train-batches) TRAIN_BATCHES="$2"; shift 2 ;;
    --prepare-args) PREPARE_ARGS="$2"; shift 2 ;;
    -h|--help) usage 23 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
WORK="$(work_folder "$WORK" model-bench)"

BENCHES=(--bench prepare --bench export_reference --bench beam_search)
cargo bench -p model --no-run "${BENCHES[@]}" >&2
cargo bench -p training --no-run --bench train_throughput >&2

echo "== parity: PyTorch port vs model::Seq2Seq ==" >&2
rm -rf "$WORK/reference"
run_bench export_reference --out "$WORK/reference" >&2
(cd bench/pytorch && "$PY" check_reference.py "$WORK/reference") >&2

echo "== shared bundle and batches ==" >&2
if [[ -n "$BUNDLE" ]]; then
  run_bench prepare --out "$WORK" --bundle "$BUNDLE" --train-batches "$TRAIN_BATCHES" >&2
else
  # shellcheck disable=SC2086 # PREPARE_ARGS is a list of flags
  run_bench prepare --out "$WORK" --train-batches "$TRAIN_BATCHES" $PREPARE_ARGS >&2
  BUNDLE="$WORK/bundle"
fi

RESULTS="$WORK/results.jsonl"
: > "$RESULTS"
echo "== training throughput (rust, then pytorch) ==" >&2
run_bench train_throughput --bundle "$BUNDLE" --batches "$WORK/train_batches.safetensors" \
  --threads "$THREADS" --passes "$PASSES" --warmup 1 | tee -a "$RESULTS" >&2
(cd bench/pytorch && "$PY" train_throughput.py --bundle "$BUNDLE" \
  --batches "$WORK/train_batches.safetensors" --threads "$THREADS" --passes "$PASSES" --warmup 1) | tee -a "$RESULTS" >&2

# One pass per batch with all threads (what the script above does), and the reference
# with the workers scheme of nmt-train (Python threads; torch ops release the GIL).
run_bench train_throughput --bundle "$BUNDLE" --batches "$WORK/train_batches.safetensors" \
  --threads "$THREADS" --passes "$PASSES" --warmup 1 --workers 1 | tee -a "$RESULTS" >&2
if [[ "$THREADS" -gt 1 ]]; then
  (cd bench/pytorch && "$PY" train_throughput.py --bundle "$BUNDLE" --workers "$THREADS" \
    --batches "$WORK/train_batches.safetensors" --threads "$THREADS" --passes "$PASSES" --warmup 1) | tee -a "$RESULTS" >&2
fi
# The loss from the logits through autograd (as the PyTorch script does) instead of the output
# projection fused with the loss: shows what the fusion is worth on its own.
run_bench train_throughput --bundle "$BUNDLE" --batches "$WORK/train_batches.safetensors" \
  --threads "$THREADS" --passes "$PASSES" --warmup 1 --logits-loss | tee -a "$RESULTS" >&2
# The padded forward (every target position computed, and the logits loss, as the PyTorch
# script does): shows what skipping the padding and the fusion are worth together.
run_bench train_throughput --bundle "$BUNDLE" --batches "$WORK/train_batches.safetensors" \
  --threads "$THREADS" --passes "$PASSES" --warmup 1 --padded | tee -a "$RESULTS" >&2

echo "== beam-5 search on Multi30k test (rust, then pytorch) ==" >&2
run_bench beam_search --bundle "$BUNDLE" --batches "$WORK/test_batches.safetensors" \
  --threads "$THREADS" --out "$WORK/hyps_rust.json" | tee -a "$RESULTS" >&2
(cd bench/pytorch && "$PY" beam_search.py --bundle "$BUNDLE" \
  --batches "$WORK/test_batches.safetensors" --threads "$THREADS" --out "$WORK/hyps_pytorch.json") | tee -a "$RESULTS" >&2
# The reference with the stopping rule of model::beam for one output per sentence (stop once
# the best hypothesis is settled rather than the k best): shows what that rule is worth
# on its own, apart from the rest of the Rust implementation.
(cd bench/pytorch && "$PY" beam_search.py --bundle "$BUNDLE" --settled-best \
  --batches "$WORK/test_batches.safetensors" --threads "$THREADS" --out "$WORK/hyps_pytorch_settled.json") | tee -a "$RESULTS" >&2
run_bench beam_search --bundle "$BUNDLE" --batches "$WORK/test_batches.safetensors" \
  --threads "$THREADS" --mallopt | tee -a "$RESULTS" >&2
# Batches decoded side by side, one intra-op thread each (nmt-translate's default on a CPU),
# and the same scheme in the reference with Python threads (torch ops release the GIL).
if [[ "$THREADS" -gt 1 ]]; then
  run_bench beam_search --bundle "$BUNDLE" --batches "$WORK/test_batches.safetensors" \
    --threads "$THREADS" --workers "$THREADS" --out "$WORK/hyps_rust_workers.json" | tee -a "$RESULTS" >&2
  (cd bench/pytorch && "$PY" beam_search.py --bundle "$BUNDLE" --workers "$THREADS" \
    --batches "$WORK/test_batches.safetensors" --threads "$THREADS" --out "$WORK/hyps_pytorch_workers.json") | tee -a "$RESULTS" >&2
  # Everything of the Rust search that a PyTorch script can copy: batches side by side, the
  # stopping rule, encoder outputs once per sentence with grouped attention queries.
  (cd bench/pytorch && "$PY" beam_search.py --bundle "$BUNDLE" --workers "$THREADS" --settled-best --grouped \
    --batches "$WORK/test_batches.safetensors" --threads "$THREADS" --out "$WORK/hyps_pytorch_all.json") | tee -a "$RESULTS" >&2
fi
# bfloat16 compute: other numerics (a few outputs change), so not the like-for-like figure.
run_bench beam_search --bundle "$BUNDLE" --batches "$WORK/test_batches.safetensors" \
  --threads "$THREADS" --bf16 --out "$WORK/hyps_rust_bf16.json" | tee -a "$RESULTS" >&2

"$PY" - "$RESULTS" "$WORK/hyps_rust.json" "$WORK/hyps_pytorch.json" "$BUNDLE" "$THREADS" <<'EOF'
import json, os, sys
results, hyps_rust, hyps_py, bundle, threads = sys.argv[1:]
rows = [json.loads(line) for line in open(results) if line.strip()]
by = {(r["bench"], r["impl"] + ("+mallopt" if r.get("mallopt") else "") + ("+padded" if r.get("padded") else "") + ("+logits" if r.get("logits_loss") and not r.get("padded") else "") + ("+bf16" if r.get("bf16") else "") + ("+settled" if r.get("settled_best") else "") + ("+grouped" if r.get("grouped") else "") + ("+workers" if r.get("workers", 1) > 1 else "")): r for r in rows}
a, b = json.load(open(hyps_rust)), json.load(open(hyps_py))
same = sum(x == y for x, y in zip(a, b))
# Rust's default training run splits each step among workers when there are several threads.
t_r = by.get(("train_throughput", "rust+workers")) or by["train_throughput", "rust"]
t_p = by["train_throughput", "pytorch"]
b_r, b_p = by["beam_search", "rust"], by["beam_search", "pytorch"]
print(f"bundle: {bundle}; threads: {threads}; OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}")
print(f"| benchmark | lstm-nmt (Rust) | PyTorch eager | ratio |")
print(f"|---|---|---|---|")
print(f"| training, target tokens/s ({t_r['steps']} steps; Rust {t_r.get('workers', 1)} worker(s), as nmt-train) | {t_r['tokens_per_s']:.0f} | {t_p['tokens_per_s']:.0f} | {t_r['tokens_per_s'] / t_p['tokens_per_s']:.2f}x |")
m, pw = by.get(("train_throughput", "rust")), by.get(("train_throughput", "pytorch+workers"))
if pw:
    print(f"| training, target tokens/s, both {pw['workers']} workers (PyTorch: Python threads) | {t_r['tokens_per_s']:.0f} | {pw['tokens_per_s']:.0f} | {t_r['tokens_per_s'] / pw['tokens_per_s']:.2f}x |")
if m and m is not t_r:
    print(f"| training, target tokens/s, both one pass with all threads | {m['tokens_per_s']:.0f} | {t_p['tokens_per_s']:.0f} | {m['tokens_per_s'] / t_p['tokens_per_s']:.2f}x |")
print(f"| beam-5 search, sentences/s ({b_r['sentences']} sentences) | {b_r['sentences_per_s']:.1f} | {b_p['sentences_per_s']:.1f} | {b_r['sentences_per_s'] / b_p['sentences_per_s']:.2f}x |")
for bench, unit, key, p in (("training", "target tokens/s", "tokens_per_s", t_p), ("beam-5 search", "sentences/s", "sentences_per_s", b_p)):
    m = by.get(("train_throughput" if bench == "training" else "beam_search", "rust+mallopt"))
    if m:
        print(f"| {bench}, {unit}, Rust with --mallopt | {m[key]:.1f} | {p[key]:.1f} | {m[key] / p[key]:.2f}x |")
m = by.get(("train_throughput", "rust+logits"))
if m:
    print(f"| training, target tokens/s, Rust with the loss from the logits (autograd, not fused) | {m['tokens_per_s']:.0f} | {t_p['tokens_per_s']:.0f} | {m['tokens_per_s'] / t_p['tokens_per_s']:.2f}x |")
m = by.get(("train_throughput", "rust+padded"))
if m:
    print(f"| training, target tokens/s, Rust computing the padded positions too, loss from the logits | {m['tokens_per_s']:.0f} | {t_p['tokens_per_s']:.0f} | {m['tokens_per_s'] / t_p['tokens_per_s']:.2f}x |")
m = by.get(("beam_search", "rust+bf16"))
if m:
    c = json.load(open(os.path.join(os.path.dirname(hyps_rust), "hyps_rust_bf16.json")))
    same16 = sum(x == y for x, y in zip(a, c))
    print(f"| beam-5 search, sentences/s, Rust computing in bfloat16 (other numerics: {same16}/{len(a)} outputs as float32) | {m['sentences_per_s']:.1f} | {b_p['sentences_per_s']:.1f} | {m['sentences_per_s'] / b_p['sentences_per_s']:.2f}x |")
m = by.get(("beam_search", "pytorch+settled"))
if m:
    c = json.load(open(os.path.join(os.path.dirname(hyps_rust), "hyps_pytorch_settled.json")))
    same_settled = sum(x == y for x, y in zip(a, c))
    print(f"| beam-5 search, sentences/s, PyTorch stopping as Rust does ({same_settled}/{len(a)} outputs as Rust) | {b_r['sentences_per_s']:.1f} | {m['sentences_per_s']:.1f} | {b_r['sentences_per_s'] / m['sentences_per_s']:.2f}x |")
rw, pw = by.get(("beam_search", "rust+workers")), by.get(("beam_search", "pytorch+workers"))
if rw and pw:
    d = os.path.dirname(hyps_rust)
    same_rw = sum(x == y for x, y in zip(a, json.load(open(os.path.join(d, "hyps_rust_workers.json")))))
    same_pw = sum(x == y for x, y in zip(b, json.load(open(os.path.join(d, "hyps_pytorch_workers.json")))))
    n = rw["workers"]
    print(f"| beam-5 search, sentences/s, Rust {n} batches side by side vs PyTorch one at a time ({same_rw}/{len(a)} outputs as one at a time) | {rw['sentences_per_s']:.1f} | {b_p['sentences_per_s']:.1f} | {rw['sentences_per_s'] / b_p['sentences_per_s']:.2f}x |")
    print(f"| beam-5 search, sentences/s, both {n} batches side by side (PyTorch: Python threads; {same_pw}/{len(a)} outputs as one at a time) | {rw['sentences_per_s']:.1f} | {pw['sentences_per_s']:.1f} | {rw['sentences_per_s'] / pw['sentences_per_s']:.2f}x |")
    pa = by.get(("beam_search", "pytorch+settled+grouped+workers"))
    if pa:
        same_pa = sum(x == y for x, y in zip(a, json.load(open(os.path.join(d, "hyps_pytorch_all.json")))))
        print(f"| beam-5 search, sentences/s, both {n} side by side, PyTorch also stopping as Rust does and keeping encoder outputs once per sentence ({same_pa}/{len(a)} outputs as Rust) | {rw['sentences_per_s']:.1f} | {pa['sentences_per_s']:.1f} | {rw['sentences_per_s'] / pa['sentences_per_s']:.2f}x |")
for impl, r in (("Rust", t_r), ("PyTorch", t_p)):
    ph = r["phases_s"]
    total = sum(ph.values())
    print(f"training time split, {impl}: " + ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in ph.items()))
print(f"beam outputs identical for {same}/{len(a)} sentences")
EOF
