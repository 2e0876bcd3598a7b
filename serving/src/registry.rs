//! The served models, described without their weights (those live on the
//! batcher thread), and the choice of a model for a request: by name, or by
//! source/target language.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use utoipa::ToSchema;

use crate::errors::ApiError;

/// One served model, as `GET /v1/models` shows it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ModelInfo {
    /// The bundle's directory name; pass it as `model` to choose this model.
    #[schema(example = "multi30k-de-en")]
    pub name: String,
    /// Source language code.
    #[schema(example = "de")]
    pub source: String,
    /// Target language code.
    #[schema(example = "en")]
    pub target: String,
    /// What the model was trained on: its data and domain, in words (the bundle's
    /// `metadata.json`, set with `nmt-bundle describe`); null when the bundle has none.
    #[schema(
        example = "Multi30k (task 1): about 29,000 German-English pairs of Flickr30k image captions. Domain: short descriptions of photos."
    )]
    pub description: Option<String>,
    /// Training step of the weights.
    pub step: u64,
    /// Validation scores recorded in the bundle (`bleu`, `ppl`, ...).
    #[schema(value_type = Object)]
    pub validation: BTreeMap<String, f64>,
    #[serde(skip)]
    pub dir: PathBuf,
    /// What `return_neurons` may ask for.
    #[serde(skip)]
    pub shape: ModelShape,
}

/// The layers and units of a model, as `return_neurons` (and the schema) needs them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModelShape {
    pub encoder_layers: usize,
    pub decoder_layers: usize,
    pub bidirectional: bool,
    pub hidden_dim: usize,
}

/// The models, in `--model` order; a model's index is its id in the batcher.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    pub models: Vec<ModelInfo>,
}

/// A LibreTranslate-style language with the languages it translates into.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Language {
    #[schema(example = "de")]
    pub code: String,
    #[schema(example = "German")]
    pub name: String,
    pub targets: Vec<String>,
}

/// English name of an ISO 639-1 (or 639-3) code, the code itself when unknown.
pub fn language_name(code: &str) -> String {
    isolang::Language::from_639_1(code)
        .or_else(|| isolang::Language::from_639_3(code))
        .map(|l| l.to_name().to_string())
        .unwrap_or_else(|| code.to_string())
}

impl Registry {
    /// Checks that names are unique.
    pub fn new(models: Vec<ModelInfo>) -> Result<Self, String> {
        for (i, m) in models.iter().enumerate() {
            if let Some(other) = models[..i].iter().find(|o| o.name == m.name) {
                return Err(format!(
                    "two models are named {:?} ({} and {}): model names are directory names and must differ",
                    m.name,
                    other.dir.display(),
                    m.dir.display()
                ));
            }
        }
        Ok(Self { models })
    }

