"""Batched beam search in eager PyTorch, and its speed benchmark.

A straightforward implementation in the style of fairseq's SequenceGenerator /
Joey NMT: all `batch x beam` hypotheses advance together, one `topk` over
`beam x vocab` per sentence per step, bookkeeping in Python lists, finished
sentences leave the batch. The rules are those of model::beam (so that the
outputs can be compared token for token): PAD and BOS never produced, 2k
candidates, only EOS among the first k ends a hypothesis, GNMT length penalty
((5 + |Y|) / 6)^alpha for ranking, max length floor(a |src|) + b (open beams end
there), and a sentence stops when k hypotheses are finished and no open beam
can still rank above the k-th. With --settled-best it stops as soon as one
hypothesis is finished and no open beam can still rank above it (what
model::beam does when one output per sentence is asked for: same outputs,
fewer steps).

    python beam_search.py --bundle DIR --batches test_batches.safetensors --out hyps.json
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import sys
import time

import torch

from model import BOS_ID, EOS_ID, PAD_ID, load_bundle, numbered, read_safetensors


def _divisor(alpha: float, length: int) -> float:
    return ((5.0 + length) / 6.0) ** alpha


@torch.no_grad()
def beam_search(model, src, lengths, beam=5, max_len_a=1.5, max_len_b=10, alpha=0.6, settled_best=False, grouped=False):
    """src [B, S] i64, lengths [B] i64 -> [(tokens, log-probability)] per sentence, in input order."""
    k = beam
    # How many finished hypotheses must be settled before a sentence stops.
    settle = 1 if settled_best else k
    batch = src.size(0)
    src_lens = lengths.tolist()
    limits = [max(math.floor(max_len_a * n) + max_len_b, 1) for n in src_lens]
    # Per sentence: open beams [(tokens, score)], finished [(rank, tokens, score)].
    beams = [[([], 0.0)] for _ in range(batch)]
    finished: list[list] = [[] for _ in range(batch)]

    enc = model.encode(src, lengths)
    state = model.decoder.init_state(enc)
    repeat = torch.arange(batch).repeat_interleave(k)
    if grouped:
        # One copy of the encoder outputs per sentence; attention takes each sentence's k rows
        # as a group of queries (model.Attention), and enc is gathered only when sentences leave.
        state = state.index_select(repeat)
    else:
        enc, state = enc.index_select(repeat), state.index_select(repeat)
    prev = torch.full((batch * k,), BOS_ID, dtype=torch.long)
    active = list(range(batch))
    vocab = model.cfg["tgt_vocab_size"]
    candidates = min(2 * k, k * vocab)
    neg_inf = float("-inf")

    for t in range(10**9):
        attentional, _, state = model.decode_step(prev, state, enc)
        lprobs = model.project(attentional).log_softmax(-1)
        lprobs[:, PAD_ID] = neg_inf
        lprobs[:, BOS_ID] = neg_inf
        scores = [neg_inf] * (len(active) * k)
        for i, s in enumerate(active):
            for j, (_, score) in enumerate(beams[s]):
                scores[i * k + j] = score
        totals = lprobs + torch.tensor(scores, dtype=torch.float32).unsqueeze(1)
        top_scores, top_index = totals.view(len(active), -1).topk(candidates, -1)
        top_scores, top_index = top_scores.tolist(), top_index.tolist()

        next_rows, next_tokens, still_active, kept_positions = [], [], [], []
        for i, s in enumerate(active):
            new_beams, new_rows = [], []
            for c in range(candidates):
                score = top_scores[i][c]
                if score == neg_inf:
                    break
                beam_no, token = divmod(top_index[i][c], vocab)
                parent_tokens = beams[s][beam_no][0]
                if token == EOS_ID:
                    if c < k:
                        rank = score / _divisor(alpha, len(parent_tokens) + 1)
                        finished[s].append((rank, parent_tokens, score))
                elif len(new_beams) < k:
                    new_beams.append((parent_tokens + [token], score))
                    new_rows.append(i * k + beam_no)
                if len(new_beams) == k and c + 1 >= k:
                    break
            if t + 1 >= limits[s]:
                for tokens, score in new_beams:
                    finished[s].append((score / _divisor(alpha, len(tokens)), tokens, score))
                new_beams = []
            beams[s] = new_beams
            if not new_beams:
                continue
            if len(finished[s]) >= settle:
                finished[s].sort(key=lambda f: -f[0])
                kth = finished[s][settle - 1][0]
                best_div = max(_divisor(alpha, limits[s] + 1), _divisor(alpha, 1))
                if max(b[1] for b in new_beams) / best_div <= kth:
                    continue
            still_active.append(s)
            kept_positions.append(i)
            new_rows += [new_rows[-1]] * (k - len(new_rows))
            toks = [b[0][-1] for b in new_beams]
            toks += [toks[-1]] * (k - len(toks))
            next_rows += new_rows
            next_tokens += toks
        if not still_active:
            break
        index = torch.tensor(next_rows, dtype=torch.long)
        if grouped:
            if len(still_active) != len(active):
                enc = enc.index_select(torch.tensor(kept_positions, dtype=torch.long))
            state = state.index_select(index)
        else:
            enc, state = enc.index_select(index), state.index_select(index)
        prev = torch.tensor(next_tokens, dtype=torch.long)
        active = still_active

    out = []
    for s in range(batch):
        fin = sorted(finished[s], key=lambda f: -f[0])
        out.append((fin[0][1], fin[0][2]) if fin else ([], 0.0))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", required=True, help="bundle folder (config.json, model.safetensors)")
    p.add_argument("--batches", required=True, help="test_batches.safetensors written by the prepare bench")
    p.add_argument("--out", help="write the hypotheses (ids per input line) here as JSON")
    p.add_argument("--beam", type=int, default=5, help="beam size")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--max-batches", type=int, help="decode only the first N batches (for profiling)")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="batches decoded side by side by Python threads, each with threads/workers intra-op "
        "threads (torch ops release the GIL; the Python bookkeeping holds it)",
    )
    p.add_argument(
        "--settled-best",
        action="store_true",
        help="stop a sentence once its best hypothesis can no longer change (default: once k are settled)",
    )
    p.add_argument(
        "--grouped",
        action="store_true",
        help="keep the encoder outputs once per sentence and attend with each sentence's k rows as one group "
        "of queries (as the Rust search does); default: repeat them k times and gather them every step",
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = load_bundle(args.bundle)
    model.eval()
    all_batches = numbered(read_safetensors(args.batches))
    batches = all_batches[: args.max_batches]
    results: dict[int, list[int]] = {}
    sentences = sum(b["src"].size(0) for b in batches)
    workers = max(1, args.workers)
    torch.set_num_threads(max(1, args.threads // workers))

    def decode(b):
        torch.set_num_threads(max(1, args.threads // workers))  # per calling thread
        return b, beam_search(
            model, b["src"], b["lengths"], beam=args.beam, settled_best=args.settled_best, grouped=args.grouped
        )

    start = time.perf_counter()
    if workers == 1:
        decoded = map(decode, batches)
    else:
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers)
        decoded = pool.map(decode, batches)
    for b, hyps in decoded:
        for i, (tokens, _) in zip(b["index"].tolist(), hyps):
            results[i] = tokens
    elapsed = time.perf_counter() - start
    out_tokens = sum(len(t) for t in results.values())
    print(
        json.dumps(
            {
                "impl": "pytorch",
                "bench": "beam_search",
                "settled_best": args.settled_best,
                "grouped": args.grouped,
                "workers": workers,
                "beam": args.beam,
                "threads": args.threads,
                "sentences": sentences,
                "output_tokens": out_tokens,
                "seconds": elapsed,
                "sentences_per_s": sentences / elapsed,
            }
        )
    )
    if args.out:
        with open(args.out, "w") as f:
            json.dump([results.get(i, []) for i in range(sum(b["src"].size(0) for b in all_batches))], f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
