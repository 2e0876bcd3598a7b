//! Reading hypothesis and reference files as sacreBLEU's command line reads them.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::EvalError;
use crate::text::py_rstrip;

/// The name stdin is reported under in errors.
pub const STDIN_NAME: &str = "<stdin>";

/// The lines of one input, with the name used in error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextFile {
    /// File path, or `<stdin>`.
    pub name: PathBuf,
    /// One entry per line, trailing whitespace removed.
    pub lines: Vec<String>,
}

/// Splits `bytes` into lines as sacreBLEU's reader does: on `\n` only (a file
/// ending in `\n` has no extra empty last line), each line stripped of trailing
/// whitespace (which also removes a `\r` of CRLF files). Every line must be
/// UTF-8; the error names `name`, the line and the byte.
pub fn split_lines(bytes: &[u8], name: &Path) -> Result<Vec<String>, EvalError> {
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    body.split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, raw)| {
            std::str::from_utf8(raw)
                .map(|s| py_rstrip(s).to_owned())
                .map_err(|source| EvalError::InvalidUtf8 {
                    path: name.to_owned(),
                    line: i + 1,
                    byte: source.valid_up_to() + 1,
                    source,
                })
        })
        .collect()
}

/// Reads a whole file as lines (see [`split_lines`]).
pub fn read_file(path: &Path) -> Result<TextFile, EvalError> {
    let bytes = fs::read(path).map_err(|source| EvalError::Read {
        path: path.to_owned(),
        source,
    })?;
    Ok(TextFile {
        name: path.to_owned(),
        lines: split_lines(&bytes, path)?,
    })
}

/// Reads all of `reader` (typically stdin) as lines, reporting it as `name`.
pub fn read_stream(mut reader: impl Read, name: &str) -> Result<TextFile, EvalError> {
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .map_err(|source| EvalError::Read {
            path: PathBuf::from(name),
            source,
        })?;
    let name = PathBuf::from(name);
    let lines = split_lines(&bytes, &name)?;
    Ok(TextFile { name, lines })
}

/// Checks that every reference file has as many lines as the hypotheses, naming
/// both files and both counts otherwise.
pub fn check_line_counts(hyps: &TextFile, refs: &[TextFile]) -> Result<(), EvalError> {
    for r in refs {
        if r.lines.len() != hyps.lines.len() {
            return Err(EvalError::LineCountMismatch {
                hyp_name: hyps.name.display().to_string(),
                hyp_lines: hyps.lines.len(),
                ref_name: r.name.display().to_string(),
                ref_lines: r.lines.len(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_on_newline_and_rstrip() {
        let p = Path::new("x");
        assert_eq!(split_lines(b"a \r\nb\n", p).unwrap(), ["a", "b"]);
        assert_eq!(split_lines(b"a\n\nb", p).unwrap(), ["a", "", "b"]);
        assert_eq!(split_lines(b"", p).unwrap(), Vec::<String>::new());
        assert_eq!(split_lines(b"\n", p).unwrap(), [""]);
        // A lone carriage return is not a line break for sacreBLEU's reader.
        assert_eq!(split_lines(b"a\rb\n", p).unwrap(), ["a\rb"]);
    }

    #[test]
    fn invalid_utf8_names_file_line_and_byte() {
        let err = split_lines(b"ok\nab\xffc\n", Path::new("hyp.txt")).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("hyp.txt:2: not valid UTF-8 (byte 3"),
            "{msg}"
        );
    }

    #[test]
    fn mismatched_counts_name_both_files() {
        let hyps = TextFile {
            name: "h.txt".into(),
            lines: vec!["a".into()],
        };
        let refs = [TextFile {
            name: "r.txt".into(),
            lines: vec!["a".into(), "b".into()],
        }];
        let msg = check_line_counts(&hyps, &refs).unwrap_err().to_string();
        assert!(
            msg.contains("h.txt have 1 lines") && msg.contains("r.txt has 2"),
            "{msg}"
        );
    }
}
