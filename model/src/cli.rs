//! Command-line pieces of the binaries that use this crate (feature `cli`, on by default;
//! library users take `default-features = false` and get no clap or indicatif): the
//! decoding flags and input reading of `nmt-translate` and `nmt-eval translate`, their
//! progress bar, and the command-line names of the library's enums (`clap::ValueEnum`,
//! implemented here rather than derived on the types, so that the types carry no CLI
//! concern).

use std::io::BufRead;
use std::path::Path;

use clap::builder::PossibleValue;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use crate::beam::{BeamOptions, LengthPenalty, UnkPolicy};
use crate::bundle::{ComputeDtype, WeightsDtype};
use crate::compress::ParamSet;
use crate::gates::GateInference;
use crate::search::MaxLength;
use crate::translate::TranslateOptions;

/// `impl ValueEnum` for a library enum: each variant with its command-line name, then
/// optionally `alias "..."` and `help "..."` (shown by `--help`).
macro_rules! value_enum {
    ($ty:ident { $($variant:ident => $name:literal $(alias $alias:literal)? $(help $help:literal)?),+ $(,)? }) => {
        impl ValueEnum for $ty {
            fn value_variants<'a>() -> &'a [Self] {
                &[$($ty::$variant),+]
            }

            fn to_possible_value(&self) -> Option<PossibleValue> {
                Some(match self {
                    $($ty::$variant => PossibleValue::new($name)$(.alias($alias))?$(.help($help))?,)+
                })
            }
        }
    };
}

value_enum!(ComputeDtype {
    Float32 => "float32" alias "f32" help "32-bit floats, as trained",
    Bfloat16 => "bfloat16" alias "bf16" help "bfloat16 weights and activations; log-probabilities \
        and scores stay float32. Faster where the hardware multiplies bf16 (x86 CPUs with AMX or \
        AVX512-BF16, recent GPUs); a few outputs change (docs/BENCHMARKS.md)",
});
value_enum!(GateInference {
    Soft => "soft" help "The gate function's value (for `gumbel`, plain `σ(α)`)",
    Hard => "hard" help "Steps: 1 where the pre-activation is ≥ 0, else 0",
});
value_enum!(WeightsDtype {
    Float16 => "f16",
    Float32 => "f32",
});
value_enum!(ParamSet {
    Gates => "gates",
    Recurrent => "recurrent",
    All => "all",
});

/// Length penalty formula.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum LenpenKind {
    /// ((5 + |Y|) / 6)^α (GNMT)
    Gnmt,
    /// |Y|^α (fairseq)
    Plain,
    /// raw log-probability
    None,
}

/// Decoding flags.
#[derive(Args, Clone, Debug)]
pub struct DecodeArgs {
    /// Beam size (1 = greedy search).
    #[arg(long, default_value_t = 5)]
    pub beam: usize,
    /// Hypotheses per sentence (at most --beam).
    #[arg(long, default_value_t = 1)]
    pub nbest: usize,
    /// Length penalty α: finished hypotheses are ranked by score / lp(|Y|).
    #[arg(long, default_value_t = 0.6)]
    pub lenpen: f64,
    /// Length penalty formula.
    #[arg(long, value_enum, default_value_t = LenpenKind::Gnmt)]
    pub lenpen_kind: LenpenKind,
    /// Maximum output length = max-len-a × source length + max-len-b (subword tokens).
    #[arg(long, default_value_t = 1.5)]
    pub max_len_a: f64,
    /// See --max-len-a.
    #[arg(long, default_value_t = 10)]
    pub max_len_b: i64,
    /// No end of sentence before this many tokens.
    #[arg(long, default_value_t = 0)]
    pub min_len: usize,
    /// Never produce the unknown token.
    #[arg(long, conflicts_with = "replace_unk")]
    pub ban_unk: bool,
    /// Replace each unknown token in the output with the source token it attends to most.
    #[arg(long)]
    pub replace_unk: bool,
    /// GNMT coverage penalty weight β (0 = off).
    #[arg(long, default_value_t = 0.0)]
    pub coverage_penalty: f64,
    /// Padded source tokens per batch.
    #[arg(long, default_value_t = 6000)]
    pub max_tokens: usize,
    /// Sources longer than this many subword tokens are cut (with a warning).
    #[arg(long, default_value_t = 250)]
    pub max_source_tokens: usize,
    /// Batches decoded side by side on the CPU, each by its own thread with an equal
    /// share of the intra-op threads (0 = as many as libtorch's intra-op threads, i.e.
    /// one thread each; 1 = one batch at a time with all threads). Ignored on a GPU.
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// Number type to compute in: float32, or bfloat16 (faster on CPUs with AMX or
    /// AVX512-BF16 and on recent GPUs; a few outputs change).
    #[arg(long, value_enum, default_value_t = ComputeDtype::Float32)]
    pub compute_dtype: ComputeDtype,
    /// Input and forget gates at inference: soft (their sigmoid, as trained) or hard (1
    /// where the pre-activation is ≥ 0, else 0: G2-LSTM's binarised gates). Default: what
    /// the bundle's config.json says (soft unless set).
    #[arg(long, value_enum)]
    pub gates_inference: Option<GateInference>,
}

