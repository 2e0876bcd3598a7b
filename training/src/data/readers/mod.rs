//! Readers of parallel text. Each file format has a reader that yields one
//! [`Record`] per sentence of one side; [`PairReader`] zips the two sides,
//! checks their alignment and yields [`Pair`]s with their origin.
//!
//! Formats ([`Format`], detected from the file name, `.gz` stripped first;
//! gzip itself is detected by magic bytes in every format):
//! - `Plain`: `NAME.SRC` / `NAME.TGT`, one sentence per line, kept verbatim
//!   (a trailing `\r` is removed);
//! - `IwsltTags`: `train.tags.L1-L2.L` (see [`iwslt`]);
//! - `IwsltXml`: `IWSLT*.xml` and `WmtSgml`: `*.sgm` / `*.sgml`, the `<seg>`
//!   lines (see [`sgml`]).

pub mod iwslt;
pub mod lines;
pub mod plain;
pub mod sgml;

use std::path::{Path, PathBuf};

use crate::data::error::{DataError, LineProblem, Origin, Report, Side, SkipReason};
use lines::LineReader;

pub use iwslt::TagLines;

/// A corpus file format (a training config's `data.format`, with `auto` for none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// One sentence per line.
    Plain,
    /// IWSLT `train.tags.*` with metadata tag lines.
    IwsltTags,
    /// IWSLT release XML (`<seg id="N">`).
    IwsltXml,
    /// WMT SGML (`<seg id=N>` in `<doc>`s).
    WmtSgml,
}

impl Format {
    /// Guesses the format from the file name: `train.tags.*` → `IwsltTags`,
    /// `*.xml` → `IwsltXml`, `*.sgm`/`*.sgml` → `WmtSgml`, anything else →
    /// `Plain`. A `.gz` suffix is ignored.
    pub fn detect(path: &Path) -> Format {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = name.strip_suffix(".gz").unwrap_or(&name);
        if name.starts_with("train.tags.") {
            Format::IwsltTags
        } else if name.ends_with(".xml") {
            Format::IwsltXml
        } else if name.ends_with(".sgm") || name.ends_with(".sgml") {
            Format::WmtSgml
        } else {
            Format::Plain
        }
    }
}

/// The two files of one part of a corpus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePair {
    pub src: PathBuf,
    pub tgt: PathBuf,
}

/// Which files make a parallel corpus: one or more [`FilePair`]s, read in
/// order and concatenated (e.g. IWSLT14's test set is five XML pairs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorpusSpec {
    pub parts: Vec<FilePair>,
}

impl CorpusSpec {
    /// A corpus of one source file and its target file.
    pub fn new(src: impl Into<PathBuf>, tgt: impl Into<PathBuf>) -> Self {
        CorpusSpec {
            parts: vec![FilePair {
                src: src.into(),
                tgt: tgt.into(),
            }],
        }
    }

    /// Appends another file pair, read after the previous ones.
    pub fn then(mut self, src: impl Into<PathBuf>, tgt: impl Into<PathBuf>) -> Self {
        self.parts.push(FilePair {
            src: src.into(),
            tgt: tgt.into(),
        });
        self
    }

    /// `PREFIX.SRC_LANG` / `PREFIX.TGT_LANG`, or the `.gz` versions where
    /// only those exist (e.g. `prefix("data/train", "de", "en")`).
    pub fn prefix(prefix: impl AsRef<Path>, src_lang: &str, tgt_lang: &str) -> Self {
        let side = |lang: &str| {
            let plain = PathBuf::from(format!("{}.{lang}", prefix.as_ref().display()));
            let gz = PathBuf::from(format!("{}.gz", plain.display()));
            if !plain.exists() && gz.exists() {
                gz
            } else {
                plain
            }
        };
        CorpusSpec::new(side(src_lang), side(tgt_lang))
    }
}

/// How to read a corpus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadOptions {
    /// Skip (and count in the [`Report`]) pairs with an invalid UTF-8,
    /// empty or malformed side or mismatched seg ids, instead of failing.
    /// A line-count mismatch is an error regardless.
    pub skip_bad_lines: bool,
    /// Force a format instead of detecting it from each file's name.
    pub format: Option<Format>,
    /// Metadata handling for `train.tags` files.
    pub tag_lines: TagLines,
}

/// One sentence of one side as a format reader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// 1-based line in the file.
    pub line: u64,
    /// Segment id (`<seg id=...>`), for segment formats.
    pub id: Option<String>,
    /// The sentence, or what is wrong with it.
    pub text: Result<String, LineProblem>,
}

/// A reader of one side of one file pair.
pub(crate) trait SideReader: Iterator<Item = Result<Record, DataError>> + Send {
    fn path(&self) -> &Path;

