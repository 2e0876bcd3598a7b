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


def split_rows(tgt_lengths: list[int], parts: int) -> list[tuple[int, int]]:
    """Contiguous, non-empty row slices with about equal target tokens: (start, end) each.
    The rule of model::data_parallel::split_rows."""
    rows = len(tgt_lengths)
    parts = max(1, min(parts, max(rows, 1)))
    total = sum(tgt_lengths)
    slices, start, seen = [], 0, 0
    for row, n in enumerate(tgt_lengths):
        seen += n
        rows_left = rows - row - 1
        if len(slices) + 1 < parts and seen * parts >= total * (len(slices) + 1) and rows_left >= parts - len(slices) - 1:
            slices.append((start, row + 1))
            start = row + 1
    if start < rows:
        slices.append((start, rows))
    return slices


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", required=True, help="bundle folder (config.json, model.safetensors)")
    p.add_argument("--batches", required=True, help="train_batches.safetensors written by the prepare bench")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--passes", type=int, default=1, help="timed passes over all batches")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--label-smoothing", type=float, default=0.1, help="label smoothing epsilon")
    p.add_argument("--clip", type=float, default=1.0, help="gradient-norm clip")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="Python threads per step, each running forward, loss and backward on a slice of the "
        "batch's rows with threads/workers intra-op threads (the scheme of model::data_parallel; "
        "torch ops release the GIL, and autograd accumulates the slices' gradients into the "
        "shared parameters)",
    )
    args = p.parse_args()
    workers = max(1, args.workers)
    torch.set_num_threads(max(1, args.threads // workers))
    model = load_bundle(args.bundle)
    model.train()
    batches = numbered(read_safetensors(args.batches))
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    torch.manual_seed(0)
    phases = {"forward": 0.0, "loss": 0.0, "backward": 0.0, "optimizer": 0.0}

    pool = None
    if workers > 1:
        import concurrent.futures

        pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers,
            initializer=lambda: torch.set_num_threads(max(1, args.threads // workers)),  # per thread
        )

    def slice_loss_backward(b, start, end):
        part = {k: b[k][start:end] for k in ("src", "src_lengths", "tgt_in", "tgt_out")}
        loss = label_smoothed_loss(model(part["src"], part["src_lengths"], part["tgt_in"]), part["tgt_out"], args.label_smoothing)
        loss.backward()
        return loss.item()

    def optimizer_step(acc, t3):
        """Clips the gradient and steps Adam; the time since `t3` goes to acc["optimizer"]."""
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        t4 = time.perf_counter()
        if acc is not None:
            acc["optimizer"] += t4 - t3

    def parallel_step(b, acc):
        t0 = time.perf_counter()
        opt.zero_grad()
        futures = [pool.submit(slice_loss_backward, b, s, e) for s, e in split_rows(b["tgt_out"].ne(PAD_ID).sum(1).tolist(), workers)]
        for f in futures:
            f.result()
        t3 = time.perf_counter()
        optimizer_step(acc, t3)
        if acc is not None:
            acc["backward"] += t3 - t0  # forward, loss and backward run together

    def step(b, acc):
        if pool is not None:
            return parallel_step(b, acc)
        t0 = time.perf_counter()
        logits = model(b["src"], b["src_lengths"], b["tgt_in"])
        t1 = time.perf_counter()
        loss = label_smoothed_loss(logits, b["tgt_out"], args.label_smoothing)
        loss.item()
        t2 = time.perf_counter()
        opt.zero_grad()
        loss.backward()
        t3 = time.perf_counter()
        optimizer_step(acc, t3)
        if acc is not None:
            acc["forward"] += t1 - t0
            acc["loss"] += t2 - t1
            acc["backward"] += t3 - t2

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
                "workers": workers,
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