impl DecodeArgs {
    /// Applies the flags that change the loaded model (compute type, gate inference).
    pub fn apply_to(&self, bundle: &mut crate::Bundle) {
        bundle.set_compute_dtype(self.compute_dtype);
        if let Some(inference) = self.gates_inference {
            bundle.set_gate_inference(inference);
        }
    }
}

impl DecodeArgs {
    /// Checks the flags together and builds the options.
    pub fn options(&self, return_attention: bool) -> Result<TranslateOptions, String> {
        if self.beam == 0 {
            return Err("--beam must be at least 1".into());
        }
        if self.nbest == 0 || self.nbest > self.beam {
            return Err(format!(
                "--nbest must be in 1..={} (the beam size)",
                self.beam
            ));
        }
        if self.max_tokens == 0 || self.max_source_tokens == 0 {
            return Err("--max-tokens and --max-source-tokens must be at least 1".into());
        }
        if !(self.lenpen.is_finite()
            && self.coverage_penalty.is_finite()
            && self.max_len_a.is_finite())
        {
            return Err(
                "--lenpen, --coverage-penalty and --max-len-a must be finite numbers".into(),
            );
        }
        let length_penalty = match self.lenpen_kind {
            LenpenKind::Gnmt => LengthPenalty::Gnmt(self.lenpen),
            LenpenKind::Plain => LengthPenalty::Plain(self.lenpen),
            LenpenKind::None => LengthPenalty::None,
        };
        Ok(TranslateOptions {
            beam: BeamOptions {
                beam_size: self.beam,
                n_best: self.nbest,
                length_penalty,
                max_length: MaxLength {
                    a: self.max_len_a,
                    b: self.max_len_b,
                },
                min_length: self.min_len,
                unk: if self.ban_unk {
                    UnkPolicy::Ban
                } else if self.replace_unk {
                    UnkPolicy::Replace
                } else {
                    UnkPolicy::Allow
                },
                coverage_penalty: self.coverage_penalty,
                keep_attention: return_attention,
            },
            max_tokens: self.max_tokens,
            max_source_tokens: self.max_source_tokens,
            return_attention,
            workers: match self.workers {
                0 => tch::get_num_threads().max(1) as usize,
                n => n,
            },
            ..Default::default()
        })
    }
}

/// Reads UTF-8 lines from a file, or stdin for `None`/`-`; errors name the
/// file and line. A final `\r` is dropped (CRLF files).
pub fn read_text_lines(input: Option<&Path>) -> Result<Vec<String>, String> {
    let (name, reader): (String, Box<dyn BufRead>) = match input {
        Some(p) if p.as_os_str() != "-" => {
            let f = std::fs::File::open(p).map_err(|e| format!("{}: {e}", p.display()))?;
            (
                p.display().to_string(),
                Box::new(std::io::BufReader::new(f)),
            )
        }
        _ => ("<stdin>".to_string(), Box::new(std::io::stdin().lock())),
    };
    let mut lines = Vec::new();
    for (n, line) in reader.split(b'\n').enumerate() {
        let bytes = line.map_err(|e| format!("{name}: {e}"))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            format!(
                "{name}:{}: invalid UTF-8 at byte {}",
                n + 1,
                e.utf8_error().valid_up_to()
            )
        })?;
        lines.push(text.strip_suffix('\r').map(str::to_string).unwrap_or(text));
    }
    Ok(lines)
}

/// The progress bar of a translation of `sentences` sentences; hidden with `quiet`. The
/// template is a constant: an error is a bug, for the caller to show rather than hide.
pub fn translation_progress(
    sentences: usize,
    quiet: bool,
) -> Result<ProgressBar, indicatif::style::TemplateError> {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(sentences as u64)
    };
    bar.set_style(ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} sentences ({per_sec}, eta {eta})",
    )?);
    Ok(bar)
}
