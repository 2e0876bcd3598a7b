//! The whole encoder-decoder: embeddings, encoder, decoder, output projection.

use tch::{nn, nn::Module, Device, Kind, Tensor};

use crate::cell::Matrix;
use crate::config::ModelConfig;
use crate::decoder::{Decoder, DecoderState, DecoderStep};
use crate::dropout::dropout;
use crate::encoder::{Encoder, EncoderOutput};
use crate::error::ModelError;
use crate::executor::{Exec, RnnPart};
use crate::gates::StepContext;
use crate::rnn::PreparedStack;

/// An LSTM (or GRU) encoder-decoder with attention.
#[derive(Debug)]
pub struct Seq2Seq {
    config: ModelConfig,
    /// `[src_vocab, embed]`
    src_embedding: Tensor,
    /// `[tgt_vocab, embed]`; the same tensor as `src_embedding` when shared.
    tgt_embedding: Tensor,
    pub encoder: Encoder,
    pub decoder: Decoder,
    /// Untied output projection `A → tgt_vocab`.
    output: Option<nn::Linear>,
    /// Bias of the tied output projection, `[tgt_vocab]`.
    output_bias: Option<Tensor>,
    /// The output projection's weight in int8 (`output_int8_q`, `output_int8_scale`), which
    /// [`Self::project`] runs instead of the float one: int8 bundles with `int8.linear`.
    output_int8: Option<Matrix>,
}

