//! Vocabularies backed by a Hugging Face `tokenizers` model (`tokenizer.json`),
//! as made by [`crate::train`].

use std::path::Path;

use tokenizers::decoders::DecoderWrapper;
use tokenizers::normalizers::replace::ReplacePattern;
use tokenizers::normalizers::{Sequence, Strip, NFKC};
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::{
    Decoder, Model, ModelWrapper, NormalizedString, Normalizer, NormalizerWrapper,
    PreTokenizerWrapper, Tokenizer,
};

use crate::interface::{Vocab, VocabKind};
use crate::special::{BOS_ID, EOS_ID, NUM_SPECIAL, PAD_ID, SPECIAL_PIECES, UNK_ID, UNK_SURFACE};
use crate::VocabError;

/// File name of a saved `tokenizers` model.
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// SentencePiece's word-boundary mark.
pub(crate) const METASPACE: char = '\u{2581}';

/// The normalizer stored in every trained `tokenizer.json`: NFKC, a literal
/// `▁` read as a space (else it would decode as one and break the round
/// trip), whitespace runs collapsed to one space, trimmed. Like
/// SentencePiece's `nmt_nfkc` minus its control-character removal.
pub(crate) fn normalizer() -> Result<NormalizerWrapper, VocabError> {
    let lib = |e: tokenizers::Error| VocabError::Other(format!("building the normalizer: {e}"));
    Ok(NormalizerWrapper::Sequence(Sequence::new(vec![
        NormalizerWrapper::NFKC(NFKC),
        NormalizerWrapper::Replace(
            tokenizers::normalizers::Replace::new(METASPACE.to_string(), " ").map_err(lib)?,
        ),
        NormalizerWrapper::Replace(
            tokenizers::normalizers::Replace::new(ReplacePattern::Regex(r"\s+".into()), " ")
                .map_err(lib)?,
        ),
        NormalizerWrapper::StripNormalizer(Strip::new(true, true)),
    ])))
}

/// SentencePiece-style word splitting: spaces become `▁`, which starts every word.
pub(crate) fn metaspace() -> Metaspace {
    Metaspace::new(METASPACE, PrependScheme::Always, true)
}

/// A trained or loaded `tokenizers` Unigram or BPE model.
pub struct HfVocab {
    tokenizer: Tokenizer,
    kind: VocabKind,
}

impl std::fmt::Debug for HfVocab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HfVocab")
            .field("kind", &self.kind)
            .field("len", &self.len())
            .finish()
    }
}

impl HfVocab {
    /// Wraps a model made by [`crate::train`] with our normalizer, word
    /// splitting and decoder, and no added tokens: special pieces written in
    /// the text must stay text, which `tokenizers`' added tokens would not.
    pub(crate) fn from_model(model: ModelWrapper) -> Result<Self, VocabError> {
        let mut tokenizer = Tokenizer::new(model);
        tokenizer
            .with_normalizer(Some(normalizer()?))
            .with_pre_tokenizer(Some(PreTokenizerWrapper::Metaspace(metaspace())))
            .with_decoder(Some(DecoderWrapper::Metaspace(metaspace())));
        Self::checked(tokenizer, Path::new("<trained model>"))
    }

    /// Loads a `tokenizer.json`. Its model must be Unigram or BPE with our
    /// special pieces at ids 0..4 and `<unk>` as its unknown token.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, VocabError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| VocabError::io(path, e))?;
        let text = std::str::from_utf8(&bytes).map_err(|e| {
            VocabError::load(path, format!("not a tokenizer.json: not UTF-8 ({e})"))
        })?;
        Self::from_json(text, path)
    }

    /// Parses the text of a `tokenizer.json`; `path` only names it in errors.
    pub fn from_json(text: &str, path: &Path) -> Result<Self, VocabError> {
        // Checked on the raw JSON first: the parsed model does not expose its unk id.
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| VocabError::load(path, format!("not a tokenizer.json: {e}")))?;
        let model = value
            .get("model")
            .ok_or_else(|| VocabError::load(path, "not a tokenizer.json: no \"model\" field"))?;
        let model_type = model.get("type").and_then(|t| t.as_str()).unwrap_or("");
        let unk = SPECIAL_PIECES[UNK_ID as usize];
        let unk_ok = match model_type {
            "Unigram" => model.get("unk_id").and_then(|u| u.as_u64()) == Some(UNK_ID as u64),
            "BPE" => model.get("unk_token").and_then(|u| u.as_str()) == Some(unk),
            other => {
                return Err(VocabError::load(
                    path,
                    format!("unsupported tokenizer model type {other:?} (expected Unigram or BPE)"),
                ))
            }
        };
        if !unk_ok {
            return Err(VocabError::load(
                path,
                format!("the model's unknown token must be {unk:?} at id {UNK_ID}"),
            ));
        }
        let tokenizer: Tokenizer = text
            .parse()
            .map_err(|e| VocabError::load(path, format!("invalid tokenizer.json: {e}")))?;
        Self::checked(tokenizer, path)
    }

    fn checked(tokenizer: Tokenizer, path: &Path) -> Result<Self, VocabError> {
        let kind = match tokenizer.get_model() {
            ModelWrapper::Unigram(_) => VocabKind::Unigram,
            ModelWrapper::BPE(_) => VocabKind::Bpe,
            _ => {
                return Err(VocabError::load(
                    path,
                    "unsupported tokenizer model (expected Unigram or BPE)",
                ))
            }
        };
        let model = tokenizer.get_model();
        for (id, want) in SPECIAL_PIECES.iter().enumerate() {
            let got = model.id_to_token(id as u32);
            if got.as_deref() != Some(*want) {
                return Err(VocabError::load(
                    path,
                    format!(
                        "id {id} must be the special piece {want:?}, found {:?}",
                        got.unwrap_or_default()
                    ),
                ));
            }
        }
        Ok(HfVocab { tokenizer, kind })
    }

    /// The `tokenizer.json` text.
    pub fn to_json(&self) -> Result<String, VocabError> {
        self.tokenizer
            .to_string(true)
            .map_err(|e| VocabError::Other(format!("serializing the tokenizer: {e}")))
    }

    /// The wrapped `tokenizers` object, for anything this crate does not cover.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Appends the ids of `piece`'s characters, one by one (unk for those
    /// the vocabulary lacks, consecutive unks fused as the models do).
    fn spell(&self, piece: &str, out: &mut Vec<u32>) {
        let model = self.tokenizer.get_model();
        let mut buf = [0u8; 4];
        for c in piece.chars() {
            let id = model
                .token_to_id(c.encode_utf8(&mut buf))
                .filter(|&id| id >= NUM_SPECIAL)
                .unwrap_or(UNK_ID);
            if !(id == UNK_ID && out.last() == Some(&UNK_ID)) {
                out.push(id);
            }
        }
    }
}

