//! Line-by-line encoding and decoding of text streams (what `nmt-vocab
//! encode` / `decode` do), with errors naming the stream and line.

use std::io::{BufRead, Write};
use std::path::Path;

use crate::interface::Vocab;
use crate::VocabError;

/// How [`encode_stream`] writes each line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeOutput {
    /// Space-separated ids.
    Ids,
    /// Space-separated pieces.
    Pieces,
}

/// Reads one line (without its `\n` / `\r\n`) into `buf`, checking UTF-8.
/// Returns `None` at end of input.
fn read_line<'a>(
    input: &mut impl BufRead,
    buf: &'a mut Vec<u8>,
    name: &str,
    line_no: usize,
) -> Result<Option<&'a str>, VocabError> {
    buf.clear();
    let n = input
        .read_until(b'\n', buf)
        .map_err(|e| VocabError::io(Path::new(name), e))?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    }
    std::str::from_utf8(buf)
        .map(Some)
        .map_err(|e| VocabError::Input {
            path: name.to_string(),
            line: line_no,
            message: format!("not valid UTF-8 ({e})"),
        })
}

/// Writes `convert(line)` for every line of `input` (named `name` in errors) as one line
/// of `output`; a conversion error becomes an error naming the stream and line. Returns the
/// number of lines.
fn convert_lines(
    mut input: impl BufRead,
    name: &str,
    mut output: impl Write,
    mut convert: impl FnMut(&str) -> Result<String, String>,
) -> Result<usize, VocabError> {
    let mut buf = Vec::new();
    let mut line_no = 0;
    let out_err = |e| VocabError::io(Path::new("<output>"), e);
    while let Some(line) = read_line(&mut input, &mut buf, name, line_no + 1)? {
        line_no += 1;
        let converted = convert(line).map_err(|message| VocabError::Input {
            path: name.to_string(),
            line: line_no,
            message,
        })?;
        writeln!(output, "{converted}").map_err(out_err)?;
    }
    output.flush().map_err(out_err)?;
    Ok(line_no)
}

/// Encodes every line of `input` (named `name` in errors) to one line of
/// `output`. Returns the number of lines.
pub fn encode_stream(
    vocab: &dyn Vocab,
    input: impl BufRead,
    name: &str,
    output: impl Write,
    format: EncodeOutput,
) -> Result<usize, VocabError> {
    convert_lines(input, name, output, |line| {
        let fields: Vec<String> = match format {
            EncodeOutput::Ids => vocab
                .encode(line)
                .map_err(|e| e.to_string())?
                .iter()
                .map(u32::to_string)
                .collect(),
            EncodeOutput::Pieces => vocab.tokenize(line).map_err(|e| e.to_string())?,
        };
        Ok(fields.join(" "))
    })
}

/// Parses a line of whitespace-separated ids.
pub fn parse_ids(line: &str) -> Result<Vec<u32>, String> {
    line.split_whitespace()
        .map(|t| t.parse::<u32>().map_err(|_| format!("{t:?} is not an id")))
        .collect()
}

/// Decodes every line of whitespace-separated ids in `input` to one line of
/// text in `output`. Returns the number of lines.
pub fn decode_stream(
    vocab: &dyn Vocab,
    input: impl BufRead,
    name: &str,
    output: impl Write,
) -> Result<usize, VocabError> {
    convert_lines(input, name, output, |line| {
        let ids = parse_ids(line)?;
        vocab.decode(&ids).map_err(|e| e.to_string())
    })
}
