//! Errors of the corpus pipeline, the reasons a pair can be skipped or
//! filtered, and the [`Report`] that counts them.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use vocab::VocabError;

/// Which side of a sentence pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    Source,
    Target,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Source => "source",
            Side::Target => "target",
        })
    }
}

/// A position in an input file: path and 1-based physical line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub path: PathBuf,
    pub line: u64,
}

impl Origin {
    pub fn new(path: &Path, line: u64) -> Self {
        Origin {
            path: path.to_path_buf(),
            line,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.path.display(), self.line)
    }
}

/// What is wrong with one line (or segment) of one side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineProblem {
    /// The bytes are not UTF-8; `byte` is the offset of the first bad byte
    /// within the line's text.
    InvalidUtf8 { byte: usize },
    /// Nothing but whitespace.
    Empty,
    /// A segment line the reader could not parse (e.g. `<seg` without
    /// `</seg>` on the same line).
    Malformed(String),
}

impl LineProblem {
    /// The counting key of this problem in a [`Report`].
    pub fn reason(&self) -> SkipReason {
        match self {
            LineProblem::InvalidUtf8 { .. } => SkipReason::InvalidUtf8,
            LineProblem::Empty => SkipReason::EmptyLine,
            LineProblem::Malformed(_) => SkipReason::Malformed,
        }
    }
}

impl fmt::Display for LineProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineProblem::InvalidUtf8 { byte } => {
                write!(f, "invalid UTF-8 at byte {byte} of the text")
            }
            LineProblem::Empty => f.write_str("empty line"),
            LineProblem::Malformed(m) => write!(f, "malformed: {m}"),
        }
    }
}

/// Errors of reading, encoding and batching a parallel corpus. Every variant
/// about input data names the file and line.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// Opening or reading a file failed (`line` is the last line read, if any).
    #[error("{}{}: {source}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Io {
        path: PathBuf,
        line: Option<u64>,
        #[source]
        source: std::io::Error,
    },
    /// One side of a pair is unusable (and skipping was not asked for).
    #[error("{at}: {side} {problem} (pass skip_bad_lines / --skip-bad-lines to skip such pairs)")]
    BadLine {
        at: Origin,
        side: Side,
        problem: LineProblem,
    },
    /// The two sides' segment ids differ: the files are not aligned here.
    #[error(
        "seg id mismatch: source {src} has id=\"{src_id}\" but target {tgt} has id=\"{tgt_id}\""
    )]
    SegIdMismatch {
        src: Origin,
        src_id: String,
        tgt: Origin,
        tgt_id: String,
    },
    /// The two sides hold different numbers of sentences. Never skippable:
    /// there is no way to tell where the alignment broke.
    #[error(
        "line count mismatch: {longer_side} file {} has {longer_count} sentences but {} has {shorter_count}; first unpaired sentence at {first_unpaired}",
        first_unpaired.path.display(),
        shorter_path.display()
    )]
    CountMismatch {
        longer_side: Side,
        first_unpaired: Origin,
        longer_count: u64,
        shorter_path: PathBuf,
        shorter_count: u64,
    },
    /// The vocabulary refused a sentence.
    #[error("{at}: cannot encode {side} sentence: {source}")]
    Encode {
        at: Origin,
        side: Side,
        #[source]
        source: VocabError,
    },
    /// The two files of a pair look like different formats.
    #[error("{} looks like {src_format:?} but {} looks like {tgt_format:?}; pass an explicit format", src.display(), tgt.display())]
    FormatMismatch {
        src: PathBuf,
        src_format: super::Format,
        tgt: PathBuf,
        tgt_format: super::Format,
    },
    /// A sentence does not fit in a batch on its own.
    #[error("sentence {index} has {positions} {side} positions (with bos/eos), more than max_tokens = {max_tokens}; filter with a maximum length or raise the budget")]
    TooLong {
        index: usize,
        side: Side,
        positions: usize,
        max_tokens: usize,
    },
    /// A limit of the compact storage or an invalid setting.
    #[error("{0}")]
    Invalid(String),
}

/// Why a pair was skipped while reading (only with `skip_bad_lines`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkipReason {
    InvalidUtf8,
    EmptyLine,
    Malformed,
    SegIdMismatch,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SkipReason::InvalidUtf8 => "invalid UTF-8",
            SkipReason::EmptyLine => "empty line",
            SkipReason::Malformed => "malformed segment",
            SkipReason::SegIdMismatch => "seg id mismatch",
        })
    }
}

/// Why a pair was dropped by the length filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FilterReason {
    /// Fewer subword tokens than `min_len` on this side.
    TooShort(Side),
    /// More subword tokens than `max_len` on this side.
    TooLong(Side),
    /// Length ratio (longer / shorter side) above `max_ratio`.
    Ratio,
}

impl fmt::Display for FilterReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FilterReason::TooShort(s) => write!(f, "{s} too short"),
            FilterReason::TooLong(s) => write!(f, "{s} too long"),
            FilterReason::Ratio => f.write_str("length ratio too high"),
        }
    }
}

/// How many skip messages a [`Report`] keeps verbatim.
pub const MAX_EXAMPLES: usize = 10;

/// Counts of what happened to the input pairs, for reporting at the end of
/// reading/encoding.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// Aligned pairs found in the files, skipped ones included.
    pub pairs_seen: u64,
    /// Pairs that made it into the result.
    pub pairs_kept: u64,
    /// Pairs skipped for bad data, by reason.
    pub skipped: BTreeMap<SkipReason, u64>,
    /// Pairs dropped by the length filter, by reason.
    pub filtered: BTreeMap<FilterReason, u64>,
    /// The first [`MAX_EXAMPLES`] skip messages (file, line, problem).
    pub examples: Vec<String>,
    /// Pairs kept from each part of the corpus ([`crate::data::CorpusSpec::parts`]), in order;
    /// filled by [`crate::data::EncodedCorpus::read`]. The kept pairs of part `p` are the
    /// corpus indices after those of parts `0..p`.
    pub kept_per_part: Vec<u64>,
}

impl Report {
    /// Total pairs skipped for bad data.
    pub fn total_skipped(&self) -> u64 {
        self.skipped.values().sum()
    }

    /// Total pairs dropped by the length filter.
    pub fn total_filtered(&self) -> u64 {
        self.filtered.values().sum()
    }

    pub(crate) fn skip(&mut self, reason: SkipReason, message: String) {
        *self.skipped.entry(reason).or_insert(0) += 1;
        if self.examples.len() < MAX_EXAMPLES {
            self.examples.push(message);
        }
    }

    pub(crate) fn filter(&mut self, reason: FilterReason) {
        *self.filtered.entry(reason).or_insert(0) += 1;
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} pairs read, {} kept, {} skipped, {} filtered",
            self.pairs_seen,
            self.pairs_kept,
            self.total_skipped(),
            self.total_filtered()
        )?;
        for (reason, n) in &self.skipped {
            write!(f, "\n  skipped ({reason}): {n}")?;
        }
        for (reason, n) in &self.filtered {
            write!(f, "\n  filtered ({reason}): {n}")?;
        }
        for e in &self.examples {
            write!(f, "\n  e.g. {e}")?;
        }
        Ok(())
    }
}
