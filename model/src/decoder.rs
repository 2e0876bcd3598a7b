//! The decoder: a unidirectional recurrent stack with input feeding and
//! attention, producing Luong's attentional vector `h~_t = tanh(W_c [c_t; h_t])`.

use tch::{nn, nn::Module, Kind, Tensor};

use crate::dropout::dropout;

use crate::attention::Attention;
use crate::config::ModelConfig;
use crate::encoder::EncoderOutput;
use crate::gates::{GateSide, StepContext};
use crate::linear::Linear;
use crate::rnn::{PreparedStack, RnnShape, RnnStack, RnnState};

/// Decoder state between steps, for `B` hypotheses.
#[derive(Debug)]
pub struct DecoderState {
    /// `[layers, B, H]`
    pub rnn: RnnState,
    /// Previous attentional vector `h~_{t-1}`, `[B, A]` (zeros at the start).
    pub input_feed: Tensor,
    /// How many steps were taken (the next step's index); keys the gate noise and recorders.
    pub step: i64,
}

impl DecoderState {
    /// Keeps or repeats hypotheses. index: `[B']` i64.
    pub fn index_select(&self, index: &Tensor) -> Self {
        Self {
            rnn: self.rnn.index_select(index),
            input_feed: self.input_feed.index_select(0, index),
            step: self.step,
        }
    }

    /// The first `rows` hypotheses.
    pub fn first_rows(&self, rows: i64) -> Self {
        Self {
            rnn: self.rnn.first_rows(rows),
            input_feed: self.input_feed.narrow(0, 0, rows),
            step: self.step,
        }
    }
}

/// What one decoder step returns.
#[derive(Debug)]
pub struct DecoderStep {
    /// `h~_t`, `[B, A]`: feeds the output projection and the next step.
    pub attentional: Tensor,
    /// `[B, S]`
    pub attention: Tensor,
    pub state: DecoderState,
}

#[derive(Debug)]
pub struct Decoder {
    pub rnn: RnnStack,
    attention: Attention,
    /// Encoder final states (both directions concatenated) → decoder initial `h` (tanh) and `c`.
    bridge_h: nn::Linear,
    bridge_c: Option<nn::Linear>,
    /// `W_c`: `[c_t; h_t]` → `h~_t`.
    combine: Linear,
    input_feeding: bool,
    attentional_dim: i64,
    encoder_layers: i64,
    encoder_directions: i64,
    dropout: f64,
}

impl Decoder {
    pub fn new(path: &nn::Path, cfg: &ModelConfig) -> Self {
        let a = cfg.attentional_dim();
        let input_dim = cfg.embed_dim + if cfg.input_feeding { a } else { 0 };
        let shape = RnnShape {
            cell: cfg.cell,
            executor: cfg.executor,
            side: GateSide::Decoder,
            input_dim,
            hidden_dim: cfg.hidden_dim,
            layers: cfg.decoder_layers,
            bidirectional: false,
            dropout: cfg.dropout,
        };
        let enc_dim = cfg.encoder_output_dim();
        let int8_linear = cfg.int8.is_some_and(|i| i.linear);
        Self {
            rnn: RnnStack::compressed(&(path / "rnn"), shape, cfg.low_rank, cfg.int8),
            attention: Attention::with_int8(
                &(path / "attention"),
                cfg.attention,
                enc_dim,
                cfg.hidden_dim,
                int8_linear,
            ),
            bridge_h: nn::linear(
                path / "bridge_h",
                enc_dim,
                cfg.hidden_dim,
                Default::default(),
            ),
            bridge_c: cfg.cell.is_lstm().then(|| {
                nn::linear(
                    path / "bridge_c",
                    enc_dim,
                    cfg.hidden_dim,
                    Default::default(),
                )
            }),
            combine: Linear::new(
                path / "combine",
                enc_dim + cfg.hidden_dim,
                a,
                false,
                int8_linear,
            ),
            input_feeding: cfg.input_feeding,
            attentional_dim: a,
            encoder_layers: cfg.encoder_layers,
            encoder_directions: if cfg.bidirectional { 2 } else { 1 },
            dropout: cfg.dropout,
        }
    }

    /// Attention keys for the encoder outputs `[B, S, E]` → `[B, S, H]`.
    pub fn attention_keys(&self, encoder_outputs: &Tensor) -> Tensor {
        self.attention.keys(encoder_outputs)
    }

