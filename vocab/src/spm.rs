//! SentencePiece `.model` files (from `spm_train`) behind the [`Vocab`] trait.
//!
//! SentencePiece lays out its special pieces as `spm_train` was told (by
//! default unk=0, bos=1, eos=2, no pad). We map them onto our fixed ids
//! 0..4 and number the model's other pieces from 4 on, in model order.

use std::collections::HashMap;
use std::path::Path;

use prost::Message;
use sentencepiece::SentencePieceProcessor;

use crate::interface::{Vocab, VocabKind};
use crate::special::{BOS_ID, EOS_ID, NUM_SPECIAL, PAD_ID, SPECIAL_PIECES, UNK_ID, UNK_SURFACE};
use crate::VocabError;

/// File name used for a SentencePiece model stored in a directory.
pub const SPM_FILE: &str = "sentencepiece.model";

const METASPACE: char = '\u{2581}';

/// The part of SentencePiece's `ModelProto` we read: the piece list.
/// Decoded here (not by the C++ library) so that a corrupt file is rejected
/// before it reaches C++, and because the `sentencepiece` crate has no
/// id-to-piece lookup.
#[derive(Clone, PartialEq, Message)]
struct ModelProto {
    #[prost(message, repeated, tag = "1")]
    pieces: Vec<ProtoPiece>,
}

#[derive(Clone, PartialEq, Message)]
struct ProtoPiece {
    #[prost(string, optional, tag = "1")]
    piece: Option<String>,
}

/// A SentencePiece model with its ids remapped to ours.
pub struct SpmVocab {
    processor: SentencePieceProcessor,
    /// The model file's bytes, written back by [`Vocab::save`].
    proto: Vec<u8>,
    /// Our id for each SentencePiece id.
    spm_to_ours: Vec<u32>,
    /// SentencePiece id for each of our ids (`None`: pad when the model has none).
    ours_to_spm: Vec<Option<u32>>,
    /// Piece string for each of our ids.
    pieces: Vec<String>,
    /// Our id for each piece string.
    piece_ids: HashMap<String, u32>,
}

impl std::fmt::Debug for SpmVocab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpmVocab")
            .field("len", &self.len())
            .finish()
    }
}

impl SpmVocab {
    /// Loads a `.model` file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, VocabError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| VocabError::io(path, e))?;
        Self::from_bytes(bytes, path)
    }

    /// Loads a model from the bytes of a `.model` file; `path` only names it in errors.
    pub fn from_bytes(bytes: Vec<u8>, path: &Path) -> Result<Self, VocabError> {
        let not_spm =
            |why: String| VocabError::load(path, format!("not a SentencePiece model: {why}"));
        let proto = ModelProto::decode(bytes.as_slice()).map_err(|e| not_spm(e.to_string()))?;
        if proto.pieces.is_empty() {
            return Err(not_spm("it has no pieces".into()));
        }
        let spm_pieces: Vec<String> = proto
            .pieces
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                p.piece
                    .ok_or_else(|| not_spm(format!("piece {i} has no text")))
            })
            .collect::<Result<_, _>>()?;
        let processor = SentencePieceProcessor::from_serialized_proto(&bytes)
            .map_err(|e| not_spm(e.to_string()))?;
        let n = processor.len();
        if n != spm_pieces.len() {
            return Err(not_spm(format!(
                "{} pieces in the file but {n} in the loaded model",
                spm_pieces.len()
            )));
        }
        let as_index = |id: Option<u32>| id.map(|i| i as usize).filter(|&i| i < n);
        let unk = as_index(Some(processor.unk_id()));
        let bos = as_index(processor.bos_id());
        let eos = as_index(processor.eos_id());
        let pad = as_index(processor.pad_id());

        let mut spm_to_ours = Vec::with_capacity(n);
        let mut next = NUM_SPECIAL;
        for s in 0..n {
            let ours = if Some(s) == unk {
                UNK_ID
            } else if Some(s) == bos {
                BOS_ID
            } else if Some(s) == eos {
                EOS_ID
            } else if Some(s) == pad {
                PAD_ID
            } else {
                next += 1;
                next - 1
            };
            spm_to_ours.push(ours);
        }
        let mut ours_to_spm = vec![None; next as usize];
        let mut pieces: Vec<String> = SPECIAL_PIECES.iter().map(|p| p.to_string()).collect();
        pieces.resize(next as usize, String::new());
        for (s, &ours) in spm_to_ours.iter().enumerate() {
            ours_to_spm[ours as usize] = Some(s as u32);
            if ours >= NUM_SPECIAL {
                pieces[ours as usize] = spm_pieces[s].clone();
            }
        }
        let mut piece_ids = HashMap::with_capacity(pieces.len());
        for (id, piece) in pieces.iter().enumerate() {
            // First wins, so the special names keep their fixed ids.
            piece_ids.entry(piece.clone()).or_insert(id as u32);
        }
        Ok(SpmVocab {
            processor,
            proto: bytes,
            spm_to_ours,
            ours_to_spm,
            pieces,
            piece_ids,
        })
    }

    /// Our id for a SentencePiece id (`None` when out of range).
    pub fn from_spm_id(&self, spm_id: u32) -> Option<u32> {
        self.spm_to_ours.get(spm_id as usize).copied()
    }

    /// SentencePiece id for one of our ids (`None` when out of range, or for
    /// pad when the model has no pad piece).
    pub fn to_spm_id(&self, id: u32) -> Option<u32> {
        self.ours_to_spm.get(id as usize).copied().flatten()
    }

    fn spm_error(what: &str, e: sentencepiece::SentencePieceError) -> VocabError {
        VocabError::Other(format!("sentencepiece {what}: {e}"))
    }

    /// Decodes a run of SentencePiece ids holding no unk. `after_unk`: the
    /// run follows an unk, so a leading word mark is a space to keep
    /// (SentencePiece drops it only at the start of a sentence).
    fn decode_run(&self, run: &[u32], after_unk: bool, out: &mut String) -> Result<(), VocabError> {
        if run.is_empty() {
            return Ok(());
        }
        let text = self
            .processor
            .decode_piece_ids(run)
            .map_err(|e| Self::spm_error("decoding", e))?;
        let first = self.spm_to_ours[run[0] as usize];
        if after_unk && self.pieces[first as usize].starts_with(METASPACE) && !text.starts_with(' ')
        {
            out.push(' ');
        }
        out.push_str(&text);
        Ok(())
    }
}

