//! The plain one-sentence-per-line format, and the check every format makes of a
//! sentence's text.

use super::Record;
use crate::data::error::LineProblem;

/// Decodes `bytes` as one sentence: UTF-8 check, then the empty check.
/// Text is kept verbatim otherwise (the subword model normalises spaces).
pub(crate) fn decode_text(bytes: &[u8]) -> Result<String, LineProblem> {
    match std::str::from_utf8(bytes) {
        Ok(s) if s.trim().is_empty() => Err(LineProblem::Empty),
        Ok(s) => Ok(s.to_owned()),
        Err(e) => Err(LineProblem::InvalidUtf8 {
            byte: e.valid_up_to(),
        }),
    }
}

/// Plain parallel text: every line is one sentence.
pub(crate) fn plain_record(line: u64, bytes: &[u8]) -> Option<Record> {
    Some(Record {
        line,
        id: None,
        text: decode_text(bytes),
    })
}
