use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use vocab::stream::{decode_stream, encode_stream, EncodeOutput};
use vocab::{load, train_files, ModelType, TrainConfig, Vocab, SPECIAL_PIECES};

/// Train, inspect and apply subword vocabularies.
#[derive(Parser)]
#[command(name = "nmt-vocab", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a vocabulary on raw text files (one sentence per line) and save
    /// it as a tokenizer.json.
    Train {
        /// Subword algorithm.
        #[arg(long, value_enum, default_value = "unigram")]
        model: ModelType,
        /// Number of ids, the 4 special ones (pad, unk, bos, eos) included.
        #[arg(long, default_value_t = 8000)]
        vocab_size: usize,
        /// BPE: minimum count of a merged pair. Unigram: words seen fewer
        /// times are left out of training.
        #[arg(long, default_value_t = 2)]
        min_frequency: u64,
        /// Fraction of character occurrences kept in the alphabet, in (0, 1];
        /// the rarest characters beyond it encode as unk.
        #[arg(long, default_value_t = 1.0)]
        character_coverage: f64,
        /// Longest piece, in characters.
        #[arg(long, default_value_t = 16)]
        max_piece_length: usize,
        /// Train one vocabulary on all inputs together. Without it, several
        /// inputs give one vocabulary each, written into the --output
        /// directory as <input file name>.tokenizer.json.
        #[arg(long)]
        joint: bool,
        /// Text files to train on (UTF-8).
        #[arg(long, num_args = 1.., required = true)]
        input: Vec<PathBuf>,
        /// Where to write: a *.json file, or a directory (created if needed)
        /// that receives tokenizer.json (or one file per input, see --joint).
        #[arg(long)]
        output: PathBuf,
    },
    /// Encode standard input, one sentence per line, to one line of ids (or
    /// pieces) each.
    Encode {
        /// Vocabulary: tokenizer.json, SentencePiece .model, or a directory
        /// holding one.
        #[arg(long)]
        vocab: PathBuf,
        /// Write ids (the default).
        #[arg(long, conflicts_with = "pieces")]
        ids: bool,
        /// Write pieces instead of ids.
        #[arg(long)]
        pieces: bool,
    },
    /// Decode standard input, one line of space-separated ids each, to text.
    Decode {
        /// Vocabulary: tokenizer.json, SentencePiece .model, or a directory
        /// holding one.
        #[arg(long)]
        vocab: PathBuf,
    },
    /// Print a vocabulary's kind, size and special tokens.
    Info {
        /// Vocabulary: tokenizer.json, SentencePiece .model, or a directory
        /// holding one.
        #[arg(long)]
        vocab: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Train {
            model,
            vocab_size,
            min_frequency,
            character_coverage,
            max_piece_length,
            joint,
            input,
            output,
        } => {
            let config = TrainConfig {
                model,
                vocab_size,
                min_frequency,
                character_coverage,
                max_piece_length,
            };
            if joint || input.len() == 1 {
                train_one(&config, &input, &single_output(&output)?)
            } else {
                if output.extension().is_some_and(|e| e == "json") {
                    bail!(
                        "{}: {} inputs without --joint give one vocabulary each; \
                         --output must be a directory (or pass --joint)",
                        output.display(),
                        input.len()
                    );
                }
                create_dir(&output)?;
                for file in &input {
                    let name = file
                        .file_name()
                        .with_context(|| format!("{}: not a file name", file.display()))?;
                    let target = output.join(format!("{}.tokenizer.json", name.to_string_lossy()));
                    train_one(&config, std::slice::from_ref(file), &target)?;
                }
                Ok(())
            }
        }
        Command::Encode { vocab, pieces, .. } => {
            let v = load(&vocab)?;
            let format = if pieces {
                EncodeOutput::Pieces
            } else {
                EncodeOutput::Ids
            };
            encode_stream(
                v.as_ref(),
                std::io::stdin().lock(),
                "<stdin>",
                std::io::stdout().lock(),
                format,
            )?;
            Ok(())
        }
        Command::Decode { vocab } => {
            let v = load(&vocab)?;
            decode_stream(
                v.as_ref(),
                std::io::stdin().lock(),
                "<stdin>",
                std::io::stdout().lock(),
            )?;
            Ok(())
        }
        Command::Info { vocab } => {
            let v = load(&vocab)?;
            print_info(&vocab, v.as_ref());
            Ok(())
        }
    }
}

/// The file a single vocabulary goes to: `output` itself when it names a
/// `.json` file, else `output/tokenizer.json`.
fn single_output(output: &Path) -> anyhow::Result<PathBuf> {
    if output.extension().is_some_and(|e| e == "json") {
        if let Some(parent) = output.parent().filter(|p| !p.as_os_str().is_empty()) {
            create_dir(parent)?;
        }
        Ok(output.to_path_buf())
    } else {
        create_dir(output)?;
        Ok(output.join(vocab::hf::TOKENIZER_FILE))
    }
}

fn create_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("{}: cannot create directory", dir.display()))
}

fn train_one(config: &TrainConfig, inputs: &[PathBuf], target: &Path) -> anyhow::Result<()> {
    let start = std::time::Instant::now();
    let v = train_files(config, inputs)?;
    v.save(target)?;
    eprintln!(
        "wrote {} ({} ids, {}) in {:.1} s",
        target.display(),
        v.len(),
        v.kind(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn print_info(path: &Path, v: &dyn Vocab) {
    println!("file: {}", path.display());
    println!("kind: {}", v.kind());
    println!("size: {}", v.len());
    for (id, name) in SPECIAL_PIECES.iter().enumerate() {
        println!("special: {id} {name}");
    }
}
