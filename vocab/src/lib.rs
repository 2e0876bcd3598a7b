//! Subword vocabularies: the [`Vocab`] interface shared by every other crate,
//! with fixed special-token ids.

/// Padding; never produced by [`Vocab::encode`].
pub const PAD_ID: u32 = 0;
/// Unknown piece: anything the subword model cannot represent.
pub const UNK_ID: u32 = 1;
/// Beginning of sentence (decoder input start).
pub const BOS_ID: u32 = 2;
/// End of sentence.
pub const EOS_ID: u32 = 3;

/// Errors from loading, training or using a vocabulary.
#[derive(Debug, thiserror::Error)]
pub enum VocabError {
    #[error("{path}: {message}")]
    Load { path: String, message: String },
    #[error("{0}")]
    Other(String),
}

/// A subword vocabulary. Ids 0..4 are always pad, unk, bos, eos.
pub trait Vocab: Send + Sync {
    /// Number of ids, special tokens included.
    fn len(&self) -> usize;
    /// Subword ids for `text`, without bos/eos.
    fn encode(&self, text: &str) -> Result<Vec<u32>, VocabError>;
    /// Text for `ids`; special ids are skipped.
    fn decode(&self, ids: &[u32]) -> Result<String, VocabError>;
}
