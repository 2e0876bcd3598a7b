//! Texts cut into the sentences a model translates, and put back together.
//!
//! The models are trained on single sentences, so a paragraph goes to them sentence by
//! sentence: [`split`] cuts a text at line breaks and then at sentence ends, with the
//! `sentencex` segmenter (Wikimedia's rules, which know German and English abbreviations
//! and ordinals: "z. B.", "Dr.", "3. Oktober", "e.g.", "U.S."), and keeps everything between
//! the sentences (spaces, line breaks, blank lines) as it was. [`fit`] cuts a sentence that
//! is too long for the model at clause punctuation, and failing that between words, so no
//! text is ever dropped. [`crate::translate::translate`] does both when
//! `TranslateOptions::split_sentences` is on.

/// One piece of a text: a sentence to translate, or what lies between sentences, kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    /// A sentence, without surrounding whitespace.
    Sentence(String),
    /// Whitespace (spaces, line breaks) between sentences, verbatim.
    Gap(String),
}

/// `text` as sentences and the gaps between them, in order: concatenating every piece's
/// text gives `text` back exactly. `lang` is the text's language code (`de`, `en`, ...;
/// an unknown one gets the segmenter's language-neutral rules).
pub fn split(lang: &str, text: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut rest = text;
    // Line by line: a line break always ends a sentence (lists, verse, addresses).
    while !rest.is_empty() {
        let (line, newline, after) = match rest.find('\n') {
            Some(at) => (&rest[..at], "\n", &rest[at + 1..]),
            None => (rest, "", ""),
        };
        split_line(lang, line, &mut pieces);
        if !newline.is_empty() {
            push_gap(&mut pieces, newline);
        }
        rest = after;
    }
    pieces
}

/// The sentences of one line (no `\n` in it) and the whitespace around them.
fn split_line(lang: &str, line: &str, pieces: &mut Vec<Piece>) {
    let mut covered = 0;
    for boundary in sentencex::get_sentence_boundaries(lang, line) {
        let (start, end) = (boundary.start_byte, boundary.end_byte);
        // What the segmenter's boundaries skip (should it skip anything) stays too.
        if start > covered && line.is_char_boundary(start) {
            push_text(pieces, &line[covered..start]);
            covered = start;
        }
        if end > covered && line.is_char_boundary(end) {
            push_text(pieces, &line[covered..end]);
            covered = end;
        }
    }
    if covered < line.len() {
        push_text(pieces, &line[covered..]);
    }
}

/// `text` as a sentence with its leading and trailing whitespace as gaps.
fn push_text(pieces: &mut Vec<Piece>, text: &str) {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        push_gap(pieces, text);
        return;
    }
    let lead = &text[..text.len() - text.trim_start().len()];
    let tail = &text[text.trim_end().len()..];
    push_gap(pieces, lead);
    pieces.push(Piece::Sentence(trimmed.to_string()));
    push_gap(pieces, tail);
}

/// Appends whitespace, merged into the previous gap when there is one.
fn push_gap(pieces: &mut Vec<Piece>, gap: &str) {
    if gap.is_empty() {
        return;
    }
    match pieces.last_mut() {
        Some(Piece::Gap(g)) => g.push_str(gap),
        _ => pieces.push(Piece::Gap(gap.to_string())),
    }
}

/// `sentence` in pieces that each take at most `max_tokens` subword tokens (`tokens` counts
/// them), to be translated one by one and joined with a space: the whole sentence when it
/// fits; else cut after clause punctuation (`,` `;` `:` and dashes), the clauses packed
/// greedily; a clause that alone is too long is cut between words. Only a single word
/// longer than the limit is left over-long (translation then truncates it, and says so).
pub fn fit<E>(
    sentence: &str,
    max_tokens: usize,
    tokens: &dyn Fn(&str) -> Result<usize, E>,
) -> Result<Vec<String>, E> {
    if tokens(sentence)? <= max_tokens {
        return Ok(vec![sentence.to_string()]);
    }
    let clauses = cut_after(sentence, |w| {
        w.ends_with([',', ';', ':']) || matches!(w, "-" | "–" | "—")
    });
    let mut out = Vec::new();
    for clause in pack(&clauses, max_tokens, tokens)? {
        if tokens(&clause)? <= max_tokens {
            out.push(clause);
        } else {
            let words: Vec<String> = clause.split_whitespace().map(String::from).collect();
            out.extend(pack(&words, max_tokens, tokens)?);
        }
    }
    Ok(out)
}

/// `text`'s words grouped into runs, a run ending after each word that `ends_run` accepts.
fn cut_after(text: &str, ends_run: impl Fn(&str) -> bool) -> Vec<String> {
    let mut runs = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for word in text.split_whitespace() {
        current.push(word);
        if ends_run(word) {
            runs.push(current.join(" "));
            current.clear();
        }
    }
    if !current.is_empty() {
        runs.push(current.join(" "));
    }
    runs
}

/// Consecutive `parts` joined with spaces into as few pieces as fit `max_tokens` each (a
/// part that alone does not fit is a piece of its own).
fn pack<E>(
    parts: &[String],
    max_tokens: usize,
    tokens: &dyn Fn(&str) -> Result<usize, E>,
) -> Result<Vec<String>, E> {
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    for part in parts {
        let joined = if current.is_empty() {
            part.clone()
        } else {
            format!("{current} {part}")
        };
        if current.is_empty() || tokens(&joined)? <= max_tokens {
            current = joined;
        } else {
            out.push(std::mem::replace(&mut current, part.clone()));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    Ok(out)
}
