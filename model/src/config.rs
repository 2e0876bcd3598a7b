//! The architecture of an encoder-decoder, as stored in a bundle's `config.json`.

use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::gates::{GateConfig, GateKind};

/// Which recurrent cell the encoder and decoder use.
///
/// The names of earlier versions, `fused-lstm` and `fused-gru`, still load: they chose the
/// cell and the executor in one word, and map to the cell with `executor = "auto"` (which
/// runs libtorch's fused kernels whenever nothing needs to see or change a gate).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum CellKind {
    /// LSTM: input, forget and output gates, a candidate, a cell state ([`crate::cell`]).
    #[default]
    #[serde(alias = "fused-lstm")]
    Lstm,
    /// GRU: reset and update gates (PyTorch's formulation).
    #[serde(alias = "fused-gru")]
    Gru,
}

impl CellKind {
    /// LSTM cells carry a cell state besides the hidden state.
    pub fn is_lstm(self) -> bool {
        self == Self::Lstm
    }

    /// Rows per gate block in the weight matrices: 4 for LSTM (i, f, g, o), 3 for GRU (r, z, n).
    pub fn gate_count(self) -> i64 {
        match self {
            Self::Lstm => 4,
            Self::Gru => 3,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Lstm => "lstm",
            Self::Gru => "gru",
        }
    }
}

/// What runs the recurrent layers. Both executors take the same parameters (PyTorch's layout),
/// so a model trained with one runs with the other; [`crate::executor::pick`] decides per part
/// of the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Executor {
    /// libtorch's fused kernels when nothing needs to see or change a gate, the step executor
    /// otherwise.
    #[default]
    Auto,
    /// Always libtorch's fused kernels (gates can be neither seen nor changed).
    Fused,
    /// Always this crate's step executor ([`crate::rnn`]).
    Step,
}

impl Executor {
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Fused => "fused",
            Self::Step => "step",
        }
    }
}

/// Luong's scoring functions, or Bahdanau's MLP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum AttentionKind {
    /// `score(h_t, h_s) = h_t · h_s` (needs encoder output size = decoder hidden size).
    Dot,
    /// `score(h_t, h_s) = h_t · W h_s`.
    #[default]
    General,
    /// `score(h_t, h_s) = v · tanh(W_s h_s + W_t h_t)` (Bahdanau).
    Mlp,
}

/// Everything needed to rebuild the network's shapes: a bundle's `config.json` `model`, and
/// a training config's `[model]` (without the vocabulary sizes, which come from the
/// vocabulary). A missing key takes its value from [`ModelConfig::default`], the one set of
/// defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Source vocabulary size; 0 until the vocabulary is known (a training config's
    /// `[model]` leaves it out).
    #[serde(skip_serializing_if = "is_unset")]
    pub src_vocab_size: i64,
    /// Target vocabulary size; 0 until the vocabulary is known.
    #[serde(skip_serializing_if = "is_unset")]
    pub tgt_vocab_size: i64,
    pub embed_dim: i64,
    /// Hidden size of each direction of the encoder, and of the decoder.
    pub hidden_dim: i64,
    pub encoder_layers: i64,
    pub decoder_layers: i64,
    pub bidirectional: bool,
    /// Dropout on embeddings, between recurrent layers and before the output projection.
    pub dropout: f64,
    /// `lstm` or `gru` (the older `fused-lstm` and `fused-gru` still load).
    pub cell: CellKind,
    /// `auto`, `fused` or `step`.
    pub executor: Executor,
    /// The gate mode (G2-LSTM's Gumbel gates, the sharpened sigmoid, or standard):
    /// `kind`, `temperature`, `noise_prob`, `inference`.
    pub gates: GateConfig,
    /// `dot`, `general` or `mlp`.
    pub attention: AttentionKind,
    /// Feed the previous attentional vector into the next decoder step (Luong et al. 2015).
    pub input_feeding: bool,
    /// One embedding matrix for source and target (joint vocabulary only).
    pub share_embeddings: bool,
    /// Tie the decoder's input embedding with the output projection.
    pub tie_output: bool,
    /// Recurrent matrices stored and run as rank-K factors (`nmt-bundle compress
    /// --svd-rank K`); absent in trained models.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub low_rank: Option<LowRank>,
    /// Recurrent matrices stored and run as int8 (`nmt-bundle compress --int8`); absent in
    /// trained models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub int8: Option<Int8>,
}

