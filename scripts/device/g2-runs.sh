#!/usr/bin/env bash
# The G2 experiment on a lent GPU machine (scripts/device/README.md): run from the repository
# root there, with the binaries in .devrun/bin and Multi30k in .devrun/data (carried).
set -uo pipefail
cd "$(dirname "$0")/../.."
TORCH_LIB=$(python3 -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
chmod +x .devrun/bin/*
nvidia-smi -L; python3 -c 'import torch; print("torch", torch.__version__)'
.devrun/bin/nmt-train --help >/dev/null || { echo "nmt-train does not start"; ldd .devrun/bin/nmt-train; exit 1; }
(while sleep 20; do nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader; done) > "$OUT/nvidia-smi.log" 2>&1 &
SMI=$!
G=/tmp/g2
scripts/g2-experiment.sh --out $G --bin .devrun/bin --data .devrun/data --device cuda \
  --max-steps "${MAX_STEPS:-2250}" --deadline "${DEADLINE:-420}" --threads 2 \
  baseline-s1=multi30k-de-en:1 baseline-s2=multi30k-de-en:2 \
  g2-s1=multi30k-de-en-g2:1 g2-s2=multi30k-de-en-g2:2 \
  sharpened-s1=multi30k-de-en-sharpened:1 gru-s1=multi30k-de-en:1:model.cell=gru 2>&1 | tee "$OUT/experiment.log"
kill $SMI 2>/dev/null
# Logs, configs, scores and the best bundles' metadata of every run (no weights).
(cd $G && tar czf "$OUT/g2-runs.tgz" summary.md summary.jsonl */config.toml */train.jsonl */valid.jsonl \
  */test.json */status */stderr.log */curves.svg */best/model/metadata.json */best/model/config.json 2>/dev/null)
# The G2 run with the best test BLEU, as a float16 bundle.
best=$(python3 -c "
import json
rows=[json.loads(l) for l in open('$G/summary.jsonl')]
rows=[r for r in rows if r['run'].startswith('g2') and r['test'].get('bleu') is not None]
print(max(rows, key=lambda r: r['test']['bleu'])['run'] if rows else '')")
if [[ -n "$best" ]]; then
  .devrun/bin/nmt-bundle convert --dtype f16 "$G/$best/best/model" /tmp/g2-best-f16 &&
    cp "$G/$best/test.json" /tmp/g2-best-f16/test-f32.json &&
    (cd /tmp && tar czf "$OUT/g2-best-f16.tgz" g2-best-f16) && echo "best G2 run: $best"
fi
ls -la "$OUT"