    /// Picks the model for a request. `model` wins; otherwise the models
    /// matching `source` and `target` (each optional; `auto` or empty means
    /// any) must be of exactly one language pair. Several models of that pair
    /// (two versions of a de→en model, say): the first in `--model` order
    /// answers, and the others only when named. Names and codes are compared
    /// exactly, as LibreTranslate does (the schema lists them).
    pub fn resolve(
        &self,
        model: Option<&str>,
        source: Option<&str>,
        target: Option<&str>,
    ) -> Result<usize, ApiError> {
        let norm = |s: Option<&str>| {
            s.filter(|s| !s.is_empty() && *s != "auto")
                .map(String::from)
        };
        let (source, target) = (norm(source), norm(target));
        if let Some(name) = model {
            let index = self
                .models
                .iter()
                .position(|m| m.name == name)
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "unknown_model",
                        format!(
                            "unknown model {name:?}; served models: {}",
                            self.names().join(", ")
                        ),
                    )
                })?;
            let m = &self.models[index];
            for (asked, has, what) in [
                (&source, &m.source, "source"),
                (&target, &m.target, "target"),
            ] {
                if let Some(asked) = asked {
                    if asked != has {
                        return Err(ApiError::bad_request(
                            "language_mismatch",
                            format!("model {name:?} has {what} language {has:?}, not {asked:?}"),
                        ));
                    }
                }
            }
            return Ok(index);
        }
        let mut matching: Vec<usize> = Vec::new();
        for (i, m) in self.models.iter().enumerate() {
            let fits = source.as_ref().is_none_or(|s| *s == m.source)
                && target.as_ref().is_none_or(|t| *t == m.target);
            let pair_taken = matching.iter().any(|&j| {
                let first = &self.models[j];
                (&first.source, &first.target) == (&m.source, &m.target)
            });
            if fits && !pair_taken {
                matching.push(i);
            }
        }
        match matching.as_slice() {
            [one] => Ok(*one),
            [] => Err(ApiError::bad_request(
                "unsupported_language_pair",
                format!(
                    "no model translates {} into {}; served pairs: {}",
                    source.as_deref().unwrap_or("any language"),
                    target.as_deref().unwrap_or("any language"),
                    self.pairs().join(", ")
                ),
            )),
            many => Err(ApiError::bad_request(
                "ambiguous_model",
                format!(
                    "{} models match; name one with `model` or give source and target: {}",
                    many.len(),
                    many.iter()
                        .map(|&i| format!(
                            "{} ({}-{})",
                            self.models[i].name, self.models[i].source, self.models[i].target
                        ))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }

    pub fn names(&self) -> Vec<String> {
        self.models.iter().map(|m| m.name.clone()).collect()
    }

    /// `de-en` style pairs.
    pub fn pairs(&self) -> Vec<String> {
        self.models
            .iter()
            .map(|m| format!("{}-{}", m.source, m.target))
            .collect()
    }

    /// The source languages of the models that translate into `target`, each once,
    /// in `--model` order: what `source: "auto"` chooses among.
    pub fn sources_into(&self, target: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for m in &self.models {
            if m.target == target && !out.contains(&m.source) {
                out.push(m.source.clone());
            }
        }
        out
    }

    /// Every served language code (source or target), sorted.
    pub fn codes(&self) -> Vec<String> {
        self.languages().into_iter().map(|l| l.code).collect()
    }

    /// Every language seen as a source or a target, with its targets (LibreTranslate's `/languages`).
    pub fn languages(&self) -> Vec<Language> {
        let mut targets: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for m in &self.models {
            let entry = targets.entry(m.source.clone()).or_default();
            if !entry.contains(&m.target) {
                entry.push(m.target.clone());
            }
            targets.entry(m.target.clone()).or_default();
        }
        targets
            .into_iter()
            .map(|(code, mut targets)| {
                targets.sort();
                Language {
                    name: language_name(&code),
                    code,
                    targets,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, s: &str, t: &str) -> ModelInfo {
        ModelInfo {
            name: name.into(),
            source: s.into(),
            target: t.into(),
            description: None,
            step: 0,
            validation: BTreeMap::new(),
            dir: PathBuf::from(name),
            shape: ModelShape::default(),
        }
    }

    #[test]
    fn resolves_by_name_pair_or_single_candidate() {
        let r = Registry::new(vec![
            info("a", "de", "en"),
            info("b", "en", "de"),
            info("c", "fr", "en"),
        ])
        .unwrap();
        // The code of the error `resolve` answers with.
        let refused = |model, src, tgt| r.resolve(model, src, tgt).unwrap_err().code;
        assert_eq!(r.resolve(Some("b"), None, None).unwrap(), 1);
        assert_eq!(r.resolve(None, Some("de"), Some("en")).unwrap(), 0);
        assert_eq!(r.resolve(None, Some("auto"), Some("de")).unwrap(), 1);
        assert_eq!(refused(None, None, Some("en")), "ambiguous_model");
        assert_eq!(
            refused(None, Some("de"), Some("fr")),
            "unsupported_language_pair"
        );
        assert_eq!(refused(Some("zz"), None, None), "unknown_model");
        assert_eq!(refused(Some("a"), Some("fr"), None), "language_mismatch");
        let langs = r.languages();
        let en = langs.iter().find(|l| l.code == "en").unwrap();
        assert_eq!(en.targets, vec!["de".to_string()]);
        assert_eq!(en.name, "English");
        assert_eq!(
            r.sources_into("en"),
            vec!["de".to_string(), "fr".to_string()]
        );
        // Codes are compared exactly, as LibreTranslate compares them.
        assert!(r.sources_into("EN").is_empty());
        assert_eq!(
            refused(None, Some("DE"), Some("en")),
            "unsupported_language_pair"
        );
        assert_eq!(refused(Some(""), None, None), "unknown_model");
        assert!(r.sources_into("xx").is_empty());
        assert_eq!(r.codes(), vec!["de", "en", "fr"]);
        assert!(Registry::new(vec![info("a", "de", "en"), info("a", "x", "y")]).is_err());
    }

    #[test]
    fn of_two_models_of_one_pair_the_first_answers_unless_the_other_is_named() {
        let r = Registry::new(vec![
            info("everyday-de-en", "de", "en"),
            info("everyday-en-de", "en", "de"),
            info("multi30k-de-en", "de", "en"),
        ])
        .unwrap();
        assert_eq!(r.resolve(None, Some("de"), Some("en")).unwrap(), 0);
        assert_eq!(r.resolve(None, None, Some("en")).unwrap(), 0);
        assert_eq!(r.resolve(None, Some("auto"), Some("en")).unwrap(), 0);
        assert_eq!(r.resolve(None, Some("de"), None).unwrap(), 0);
        assert_eq!(r.resolve(None, Some("en"), Some("de")).unwrap(), 1);
        assert_eq!(
            r.resolve(Some("multi30k-de-en"), Some("de"), Some("en"))
                .unwrap(),
            2
        );
        // Two pairs still match a request that names neither language.
        assert_eq!(
            r.resolve(None, None, None).unwrap_err().code,
            "ambiguous_model"
        );
        // The order of --model decides.
        let swapped = Registry::new(vec![
            info("multi30k-de-en", "de", "en"),
            info("everyday-de-en", "de", "en"),
        ])
        .unwrap();
        assert_eq!(swapped.resolve(None, Some("de"), Some("en")).unwrap(), 0);
        assert_eq!(swapped.pairs(), ["de-en", "de-en"]);
    }
}
