"""Micro-benchmark of the per-step vocabulary work of beam search (same libtorch ops as
model::beam): today's `log_softmax -> + beam scores -> topk(2k) over beam x vocab` against
`per-row topk(2k) of the logits, then logsumexp and beam scores on [rows, 2k] only`, which
selects the same candidates with two passes over [rows, vocab] fewer and no big temporaries.

    python beam_step_micro.py [--rows 640] [--vocab 8000] [--dim 256] [--iters 100]
"""

import argparse
import time

import torch


def current(logits, scores, k):
    lp = logits.log_softmax(-1)
    lp[:, 0] = float("-inf")
    lp[:, 2] = float("-inf")
    totals = lp + scores.unsqueeze(1)
    return totals.view(-1, k * lp.size(1)).topk(2 * k, -1)


def lean(logits, scores, k):
    vocab = logits.size(1)
    lse = torch.logsumexp(logits, -1, keepdim=True)  # normalise before banning, as `current`
    logits[:, 0] = float("-inf")  # banned ids, in place on the fresh logits
    logits[:, 2] = float("-inf")
    top, idx = logits.topk(2 * k, -1)  # a sentence's best 2k lie within each row's best 2k
    cand = (top - lse + scores.unsqueeze(1)).view(-1, 2 * k * k)
    s, j = cand.topk(2 * k, -1)
    rows = j // (2 * k)
    flat = idx.view(-1, 2 * k * k).gather(1, j) + rows * vocab
    return s, flat


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=640, help="batch x beam rows")
    p.add_argument("--vocab", type=int, default=8000)
    p.add_argument("--dim", type=int, default=256, help="attentional vector size")
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--iters", type=int, default=100)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    proj = torch.nn.Linear(a.dim, a.vocab)
    x = torch.randn(a.rows, a.dim)
    scores = -torch.rand(a.rows) * 10
    with torch.no_grad():
        s1, i1 = current(proj(x), scores, a.beam)
        s2, i2 = lean(proj(x), scores, a.beam)
        assert torch.equal(i1, i2), "different candidates"
        assert torch.allclose(s1, s2, atol=1e-4), "different scores"
        for name, fn in (("current", current), ("lean", lean)) * 3:
            t = time.perf_counter()
            for _ in range(a.iters):
                fn(proj(x), scores, a.beam)
            dt = (time.perf_counter() - t) / a.iters
            print(f"{name:8s} {1000 * dt:.2f} ms/step (projection included)")
        t = time.perf_counter()
        for _ in range(a.iters):
            proj(x)
        print(f"projection alone {1000 * (time.perf_counter() - t) / a.iters:.2f} ms/step")


if __name__ == "__main__":
    main()
