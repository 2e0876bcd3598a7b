"""The PyTorch port (model.py, beam_search.py) checked against the Rust implementation.

`python check_reference.py DIR` compares the port with the outputs that
`cargo bench -p model --bench export_reference -- --out DIR` wrote (logits, loss,
gradients, beam search of small random models) and exits non-zero on any mismatch.
Its own file so that model.py (the network) and beam_search.py (the search, which
imports model.py) import each other in one direction only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from beam_search import beam_search
from model import label_smoothed_loss, load_model, read_safetensors


def _close(name, ours, theirs, tol, failures):
    diff = (ours - theirs).abs().max().item() if ours.numel() else 0.0
    scale = max(1.0, theirs.abs().max().item() if theirs.numel() else 0.0)
    ok = diff <= tol * scale
    if not ok:
        failures.append(f"{name}: max |diff| {diff:.3g} > {tol} x {scale:.3g}")
    return diff


def check(ref_dir: str | Path) -> int:
    """Compares with every `<ref_dir>/<config>/` written by the export_reference bench."""

    torch.set_num_threads(2)
    failures: list[str] = []
    dirs = sorted(p for p in Path(ref_dir).iterdir() if (p / "config.json").is_file())
    if not dirs:
        print(f"{ref_dir}: no reference models", file=sys.stderr)
        return 1
    for d in dirs:
        cfg = json.loads((d / "config.json").read_text())
        model = load_model(cfg, d / "model.safetensors")
        batch = read_safetensors(d / "batch.safetensors")
        ref = read_safetensors(d / "outputs.safetensors")
        model.eval()
        with torch.no_grad():
            logits = model(batch["src"], batch["src_lengths"], batch["tgt_in"])
        d_logits = _close(f"{d.name} logits", logits, ref["logits"], 1e-4, failures)
        model.train()  # dropout is 0 in the reference configs: deterministic
        model.zero_grad()
        loss = label_smoothed_loss(model(batch["src"], batch["src_lengths"], batch["tgt_in"]), batch["tgt_out"], 0.1)
        loss.backward()
        d_loss = _close(f"{d.name} loss", loss.detach().reshape(1), ref["loss"], 1e-5, failures)
        d_grad = 0.0
        for name, p in model.named_parameters():
            d_grad = max(d_grad, _close(f"{d.name} grad.{name}", p.grad, ref[f"grad.{name}"], 1e-4, failures))
        missing = {k[5:] for k in ref if k.startswith("grad.")} - {n for n, _ in model.named_parameters()}
        if missing:
            failures.append(f"{d.name}: parameters missing in the port: {sorted(missing)}")
        model.eval()
        hyps = beam_search(model, batch["src"], batch["src_lengths"], beam=3, max_len_a=1.5, max_len_b=10, alpha=0.6)
        ours = json.loads((d / "beam.json").read_text())
        same = sum(h[0] == o["tokens"] for h, o in zip(hyps, ours))
        d_score = max(abs(h[1] - o["score"]) for h, o in zip(hyps, ours))
        if same != len(ours) or d_score > 1e-3:
            failures.append(f"{d.name} beam: {same}/{len(ours)} identical, max score diff {d_score:.3g}")
        print(
            f"{d.name}: logits max|diff| {d_logits:.2e}, loss {d_loss:.2e}, grads {d_grad:.2e}, "
            f"beam {same}/{len(ours)} identical"
        )
    for f in failures:
        print("MISMATCH", f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: check_reference.py REFERENCE_DIR", file=sys.stderr)
        sys.exit(2)
    sys.exit(check(sys.argv[1]))