    /// How many records are left (to state both counts when the sides
    /// differ in length).
    fn count_rest(&mut self) -> Result<u64, DataError> {
        let mut n = 0;
        for r in self {
            r?;
            n += 1;
        }
        Ok(n)
    }
}

fn open_side(
    path: &Path,
    format: Format,
    opts: &ReadOptions,
) -> Result<Box<dyn SideReader>, DataError> {
    let lines = lines::LineSource::open(path)?;
    let policy = opts.tag_lines;
    Ok(match format {
        Format::Plain => Box::new(LineReader::new(lines, plain::plain_record)),
        Format::IwsltTags => Box::new(LineReader::new(lines, move |line, bytes: &[u8]| {
            iwslt::tags_record(line, bytes, policy)
        })),
        Format::IwsltXml | Format::WmtSgml => {
            Box::new(LineReader::new(lines, sgml::parse_seg_line))
        }
    })
}

/// Where a pair came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairOrigin {
    /// Index into [`CorpusSpec::parts`].
    pub part: u32,
    /// 1-based line of the source sentence in its file.
    pub src_line: u64,
    /// 1-based line of the target sentence in its file.
    pub tgt_line: u64,
    /// 0-based position of the pair among all aligned pairs of the corpus,
    /// skipped pairs included (so it is the line index in plain files).
    pub number: u64,
}

/// An aligned sentence pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub src: String,
    pub tgt: String,
    pub origin: PairOrigin,
}

/// Streams the aligned pairs of a [`CorpusSpec`], part after part, without
/// holding the corpus in memory. Bad pairs are errors, or with
/// [`ReadOptions::skip_bad_lines`] are skipped and counted in
/// [`PairReader::report`].
pub struct PairReader {
    spec: CorpusSpec,
    opts: ReadOptions,
    part: usize,
    sides: Option<(Box<dyn SideReader>, Box<dyn SideReader>)>,
    report: Report,
    number: u64,
    /// Sentences read from the current part, per side.
    part_count: u64,
    failed: bool,
}

impl PairReader {
    /// Opens the first part (so a missing file is reported at once).
    pub fn open(spec: &CorpusSpec, opts: &ReadOptions) -> Result<Self, DataError> {
        if spec.parts.is_empty() {
            return Err(DataError::Invalid("corpus spec names no files".into()));
        }
        let mut reader = PairReader {
            spec: spec.clone(),
            opts: *opts,
            part: 0,
            sides: None,
            report: Report::default(),
            number: 0,
            part_count: 0,
            failed: false,
        };
        reader.open_part()?;
        Ok(reader)
    }

    /// The files being read.
    pub fn spec(&self) -> &CorpusSpec {
        &self.spec
    }

    /// Counts so far (complete once the iterator is exhausted). Only
    /// `pairs_seen`, `pairs_kept` and the skip fields are filled here.
    pub fn report(&self) -> &Report {
        &self.report
    }

    /// The origin of a pair as file paths and lines.
    pub fn locate(&self, origin: &PairOrigin, side: Side) -> Origin {
        locate(&self.spec, origin, side)
    }

    fn open_part(&mut self) -> Result<(), DataError> {
        let fp = &self.spec.parts[self.part];
        let format = match self.opts.format {
            Some(f) => f,
            None => {
                let (s, t) = (Format::detect(&fp.src), Format::detect(&fp.tgt));
                if s != t {
                    return Err(DataError::FormatMismatch {
                        src: fp.src.clone(),
                        src_format: s,
                        tgt: fp.tgt.clone(),
                        tgt_format: t,
                    });
                }
                s
            }
        };
        let src = open_side(&fp.src, format, &self.opts)?;
        let tgt = open_side(&fp.tgt, format, &self.opts)?;
        self.sides = Some((src, tgt));
        self.part_count = 0;
        Ok(())
    }

    fn mismatch(&mut self, longer_side: Side, first: Record) -> DataError {
        let Some((src, tgt)) = self.sides.as_mut() else {
            return DataError::Invalid("internal: reader has no open files".into());
        };
        let (longer, shorter) = match longer_side {
            Side::Source => (src, tgt),
            Side::Target => (tgt, src),
        };
        let rest = match longer.count_rest() {
            Ok(n) => n,
            Err(e) => return e,
        };
        DataError::CountMismatch {
            longer_side,
            first_unpaired: Origin::new(longer.path(), first.line),
            longer_count: self.part_count + 1 + rest,
            shorter_path: shorter.path().to_path_buf(),
            shorter_count: self.part_count,
        }
    }

