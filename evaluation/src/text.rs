//! Python `str` semantics that sacreBLEU's results depend on.
//!
//! sacreBLEU splits on whitespace with `str.split()`, trims with `str.rstrip()`
//! and lowercases with `str.lower()`. Python's notion of whitespace is wider than
//! Rust's `char::is_whitespace` (it also counts the ASCII information separators
//! U+001C..U+001F), so a line holding one of those would tokenize differently with
//! the standard library helpers. These functions reproduce Python's behaviour.

/// True where Python's `str.isspace()` is true for this character.
///
/// This is the exact set of code points Python 3 reports (Unicode categories Zs
/// plus the bidirectional classes WS, B and S); it differs from Rust's
/// `char::is_whitespace` only by U+001C..U+001F.
pub fn is_py_whitespace(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n'
            | '\u{0b}'
            | '\u{0c}'
            | '\r'
            | '\u{1c}'..='\u{1f}'
            | ' '
            | '\u{85}'
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
    )
}

/// The pieces of `s` between runs of Python whitespace, like Python's `s.split()`.
pub fn py_split(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_py_whitespace).filter(|t| !t.is_empty())
}

/// `s` without trailing Python whitespace, like Python's `s.rstrip()`.
pub fn py_rstrip(s: &str) -> &str {
    s.trim_end_matches(is_py_whitespace)
}

/// The pieces of `s` joined by single spaces, like Python's `' '.join(s.split())`.
pub fn py_normalize_spaces(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, tok) in py_split(s).enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(tok);
    }
    out
}

/// `s` with Python whitespace removed, like Python's `''.join(s.split())`.
pub fn py_remove_spaces(s: &str) -> String {
    s.chars().filter(|&c| !is_py_whitespace(c)).collect()
}

/// Lowercase as Python's `str.lower()` does.
///
/// Both Python and Rust apply the Unicode full lowercase mapping including the
/// context-dependent final sigma, so `to_lowercase` agrees with Python apart from
/// characters assigned after the Unicode version Python was built with.
pub fn py_lower(s: &str) -> String {
    s.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn information_separators_are_whitespace_like_python() {
        assert!(is_py_whitespace('\u{1c}'));
        assert!(!'\u{1c}'.is_whitespace());
        assert_eq!(
            py_split("a\u{1f}b\u{3000} c").collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
    }

    #[test]
    fn zero_width_space_is_not_whitespace() {
        assert!(!is_py_whitespace('\u{200b}'));
        assert_eq!(py_split("a\u{200b}b").count(), 1);
    }

    #[test]
    fn rstrip_and_normalize() {
        assert_eq!(py_rstrip("  a b \u{a0}\r\n"), "  a b");
        assert_eq!(py_normalize_spaces("  a \t b  "), "a b");
        assert_eq!(py_remove_spaces(" a b\u{2009}c "), "abc");
    }

    #[test]
    fn final_sigma_lowercases_like_python() {
        assert_eq!(py_lower("ΟΔΟΣ ΣΑΣ"), "οδος σας");
    }
}
