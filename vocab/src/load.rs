//! Opening any vocabulary file: `tokenizer.json` or a SentencePiece `.model`.

use std::path::{Path, PathBuf};

use crate::hf::{HfVocab, TOKENIZER_FILE};
use crate::interface::Vocab;
use crate::spm::{SpmVocab, SPM_FILE};
use crate::VocabError;

/// Loads a vocabulary, choosing the backend by file:
/// * a directory: its `tokenizer.json`, else its `sentencepiece.model`, else
///   its only `*.json` or `*.model` file;
/// * `*.json`: a `tokenizers` model; `*.model`: a SentencePiece model;
/// * any other name: by content (JSON starts with `{`).
///
/// Errors name the path: missing file, not a vocabulary, truncated or
/// corrupt, wrong special-token layout.
pub fn load(path: impl AsRef<Path>) -> Result<Box<dyn Vocab>, VocabError> {
    let path = path.as_ref();
    let meta = std::fs::metadata(path).map_err(|e| VocabError::io(path, e))?;
    let file = if meta.is_dir() {
        find_in_dir(path)?
    } else {
        path.to_path_buf()
    };
    match file.extension().and_then(|e| e.to_str()) {
        Some("json") => Ok(Box::new(HfVocab::from_file(&file)?)),
        Some("model") => Ok(Box::new(SpmVocab::from_file(&file)?)),
        _ => {
            let bytes = std::fs::read(&file).map_err(|e| VocabError::io(&file, e))?;
            if looks_like_json(&bytes) {
                let text = std::str::from_utf8(&bytes).map_err(|e| {
                    VocabError::load(&file, format!("not a tokenizer.json: not UTF-8 ({e})"))
                })?;
                Ok(Box::new(HfVocab::from_json(text, &file)?))
            } else {
                Ok(Box::new(SpmVocab::from_bytes(bytes, &file)?))
            }
        }
    }
}

fn looks_like_json(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'{')
}

fn find_in_dir(dir: &Path) -> Result<PathBuf, VocabError> {
    for name in [TOKENIZER_FILE, SPM_FILE] {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| VocabError::io(dir, e))? {
        let entry = entry.map_err(|e| VocabError::io(dir, e))?;
        let p = entry.path();
        let ext = p.extension().and_then(|e| e.to_str());
        if p.is_file() && matches!(ext, Some("json") | Some("model")) {
            found.push(p);
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(VocabError::load(
            dir,
            format!("no {TOKENIZER_FILE}, {SPM_FILE} or other *.json / *.model vocabulary in this directory"),
        )),
        n => Err(VocabError::load(
            dir,
            format!("{n} candidate vocabulary files in this directory; name one"),
        )),
    }
}