impl Vocab for HfVocab {
    fn len(&self) -> usize {
        self.tokenizer.get_model().get_vocab_size()
    }

    fn kind(&self) -> VocabKind {
        self.kind
    }

    fn encode(&self, text: &str) -> Result<Vec<u32>, VocabError> {
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| VocabError::Other(format!("encoding: {e}")))?;
        let ids = encoding.get_ids();
        let unk = SPECIAL_PIECES[UNK_ID as usize];
        let offsets = encoding.get_offsets();
        // An unk is literal when its source text is the name "<unk>" itself
        // (a matched piece), not a span of unknown characters.
        let literal_special = |i: usize| match ids[i] {
            PAD_ID | BOS_ID | EOS_ID => true,
            UNK_ID => offsets
                .get(i)
                .and_then(|&(start, end)| text.get(start..end))
                .is_some_and(|span| span == unk),
            _ => false,
        };
        if !(0..ids.len()).any(literal_special) {
            return Ok(ids.to_vec());
        }
        // The models hold the special pieces like any other, so text such as
        // "</s>" can match one (a Unigram model even prefers them: score 0).
        // They must never come from text: spell such a match out instead.
        let mut out = Vec::with_capacity(ids.len() + 4);
        for (i, &id) in ids.iter().enumerate() {
            if literal_special(i) {
                self.spell(SPECIAL_PIECES[id as usize], &mut out);
            } else if !(id == UNK_ID && out.last() == Some(&UNK_ID)) {
                out.push(id);
            }
        }
        Ok(out)
    }

    fn decode(&self, ids: &[u32]) -> Result<String, VocabError> {
        let model = self.tokenizer.get_model();
        let mut pieces = Vec::with_capacity(ids.len());
        for &id in ids {
            match id {
                PAD_ID | BOS_ID | EOS_ID => {}
                UNK_ID => pieces.push(UNK_SURFACE.to_string()),
                _ => pieces.push(model.id_to_token(id).ok_or(VocabError::IdOutOfRange {
                    id,
                    len: self.len(),
                })?),
            }
        }
        match self.tokenizer.get_decoder() {
            Some(decoder) => decoder
                .decode(pieces)
                .map_err(|e| VocabError::Other(format!("decoding: {e}"))),
            None => Ok(pieces.concat()),
        }
    }

    fn normalize(&self, text: &str) -> Result<String, VocabError> {
        let mut normalized = NormalizedString::from(text);
        if let Some(normalizer) = self.tokenizer.get_normalizer() {
            normalizer
                .normalize(&mut normalized)
                .map_err(|e| VocabError::Other(format!("normalizing: {e}")))?;
        }
        Ok(normalized.get().to_string())
    }

    fn id_to_piece(&self, id: u32) -> Option<String> {
        self.tokenizer.get_model().id_to_token(id)
    }

    fn piece_to_id(&self, piece: &str) -> Option<u32> {
        self.tokenizer.get_model().token_to_id(piece)
    }

    fn save(&self, path: &Path) -> Result<(), VocabError> {
        let json = self.to_json()?;
        std::fs::write(path, json).map_err(|e| VocabError::io(path, e))
    }

    fn file_name(&self) -> &'static str {
        TOKENIZER_FILE
    }
}
