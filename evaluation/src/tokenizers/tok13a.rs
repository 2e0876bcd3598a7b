//! mteval-v13a.pl tokenization, as sacreBLEU's `13a` tokenizer applies it.

use std::sync::LazyLock;

use super::{apply_rules, compile_rules, Rules};

/// The substitution rules, applied in order, each over the whole line with
/// leftmost non-overlapping matches (the semantics of both Python's `re.sub` and
/// `regex::Regex::replace_all`, which is why the rules are kept as regexes rather
/// than rewritten as a character loop: the overlap behaviour is the subtle part).
static RULES: LazyLock<Rules<4>> = LazyLock::new(|| {
    compile_rules(
        [
            // ASCII punctuation and symbols except apostrophe, comma, hyphen and period
            // (and the space itself, which mteval also lists) stand alone.
            (
                r"([\x20-\x26\x28-\x2B\x2F\x3A-\x40\x5B-\x60\x7B-\x7E])",
                " ${1} ",
            ),
            // Period and comma split off unless preceded by a digit...
            (r"([^0-9])([.,])", "${1} ${2} "),
            // ...and unless followed by a digit.
            (r"([.,])([^0-9])", " ${1} ${2}"),
            // A hyphen after a digit splits off.
            (r"([0-9])(-)", "${1} ${2} "),
        ],
        "13a",
    )
});

/// Tokenizes `line` as mteval-v13a.pl (sacreBLEU `13a`) does.
///
/// Removes `<skipped>`, joins `-\n` hyphenations, unescapes the four HTML entities
/// `&quot; &amp; &lt; &gt;`, splits punctuation off words (keeping `3.14`, `1,000`
/// and `it's` whole) and normalizes spaces.
pub fn tokenize_13a(line: &str) -> String {
    let mut s = line
        .replace("<skipped>", "")
        .replace("-\n", "")
        .replace('\n', " ");
    if s.contains('&') {
        s = s
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
    }
    // The padding lets the period/comma rules see a non-digit at both ends.
    apply_rules(format!(" {s} "), &RULES)
}

#[cfg(test)]
mod tests {
    // Every expected string below is what sacreBLEU 2.6.0's `Tokenizer13a`
    // (`sacrebleu.tokenizers.tokenizer_13a.Tokenizer13a`) returns for the same input, checked with the project venv's sacreBLEU;
    // tests/sacrebleu_parity.rs compares whole corpora with it at test time.
    use super::*;

    #[test]
    fn splits_punctuation_but_not_numbers() {
        assert_eq!(tokenize_13a("Hello, world."), "Hello , world .");
        assert_eq!(
            tokenize_13a("It costs $3.14 or 1,000."),
            "It costs $ 3.14 or 1,000 ."
        );
        assert_eq!(tokenize_13a("it's well-known"), "it's well-known");
        assert_eq!(tokenize_13a("1990-2000"), "1990 - 2000");
        assert_eq!(tokenize_13a("(a) [b] {c}"), "( a ) [ b ] { c }");
    }

    #[test]
    fn unescapes_entities_and_drops_skipped() {
        assert_eq!(
            tokenize_13a("&quot;A&amp;B&quot; &lt;x&gt;"),
            "\" A & B \" < x >"
        );
        assert_eq!(tokenize_13a("&apos;s"), "& apos ; s");
        assert_eq!(tokenize_13a("a <skipped> b"), "a b");
    }

    #[test]
    fn consecutive_periods_follow_non_overlapping_matching() {
        // The second rule consumes "a." so the following "." is only split by the
        // third rule: exactly what Python's re.sub does.
        assert_eq!(tokenize_13a("a..b"), "a . . b");
        assert_eq!(tokenize_13a("5..6"), "5 . . 6");
        assert_eq!(tokenize_13a("end 2014."), "end 2014 .");
    }

    #[test]
    fn empty_and_blank_lines() {
        assert_eq!(tokenize_13a(""), "");
        assert_eq!(tokenize_13a(" \t "), "");
    }
}
