//! Length filtering of encoded pairs, like Moses' `clean-corpus-n.perl`
//! but counted in subword tokens (bos/eos not included).

use crate::data::error::{DataError, FilterReason, Side};

/// Which pairs to keep, by subword length.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LengthFilter {
    /// Drop a pair if either side has fewer tokens (1 drops pairs the
    /// vocabulary encodes to nothing).
    pub min_len: usize,
    /// Drop a pair if either side has more tokens.
    pub max_len: Option<usize>,
    /// Drop a pair if `src/tgt` or `tgt/src` token ratio exceeds this
    /// (clean-corpus-n's `-ratio`; fairseq's IWSLT14 recipe uses 1.5 on
    /// words). Ratio checks need both sides non-empty; pairs with an empty
    /// side are only caught by `min_len`.
    pub max_ratio: Option<f64>,
}

impl Default for LengthFilter {
    /// Keeps everything with at least one token per side.
    fn default() -> Self {
        LengthFilter {
            min_len: 1,
            max_len: None,
            max_ratio: None,
        }
    }
}

impl LengthFilter {
    /// Keeps every pair, empty encodings included (for inference, where
    /// every input line needs an output line).
    pub fn keep_all() -> Self {
        LengthFilter {
            min_len: 0,
            max_len: None,
            max_ratio: None,
        }
    }

    /// Moses-style filter: lengths in `min..=max` and ratio ≤ `ratio`.
    pub fn moses(min: usize, max: usize, ratio: f64) -> Self {
        LengthFilter {
            min_len: min,
            max_len: Some(max),
            max_ratio: Some(ratio),
        }
    }

    /// Rejects nonsensical settings (min above max, ratio below 1 or NaN).
    pub fn validate(&self) -> Result<(), DataError> {
        if let Some(max) = self.max_len {
            if max < self.min_len {
                return Err(DataError::Invalid(format!(
                    "length filter: max_len {max} is below min_len {}",
                    self.min_len
                )));
            }
        }
        if let Some(r) = self.max_ratio {
            if r.is_nan() || r < 1.0 {
                return Err(DataError::Invalid(format!(
                    "length filter: max_ratio must be a number >= 1, got {r}"
                )));
            }
        }
        Ok(())
    }

    /// Why a pair with these token counts is dropped, or `None` to keep it.
    /// Checks in this order: too short, too long (source side first),
    /// ratio.
    pub fn check(&self, src_len: usize, tgt_len: usize) -> Option<FilterReason> {
        for (side, len) in [(Side::Source, src_len), (Side::Target, tgt_len)] {
            if len < self.min_len {
                return Some(FilterReason::TooShort(side));
            }
        }
        if let Some(max) = self.max_len {
            for (side, len) in [(Side::Source, src_len), (Side::Target, tgt_len)] {
                if len > max {
                    return Some(FilterReason::TooLong(side));
                }
            }
        }
        if let Some(r) = self.max_ratio {
            if src_len > 0 && tgt_len > 0 {
                let (s, t) = (src_len as f64, tgt_len as f64);
                if s / t > r || t / s > r {
                    return Some(FilterReason::Ratio);
                }
            }
        }
        None
    }
}
