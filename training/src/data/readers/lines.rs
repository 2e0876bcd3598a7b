//! Corpus files read line by line, for every format: [`LineSource`] opens a file (gzip or
//! not) and yields its raw lines with their numbers, and [`LineReader`] turns them into
//! records with a format's parse function (`plain::plain_record`, `iwslt::tags_record`,
//! `sgml::parse_seg_line`).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use super::Record;
use crate::data::error::DataError;

/// The two magic bytes that open every gzip member.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Raw lines of one file, decompressed if it is gzip, with 1-based line
/// numbers. Lines are bytes so that invalid UTF-8 is reported per line
/// instead of aborting the whole file.
pub(crate) struct LineSource {
    path: PathBuf,
    reader: Box<dyn BufRead + Send>,
    line: u64,
    buf: Vec<u8>,
}

impl LineSource {
    /// Opens `path`; gzip is recognised by its magic bytes, whatever the
    /// file name says (a `.gz` name on a plain file still reads fine).
    pub(crate) fn open(path: &Path) -> Result<Self, DataError> {
        let io_err = |source| DataError::Io {
            path: path.to_path_buf(),
            line: None,
            source,
        };
        let file = File::open(path).map_err(io_err)?;
        let mut buffered = BufReader::with_capacity(1 << 16, file);
        let is_gzip = buffered
            .fill_buf()
            .map_err(io_err)?
            .starts_with(&GZIP_MAGIC);
        let reader: Box<dyn BufRead + Send> = if is_gzip {
            // Multi-member: `cat a.gz b.gz` and bgzip files are common for corpora.
            Box::new(BufReader::with_capacity(
                1 << 16,
                MultiGzDecoder::new(buffered),
            ))
        } else {
            Box::new(buffered)
        };
        Ok(Self::from_reader(path, reader))
    }

    /// Wraps an already open reader; `path` is used in messages only.
    pub(crate) fn from_reader(path: &Path, reader: Box<dyn BufRead + Send>) -> Self {
        LineSource {
            path: path.to_path_buf(),
            reader,
            line: 0,
            buf: Vec::with_capacity(256),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The next line without its `\n` / `\r\n`, with its line number;
    /// `None` at end of file.
    pub(crate) fn next_line(&mut self) -> Option<Result<(u64, &[u8]), DataError>> {
        self.buf.clear();
        match self.reader.read_until(b'\n', &mut self.buf) {
            Ok(0) => None,
            Ok(_) => {
                self.line += 1;
                if self.buf.last() == Some(&b'\n') {
                    self.buf.pop();
                }
                if self.buf.last() == Some(&b'\r') {
                    self.buf.pop();
                }
                Some(Ok((self.line, &self.buf)))
            }
            Err(source) => Some(Err(DataError::Io {
                path: self.path.clone(),
                line: Some(self.line + 1),
                source,
            })),
        }
    }
}

/// One side of a file pair read line by line: `parse` makes a record of each line, or skips
/// it (metadata) by giving `None`.
pub(crate) struct LineReader<F> {
    lines: LineSource,
    parse: F,
}

impl<F> LineReader<F> {
    pub(crate) fn new(lines: LineSource, parse: F) -> Self {
        LineReader { lines, parse }
    }
}

impl<F: FnMut(u64, &[u8]) -> Option<Record>> Iterator for LineReader<F> {
    type Item = Result<Record, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (line, bytes) = match self.lines.next_line()? {
                Ok(x) => x,
                Err(e) => return Some(Err(e)),
            };
            if let Some(record) = (self.parse)(line, bytes) {
                return Some(Ok(record));
            }
        }
    }
}

impl<F: FnMut(u64, &[u8]) -> Option<Record> + Send> super::SideReader for LineReader<F> {
    fn path(&self) -> &Path {
        self.lines.path()
    }
}