    /// Initial state from the encoder's final states: decoder layer `l` starts
    /// from encoder layer `min(l, encoder_layers - 1)`, both directions joined.
    pub fn init_state(&self, enc: &EncoderOutput) -> DecoderState {
        let batch = enc.outputs.size()[0];
        let join = |state: &Tensor| -> Tensor {
            // [Le*D, B, H] → [Le, B, D*H]
            let h = state.size()[2];
            state
                .view([self.encoder_layers, self.encoder_directions, batch, h])
                .permute([0, 2, 1, 3])
                .reshape([self.encoder_layers, batch, self.encoder_directions * h])
        };
        let layers = self.rnn.shape().layers;
        let pick = Tensor::arange(layers, (Kind::Int64, enc.outputs.device()))
            .clamp_max(self.encoder_layers - 1);
        let h = self
            .bridge_h
            .forward(&join(&enc.final_state.h).index_select(0, &pick))
            .tanh();
        let c = match (&self.bridge_c, &enc.final_state.c) {
            (Some(bridge), Some(c)) => Some(bridge.forward(&join(c).index_select(0, &pick))),
            _ => None,
        };
        let input_feed = Tensor::zeros(
            [batch, self.attentional_dim],
            (enc.outputs.kind(), enc.outputs.device()),
        );
        DecoderState {
            rnn: RnnState {
                h: h.contiguous(),
                c: c.map(|c| c.contiguous()),
            },
            input_feed,
            step: 0,
        }
    }

    /// One step. embedded: `[B, embed]` (the previous target token) → attentional
    /// vector `[B, A]`, attention `[B, S]`, next state.
    pub fn step(
        &self,
        embedded: &Tensor,
        state: &DecoderState,
        enc: &EncoderOutput,
        ctx: &StepContext<'_>,
    ) -> DecoderStep {
        let input = if self.input_feeding {
            Tensor::cat(&[embedded, &state.input_feed], -1)
        } else {
            embedded.shallow_clone()
        };
        let (top, rnn) = self.rnn.step(&input, &state.rnn, ctx, state.step);
        self.attend(top, rnn, enc, ctx.train, state.step)
    }

    /// Prepares a teacher-forced pass: the embedding columns of the first recurrent layer's
    /// input are projected for all steps at once ([`Decoder::embedded_gates`]) and each step
    /// runs [`Decoder::step_prepared`]. `None` where the stack has no such path (GRU). The
    /// weights hold the gate temperature of the pass `ctx`.
    pub fn prepare(&self, embed_dim: i64, ctx: &StepContext<'_>) -> Option<PreparedStack> {
        self.rnn.prepare(embed_dim, ctx)
    }

    /// The first layer's gate pre-activations from the embeddings of every step.
    /// embedded: `[.., embed]` → `[.., 4H]`
    pub fn embedded_gates(&self, prepared: &PreparedStack, embedded: &Tensor) -> Tensor {
        self.rnn.ahead(prepared, embedded)
    }

    /// [`Decoder::step`] with the embedding's contribution already projected.
    /// gates: `[B, 4H]`, a row of [`Decoder::embedded_gates`].
    pub fn step_prepared(
        &self,
        prepared: &PreparedStack,
        gates: &Tensor,
        state: &DecoderState,
        enc: &EncoderOutput,
        ctx: &StepContext<'_>,
    ) -> DecoderStep {
        let late = if self.input_feeding {
            state.input_feed.shallow_clone()
        } else {
            state.input_feed.narrow(1, 0, 0)
        };
        let (top, rnn) = self
            .rnn
            .step_prepared(prepared, gates, &late, &state.rnn, ctx, state.step);
        self.attend(top, rnn, enc, ctx.train, state.step)
    }

    /// The rest of a step once the recurrent stack has run: attention, `h~_t`, dropout.
    /// top: `[B, H]` the top layer's output; rnn: the stack's new state; step: the index of
    /// the step just taken.
    fn attend(
        &self,
        top: Tensor,
        rnn: RnnState,
        enc: &EncoderOutput,
        train: bool,
        step: i64,
    ) -> DecoderStep {
        let (context, attention) = self
            .attention
            .forward(&top, &enc.keys, &enc.outputs, &enc.mask);
        let attentional = self
            .combine
            .forward(&Tensor::cat(&[&context, &top], -1))
            .tanh();
        let attentional = dropout(&attentional, self.dropout, train);
        DecoderStep {
            attentional: attentional.shallow_clone(),
            attention,
            state: DecoderState {
                rnn,
                input_feed: attentional,
                step: step + 1,
            },
        }
    }
}