/// SentencePiece decodes `▁` as a space, so read it as one on the way in.
fn unmark(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains(METASPACE) {
        std::borrow::Cow::Owned(text.replace(METASPACE, " "))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

impl Vocab for SpmVocab {
    fn len(&self) -> usize {
        self.ours_to_spm.len()
    }

    fn kind(&self) -> VocabKind {
        VocabKind::SentencePiece
    }

    fn encode(&self, text: &str) -> Result<Vec<u32>, VocabError> {
        let pieces = self
            .processor
            .encode(&unmark(text))
            .map_err(|e| Self::spm_error("encoding", e))?;
        Ok(pieces
            .iter()
            .map(|p| match self.from_spm_id(p.id) {
                // SentencePiece never matches control pieces in text; should
                // it ever, pad/bos/eos must still not come from encode.
                Some(id) if id >= NUM_SPECIAL || id == UNK_ID => id,
                _ => UNK_ID,
            })
            .collect())
    }

    fn decode(&self, ids: &[u32]) -> Result<String, VocabError> {
        let mut out = String::new();
        let mut run = Vec::with_capacity(ids.len());
        let mut after_unk = false;
        for &id in ids {
            if id as usize >= self.len() {
                return Err(VocabError::IdOutOfRange {
                    id,
                    len: self.len(),
                });
            }
            match id {
                PAD_ID | BOS_ID | EOS_ID => {}
                UNK_ID => {
                    self.decode_run(&run, after_unk, &mut out)?;
                    run.clear();
                    out.push_str(UNK_SURFACE);
                    after_unk = true;
                }
                _ => run.extend(self.to_spm_id(id)),
            }
        }
        self.decode_run(&run, after_unk, &mut out)?;
        Ok(out)
    }

    fn normalize(&self, text: &str) -> Result<String, VocabError> {
        let normalized = self
            .processor
            .normalize(&unmark(text))
            .map_err(|e| Self::spm_error("normalizing", e))?;
        Ok(normalized.replace(METASPACE, " ").trim().to_string())
    }

    fn id_to_piece(&self, id: u32) -> Option<String> {
        self.pieces.get(id as usize).cloned()
    }

    fn piece_to_id(&self, piece: &str) -> Option<u32> {
        self.piece_ids.get(piece).copied()
    }

    fn save(&self, path: &Path) -> Result<(), VocabError> {
        std::fs::write(path, &self.proto).map_err(|e| VocabError::io(path, e))
    }

    fn file_name(&self) -> &'static str {
        SPM_FILE
    }
}