/// Which rows of every recurrent layer's input and recurrent matrices are int8 (per-row
/// scales, [`quantized::quantize_rows`]), run by fbgemm's int8 kernel on the CPU; the other
/// rows stay float. With `linear`, the other matrices a decoder step multiplies by are int8
/// too (`nmt-bundle compress --int8 --params all`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Int8 {
    pub rows: LowRankRows,
    /// Also int8 (every row): the attention's key projection (and the MLP attention's query
    /// projection), the decoder's `W_c` (`[c_t; h_t]` → `h~_t`) and the output projection.
    /// The output projection gets an int8 copy of its weight (`output_int8_q`,
    /// `output_int8_scale`) beside the float one, which the tied embedding's lookups (and
    /// training's loss) still read. Absent (false) in bundles made before it existed.
    #[serde(default, skip_serializing_if = "is_false")]
    pub linear: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Default for ModelConfig {
    /// The defaults of every key (vocabulary sizes unset): a small model, 2+2 bidirectional
    /// LSTM layers of 256 with Luong `general` attention and input feeding.
    fn default() -> Self {
        Self {
            src_vocab_size: 0,
            tgt_vocab_size: 0,
            embed_dim: 256,
            hidden_dim: 256,
            encoder_layers: 2,
            decoder_layers: 2,
            bidirectional: true,
            dropout: 0.3,
            cell: CellKind::Lstm,
            executor: Executor::Auto,
            gates: GateConfig::default(),
            attention: AttentionKind::General,
            input_feeding: true,
            share_embeddings: false,
            tie_output: false,
            low_rank: None,
            int8: None,
        }
    }
}

fn is_unset(size: &i64) -> bool {
    *size == 0
}

/// Which rows of every recurrent layer's input and recurrent matrices are replaced by rank-K
/// factors `U V` (`U`: `[rows, K]`, `V`: `[K, columns]`), run as two GEMMs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LowRank {
    pub rank: i64,
    pub rows: LowRankRows,
}

/// The rows a [`LowRank`] factorises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LowRankRows {
    /// The input- and forget-gate rows (a GRU's reset and update rows): what the G2-LSTM
    /// paper compressed; the other rows stay dense.
    Gates,
    /// Every row.
    All,
}

impl LowRankRows {
    /// The chosen rows of a recurrent matrix with `rows` rows in a stack of hidden size
    /// `hidden`. Gate order is PyTorch's: LSTM (i, f, g, o), GRU (r, z, n); the first two
    /// blocks of H rows are the input and forget (reset and update) gates.
    pub fn range(self, hidden: i64, rows: i64) -> std::ops::Range<i64> {
        match self {
            LowRankRows::Gates => 0..2 * hidden,
            LowRankRows::All => 0..rows,
        }
    }
}

impl LowRank {
    /// The factored rows of a matrix with `rows` rows in a stack of hidden size `hidden`.
    pub fn row_range(&self, hidden: i64, rows: i64) -> std::ops::Range<i64> {
        self.rows.range(hidden, rows)
    }
}

impl ModelConfig {
    /// The defaults with these vocabulary sizes.
    pub fn new(src_vocab_size: i64, tgt_vocab_size: i64) -> Self {
        Self::default().with_vocab_sizes(src_vocab_size, tgt_vocab_size)
    }

    /// This architecture with these vocabulary sizes.
    pub fn with_vocab_sizes(&self, src_vocab_size: i64, tgt_vocab_size: i64) -> Self {
        Self {
            src_vocab_size,
            tgt_vocab_size,
            ..self.clone()
        }
    }

    /// Size of one encoder output vector (both directions).
    pub fn encoder_output_dim(&self) -> i64 {
        self.hidden_dim * if self.bidirectional { 2 } else { 1 }
    }

