//! mteval-v14.pl international tokenization, as sacreBLEU's `intl` tokenizer applies it.

use std::sync::LazyLock;

use regex::Regex;

use crate::text::py_normalize_spaces;

/// Unicode-category rules applied in order with leftmost non-overlapping matches,
/// as in sacreBLEU (which uses the Python `regex` module's `\p{..}` classes).
static RULES: LazyLock<[(Regex, &'static str); 3]> = LazyLock::new(|| {
    let rule = |pattern: &str, replacement| {
        // The patterns are constants; a failure here is a programming error caught by every test.
        (
            Regex::new(pattern).expect("valid intl pattern"),
            replacement,
        )
    };
    [
        // Punctuation preceded by a non-digit splits off.
        rule(r"(\P{N})(\p{P})", "${1} ${2} "),
        // Punctuation followed by a non-digit splits off.
        rule(r"(\p{P})(\P{N})", " ${1} ${2}"),
        // Symbols always stand alone.
        rule(r"(\p{S})", " ${1} "),
    ]
});

/// Tokenizes `line` as mteval-v14.pl's international tokenizer (sacreBLEU `intl`)
/// does: Unicode punctuation splits off unless it sits between digits, Unicode
/// symbols always split off.
///
/// Like mteval-v14 (and unlike `13a`) the line is not padded, so a number followed
/// by a final period keeps the period ("2014." stays one token).
pub fn tokenize_intl(line: &str) -> String {
    let mut s = line.to_owned();
    for (re, replacement) in RULES.iter() {
        if let std::borrow::Cow::Owned(replaced) = re.replace_all(&s, *replacement) {
            s = replaced;
        }
    }
    py_normalize_spaces(&s)
}

#[cfg(test)]
mod tests {
    // Every expected string below is what sacreBLEU 2.6.0's `TokenizerV14International`
    // (`sacrebleu.tokenizers.tokenizer_intl.TokenizerV14International`) returns for the same input, checked with the project venv's sacreBLEU;
    // tests/sacrebleu_parity.rs compares whole corpora with it at test time.
    use super::*;

    #[test]
    fn splits_unicode_punctuation_and_symbols() {
        assert_eq!(
            tokenize_intl("«Bonjour», dit-il…"),
            "« Bonjour » , dit - il …"
        );
        assert_eq!(tokenize_intl("5€ + 3$"), "5 € + 3 $");
        assert_eq!(tokenize_intl("你好，世界。"), "你好 ， 世界 。");
    }

    #[test]
    fn keeps_numbers_and_final_year_period() {
        assert_eq!(tokenize_intl("1,000.5 in 2014."), "1,000.5 in 2014.");
    }
}
