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

/// Preprocessed references, segment by segment: what a reusable scorer ([`crate::Bleu`],
/// [`crate::Chrf`]) keeps so that it tokenizes its references only once.
#[derive(Debug, Clone)]
pub(crate) struct References {
    /// `segments[i]`: the preprocessed references of segment `i`, one per stream.
    pub(crate) segments: Vec<Vec<String>>,
    /// The number of reference streams.
    pub(crate) nrefs: usize,
}

impl References {
    /// Checks the streams `refs` and preprocesses every reference with `preprocess`.
    pub(crate) fn new<R: AsRef<str>>(
        refs: &[Vec<R>],
        preprocess: impl Fn(&str) -> String,
    ) -> Result<Self, EvalError> {
        let Some(first) = refs.first() else {
            return Err(EvalError::NoReferences);
        };
        check_streams(first, refs)?;
        let segments = (0..first.len())
            .map(|i| segment_refs(refs, i).map(&preprocess).collect())
            .collect();
        Ok(References {
            segments,
            nrefs: refs.len(),
        })
    }

    /// `stats(hyp, refs)` of each hypothesis with its segment's references, in order;
    /// an error when there are not as many hypotheses as segments.
    pub(crate) fn map_segments<H: AsRef<str>, T>(
        &self,
        hyps: &[H],
        stats: impl Fn(&str, &[String]) -> T,
    ) -> Result<Vec<T>, EvalError> {
        if hyps.len() != self.segments.len() {
            return Err(EvalError::LineCountMismatch {
                hyp_name: "hypotheses".to_owned(),
                hyp_lines: hyps.len(),
                ref_name: "references".to_owned(),
                ref_lines: self.segments.len(),
            });
        }
        Ok(hyps
            .iter()
            .zip(&self.segments)
            .map(|(h, refs)| stats(h.as_ref(), refs))
            .collect())
    }
}
