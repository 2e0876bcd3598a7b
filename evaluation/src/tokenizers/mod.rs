//! The word tokenizers sacreBLEU's BLEU offers that this crate reproduces.
//!
//! Each tokenizer turns one line into a string of space-separated tokens; BLEU then
//! splits that string on whitespace. chrF does not tokenize.

mod char;
mod intl;
mod tok13a;

use std::fmt;
use std::str::FromStr;

pub use self::char::tokenize_char;
pub use self::intl::tokenize_intl;
pub use self::tok13a::tokenize_13a;

use regex::Regex;

use crate::error::EvalError;
use crate::text::py_normalize_spaces;

/// Substitution rules, each a regex and its replacement, applied in order.
type Rules<const N: usize> = [(Regex, &'static str); N];

/// Compiles `rules` (constant patterns: a failure is a programming error caught by every
/// test, reported with `what`).
fn compile_rules<const N: usize>(rules: [(&str, &'static str); N], what: &str) -> Rules<N> {
    rules.map(|(pattern, replacement)| {
        let re = Regex::new(pattern).unwrap_or_else(|e| panic!("invalid {what} pattern: {e}"));
        (re, replacement)
    })
}

/// Applies `rules` to `s` in order, each over the whole line with leftmost
/// non-overlapping matches, then normalizes spaces as Python's `" ".join(s.split())`.
fn apply_rules<const N: usize>(mut s: String, rules: &Rules<N>) -> String {
    for (re, replacement) in rules {
        if let std::borrow::Cow::Owned(replaced) = re.replace_all(&s, *replacement) {
            s = replaced;
        }
    }
    py_normalize_spaces(&s)
}

/// A BLEU tokenizer, named as sacreBLEU names it (`--tokenize`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Tokenizer {
    /// `none`: the line as is; tokens are its whitespace-separated pieces. Use it
    /// for text that is already tokenized (for example fairseq's IWSLT14 files).
    None,
    /// `13a`: mteval-v13a.pl's tokenizer, the WMT standard and sacreBLEU's default.
    #[default]
    Thirteen,
    /// `intl`: mteval-v14.pl's international tokenizer, splitting on Unicode
    /// punctuation and symbol categories.
    Intl,
    /// `char`: every character is a token (useful for CJK and Thai).
    Char,
}

impl Tokenizer {
    /// Every tokenizer, in the order `--help` lists them.
    pub const ALL: [Tokenizer; 4] = [
        Tokenizer::Thirteen,
        Tokenizer::Intl,
        Tokenizer::Char,
        Tokenizer::None,
    ];

    /// The name sacreBLEU uses on its command line and in the signature.
    pub fn name(self) -> &'static str {
        match self {
            Tokenizer::None => "none",
            Tokenizer::Thirteen => "13a",
            Tokenizer::Intl => "intl",
            Tokenizer::Char => "char",
        }
    }

    /// Tokenizes one line; the result holds tokens separated by whitespace.
    pub fn tokenize(self, line: &str) -> String {
        match self {
            Tokenizer::None => line.to_owned(),
            Tokenizer::Thirteen => tokenize_13a(line),
            Tokenizer::Intl => tokenize_intl(line),
            Tokenizer::Char => tokenize_char(line),
        }
    }
}

impl fmt::Display for Tokenizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Tokenizer {
    type Err = EvalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tokenizer::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| EvalError::UnknownTokenizer {
                name: s.to_owned(),
                known: Tokenizer::ALL.map(Tokenizer::name).join(", "),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in Tokenizer::ALL {
            assert_eq!(t.name().parse::<Tokenizer>().unwrap(), t);
        }
        let err = "zh".parse::<Tokenizer>().unwrap_err().to_string();
        assert!(err.contains("zh") && err.contains("13a"), "{err}");
    }

    #[test]
    fn none_keeps_the_line() {
        assert_eq!(Tokenizer::None.tokenize(" a  b. "), " a  b. ");
    }
}
