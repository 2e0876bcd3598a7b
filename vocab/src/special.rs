//! The four special tokens every vocabulary places at ids 0..4.

/// Padding; never produced by [`crate::Vocab::encode`].
pub const PAD_ID: u32 = 0;
/// Unknown piece: anything the subword model cannot represent.
pub const UNK_ID: u32 = 1;
/// Beginning of sentence (decoder input start).
pub const BOS_ID: u32 = 2;
/// End of sentence.
pub const EOS_ID: u32 = 3;

/// Number of special ids; ordinary pieces start here.
pub const NUM_SPECIAL: u32 = 4;

/// Piece strings of the special tokens, indexed by id (SentencePiece's names).
pub const SPECIAL_PIECES: [&str; NUM_SPECIAL as usize] = ["<pad>", "<unk>", "<s>", "</s>"];

/// What [`crate::Vocab::decode`] writes for [`UNK_ID`]: SentencePiece's
/// unknown symbol U+2047, so an unknown span stays visible in output text.
pub const UNK_SURFACE: &str = "\u{2047}";

/// Whether `id` is one of pad, unk, bos, eos.
pub fn is_special(id: u32) -> bool {
    id < NUM_SPECIAL
}
