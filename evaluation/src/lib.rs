//! BLEU and chrF computed exactly as sacreBLEU 2.x computes them (the release in
//! [`SACREBLEU_VERSION`]), in pure Rust, for lstm-nmt's evaluation tool `nmt-eval`
//! and the trainer's validation scores.
//!
//! References are passed as *streams*, as in sacreBLEU: `refs[k][i]` is the k-th
//! reference of hypothesis `i`; with one reference per line pass `&[refs]`.
//!
//! ```
//! use evaluation::{corpus_bleu, corpus_chrf, BleuOptions, ChrfOptions};
//!
//! let hyps = ["The cat sat on the mat.", "A dog barks."];
//! let refs = vec![vec!["The cat sat on a mat.", "A dog barks loudly."]];
//! let bleu = corpus_bleu(&hyps, &refs, &BleuOptions::default()).unwrap();
//! assert!(bleu.score > 0.0 && bleu.score < 100.0);
//! assert_eq!(
//!     bleu.signature.to_string(),
//!     "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"
//! );
//! let chrf = corpus_chrf(&hyps, &refs, &ChrfOptions::default()).unwrap();
//! assert_eq!(chrf.name, "chrF2");
//! ```
//!
//! To score many hypothesis sets against the same references (validation during
//! training), build a [`Bleu`] or [`Chrf`] once: it keeps the preprocessed references.

pub mod bleu;
pub mod chrf;
pub mod error;
pub mod io;
pub mod report;
pub mod signature;
pub mod smoothing;
mod streams;
pub mod text;
pub mod tokenizers;

pub use bleu::{compute_bleu, corpus_bleu, sentence_bleu, Bleu, BleuOptions, BleuScore, BleuStats};
pub use chrf::{corpus_chrf, sentence_chrf, Chrf, ChrfOptions, ChrfScore, ChrfStats};
pub use error::EvalError;
pub use report::{format_bleu, format_chrf, OutputFormat, Style};
pub use signature::{BleuSignature, ChrfSignature, SACREBLEU_VERSION};
pub use smoothing::Smoothing;
pub use tokenizers::Tokenizer;