    /// Size of the attentional vector `h~_t` that feeds the output projection:
    /// the embedding size when the projection is tied to the embedding.
    pub fn attentional_dim(&self) -> i64 {
        if self.tie_output {
            self.embed_dim
        } else {
            self.hidden_dim
        }
    }

    /// Checks the combination of fields; every error names the field.
    pub fn validate(&self) -> Result<(), ModelError> {
        let positive = [
            ("src_vocab_size", self.src_vocab_size),
            ("tgt_vocab_size", self.tgt_vocab_size),
            ("embed_dim", self.embed_dim),
            ("hidden_dim", self.hidden_dim),
            ("encoder_layers", self.encoder_layers),
            ("decoder_layers", self.decoder_layers),
        ];
        for (name, value) in positive {
            if value < 1 {
                return Err(ModelError::Config(format!(
                    "{name} must be at least 1, got {value}"
                )));
            }
        }
        if self.src_vocab_size <= vocab::EOS_ID as i64
            || self.tgt_vocab_size <= vocab::EOS_ID as i64
        {
            return Err(ModelError::Config(
                "vocabularies must hold at least the 4 special tokens".into(),
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(ModelError::Config(format!(
                "dropout must be in [0, 1), got {}",
                self.dropout
            )));
        }
        if self.share_embeddings && self.src_vocab_size != self.tgt_vocab_size {
            return Err(ModelError::Config(format!(
                "share_embeddings needs one joint vocabulary, but src_vocab_size={} and tgt_vocab_size={}",
                self.src_vocab_size, self.tgt_vocab_size
            )));
        }
        if let Some(lr) = self.low_rank {
            // Every recurrent matrix has at least min(hidden, embed) columns and 2·hidden
            // factored rows; a larger rank would store more than the dense matrix.
            let most = self.hidden_dim.min(self.embed_dim);
            if lr.rank < 1 || lr.rank > most {
                return Err(ModelError::Config(format!(
                    "low_rank.rank must be in 1..={most} (the smallest recurrent matrix \
                     dimension), got {}",
                    lr.rank
                )));
            }
            if self.executor == Executor::Fused {
                return Err(ModelError::Config(
                    "low_rank needs the step executor (executor = \"auto\" or \"step\"): \
                     libtorch's fused kernels take dense matrices"
                        .into(),
                ));
            }
        }
        if self.int8.is_some() {
            if self.low_rank.is_some() {
                return Err(ModelError::Config(
                    "int8 and low_rank together are not supported: int8 quantizes dense \
                     recurrent matrices"
                        .into(),
                ));
            }
            if self.executor == Executor::Fused {
                return Err(ModelError::Config(
                    "int8 needs the step executor (executor = \"auto\" or \"step\"): \
                     libtorch's fused kernels take float matrices"
                        .into(),
                ));
            }
        }
        if let Err(e) = self.gates.check() {
            return Err(ModelError::Config(format!("gates: {e}")));
        }
        if self.gates.kind != GateKind::Standard {
            if !self.cell.is_lstm() {
                return Err(ModelError::Config(format!(
                    "gates.kind = \"{}\" changes LSTM input and forget gates; cell = \"{}\" has none \
                     (use cell = \"lstm\" or gates.kind = \"standard\")",
                    self.gates.kind.name(),
                    self.cell.name()
                )));
            }
            if self.executor == Executor::Fused {
                return Err(ModelError::Config(format!(
                    "executor = \"fused\" cannot run gates.kind = \"{}\": libtorch's fused kernels \
                     compute standard gates only (use executor = \"auto\" or \"step\")",
                    self.gates.kind.name()
                )));
            }
        }
        if self.attention == AttentionKind::Dot && self.encoder_output_dim() != self.hidden_dim {
            return Err(ModelError::Config(format!(
                "dot attention needs encoder outputs of the decoder's size: encoder gives {} \
                 ({}bidirectional), decoder hidden_dim is {}; use general or mlp attention",
                self.encoder_output_dim(),
                if self.bidirectional { "" } else { "not " },
                self.hidden_dim
            )));
        }
        Ok(())
    }
}
