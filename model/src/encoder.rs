//! The encoder: embeddings, then a (bidirectional) recurrent stack.

use tch::{nn, Kind, Tensor};

use crate::dropout::dropout;

use crate::config::ModelConfig;
use crate::gates::{GateSide, StepContext};
use crate::rnn::{RnnShape, RnnStack, RnnState};

/// What the decoder needs from the encoder, for a batch of `B` sentences of up to `S` tokens.
#[derive(Debug)]
pub struct EncoderOutput {
    /// `[B, S, E]`, zero on padding (`E` = hidden size × directions).
    pub outputs: Tensor,
    /// Attention keys derived from `outputs`, `[B, S, H]`.
    pub keys: Tensor,
    /// `[B, S]` bool, true on real tokens.
    pub mask: Tensor,
    /// Final states at each sentence's last real token, `[layers * directions, B, H]`.
    pub final_state: RnnState,
}

impl EncoderOutput {
    /// Keeps or repeats sentences (beam expansion, dropping finished sentences).
    /// index: `[B']` i64.
    pub fn index_select(&self, index: &Tensor) -> Self {
        Self {
            outputs: self.outputs.index_select(0, index),
            keys: self.keys.index_select(0, index),
            mask: self.mask.index_select(0, index),
            final_state: self.final_state.index_select(index),
        }
    }

    /// The first `rows` sentences (views, no copy).
    pub fn first_rows(&self, rows: i64) -> Self {
        Self {
            outputs: self.outputs.narrow(0, 0, rows),
            keys: self.keys.narrow(0, 0, rows),
            mask: self.mask.narrow(0, 0, rows),
            final_state: self.final_state.first_rows(rows),
        }
    }
}

/// The recurrent part of the encoder (embedding lives in [`crate::Seq2Seq`],
/// because it may be shared with the decoder).
#[derive(Debug)]
pub struct Encoder {
    pub rnn: RnnStack,
    dropout: f64,
}

impl Encoder {
    pub fn new(path: &nn::Path, cfg: &ModelConfig) -> Self {
        let shape = RnnShape {
            cell: cfg.cell,
            executor: cfg.executor,
            side: GateSide::Encoder,
            input_dim: cfg.embed_dim,
            hidden_dim: cfg.hidden_dim,
            layers: cfg.encoder_layers,
            bidirectional: cfg.bidirectional,
            dropout: cfg.dropout,
        };
        Self {
            rnn: RnnStack::compressed(&(path / "rnn"), shape, cfg.low_rank, cfg.int8),
            dropout: cfg.dropout,
        }
    }

    /// embedded: `[B, S, embed]`; lengths: `[B]` i64 in `1..=S` → outputs `[B, S, E]`,
    /// `[B, S]` mask, final states. Keys are filled in by the caller.
    pub fn forward(
        &self,
        embedded: &Tensor,
        lengths: &Tensor,
        ctx: &StepContext<'_>,
    ) -> (Tensor, Tensor, RnnState) {
        let embedded = dropout(embedded, self.dropout, ctx.train);
        let (outputs, state) = self.rnn.forward_seq(&embedded, lengths, ctx);
        let steps = Tensor::arange(embedded.size()[1], (Kind::Int64, embedded.device()));
        let mask = steps
            .unsqueeze(0)
            .lt_tensor(&lengths.to_device(embedded.device()).unsqueeze(1));
        (outputs, mask, state)
    }
}
