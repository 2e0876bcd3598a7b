//! mteval-v14.pl international tokenization, as sacreBLEU's `intl` tokenizer applies it.

use std::sync::LazyLock;

use super::{apply_rules, compile_rules, Rules};

/// Unicode-category rules applied in order with leftmost non-overlapping matches,
/// as in sacreBLEU (which uses the Python `regex` module's `\p{..}` classes).
static RULES: LazyLock<Rules<3>> = LazyLock::new(|| {
    compile_rules(
        [
            // Punctuation preceded by a non-digit splits off.
            (r"(\P{N})(\p{P})", "${1} ${2} "),
            // Punctuation followed by a non-digit splits off.
            (r"(\p{P})(\P{N})", " ${1} ${2}"),
            // Symbols always stand alone.
            (r"(\p{S})", " ${1} "),
        ],
        "intl",
    )
});

/// Tokenizes `line` as mteval-v14.pl's international tokenizer (sacreBLEU `intl`)
/// does: Unicode punctuation splits off unless it sits between digits, Unicode
/// symbols always split off.
///
/// Like mteval-v14 (and unlike `13a`) the line is not padded, so a number followed
/// by a final period keeps the period ("2014." stays one token).
pub fn tokenize_intl(line: &str) -> String {
    apply_rules(line.to_owned(), &RULES)
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
