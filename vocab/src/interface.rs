//! The [`Vocab`] interface that every other crate uses.

use std::fmt;
use std::path::Path;

use crate::special::SPECIAL_PIECES;
use crate::VocabError;

/// Which subword model a loaded vocabulary is: the algorithm it was trained with (as
/// [`crate::ModelType`] names it) for a `tokenizer.json`, or a SentencePiece file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VocabKind {
    /// Hugging Face `tokenizers` Unigram model (`tokenizer.json`).
    Unigram,
    /// Hugging Face `tokenizers` BPE model (`tokenizer.json`).
    Bpe,
    /// A SentencePiece model file (`*.model`, made by `spm_train`).
    SentencePiece,
}

impl VocabKind {
    /// Short lower-case name, as printed by `nmt-vocab info`.
    pub fn name(self) -> &'static str {
        match self {
            VocabKind::Unigram => "unigram",
            VocabKind::Bpe => "bpe",
            VocabKind::SentencePiece => "sentencepiece",
        }
    }
}

impl fmt::Display for VocabKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A subword vocabulary. Ids 0..4 are always pad, unk, bos, eos
/// (see [`crate::special`]); ordinary pieces follow.
///
/// Contract, for every implementation and any UTF-8 input (nothing panics):
/// * `encode` never yields pad, bos or eos; text the model cannot represent
///   (for instance a character never seen in training) becomes [`crate::UNK_ID`].
/// * `decode(encode(t)) == normalize(t)` whenever `encode(t)` holds no unk;
///   an unk decodes as [`crate::UNK_SURFACE`].
///
/// The trait is object safe: other crates hold a `Box<dyn Vocab>` from [`crate::load`].
pub trait Vocab: Send + Sync {
    /// Number of ids, special tokens included.
    fn len(&self) -> usize;

    /// Never true: a vocabulary always holds the special tokens.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Which subword model this is.
    fn kind(&self) -> VocabKind;

    /// Subword ids for `text`, without bos/eos.
    fn encode(&self, text: &str) -> Result<Vec<u32>, VocabError>;

    /// Text for `ids`; pad, bos and eos are skipped, unk becomes
    /// [`crate::UNK_SURFACE`]. An id `>= len()` is an error.
    fn decode(&self, ids: &[u32]) -> Result<String, VocabError>;

    /// The text that `decode(encode(text))` gives back when nothing is unknown:
    /// the model's normalization (for trained models NFKC, `▁` as a space,
    /// whitespace runs collapsed to one space, trimmed; for SentencePiece
    /// models whatever normalization rule the model was trained with).
    fn normalize(&self, text: &str) -> Result<String, VocabError>;

    /// Piece string of `id` (`"<pad>"`, `"<unk>"`, `"<s>"`, `"</s>"` for the
    /// special ids), or `None` when out of range.
    fn id_to_piece(&self, id: u32) -> Option<String>;

    /// Id of a piece string, or `None` when the vocabulary lacks it.
    fn piece_to_id(&self, piece: &str) -> Option<u32>;

    /// Writes the vocabulary in its own format (`tokenizer.json` or a
    /// SentencePiece `.model`), loadable again with [`crate::load`].
    fn save(&self, path: &Path) -> Result<(), VocabError>;

    /// File name under which [`Vocab::save`] output should be stored inside a
    /// directory so that [`crate::load`] on the directory finds it
    /// (`tokenizer.json` or `sentencepiece.model`).
    fn file_name(&self) -> &'static str;

    /// Pieces of `text` for display (one per id of `encode(text)`).
    fn tokenize(&self, text: &str) -> Result<Vec<String>, VocabError> {
        let ids = self.encode(text)?;
        Ok(ids
            .iter()
            .map(|&id| {
                self.id_to_piece(id)
                    .unwrap_or_else(|| SPECIAL_PIECES[crate::UNK_ID as usize].to_string())
            })
            .collect())
    }
}
