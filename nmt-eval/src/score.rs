//! `nmt-eval bleu` and `nmt-eval chrf`: their arguments and their execution with the
//! `evaluation` library.

use std::io::Read;
use std::path::PathBuf;

use clap::Args;

use evaluation::bleu::{Bleu, BleuOptions, MAX_NGRAM_ORDER};
use evaluation::chrf::{Chrf, ChrfOptions};
use evaluation::error::EvalError;
use evaluation::io::{check_line_counts, read_file, read_stream, TextFile, STDIN_NAME};
use evaluation::report::{check_chrf_format, format_bleu, format_chrf, OutputFormat, Style};
use evaluation::tokenizers::Tokenizer;
use evaluation::Smoothing;

/// Inputs and output options shared by `bleu` and `chrf`.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Reference file, one segment per line. Repeat the flag for several
    /// references per segment (all files must have as many lines as the hypotheses).
    #[arg(short = 'r', long = "ref", value_name = "REF", required = true)]
    pub refs: Vec<PathBuf>,

    /// Hypothesis file, one segment per line; read from stdin when absent.
    #[arg(short = 'i', long = "hyp", value_name = "FILE")]
    pub hyp: Option<PathBuf>,

    /// Lowercase hypotheses and references before scoring (case-insensitive score).
    #[arg(short = 'l', long)]
    pub lowercase: bool,

    /// Print one score per line (sentence-level) instead of one corpus score.
    #[arg(long)]
    pub sentence: bool,

    /// Output format: text (score first, signature last), sacrebleu (sacreBLEU's
    /// own text line), json, or multi-bleu (multi-bleu.perl/fairseq line; BLEU only).
    #[arg(short = 'f', long, value_name = "FORMAT", default_value = "text",
          value_parser = clap::builder::PossibleValuesParser::new(OutputFormat::NAMES))]
    pub format: String,

    /// Same as `--format json` (with --sentence: one JSON object per line).
    #[arg(long, conflicts_with = "format")]
    pub json: bool,

    /// Print only the score (ignored with JSON output).
    #[arg(short = 'b', long)]
    pub score_only: bool,

    /// Decimals of the printed score.
    #[arg(short = 'w', long, value_name = "N", default_value_t = 2)]
    pub width: usize,
}

impl CommonArgs {
    fn style(&self) -> Result<Style, EvalError> {
        let format = if self.json {
            OutputFormat::Json
        } else {
            self.format.parse()?
        };
        Ok(Style {
            format,
            width: self.width,
            score_only: self.score_only,
            json_lines: self.sentence,
        })
    }

    /// Reads the hypotheses (from `stdin` when no file is given) and references,
    /// checking line counts.
    fn read_inputs(&self, stdin: impl Read) -> Result<(TextFile, Vec<TextFile>), EvalError> {
        let refs = self
            .refs
            .iter()
            .map(|p| read_file(p))
            .collect::<Result<Vec<_>, _>>()?;
        let hyps = match &self.hyp {
            Some(p) => read_file(p)?,
            None => read_stream(stdin, STDIN_NAME)?,
        };
        check_line_counts(&hyps, &refs)?;
        Ok((hyps, refs))
    }
}

/// Arguments of `nmt-eval bleu`.
#[derive(Debug, Clone, Args)]
pub struct BleuArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Tokenizer: 13a (mteval-v13a, the WMT standard), intl (Unicode punctuation
    /// and symbols), char (every character), none (already tokenized text).
    #[arg(short = 't', long, value_name = "TOK", default_value = "13a",
          value_parser = clap::builder::PossibleValuesParser::new(["13a", "intl", "char", "none"]))]
    pub tokenize: String,

    /// Smoothing of zero n-gram matches: exp (NIST), floor, add-k, none.
    #[arg(short = 's', long, value_name = "METHOD", default_value = "exp",
          value_parser = clap::builder::PossibleValuesParser::new(["exp", "floor", "add-k", "none"]))]
    pub smooth: String,

    /// Value for --smooth floor (default 0.1) or add-k (default 1).
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    pub smooth_value: Option<f64>,

    /// Use effective order for corpus BLEU too (sentence BLEU always uses it, as in sacreBLEU).
    #[arg(short = 'e', long)]
    pub effective_order: bool,

    /// Highest n-gram order.
    #[arg(long, value_name = "N", default_value_t = MAX_NGRAM_ORDER)]
    pub max_ngram_order: usize,
}

impl BleuArgs {
    /// The scoring options these arguments ask for.
    pub fn options(&self) -> Result<BleuOptions, EvalError> {
        Ok(BleuOptions {
            tokenize: self.tokenize.parse::<Tokenizer>()?,
            lowercase: self.common.lowercase,
            smoothing: Smoothing::from_name(&self.smooth, self.smooth_value)?,
            max_ngram_order: self.max_ngram_order,
            // sacreBLEU's command line forces effective order for sentence BLEU.
            effective_order: Some(self.effective_order || self.common.sentence),
        })
    }

    /// Scores and returns what to print (without a final newline).
    pub fn run(&self, stdin: impl Read) -> Result<String, EvalError> {
        let options = self.options()?;
        let style = self.common.style()?;
        let (hyps, refs) = self.common.read_inputs(stdin)?;
        let streams: Vec<Vec<String>> = refs.into_iter().map(|r| r.lines).collect();
        let bleu = Bleu::new(&streams, options)?;
        if self.common.sentence {
            Ok(bleu
                .sentence_scores(&hyps.lines)?
                .iter()
                .map(|s| format_bleu(s, style))
                .collect::<Vec<_>>()
                .join("\n"))
        } else {
            Ok(format_bleu(&bleu.corpus_score(&hyps.lines)?, style))
        }
    }
}

/// Arguments of `nmt-eval chrf`.
#[derive(Debug, Clone, Args)]
pub struct ChrfArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Word n-gram order: 0 for chrF, 2 for chrF++.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub chrf_word_order: usize,

    /// Character n-gram order.
    #[arg(long, value_name = "N", default_value_t = 6)]
    pub chrf_char_order: usize,

    /// Recall weight beta.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub chrf_beta: u32,

    /// Keep whitespace in character n-grams.
    #[arg(long)]
    pub chrf_whitespace: bool,

    /// chrF++.py-style epsilon smoothing instead of effective-order averaging.
    #[arg(long)]
    pub chrf_eps_smoothing: bool,
}

impl ChrfArgs {
    /// The scoring options these arguments ask for.
    pub fn options(&self) -> ChrfOptions {
        ChrfOptions {
            char_order: self.chrf_char_order,
            word_order: self.chrf_word_order,
            beta: self.chrf_beta,
            lowercase: self.common.lowercase,
            whitespace: self.chrf_whitespace,
            eps_smoothing: self.chrf_eps_smoothing,
        }
    }

    /// Scores and returns what to print (without a final newline).
    pub fn run(&self, stdin: impl Read) -> Result<String, EvalError> {
        let style = self.common.style()?;
        // Fail before reading inputs.
        check_chrf_format(style.format)?;
        let (hyps, refs) = self.common.read_inputs(stdin)?;
        let streams: Vec<Vec<String>> = refs.into_iter().map(|r| r.lines).collect();
        let chrf = Chrf::new(&streams, self.options())?;
        if self.common.sentence {
            let lines = chrf
                .sentence_scores(&hyps.lines)?
                .iter()
                .map(|s| format_chrf(s, style))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(lines.join("\n"))
        } else {
            format_chrf(&chrf.corpus_score(&hyps.lines)?, style)
        }
    }
}
