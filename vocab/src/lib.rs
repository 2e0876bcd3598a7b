//! Subword vocabularies for lstm-nmt: the [`Vocab`] interface shared by every
//! other crate, with fixed special-token ids (pad 0, unk 1, bos 2, eos 3).
//!
//! * [`train::train_files`] / [`train::train_lines`]: train a Unigram or BPE
//!   model with Hugging Face `tokenizers`, saved as `tokenizer.json`.
//! * [`load`]: open a `tokenizer.json` or a SentencePiece `.model` as a
//!   `Box<dyn Vocab>`.
//!
//! ```no_run
//! use vocab::{load, Vocab, BOS_ID, EOS_ID};
//! let v = load("data/vocab/tokenizer.json")?;
//! let mut ids = vec![BOS_ID];
//! ids.extend(v.encode("Ein Hund läuft.")?);
//! ids.push(EOS_ID);
//! assert_eq!(v.decode(&ids)?, "Ein Hund läuft.");
//! # Ok::<(), vocab::VocabError>(())
//! ```

#[cfg(feature = "cli")]
pub mod cli;
pub mod error;
pub mod hf;
pub mod interface;
pub mod load;
pub mod special;
pub mod spm;
pub mod stream;
pub mod train;

pub use error::VocabError;
pub use hf::HfVocab;
pub use interface::{Vocab, VocabKind};
pub use load::load;
pub use special::{BOS_ID, EOS_ID, NUM_SPECIAL, PAD_ID, SPECIAL_PIECES, UNK_ID, UNK_SURFACE};
pub use spm::SpmVocab;
pub use train::{train_files, train_lines, ModelType, TrainConfig};
