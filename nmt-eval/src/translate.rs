//! `nmt-eval translate`: decode a test set with a model bundle and score it. Here, in the
//! binary's crate, because it needs the model crate (libtorch); the `evaluation` library
//! stays pure Rust.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use evaluation::io::{check_line_counts, read_file, TextFile};
use evaluation::{
    corpus_bleu, corpus_chrf, format_bleu, BleuOptions, ChrfOptions, OutputFormat, Style, Tokenizer,
};
use model::cli::{translation_progress, DecodeArgs};
use model::device::DeviceChoice;
use model::translate::translate;
use model::Bundle;

/// Translate a test set and score it.
#[derive(Args, Debug)]
pub struct TranslateArgs {
    /// Model bundle directory.
    #[arg(long, default_value = "checkpoints/multi30k-de-en", env = "NMT_MODEL")]
    pub model: PathBuf,
    /// Source sentences, one per line (raw text).
    #[arg(long)]
    pub src: PathBuf,
    /// Reference translations (raw, detokenized); repeat for several references.
    #[arg(long = "ref", required = true)]
    pub refs: Vec<PathBuf>,
    /// Also write the translations to this file.
    #[arg(long)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub decode: DecodeArgs,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// Print one JSON object instead of text lines.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

impl TranslateArgs {
    pub fn run(&self) -> Result<String> {
        let opts = self.decode.options(false).map_err(anyhow::Error::msg)?;
        let src = read_file(&self.src)?;
        let refs: Vec<TextFile> = self
            .refs
            .iter()
            .map(|r| read_file(r))
            .collect::<Result<_, _>>()?;
        check_line_counts(&src, &refs)?;
        let device = self.device.resolve()?;
        let mut bundle = Bundle::load(&self.model, device)
            .with_context(|| format!("cannot load model bundle {}", self.model.display()))?;
        self.decode.apply_to(&mut bundle);
        let bar = translation_progress(src.lines.len(), self.quiet)
            .context("the progress bar's template")?;
        let started = Instant::now();
        let translations = translate(&bundle, &src.lines, &opts, |n| bar.inc(n as u64))?;
        let seconds = started.elapsed().as_secs_f64();
        bar.finish_and_clear();
        let hyps: Vec<String> = translations.into_iter().map(|t| t.text).collect();
        if let Some(path) = &self.output {
            let mut f = std::fs::File::create(path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            for h in &hyps {
                writeln!(f, "{h}").with_context(|| format!("cannot write {}", path.display()))?;
            }
        }
        let ref_streams: Vec<Vec<String>> = refs.into_iter().map(|r| r.lines).collect();
        // sacreBLEU's defaults: detokenized, cased, 13a.
        let sacre = corpus_bleu(&hyps, &ref_streams, &BleuOptions::default())?;
        // The IWSLT convention: tokenized, lowercased BLEU (here: 13a tokens, lowercased).
        let tok_lc = corpus_bleu(
            &hyps,
            &ref_streams,
            &BleuOptions {
                tokenize: Tokenizer::Thirteen,
                lowercase: true,
                ..Default::default()
            },
        )?;
        let chrf = corpus_chrf(&hyps, &ref_streams, &ChrfOptions::default())?;
        let per_sec = hyps.len() as f64 / seconds.max(1e-9);
        if self.json {
            return Ok(serde_json::json!({
                "bleu": sacre.score,
                "bleu_signature": sacre.signature.to_string(),
                "bleu_tokenized_lowercased": tok_lc.score,
                "bleu_tokenized_lowercased_signature": tok_lc.signature.to_string(),
                "chrf": chrf.score,
                "sentences": hyps.len(),
                "seconds": seconds,
                "sentences_per_second": per_sec,
                "model": self.model.display().to_string(),
                "beam": self.decode.beam,
                "gates_inference": bundle.config.model.gates.inference,
            })
            .to_string());
        }
        let text = format_bleu(&sacre, Style::default());
        let multi = format_bleu(
            &tok_lc,
            Style {
                format: OutputFormat::MultiBleu,
                ..Style::default()
            },
        );
        Ok(format!(
            "{text}\n{multi} (13a-tokenized, lowercased)\nchrF2 = {:.2}\n{} sentences in {seconds:.1} s ({per_sec:.1} sentences/s), beam {}",
            chrf.score,
            hyps.len(),
            self.decode.beam
        ))
    }
}
