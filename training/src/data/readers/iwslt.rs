//! The IWSLT release's training files `train.tags.LANG-PAIR.LANG`: talk
//! transcripts, one or more sentences per line, interleaved with metadata
//! tag lines (`<url>`, `<keywords>`, `<speaker>`, `<talkid>`, `<title>`,
//! `<description>`, `<reviewer ...>`, `<translator ...>`, `<doc ...>`,
//! `</doc>`). The release's `IWSLT*.xml` dev/test files are segment files
//! read by [`super::sgml`].

use super::Record;
use crate::data::error::LineProblem;
use crate::data::readers::sgml::collapse_whitespace;

/// What to do with the metadata lines of a `train.tags` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TagLines {
    /// Drop every line whose first non-blank character is `<` (all tag
    /// lines). Only transcript text is kept.
    #[default]
    DropAll,
    /// Exactly what fairseq's `prepare-iwslt14.sh` (and its IWSLT17
    /// variant) does: drop lines containing `<url>`, `<talkid>`,
    /// `<keywords>`, `<speaker>`, `<reviewer`, `<translator`, `<doc` or
    /// `</doc>`, but keep the talk titles and descriptions as sentences
    /// with their `<title>`/`<description>` tags removed. Needed to get
    /// fairseq's 160K-pair IWSLT14 training set.
    Fairseq,
}

/// Substrings that make fairseq's script drop a line (`grep -v`).
const FAIRSEQ_DROPPED: [&[u8]; 8] = [
    b"<url>",
    b"<talkid>",
    b"<keywords>",
    b"<speaker>",
    b"<reviewer",
    b"<translator",
    b"<doc",
    b"</doc>",
];

/// Tags fairseq's script removes while keeping the line (`sed s/<title>//g`).
const FAIRSEQ_STRIPPED: [&str; 4] = ["<title>", "</title>", "<description>", "</description>"];

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Whether a line is metadata to drop under `policy`. Decided on bytes so
/// that a tag line with broken UTF-8 is still recognised as a tag line.
fn is_dropped(bytes: &[u8], policy: TagLines) -> bool {
    match policy {
        TagLines::DropAll => bytes.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'<'),
        TagLines::Fairseq => FAIRSEQ_DROPPED.iter().any(|t| contains(bytes, t)),
    }
}

/// A record for a line of a `train.tags` file, `None` for a metadata line dropped under
/// `policy`; whitespace is collapsed (as the Moses tokenizer in fairseq's pipeline does).
pub(crate) fn tags_record(line: u64, bytes: &[u8], policy: TagLines) -> Option<Record> {
    if is_dropped(bytes, policy) {
        return None;
    }
    let text = match std::str::from_utf8(bytes) {
        Err(e) => Err(LineProblem::InvalidUtf8 {
            byte: e.valid_up_to(),
        }),
        Ok(s) => {
            let s = if policy == TagLines::Fairseq {
                FAIRSEQ_STRIPPED
                    .iter()
                    .fold(s.to_owned(), |acc, t| acc.replace(t, ""))
            } else {
                s.to_owned()
            };
            let s = collapse_whitespace(&s);
            if s.is_empty() {
                Err(LineProblem::Empty)
            } else {
                Ok(s)
            }
        }
    };
    Some(Record {
        line,
        id: None,
        text,
    })
}
