//! The layout of hypotheses and references shared by every metric.
//!
//! As in sacreBLEU, references come as *streams*: `refs[k]` is the k-th reference
//! translation of the whole test set, so `refs[k][i]` is a reference for `hyps[i]`.
//! With a single reference per sentence, pass `&[refs]`.

use crate::error::EvalError;

/// Checks that there is at least one reference stream and that every stream has
/// as many lines as the hypotheses.
pub(crate) fn check_streams<H, R>(hyps: &[H], refs: &[Vec<R>]) -> Result<(), EvalError> {
    if refs.is_empty() {
        return Err(EvalError::NoReferences);
    }
    for (k, stream) in refs.iter().enumerate() {
        if stream.len() != hyps.len() {
            return Err(EvalError::LineCountMismatch {
                hyp_name: "hypotheses".to_owned(),
                hyp_lines: hyps.len(),
                ref_name: format!("stream {}", k + 1),
                ref_lines: stream.len(),
            });
        }
    }
    Ok(())
}

/// The references of segment `i` across all streams.
pub(crate) fn segment_refs<R: AsRef<str>>(refs: &[Vec<R>], i: usize) -> impl Iterator<Item = &str> {
    refs.iter().map(move |stream| stream[i].as_ref())
}
