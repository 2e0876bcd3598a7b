//! Segment files: WMT SGML (`<seg id=N>text</seg>` lines inside `<doc>`s)
//! and the IWSLT release XML (`<seg id="N"> text </seg>`), which share one
//! line-based layout.
//!
//! Both are read line by line rather than with an XML parser: the WMT SGML
//! files are not well-formed XML (raw `&` in text, as in "Standard & Poor's",
//! unquoted attributes in older years), and a line-based reader keeps exact
//! line numbers for messages. Every segment sits on one line in all
//! released files; a `<seg` without `</seg>` on its line is reported as
//! malformed rather than guessed at.

use super::Record;
use crate::data::error::LineProblem;

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}

/// Finds the start of a `<seg` tag (not `<segment` or similar).
fn find_seg_open(bytes: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(p) = find(bytes, b"<seg", from) {
        match bytes.get(p + 4) {
            Some(b'>') | Some(b' ') | Some(b'\t') => return Some(p),
            _ => from = p + 4,
        }
    }
    None
}

/// The value of the `id` attribute in the attribute text of a tag, quoted
/// with `"` or `'` or unquoted (old SGML).
fn parse_id(attrs: &[u8]) -> Option<String> {
    let mut from = 0;
    while let Some(p) = find(attrs, b"id", from) {
        from = p + 2;
        let preceded_ok = p == 0 || attrs[p - 1].is_ascii_whitespace();
        if !preceded_ok {
            continue;
        }
        let mut i = p + 2;
        while i < attrs.len() && attrs[i].is_ascii_whitespace() {
            i += 1;
        }
        if attrs.get(i) != Some(&b'=') {
            continue;
        }
        i += 1;
        while i < attrs.len() && attrs[i].is_ascii_whitespace() {
            i += 1;
        }
        let value = match attrs.get(i) {
            Some(&q) if q == b'"' || q == b'\'' => {
                let end = attrs[i + 1..].iter().position(|&c| c == q)? + i + 1;
                &attrs[i + 1..end]
            }
            Some(_) => {
                let end = attrs[i..]
                    .iter()
                    .position(|c| c.is_ascii_whitespace() || *c == b'/')
                    .map_or(attrs.len(), |e| e + i);
                &attrs[i..end]
            }
            None => return None,
        };
        return Some(String::from_utf8_lossy(value).into_owned());
    }
    None
}

/// A record for a `<seg ...>text</seg>` line of an SGML/XML file, `None` for other lines
/// (headers, `<doc>`, `<url>`, `<title>`, ...: metadata, skipped).
///
/// Segment text is unescaped ([`unescape_xml`]) and its whitespace collapsed
/// ([`collapse_whitespace`]), which reproduces the reference text files of
/// fairseq (IWSLT14) and sacrebleu (WMT14) exactly.
pub(crate) fn parse_seg_line(line: u64, bytes: &[u8]) -> Option<Record> {
    let open = find_seg_open(bytes)?;
    let Some(gt) = find(bytes, b">", open) else {
        return Some(Record {
            line,
            id: None,
            text: Err(LineProblem::Malformed("`<seg` tag is not closed".into())),
        });
    };
    let id = parse_id(&bytes[open + 4..gt]);
    let text = match rfind(&bytes[gt + 1..], b"</seg>") {
        None => Err(LineProblem::Malformed(
            "no `</seg>` on the same line as `<seg`".into(),
        )),
        Some(close) => match std::str::from_utf8(&bytes[gt + 1..gt + 1 + close]) {
            Err(e) => Err(LineProblem::InvalidUtf8 {
                byte: e.valid_up_to(),
            }),
            Ok(raw) => {
                let text = collapse_whitespace(&unescape_xml(raw));
                if text.is_empty() {
                    Err(LineProblem::Empty)
                } else {
                    Ok(text)
                }
            }
        },
    };
    Some(Record { line, id, text })
}

/// Replaces the XML entities `&amp; &lt; &gt; &quot; &apos;` and numeric
/// character references (`&#233;`, `&#xE9;`) in one pass, so `&amp;lt;`
/// becomes `&lt;` and not `<`. Anything else starting with `&` (a raw `&`
/// as WMT's SGML has) is kept as it is.
pub fn unescape_xml(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(p) = rest.find('&') {
        out.push_str(&rest[..p]);
        rest = &rest[p..];
        let named = [
            ("&amp;", '&'),
            ("&lt;", '<'),
            ("&gt;", '>'),
            ("&quot;", '"'),
            ("&apos;", '\''),
        ];
        if let Some((entity, c)) = named.iter().find(|(e, _)| rest.starts_with(e)) {
            out.push(*c);
            rest = &rest[entity.len()..];
            continue;
        }
        if let Some((c, len)) = numeric_reference(rest) {
            out.push(c);
            rest = &rest[len..];
            continue;
        }
        out.push('&');
        rest = &rest[1..];
    }
    out.push_str(rest);
    out
}

/// `&#NNN;` or `&#xHHH;` at the start of `s`: the character and the
/// reference's length in bytes.
fn numeric_reference(s: &str) -> Option<(char, usize)> {
    let body = s.strip_prefix("&#")?;
    let end = body.find(';')?;
    let digits = &body[..end];
    let code = match digits.strip_prefix(['x', 'X']) {
        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
        None => digits.parse::<u32>().ok()?,
    };
    Some((char::from_u32(code)?, 2 + end + 1))
}

/// Trims and replaces every run of Unicode whitespace with one space.
pub fn collapse_whitespace(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}
