//! `format: "html"` of the LibreTranslate route: the text between tags is
//! translated, the markup is kept byte for byte.
//!
//! Hand-written rather than an HTML parser crate because a parser rebuilds
//! the document (normalising attributes, closing tags, adding `<html>`),
//! while clients expect their markup back unchanged; a tokenizer that only
//! tells tags from text is all that is needed. Entities in text are decoded
//! before translation and the output is escaped again. The content of
//! `<script>` and `<style>` and comments are kept untranslated.

/// A piece of an HTML fragment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// Markup kept as is (tags, comments, whitespace-only text, script/style content).
    Keep(String),
    /// Text to translate: the decoded text, and the whitespace around it to keep.
    Text {
        lead: String,
        text: String,
        trail: String,
    },
}

/// Splits an HTML fragment into markup and text segments.
pub fn split(html: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    let bytes = html.as_bytes();
    let mut pos = 0;
    let mut raw_until: Option<&'static str> = None;
    while pos < html.len() {
        if let Some(close) = raw_until {
            // Inside <script>/<style>: everything up to the closing tag is kept.
            let lower = html[pos..].to_ascii_lowercase();
            let end = lower.find(close).map_or(html.len(), |i| pos + i);
            out.push(Segment::Keep(html[pos..end].to_string()));
            pos = end;
            raw_until = None;
            continue;
        }
        if bytes[pos] == b'<' {
            let end = if html[pos..].starts_with("<!--") {
                html[pos..].find("-->").map_or(html.len(), |i| pos + i + 3)
            } else {
                tag_end(html, pos)
            };
            let tag = &html[pos..end];
            let name: String = tag
                .trim_start_matches('<')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect::<String>()
                .to_ascii_lowercase();
            if name == "script" && !tag.ends_with("/>") {
                raw_until = Some("</script");
            } else if name == "style" && !tag.ends_with("/>") {
                raw_until = Some("</style");
            }
            out.push(Segment::Keep(tag.to_string()));
            pos = end;
        } else {
            let end = html[pos..].find('<').map_or(html.len(), |i| pos + i);
            let raw = &html[pos..end];
            let trimmed = raw.trim();
            if trimmed.is_empty() {
                out.push(Segment::Keep(raw.to_string()));
            } else {
                let start = raw.len() - raw.trim_start().len();
                let stop = start + trimmed.len();
                out.push(Segment::Text {
                    lead: raw[..start].to_string(),
                    text: html_escape::decode_html_entities(trimmed).into_owned(),
                    trail: raw[stop..].to_string(),
                });
            }
            pos = end;
        }
    }
    out
}

/// End (exclusive) of the tag starting at `start`, skipping `>` inside quoted attribute values.
fn tag_end(html: &str, start: usize) -> usize {
    let mut quote: Option<char> = None;
    for (i, c) in html[start..].char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') if i > 0 => quote = Some(c),
            (None, '>') => return start + i + 1,
            _ => {}
        }
    }
    html.len()
}

/// The texts to translate, in order.
pub fn texts(segments: &[Segment]) -> Vec<String> {
    segments
        .iter()
        .filter_map(|s| match s {
            Segment::Text { text, .. } => Some(text.clone()),
            Segment::Keep(_) => None,
        })
        .collect()
}

/// Rebuilds the fragment with `translations` (one per text segment, in order) in place of the text.
pub fn join(segments: &[Segment], translations: &[String]) -> String {
    let mut out = String::new();
    let mut next = translations.iter();
    for s in segments {
        match s {
            Segment::Keep(raw) => out.push_str(raw),
            Segment::Text { lead, text, trail } => {
                out.push_str(lead);
                let t = next.next().unwrap_or(text);
                out.push_str(&html_escape::encode_text(t));
                out.push_str(trail);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_markup_and_translates_text_nodes() {
        let html = "<p class=\"a>b\">Hallo &amp; Welt</p>\n<script>var x = '<b>';</script><!-- c --> <b>Tag</b>";
        let segs = split(html);
        assert_eq!(
            texts(&segs),
            vec!["Hallo & Welt".to_string(), "Tag".to_string()]
        );
        let out = join(&segs, &["Hello & world".into(), "Day".into()]);
        assert_eq!(
            out,
            "<p class=\"a>b\">Hello &amp; world</p>\n<script>var x = '<b>';</script><!-- c --> <b>Day</b>"
        );
        // Untouched text round-trips.
        let plain = "  just text  ";
        let segs = split(plain);
        assert_eq!(join(&segs, &texts(&segs)), plain);
        // Unclosed tags do not loop or panic.
        assert_eq!(split("a <b").len(), 2);
    }
}
