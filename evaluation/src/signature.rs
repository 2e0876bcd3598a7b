//! sacreBLEU-style reproducibility signatures.
//!
//! The signature records every setting that changes a score, in sacreBLEU 2.x's
//! format (`nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0`), so a
//! score printed by `nmt-eval` can be compared with one printed by `sacrebleu`.
//!
//! Convention: `version` is the sacreBLEU release whose behaviour this crate
//! reproduces ([`SACREBLEU_VERSION`]), not this crate's version. Two identical
//! signatures therefore mean identical scoring, whichever program printed them;
//! the integration tests check the claim against that exact sacreBLEU release.

use std::fmt;

use crate::smoothing::Smoothing;
use crate::tokenizers::Tokenizer;

/// The sacreBLEU release whose scores this crate reproduces and whose version
/// the signatures report.
pub const SACREBLEU_VERSION: &str = "2.6.0";

/// The signature of a BLEU score.
#[derive(Debug, Clone, PartialEq)]
pub struct BleuSignature {
    /// Number of reference streams.
    pub nrefs: usize,
    /// Whether text was lowercased (`case:lc`) or not (`case:mixed`).
    pub lowercase: bool,
    /// Whether effective order was used (`eff:yes`).
    pub effective_order: bool,
    /// The tokenizer.
    pub tokenizer: Tokenizer,
    /// The smoothing method and value.
    pub smoothing: Smoothing,
}

impl BleuSignature {
    /// The `key:value` pairs in signature order.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("nrefs", self.nrefs.to_string()),
            ("case", case_str(self.lowercase).to_owned()),
            ("eff", yes_no(self.effective_order).to_owned()),
            ("tok", self.tokenizer.name().to_owned()),
            ("smooth", self.smoothing.signature_str()),
            ("version", SACREBLEU_VERSION.to_owned()),
        ]
    }
}

impl fmt::Display for BleuSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_fields(f, &self.fields())
    }
}

/// The signature of a chrF score.
#[derive(Debug, Clone, PartialEq)]
pub struct ChrfSignature {
    /// Number of reference streams.
    pub nrefs: usize,
    /// Whether text was lowercased.
    pub lowercase: bool,
    /// `eff:yes` unless epsilon smoothing was used (sacreBLEU's convention).
    pub eps_smoothing: bool,
    /// Character n-gram order (`nc`).
    pub char_order: usize,
    /// Word n-gram order (`nw`); 2 is chrF++.
    pub word_order: usize,
    /// Whether whitespace was kept in character n-grams (`space`).
    pub whitespace: bool,
}

impl ChrfSignature {
    /// The `key:value` pairs in signature order.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("nrefs", self.nrefs.to_string()),
            ("case", case_str(self.lowercase).to_owned()),
            ("eff", yes_no(!self.eps_smoothing).to_owned()),
            ("nc", self.char_order.to_string()),
            ("nw", self.word_order.to_string()),
            ("space", yes_no(self.whitespace).to_owned()),
            ("version", SACREBLEU_VERSION.to_owned()),
        ]
    }
}

impl fmt::Display for ChrfSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_fields(f, &self.fields())
    }
}

fn case_str(lowercase: bool) -> &'static str {
    if lowercase {
        "lc"
    } else {
        "mixed"
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn write_fields(f: &mut fmt::Formatter<'_>, fields: &[(&str, String)]) -> fmt::Result {
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            f.write_str("|")?;
        }
        write!(f, "{k}:{v}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bleu_signature_matches_sacrebleu_layout() {
        let sig = BleuSignature {
            nrefs: 1,
            lowercase: false,
            effective_order: false,
            tokenizer: Tokenizer::Thirteen,
            smoothing: Smoothing::Exp,
        };
        assert_eq!(
            sig.to_string(),
            "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"
        );
        let sig = BleuSignature {
            nrefs: 2,
            lowercase: true,
            effective_order: true,
            tokenizer: Tokenizer::Intl,
            smoothing: Smoothing::Floor(0.5),
        };
        assert_eq!(
            sig.to_string(),
            "nrefs:2|case:lc|eff:yes|tok:intl|smooth:floor[0.50]|version:2.6.0"
        );
    }

    #[test]
    fn chrf_signature_matches_sacrebleu_layout() {
        let sig = ChrfSignature {
            nrefs: 1,
            lowercase: false,
            eps_smoothing: false,
            char_order: 6,
            word_order: 2,
            whitespace: false,
        };
        assert_eq!(
            sig.to_string(),
            "nrefs:1|case:mixed|eff:yes|nc:6|nw:2|space:no|version:2.6.0"
        );
    }
}