impl Seq2Seq {
    /// Creates the parameters under `root` (randomly initialised).
    pub fn new(root: &nn::Path, config: &ModelConfig) -> Result<Self, ModelError> {
        config.validate()?;
        let init = nn::Init::Randn {
            mean: 0.0,
            stdev: 1.0 / (config.embed_dim as f64).sqrt(),
        };
        let src_embedding = root.var(
            "src_embedding",
            &[config.src_vocab_size, config.embed_dim],
            init,
        );
        let tgt_embedding = if config.share_embeddings {
            src_embedding.shallow_clone()
        } else {
            root.var(
                "tgt_embedding",
                &[config.tgt_vocab_size, config.embed_dim],
                init,
            )
        };
        let (output, output_bias) = if config.tie_output {
            (
                None,
                Some(root.zeros("output_bias", &[config.tgt_vocab_size])),
            )
        } else {
            let a = config.attentional_dim();
            (
                Some(nn::linear(
                    root / "output",
                    a,
                    config.tgt_vocab_size,
                    Default::default(),
                )),
                None,
            )
        };
        let encoder = Encoder::new(&(root / "encoder"), config);
        let decoder = Decoder::new(&(root / "decoder"), config);
        // Created after every float variable, so that a float model draws the same
        // initial values as before int8 existed.
        let output_int8 = config.int8.filter(|i| i.linear).map(|_| {
            let (v, a) = (config.tgt_vocab_size, config.attentional_dim());
            Matrix::int8_var(root, "output", (v, a), 0..v, nn::Init::Const(0.0))
        });
        Ok(Self {
            config: config.clone(),
            src_embedding,
            tgt_embedding,
            encoder,
            decoder,
            output,
            output_bias,
            output_int8,
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The step context of a training (`train`) or inference pass of this model: its gate
    /// activation, and for noisy gates while training a noise seed drawn from the calling
    /// thread's generator ([`crate::random`]). Add a recorder with
    /// [`StepContext::with_recorder`].
    /// Makes the input and forget gates soft or hard at inference from now on (the gates
    /// of training are unchanged).
    pub fn set_gate_inference(&mut self, inference: crate::gates::GateInference) {
        self.config.gates.inference = inference;
    }

    pub fn context(&self, train: bool) -> StepContext<'static> {
        StepContext::new(&self.config.gates, train)
    }

    /// Checks ids and lengths coming from outside before they reach libtorch,
    /// whose kernels would abort the process on an out-of-range id.
    ///
    /// src: `[B, S]` i64; lengths: `[B]` i64.
    pub fn check_source(&self, src: &Tensor, lengths: &Tensor) -> Result<(), ModelError> {
        let size = src.size();
        if size.len() != 2 || lengths.size() != [size[0]] {
            return Err(ModelError::Input(format!(
                "source batch must be [B, S] with lengths [B], got {size:?} and {:?}",
                lengths.size()
            )));
        }
        check_ids("source", src, self.config.src_vocab_size)?;
        if size[0] > 0 {
            let (min, max) = (
                lengths.min().int64_value(&[]),
                lengths.max().int64_value(&[]),
            );
            if min < 1 || max > size[1] {
                return Err(ModelError::Input(format!(
                    "source lengths must be in 1..={}, got {min}..={max}",
                    size[1]
                )));
            }
        }
        Ok(())
    }

    /// Runs the encoder. src: `[B, S]` i64 ids; lengths: `[B]` i64 in `1..=S`.
    pub fn encode(&self, src: &Tensor, lengths: &Tensor, ctx: &StepContext<'_>) -> EncoderOutput {
        let embedded =
            Tensor::embedding(&self.src_embedding, src, vocab::PAD_ID as i64, false, false);
        let (outputs, mask, final_state) = self.encoder.forward(&embedded, lengths, ctx);
        let keys = self.decoder.attention_keys(&outputs);
        EncoderOutput {
            outputs,
            keys,
            mask,
            final_state,
        }
    }

    /// Lays the fused recurrent weights out in cuDNN's buffer again (after their type
    /// changed); nothing happens off CUDA.
    pub fn flatten_for_cudnn(&self) {
        self.encoder.rnn.flatten_for_cudnn();
        self.decoder.rnn.flatten_for_cudnn();
    }

    /// The decoder's state before its first step.
    pub fn init_decoder(&self, enc: &EncoderOutput) -> DecoderState {
        self.decoder.init_state(enc)
    }

    /// Embeds target ids. ids: any shape `[..]` i64 → `[.., embed]`.
    pub fn embed_target(&self, ids: &Tensor) -> Tensor {
        Tensor::embedding(&self.tgt_embedding, ids, vocab::PAD_ID as i64, false, false)
    }

    /// Attentional vectors to vocabulary logits. attentional: `[.., A]` → `[.., V]`.
    ///
    /// In an int8 bundle with `int8.linear`, the int8 copy of the weight runs (on the CPU:
    /// see [`Matrix::linear`]); [`Self::project_float`] is the float reference.
    pub fn project(&self, attentional: &Tensor) -> Tensor {
        match &self.output_int8 {
            Some(weight) => weight.linear(attentional, self.output_projection().1),
            None => self.project_float(attentional),
        }
    }

    /// [`Self::project`] with the float weight ([`Self::output_projection`]), whatever the
    /// bundle holds.
    pub fn project_float(&self, attentional: &Tensor) -> Tensor {
        match (&self.output, &self.output_bias) {
            (Some(linear), _) => linear.forward(attentional),
            (None, bias) => attentional.linear(&self.tgt_embedding, bias.as_ref()),
        }
    }

    /// The output projection's parameters: (weight `[tgt_vocab, A]`, bias `[tgt_vocab]`);
    /// the weight is the target embedding when tied. `project_float(x) = x · weightᵀ + bias`
    /// (and `project(x)` too, unless an int8 copy of the weight runs instead).
    pub fn output_projection(&self) -> (&Tensor, Option<&Tensor>) {
        match (&self.output, &self.output_bias) {
            (Some(linear), _) => (&linear.ws, linear.bs.as_ref()),
            (None, bias) => (&self.tgt_embedding, bias.as_ref()),
        }
    }

    /// One decoder step from the previous tokens, on libtorch's fused step where it
    /// suffices, else on the reference equations. prev: `[B]` i64 → step with attentional
    /// `[B, A]` and attention `[B, S]`; logits come from [`Self::project`].
    pub fn decode_step(
        &self,
        prev: &Tensor,
        state: &DecoderState,
        enc: &EncoderOutput,
        ctx: &StepContext<'_>,
    ) -> DecoderStep {
        let embedded = dropout(&self.embed_target(prev), self.config.dropout, ctx.train);
        self.decoder.step(&embedded, state, enc, ctx)
    }

    /// The decoder's LSTM weights rearranged for a search ([`Self::search_step`]) in the
    /// inference pass `ctx`, or `None` where [`crate::executor::pick`] keeps
    /// [`Self::decode_step`] (GRU decoders; LSTMs on a GPU when the fused cuDNN step
    /// suffices: the prepared path was measured on the CPU only). Build it once per search:
    /// it copies the decoder's recurrent weights (a few MB) as they are now, so a search
    /// after a weight update needs a new one.
    pub fn prepare_search(&self, device: Device, ctx: &StepContext<'_>) -> Option<PreparedStack> {
        match self.decoder.rnn.exec(RnnPart::SearchDecoder, ctx, device) {
            Exec::Prepared => self.decoder.prepare(self.config.embed_dim, ctx),
            Exec::Fused | Exec::Reference => None,
        }
    }

    /// One decoder step of a search (`ctx` an inference pass): [`Self::decode_step`],
    /// through the prepared weights when there are some. On the CPU libtorch runs the fused
    /// LSTM step through oneDNN, which reorders the weights on every call; two GEMMs per
    /// layer on weights arranged once ([`crate::rnn::RnnStack::step_prepared`]) cost less.
    /// prev: `[B]` i64.
    pub fn search_step(
        &self,
        prepared: Option<&PreparedStack>,
        prev: &Tensor,
        state: &DecoderState,
        enc: &EncoderOutput,
        ctx: &StepContext<'_>,
    ) -> DecoderStep {
        match prepared {
            Some(p) => {
                let gates = self.decoder.embedded_gates(p, &self.embed_target(prev));
                self.decoder.step_prepared(p, &gates, state, enc, ctx)
            }
            None => self.decode_step(prev, state, enc, ctx),
        }
    }

    /// Teacher-forced forward pass over every position, padding included, one
    /// [`Self::decode_step`] at a time: the plain form that [`Self::forward_packed`] is held
    /// equal to.
    ///
    /// src: `[B, S]` i64; src_lengths: `[B]` i64 in `1..=S`; tgt_in: `[B, T]` i64
    /// (BOS followed by the target, padded) → logits `[B, T, tgt_vocab]`.
    pub fn forward(
        &self,
        src: &Tensor,
        src_lengths: &Tensor,
        tgt_in: &Tensor,
        ctx: &StepContext<'_>,
    ) -> Tensor {
        let enc = self.encode(src, src_lengths, ctx);
        let mut state = self.init_decoder(&enc);
        let embedded = dropout(&self.embed_target(tgt_in), self.config.dropout, ctx.train);
        let steps = tgt_in.size()[1];
        let mut attentional = Vec::with_capacity(steps as usize);
        for t in 0..steps {
            let step = self.decoder.step(&embedded.select(1, t), &state, &enc, ctx);
            attentional.push(step.attentional);
            state = step.state;
        }
        self.project(&Tensor::stack(&attentional, 1))
    }

    /// Teacher-forced logits at the real target positions only: what training needs.
    ///
    /// The rows run longest target first, so at step `t` the rows still inside their
    /// target are a prefix of the batch, and the rows whose target has ended leave the
    /// recurrence, the attention and the output projection instead of being computed and
    /// thrown away by the loss ([`Self::forward`] does that; on token-budget batches
    /// about a third of the target positions are padding). Each kept position follows the
    /// same equations as in [`Self::forward`]; an LSTM decoder runs them as
    /// [`crate::rnn::RnnStack::prepare`] arranges (the embeddings' share of the first
    /// layer's gates for all steps in one GEMM), so the float rounding may differ slightly.
    ///
    /// src: `[B, S]` i64; src_lengths: `[B]` i64 in `1..=S`; tgt_in: `[B, T]` i64 (BOS
    /// followed by the target, padded); tgt_lengths: the real positions of each row
    /// (host values in `0..=T`) → (logits `[N, tgt_vocab]`, positions `[N]` i64: for each
    /// logits row, its index `b·T + t` into the flattened `[B, T]` target), `N = Σ
    /// tgt_lengths`. Gather the gold ids with `tgt_out.view([-1]).index_select(0, &positions)`.
    ///
    /// Training feeds [`Self::forward_packed_attentional`] to
    /// [`crate::loss::projected_label_smoothed_nll`] instead, which never keeps these logits.
    pub fn forward_packed(
        &self,
        src: &Tensor,
        src_lengths: &Tensor,
        tgt_in: &Tensor,
        tgt_lengths: &[i64],
        ctx: &StepContext<'_>,
    ) -> (Tensor, Tensor) {
        let (attentional, positions) =
            self.forward_packed_attentional(src, src_lengths, tgt_in, tgt_lengths, ctx);
        (self.project(&attentional), positions)
    }

    /// [`Self::forward_packed`] without the output projection: the attentional vectors
    /// `[N, A]` at the real target positions, and the same positions `[N]`.
    pub fn forward_packed_attentional(
        &self,
        src: &Tensor,
        src_lengths: &Tensor,
        tgt_in: &Tensor,
        tgt_lengths: &[i64],
        ctx: &StepContext<'_>,
    ) -> (Tensor, Tensor) {
        let device = src.device();
        let steps = tgt_in.size()[1];
        // Stable: rows of equal length keep their order (and the batch as it is when sorted).
        let mut order: Vec<usize> = (0..tgt_lengths.len()).collect();
        order.sort_by_key(|&r| std::cmp::Reverse(tgt_lengths[r]));
        let (src, src_lengths, tgt_in) = if order.iter().enumerate().all(|(i, &r)| i == r) {
            (
                src.shallow_clone(),
                src_lengths.shallow_clone(),
                tgt_in.shallow_clone(),
            )
        } else {
            let index = Tensor::from_slice(&order.iter().map(|&r| r as i64).collect::<Vec<_>>())
                .to_device(device);
            (
                src.index_select(0, &index),
                src_lengths.index_select(0, &index),
                tgt_in.index_select(0, &index),
            )
        };
        let enc = self.encode(&src, &src_lengths, ctx);
        let mut state = self.init_decoder(&enc);
        let embedded = dropout(&self.embed_target(&tgt_in), self.config.dropout, ctx.train);
        // LSTM decoders project the embeddings into the first layer's gates for all steps in
        // one GEMM; the steps then multiply only the fed-back columns and the state.
        let prepared = match self
            .decoder
            .rnn
            .exec(RnnPart::TeacherForcedDecoder, ctx, device)
        {
            Exec::Prepared => self.decoder.prepare(self.config.embed_dim, ctx),
            Exec::Fused | Exec::Reference => None,
        };
        // One view per step; autograd stacks their gradients once (a `select` per step would
        // give each its own zero-filled gradient of the whole `[B, T, ..]`).
        let step_inputs = match &prepared {
            Some(p) => self.decoder.embedded_gates(p, &embedded).unbind(1),
            None => embedded.unbind(1),
        };
        let mut running = order.len();
        let mut enc_running = enc.first_rows(running as i64);
        let mut attentional = Vec::with_capacity(steps as usize);
        let mut positions: Vec<i64> = Vec::with_capacity(tgt_lengths.iter().sum::<i64>() as usize);
        for t in 0..steps {
            let before = running;
            while running > 0 && tgt_lengths[order[running - 1]] <= t {
                running -= 1;
            }
            if running == 0 {
                break;
            }
            if running != before {
                enc_running = enc.first_rows(running as i64);
                state = state.first_rows(running as i64);
            }
            let input = step_inputs[t as usize].narrow(0, 0, running as i64);
            let step = match &prepared {
                Some(p) => self
                    .decoder
                    .step_prepared(p, &input, &state, &enc_running, ctx),
                None => self.decoder.step(&input, &state, &enc_running, ctx),
            };
            attentional.push(step.attentional);
            state = step.state;
            positions.extend(order[..running].iter().map(|&r| r as i64 * steps + t));
        }
        let attentional = if attentional.is_empty() {
            let a = self.config.attentional_dim();
            Tensor::zeros([0, a], (Kind::Float, device))
        } else {
            Tensor::cat(&attentional, 0)
        };
        (
            attentional,
            Tensor::from_slice(&positions).to_device(device),
        )
    }
}

/// Every id must index the embedding: `0 <= id < vocab_size`.
pub(crate) fn check_ids(what: &str, ids: &Tensor, vocab_size: i64) -> Result<(), ModelError> {
    if ids.kind() != Kind::Int64 {
        return Err(ModelError::Input(format!(
            "{what} ids must be int64, got {:?}",
            ids.kind()
        )));
    }
    if ids.numel() > 0 {
        let (min, max) = (ids.min().int64_value(&[]), ids.max().int64_value(&[]));
        if min < 0 || max >= vocab_size {
            return Err(ModelError::Input(format!(
                "{what} ids must be in 0..{vocab_size}, got {min}..={max}"
            )));
        }
    }
    Ok(())
}

/// A second `Seq2Seq` whose parameters are views of `vars`' storage (no copy of the weights;
/// the cost is a short-lived random initialisation). Writes to the weights (an optimizer
/// step, loading a checkpoint in place) are seen by both. The returned store must outlive
/// the model.
pub fn share_weights(
    vars: &nn::VarStore,
    config: &ModelConfig,
) -> Result<(nn::VarStore, Seq2Seq), ModelError> {
    let shared = nn::VarStore::new(vars.device());
    let model = Seq2Seq::new(&shared.root(), config)?;
    let source = vars.variables();
    tch::no_grad(|| {
        for (name, mut var) in shared.variables() {
            // Both stores are built from the same config, so the names match; `set_data`
            // points the replica's tensor (and every alias of it, such as a tied
            // embedding) at the original's storage, dtype included.
            match source.get(&name) {
                Some(original) => var.set_data(original),
                None => {
                    return Err(ModelError::Config(format!(
                        "no variable {name} in the model to share"
                    )))
                }
            }
        }
        Ok(())
    })?;
    Ok((shared, model))
}
