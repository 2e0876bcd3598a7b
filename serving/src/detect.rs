//! Language identification for LibreTranslate's `POST /detect` and for
//! `source: "auto"` on `POST /translate` and `POST /translate_file`.
//!
//! Backed by `whatlang` rather than `lingua`: whatlang has one small
//! dependency (hashbrown), compiles in seconds and its trigram profiles are
//! small tables (the whole crate is 750 KB of source), while lingua's
//! per-language n-gram models add tens to hundreds of megabytes to the
//! binary and a much longer build. For the
//! question this server asks (which of the few languages it serves is this
//! text in?) whatlang's accuracy on sentences is ample, and it is kept up
//! (0.18 is on Rust edition 2024). Its one limit: it names the best language only, with a
//! confidence, not a ranked list of every candidate.
//!
//! The languages are always restricted to those of the served models: a
//! client can do nothing with a language no model translates, and a short
//! text is far easier to place among two languages than among seventy.

use serde::Serialize;
use utoipa::ToSchema;

/// One detection, shaped as LibreTranslate answers it (`/detect` items and
/// `detectedLanguage` of `/translate`).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DetectedLanguage {
    /// 0–100, as LibreTranslate reports it; 0 means no guess could be made.
    #[schema(example = 92.5)]
    pub confidence: f64,
    /// Language code, as the models name it.
    #[schema(example = "de")]
    pub language: String,
}

/// Tells which of the served languages a text is in.
#[derive(Debug, Clone)]
pub struct LanguageDetector {
    /// Served language code → whatlang's language, for those whatlang knows.
    known: Vec<(String, whatlang::Lang)>,
    /// Served languages whatlang cannot identify (never detected).
    unknown: Vec<String>,
}

/// ISO 639-3 macrolanguages whose text whatlang profiles under one member
/// language: a bundle tagged `zh` or `fa` is matched by those profiles.
const MACRO_TO_WHATLANG: &[(&str, &str)] = &[("zho", "cmn"), ("fas", "pes"), ("nor", "nob")];

/// whatlang's language for a model's language code (ISO 639-1 or 639-3).
fn whatlang_lang(code: &str) -> Option<whatlang::Lang> {
    let lower = code.trim().to_ascii_lowercase();
    let three = isolang::Language::from_639_1(&lower)
        .or_else(|| isolang::Language::from_639_3(&lower))
        .map(|l| l.to_639_3())?;
    let three = MACRO_TO_WHATLANG
        .iter()
        .find(|(m, _)| *m == three)
        .map_or(three, |(_, w)| *w);
    whatlang::Lang::from_code(three)
}

impl LanguageDetector {
    /// A detector for these language codes (duplicates ignored).
    pub fn new<I, S>(codes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut known: Vec<(String, whatlang::Lang)> = Vec::new();
        let mut unknown: Vec<String> = Vec::new();
        for code in codes {
            let code = code.as_ref().to_string();
            if known.iter().any(|(c, _)| *c == code) || unknown.contains(&code) {
                continue;
            }
            match whatlang_lang(&code) {
                Some(lang) => known.push((code, lang)),
                None => unknown.push(code),
            }
        }
        Self { known, unknown }
    }

    /// Served languages that can never be detected (whatlang does not know them).
    pub fn undetectable(&self) -> &[String] {
        &self.unknown
    }

    /// The language among `candidates` (served codes) that `text` is most
    /// likely in, or `None` when none of them is detectable or the text gives
    /// no clue (digits, punctuation, another script).
    pub fn detect(&self, text: &str, candidates: &[&str]) -> Option<DetectedLanguage> {
        let allowed: Vec<(&str, whatlang::Lang)> = self
            .known
            .iter()
            .filter(|(code, _)| candidates.contains(&code.as_str()))
            .map(|(code, lang)| (code.as_str(), *lang))
            .collect();
        if allowed.is_empty() {
            return None;
        }
        let detector =
            whatlang::Detector::with_allowlist(allowed.iter().map(|(_, l)| *l).collect());
        let info = detector.detect(text)?;
        let code = allowed.iter().find(|(_, l)| *l == info.lang())?.0;
        Some(DetectedLanguage {
            // Two decimals, as LibreTranslate rounds; whatlang's 0–1 scaled to its 0–100.
            confidence: (info.confidence() * 10_000.0).round() / 100.0,
            language: code.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_the_served_languages_apart() {
        let d = LanguageDetector::new(["de", "en", "fr", "de", "xx"]);
        assert_eq!(d.undetectable(), ["xx".to_string()]);
        let all = ["de", "en", "fr", "xx"];
        let de = d
            .detect("Ein Mann fährt mit dem Fahrrad über die Straße.", &all)
            .unwrap();
        assert_eq!(de.language, "de");
        assert!(de.confidence > 0.0 && de.confidence <= 100.0, "{de:?}");
        assert_eq!(
            d.detect("Two dogs are playing in the snow.", &all)
                .unwrap()
                .language,
            "en"
        );
        assert_eq!(
            d.detect("Deux chiens jouent dans la neige avec un enfant.", &all)
                .unwrap()
                .language,
            "fr"
        );
        // Restricted to the candidates: the German text is placed among English and French.
        let forced = d
            .detect("Ein Mann fährt mit dem Fahrrad.", &["en", "fr"])
            .unwrap();
        assert_ne!(forced.language, "de");
        // No clue, or no detectable candidate: no guess.
        assert_eq!(d.detect("12345 !!!", &all), None);
        assert_eq!(d.detect("Ein Mann fährt Fahrrad.", &["xx"]), None);
        assert_eq!(d.detect("Ein Mann fährt Fahrrad.", &[]), None);
        // 639-3 codes and macrolanguages map too.
        assert!(whatlang_lang("deu").is_some());
        assert_eq!(whatlang_lang("zh"), Some(whatlang::Lang::Cmn));
    }
}
