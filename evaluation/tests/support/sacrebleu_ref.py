"""Scores jobs with sacreBLEU's Python API for evaluation/tests/sacrebleu_parity.rs.

Reads a JSON list of jobs (argv[1]) and prints a JSON list of results.
Each job: {"metric": "bleu"|"chrf", "hyps": [...], "refs": [[...], ...] (streams),
"sentence": bool, "options": {...keyword arguments of BLEU or CHRF...}}.
"""
import json
import sys

from sacrebleu.metrics import BLEU, CHRF


def main():
    with open(sys.argv[1], encoding="utf-8") as fh:
        jobs = json.load(fh)
    results = []
    for job in jobs:
        metric_cls = BLEU if job["metric"] == "bleu" else CHRF
        refs = job["refs"]
        hyps = job["hyps"]
        if job["sentence"]:
            metric = metric_cls(**job["options"])
            scores = [
                metric.sentence_score(h, [stream[i] for stream in refs]).score
                for i, h in enumerate(hyps)
            ]
            results.append({"scores": scores, "signature": str(metric.get_signature())})
        else:
            metric = metric_cls(**job["options"])
            s = metric.corpus_score(hyps, refs)
            res = {"score": s.score, "signature": str(metric.get_signature())}
            if job["metric"] == "bleu":
                res.update(counts=[float(c) for c in s.counts], totals=[float(t) for t in s.totals],
                           sys_len=s.sys_len, ref_len=s.ref_len, bp=s.bp,
                           precisions=s.precisions)
            results.append(res)
    json.dump(results, sys.stdout, ensure_ascii=True)


if __name__ == "__main__":
    main()
