//! Errors of the evaluation library.

use std::path::PathBuf;

/// Everything that can go wrong while reading inputs or scoring.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file (or `<stdin>`).
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A line is not valid UTF-8.
    #[error("{path}:{line}: not valid UTF-8 (byte {byte} of the line): {source}")]
    InvalidUtf8 {
        /// The file (or `<stdin>`).
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// 1-based byte offset of the first invalid byte within the line.
        byte: usize,
        /// The decoding error.
        source: std::str::Utf8Error,
    },
    /// The hypothesis and a reference stream have different numbers of lines.
    #[error(
        "line counts differ: hypotheses {hyp_name} have {hyp_lines} lines but reference {ref_name} has {ref_lines}"
    )]
    LineCountMismatch {
        /// Name of the hypothesis stream.
        hyp_name: String,
        /// Its line count.
        hyp_lines: usize,
        /// Name of the reference stream.
        ref_name: String,
        /// Its line count.
        ref_lines: usize,
    },
    /// Scoring was asked for with no reference stream at all.
    #[error("no references given: at least one reference stream is needed")]
    NoReferences,
    /// A segment has a reference list of the wrong length.
    #[error("segment {segment}: expected {expected} references, found {found}")]
    RefCountMismatch {
        /// 0-based segment index.
        segment: usize,
        /// References every segment must have.
        expected: usize,
        /// References this segment has.
        found: usize,
    },
    /// A tokenizer name sacreBLEU does not define (or this crate does not implement).
    #[error("unknown tokenizer {name:?}; known: {known}")]
    UnknownTokenizer {
        /// The name given.
        name: String,
        /// The names accepted.
        known: String,
    },
    /// A smoothing method name that is not one of exp, floor, add-k, none.
    #[error("unknown smoothing method {0:?}; known: exp, floor, add-k, none")]
    UnknownSmoothing(String),
    /// A numeric option outside its valid range.
    #[error("invalid option {name}: {message}")]
    InvalidOption {
        /// The option.
        name: &'static str,
        /// What is wrong with its value.
        message: String,
    },
}
