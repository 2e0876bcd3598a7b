"""The lstm-nmt network (model::Seq2Seq) as an eager PyTorch nn.Module.

Same parameters, same names (a bundle's `model.safetensors` loads with
`load_state_dict(strict=True)`), same equations as model/src/*.rs:

- embeddings (source/target, optionally one shared matrix), dropout on them;
- encoder: stack of (bidirectional) LSTM layers over packed sequences;
- bridge: decoder layer l starts from encoder layer min(l, L_enc - 1), both
  directions concatenated; h = tanh(W_h s + b), c = W_c s + b;
- decoder: unidirectional LSTM stack, one step at a time, input feeding
  ([embedding; previous attentional vector]);
- Luong attention (dot, general with precomputed keys, or Bahdanau's MLP) with a
  masked softmax; attentional vector h~ = tanh(W_c [context; h_t]), dropout on it;
- output projection (own linear, or tied to the target embedding plus a bias).

check_reference.py compares this module (and beam_search.py) with the outputs
of the Rust implementation.
"""

from __future__ import annotations

import json
import math
import struct
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3

_DTYPES = {
    "F32": torch.float32,
    "F64": torch.float64,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Reads a safetensors file.

    Written out (the format is an 8-byte little-endian header size, a JSON header
    and raw little-endian data) because the project venv does not ship the
    `safetensors` package and the benchmarks should run on a fresh set-up.
    """
    data = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    body = memoryview(data)[8 + n :]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        dtype = _DTYPES[info["dtype"]]
        raw = body[begin:end]
        t = torch.frombuffer(bytearray(raw), dtype=dtype) if end > begin else torch.empty(0, dtype=dtype)
        out[name] = t.reshape(info["shape"]).clone()
    return out


def numbered(tensors: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    """Groups `0000.src`, `0000.tgt_in`, ... (see model/benches/common) into one dict per batch."""
    groups: dict[int, dict[str, torch.Tensor]] = {}
    for name, t in tensors.items():
        i, field = name.split(".", 1)
        groups.setdefault(int(i), {})[field] = t
    return [groups[i] for i in sorted(groups)]


class Attention(nn.Module):
    def __init__(self, kind: str, enc_dim: int, query_dim: int):
        super().__init__()
        self.kind = kind
        if kind == "general":
            self.key = nn.Linear(enc_dim, query_dim, bias=False)
        elif kind == "mlp":
            self.key = nn.Linear(enc_dim, query_dim)
            self.query = nn.Linear(query_dim, query_dim, bias=False)
            self.score = nn.Linear(query_dim, 1, bias=False)
        elif kind != "dot":
            raise ValueError(f"unknown attention {kind!r}")

    def keys(self, enc_out):
        """enc_out: [B, S, E] -> [B, S, H], once per sentence."""
        return enc_out if self.kind == "dot" else self.key(enc_out)

    def forward(self, query, keys, values, mask):
        """query [B, H], keys [B, S, H], values [B, S, E], mask [B, S] bool -> context [B, E], weights [B, S].

        query may also be [B*g, H] (g > 1): rows i*g .. (i+1)*g attend over sentence i, as
        beam_search.py --grouped asks (model::attention's grouped path)."""
        rows, sentences = query.size(0), keys.size(0)
        if sentences and rows != sentences and rows % sentences == 0:
            q = query.view(sentences, rows // sentences, -1)
            if self.kind == "mlp":
                scores = self.score(torch.tanh(keys.unsqueeze(1) + self.query(q).unsqueeze(2))).squeeze(3)
            else:
                scores = torch.bmm(q, keys.transpose(1, 2))
            weights = scores.masked_fill(~mask.unsqueeze(1), float("-inf")).softmax(-1)
            context = torch.bmm(weights, values)
            return context.view(rows, -1), weights.view(rows, -1)
        if self.kind == "mlp":
            scores = self.score(torch.tanh(keys + self.query(query).unsqueeze(1))).squeeze(2)
        else:
            scores = torch.bmm(keys, query.unsqueeze(2)).squeeze(2)
        weights = scores.masked_fill(~mask, float("-inf")).softmax(-1)
        context = torch.bmm(weights.unsqueeze(1), values).squeeze(1)
        return context, weights


class EncoderOutput:
    """outputs [B, S, E], keys [B, S, H], mask [B, S], final (h, c) [L*D, B, H]."""

    def __init__(self, outputs, keys, mask, h, c):
        self.outputs, self.keys, self.mask, self.h, self.c = outputs, keys, mask, h, c

    def index_select(self, index):
        return EncoderOutput(
            self.outputs.index_select(0, index),
            self.keys.index_select(0, index),
            self.mask.index_select(0, index),
            self.h.index_select(1, index),
            self.c.index_select(1, index),
        )


class DecoderState:
    """h, c [L, B, H]; feed [B, A] (previous attentional vector)."""

    def __init__(self, h, c, feed):
        self.h, self.c, self.feed = h, c, feed

    def index_select(self, index):
        return DecoderState(self.h.index_select(1, index), self.c.index_select(1, index), self.feed.index_select(0, index))


class Encoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.rnn = nn.LSTM(
            cfg["embed_dim"],
            cfg["hidden_dim"],
            cfg["encoder_layers"],
            batch_first=True,
            dropout=cfg["dropout"] if cfg["encoder_layers"] > 1 else 0.0,
            bidirectional=cfg["bidirectional"],
        )
        self.dropout = cfg["dropout"]

    def forward(self, embedded, lengths):
        x = F.dropout(embedded, self.dropout, self.training)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, (h, c) = self.rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.size(1))
        steps = torch.arange(x.size(1), device=x.device)
        mask = steps.unsqueeze(0) < lengths.to(x.device).unsqueeze(1)
        return out, mask, h, c


class Decoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        hidden = cfg["hidden_dim"]
        self.attentional_dim = cfg["embed_dim"] if cfg["tie_output"] else hidden
        self.input_feeding = cfg["input_feeding"]
        input_dim = cfg["embed_dim"] + (self.attentional_dim if self.input_feeding else 0)
        self.layers = cfg["decoder_layers"]
        self.rnn = nn.LSTM(
            input_dim, hidden, self.layers, batch_first=True, dropout=cfg["dropout"] if self.layers > 1 else 0.0
        )
        self.enc_layers = cfg["encoder_layers"]
        self.enc_dirs = 2 if cfg["bidirectional"] else 1
        enc_dim = hidden * self.enc_dirs
        self.attention = Attention(cfg["attention"], enc_dim, hidden)
        self.bridge_h = nn.Linear(enc_dim, hidden)
        self.bridge_c = nn.Linear(enc_dim, hidden)
        self.combine = nn.Linear(enc_dim + hidden, self.attentional_dim, bias=False)
        self.dropout = cfg["dropout"]
        self.register_buffer(
            "pick", torch.arange(self.layers).clamp(max=self.enc_layers - 1), persistent=False
        )

    def init_state(self, enc: EncoderOutput) -> DecoderState:
        batch = enc.outputs.size(0)

        def join(s):  # [Le*D, B, H] -> [Le, B, D*H]
            return (
                s.view(self.enc_layers, self.enc_dirs, batch, s.size(2))
                .permute(0, 2, 1, 3)
                .reshape(self.enc_layers, batch, -1)
            )

        h = torch.tanh(self.bridge_h(join(enc.h).index_select(0, self.pick))).contiguous()
        c = self.bridge_c(join(enc.c).index_select(0, self.pick)).contiguous()
        feed = enc.outputs.new_zeros(batch, self.attentional_dim)
        return DecoderState(h, c, feed)

    def step(self, embedded, state: DecoderState, enc: EncoderOutput):
        """embedded [B, embed] -> attentional [B, A], attention [B, S], next state."""
        x = torch.cat([embedded, state.feed], -1) if self.input_feeding else embedded
        out, (h, c) = self.rnn(x.unsqueeze(1), (state.h, state.c))
        top = out.squeeze(1)
        context, attention = self.attention(top, enc.keys, enc.outputs, enc.mask)
        attentional = torch.tanh(self.combine(torch.cat([context, top], -1)))
        attentional = F.dropout(attentional, self.dropout, self.training)
        return attentional, attention, DecoderState(h, c, attentional)


class Seq2Seq(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        cfg = {
            "bidirectional": True,
            "dropout": 0.3,
            "cell": "fused-lstm",
            "attention": "general",
            "input_feeding": True,
            "share_embeddings": False,
            "tie_output": False,
            **cfg,
        }
        if cfg["cell"] not in ("fused-lstm", "lstm"):
            raise ValueError(f"only LSTM cells are ported, got {cfg['cell']!r}")
        self.cfg = cfg
        v_src, v_tgt, e = cfg["src_vocab_size"], cfg["tgt_vocab_size"], cfg["embed_dim"]
        self.src_embedding = nn.Parameter(torch.randn(v_src, e) / math.sqrt(e))
        self.shared = cfg["share_embeddings"]
        if not self.shared:
            self.tgt_embedding = nn.Parameter(torch.randn(v_tgt, e) / math.sqrt(e))
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        if cfg["tie_output"]:
            self.output_bias = nn.Parameter(torch.zeros(v_tgt))
        else:
            self.output = nn.Linear(self.decoder.attentional_dim, v_tgt)
        self.dropout = cfg["dropout"]

    def target_embedding(self):
        return self.src_embedding if self.shared else self.tgt_embedding

    def encode(self, src, lengths) -> EncoderOutput:
        """src [B, S] i64, lengths [B] i64."""
        embedded = F.embedding(src, self.src_embedding, padding_idx=PAD_ID)
        out, mask, h, c = self.encoder(embedded, lengths)
        return EncoderOutput(out, self.decoder.attention.keys(out), mask, h, c)

    def project(self, attentional):
        """[.., A] -> [.., V] logits."""
        if self.cfg["tie_output"]:
            return F.linear(attentional, self.target_embedding(), self.output_bias)
        return self.output(attentional)

    def decode_step(self, prev, state, enc):
        """prev [B] i64 -> attentional [B, A], attention [B, S], next state."""
        embedded = F.dropout(F.embedding(prev, self.target_embedding(), padding_idx=PAD_ID), self.dropout, self.training)
        return self.decoder.step(embedded, state, enc)

    def forward(self, src, src_lengths, tgt_in):
        """Teacher forcing: tgt_in [B, T] (BOS + target) -> logits [B, T, V]."""
        enc = self.encode(src, src_lengths)
        state = self.decoder.init_state(enc)
        embedded = F.dropout(F.embedding(tgt_in, self.target_embedding(), padding_idx=PAD_ID), self.dropout, self.training)
        outs = []
        for t in range(tgt_in.size(1)):
            attentional, _, state = self.decoder.step(embedded[:, t], state, enc)
            outs.append(attentional)
        return self.project(torch.stack(outs, 1))


def label_smoothed_loss(logits, target, epsilon):
    """model::loss::label_smoothed_nll (fairseq's formula), summed over non-pad positions."""
    vocab = logits.size(-1)
    lprobs = logits.float().log_softmax(-1).view(-1, vocab)
    target = target.reshape(-1, 1)
    pad = target.eq(PAD_ID)
    nll = (-lprobs.gather(1, target)).masked_fill(pad, 0.0).sum()
    smooth = (-lprobs.sum(-1, keepdim=True)).masked_fill(pad, 0.0).sum()
    eps_i = epsilon / (vocab - 1)
    return nll * (1.0 - epsilon - eps_i) + smooth * eps_i


def load_model(config: dict, weights_path: str | Path) -> Seq2Seq:
    """config: a ModelConfig dict (bundle config.json's `model`, or the dict itself)."""
    model = Seq2Seq(config.get("model", config))
    model.load_state_dict(read_safetensors(weights_path), strict=True)
    return model


def load_bundle(bundle_dir: str | Path) -> Seq2Seq:
    d = Path(bundle_dir)
    return load_model(json.loads((d / "config.json").read_text()), d / "model.safetensors")