    fn next_pair(&mut self) -> Result<Option<Pair>, DataError> {
        loop {
            let Some((src, tgt)) = self.sides.as_mut() else {
                return Ok(None);
            };
            let (s, t) = (src.next().transpose()?, tgt.next().transpose()?);
            let (s, t) = match (s, t) {
                (None, None) => {
                    self.part += 1;
                    if self.part == self.spec.parts.len() {
                        self.sides = None;
                        return Ok(None);
                    }
                    self.open_part()?;
                    continue;
                }
                (Some(s), None) => return Err(self.mismatch(Side::Source, s)),
                (None, Some(t)) => return Err(self.mismatch(Side::Target, t)),
                (Some(s), Some(t)) => (s, t),
            };
            self.part_count += 1;
            let origin = PairOrigin {
                part: self.part as u32,
                src_line: s.line,
                tgt_line: t.line,
                number: self.number,
            };
            self.number += 1;
            self.report.pairs_seen += 1;
            match self.check(s, t, &origin) {
                Ok((src, tgt)) => {
                    self.report.pairs_kept += 1;
                    return Ok(Some(Pair { src, tgt, origin }));
                }
                Err((reason, err)) => {
                    if self.opts.skip_bad_lines {
                        self.report.skip(reason, err.to_string());
                    } else {
                        return Err(err);
                    }
                }
            }
        }
    }

    /// The pair's texts, or why it is bad.
    fn check(
        &self,
        s: Record,
        t: Record,
        origin: &PairOrigin,
    ) -> Result<(String, String), (SkipReason, DataError)> {
        let bad = |side, problem: LineProblem| {
            (
                problem.reason(),
                DataError::BadLine {
                    at: self.locate(origin, side),
                    side,
                    problem,
                },
            )
        };
        if let (Some(si), Some(ti)) = (&s.id, &t.id) {
            if si != ti {
                return Err((
                    SkipReason::SegIdMismatch,
                    DataError::SegIdMismatch {
                        src: self.locate(origin, Side::Source),
                        src_id: si.clone(),
                        tgt: self.locate(origin, Side::Target),
                        tgt_id: ti.clone(),
                    },
                ));
            }
        }
        let src = s.text.map_err(|p| bad(Side::Source, p))?;
        let tgt = t.text.map_err(|p| bad(Side::Target, p))?;
        Ok((src, tgt))
    }
}

impl Iterator for PairReader {
    type Item = Result<Pair, DataError>;

    /// After an error the reader is finished: alignment cannot be trusted.
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.next_pair() {
            Ok(p) => p.map(Ok),
            Err(e) => {
                self.failed = true;
                self.sides = None;
                Some(Err(e))
            }
        }
    }
}

fn locate(spec: &CorpusSpec, origin: &PairOrigin, side: Side) -> Origin {
    let fp = &spec.parts[origin.part as usize];
    match side {
        Side::Source => Origin::new(&fp.src, origin.src_line),
        Side::Target => Origin::new(&fp.tgt, origin.tgt_line),
    }
}

/// A column of sentences stored as one string plus offsets, so millions of
/// sentences cost two allocations instead of millions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextColumn {
    text: String,
    /// `offsets[i]..offsets[i + 1]` is sentence `i`.
    offsets: Vec<usize>,
}

impl TextColumn {
    fn push(&mut self, s: &str) {
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        self.text.push_str(s);
        self.offsets.push(self.text.len());
    }

    /// Number of sentences.
    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sentence `i`; panics if `i >= len()` like slice indexing.
    pub fn get(&self, i: usize) -> &str {
        &self.text[self.offsets[i]..self.offsets[i + 1]]
    }

    /// All sentences in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        (0..self.len()).map(move |i| self.get(i))
    }
}

/// A whole corpus read into memory as text (for dev/test sets and for
/// callers that want the text; large training sets go straight to
/// [`crate::data::EncodedCorpus::read`], which streams).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawPairs {
    pub spec: CorpusSpec,
    pub src: TextColumn,
    pub tgt: TextColumn,
    /// Origin of each pair, parallel to `src` / `tgt`.
    pub origins: Vec<PairOrigin>,
}

impl RawPairs {
    /// Reads every pair of `spec`; see [`PairReader`] for the checks.
    pub fn read(spec: &CorpusSpec, opts: &ReadOptions) -> Result<(RawPairs, Report), DataError> {
        let mut reader = PairReader::open(spec, opts)?;
        let mut raw = RawPairs {
            spec: spec.clone(),
            src: TextColumn::default(),
            tgt: TextColumn::default(),
            origins: Vec::new(),
        };
        for pair in reader.by_ref() {
            let pair = pair?;
            raw.src.push(&pair.src);
            raw.tgt.push(&pair.tgt);
            raw.origins.push(pair.origin);
        }
        Ok((raw, reader.report().clone()))
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.origins.len()
    }

    pub fn is_empty(&self) -> bool {
        self.origins.is_empty()
    }

    /// Pair `i` as (source, target).
    pub fn get(&self, i: usize) -> (&str, &str) {
        (self.src.get(i), self.tgt.get(i))
    }

    /// File and line of one side of pair `i`.
    pub fn locate(&self, i: usize, side: Side) -> Origin {
        locate(&self.spec, &self.origins[i], side)
    }
}
