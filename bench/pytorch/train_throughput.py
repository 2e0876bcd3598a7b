"""Training throughput of the eager PyTorch port (model.py) on the batches the
Rust benchmark uses: forward, label-smoothed cross-entropy ignoring padding,
backward, gradient-norm clipping, Adam step (torch.optim.Adam, as tch's nn::Adam
wraps libtorch's). Prints one JSON line like model/benches/train_throughput.rs.

    python train_throughput.py --bundle DIR --batches train_batches.safetensors
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from model import PAD_ID, label_smoothed_loss, load_bundle, numbered, read_safetensors


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", required=True, help="bundle folder (config.json, model.safetensors)")
    p.add_argument("--batches", required=True, help="train_batches.safetensors written by the prepare bench")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--passes", type=int, default=1, help="timed passes over all batches")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--label-smoothing", type=float, default=0.1, help="label smoothing epsilon")
    p.add_argument("--clip", type=float, default=1.0, help="gradient-norm clip")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = load_bundle(args.bundle)
    model.train()
    batches = numbered(read_safetensors(args.batches))
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    torch.manual_seed(0)
    phases = {"forward": 0.0, "loss": 0.0, "backward": 0.0, "optimizer": 0.0}

    def step(b, acc):
        t0 = time.perf_counter()
        logits = model(b["src"], b["src_lengths"], b["tgt_in"])
        t1 = time.perf_counter()
        loss = label_smoothed_loss(logits, b["tgt_out"], args.label_smoothing)
        loss.item()
        t2 = time.perf_counter()
        opt.zero_grad()
        loss.backward()
        t3 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        t4 = time.perf_counter()
        if acc is not None:
            acc["forward"] += t1 - t0
            acc["loss"] += t2 - t1
            acc["backward"] += t3 - t2
            acc["optimizer"] += t4 - t3

    for i in range(args.warmup):
        step(batches[i % len(batches)], None)
    tokens, per_step = 0, []
    start = time.perf_counter()
    for _ in range(args.passes):
        for b in batches:
            s = time.perf_counter()
            step(b, phases)
            per_step.append(time.perf_counter() - s)
            tokens += int(b["tgt_out"].ne(PAD_ID).sum())
    elapsed = time.perf_counter() - start
    per_step.sort()
    print(
        json.dumps(
            {
                "impl": "pytorch",
                "bench": "train_throughput",
                "threads": args.threads,
                "steps": len(per_step),
                "target_tokens": tokens,
                "seconds": elapsed,
                "tokens_per_s": tokens / elapsed,
                "median_step_s": per_step[len(per_step) // 2],
                "phases_s": phases,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
