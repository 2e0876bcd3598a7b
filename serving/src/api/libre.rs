//! LibreTranslate-compatible routes: `POST /translate`, `POST /detect`,
//! `GET /languages`, `GET /frontend/settings` (files: [`super::files`]).
//!
//! Shapes follow LibreTranslate: `q` a string → `translatedText` a string
//! (and `alternatives` a list of strings); `q` a list → lists. Errors are
//! `{"error": ...}` (plus our `code`). Bodies may be JSON, url-encoded (its
//! API clients) or multipart (its web page). `source: "auto"` detects each
//! text's language among the sources of the models that translate into
//! `target`, and `target` itself ([`crate::detect`]), and picks the model by it;
//! a text already in the target language is returned unchanged, as
//! LibreTranslate (argos' identity translation) does.

use std::collections::BTreeMap;
use std::time::Instant;

use actix_web::{web, HttpRequest, HttpResponse};

use super::dto::{
    AlternativesOut, DetectRequest, DetectedLanguage, DetectedOut, FrontendLanguage,
    FrontendLanguages, FrontendSettings, LibreRequest, LibreResponse, OneOrMany,
};
use super::form::{self, BodyKind};
use super::{
    body_text, char_count, check_api_key, check_options, check_rate, check_texts, media_type,
    parse_json, read_body, room_in_queue, run_job, AppState,
};
use crate::batcher::DecodeOptions;
use crate::errors::{ApiError, ErrorBody};
use crate::files::EXTENSIONS;
use crate::markup;
use crate::registry::{language_name, Language};

/// Builds a [`LibreRequest`] from form fields; `q` may repeat for a list.
fn from_fields(pairs: Vec<(String, String)>) -> Result<LibreRequest, ApiError> {
    let mut request = LibreRequest::default();
    let mut qs = Vec::new();
    for (key, value) in pairs {
        match key.as_str() {
            "q" | "q[]" => qs.push(value),
            "source" => request.source = Some(value),
            "target" => request.target = Some(value),
            "format" => request.format = Some(value),
            "api_key" => request.api_key = Some(value),
            "alternatives" => {
                request.alternatives = Some(value.parse().map_err(|_| {
                    ApiError::bad_request(
                        "invalid_field",
                        format!("alternatives must be a non-negative integer, not {value:?}"),
                    )
                })?)
            }
            // LibreTranslate ignores fields it does not use; so do we.
            _ => {}
        }
    }
    request.q = match qs.len() {
        0 => None,
        1 => qs.pop().map(OneOrMany::One),
        _ => Some(OneOrMany::Many(qs)),
    };
    Ok(request)
}

/// Reads a LibreTranslate request body: JSON, url-encoded or multipart.
async fn read_request(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<LibreRequest, ApiError> {
    let kind = BodyKind::of(media_type(req).as_deref())?;
    let body = read_body(payload, state.settings.limits.max_body_bytes).await?;
    match kind {
        BodyKind::Json => parse_json(body_text(&body)?),
        BodyKind::UrlEncoded | BodyKind::Multipart => {
            from_fields(form::text_fields(req, kind, body).await?)
        }
    }
}

/// A required language field, or 400 naming it as LibreTranslate does.
pub fn required(value: Option<String>, name: &str) -> Result<String, ApiError> {
    value.filter(|s| !s.is_empty()).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_field",
            format!("Invalid request: missing {name} parameter"),
        )
    })
}

/// True for LibreTranslate's `source: "auto"`.
pub fn is_auto(source: &str) -> bool {
    source == "auto"
}

/// Where `source: "auto"` sends one text: the model (`None`: the text is in the target
/// language already and comes back as it is, as LibreTranslate answers) and what was
/// detected.
pub struct Routed {
    pub model: Option<usize>,
    pub detected: DetectedLanguage,
}

/// Picks the model for each text (`plain`: the texts without markup) when the
/// source is `auto`: detects the language among the sources of the models
/// that translate into `target`, and `target` itself (a German text with
/// target German is returned unchanged, not put through an English→German
/// model). A text whose own detection is missing or less sure than that of
/// all the texts together (short texts say little) takes the latter. With no
/// detection and one candidate source, that source is taken (its confidence
/// reported as 0).
pub fn route_auto(
    state: &AppState,
    plain: &[String],
    target: &str,
) -> Result<Vec<Routed>, ApiError> {
    let sources = state.registry.sources_into(target);
    if sources.is_empty() {
        // The registry's own error, naming the pairs served.
        return Err(match state.registry.resolve(None, None, Some(target)) {
            Err(e) => e,
            Ok(_) => ApiError::internal("a model translates into the target but has no source"),
        });
    }
    let mut candidates: Vec<&str> = sources.iter().map(String::as_str).collect();
    let only_source = (candidates.len() == 1).then(|| candidates[0].to_string());
    if !candidates.contains(&target) {
        candidates.push(target);
    }
    let all = state.detector.detect(&plain.join("\n"), &candidates);
    plain
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let own = if plain.len() == 1 {
                all.clone()
            } else {
                state.detector.detect(text, &candidates)
            };
            let chosen = match (own, &all) {
                (Some(o), Some(a)) if a.confidence > o.confidence => Some(a.clone()),
                (Some(o), _) => Some(o),
                (None, a) => a.clone(),
            };
            let detected = match (chosen, &only_source) {
                (Some(d), _) => d,
                (None, Some(only)) => DetectedLanguage {
                    confidence: 0.0,
                    language: only.clone(),
                },
                (None, None) => {
                    return Err(ApiError::bad_request(
                        "undetected_language",
                        format!(
                            "source \"auto\": could not tell the language of text {i} among {}; give the source language",
                            candidates.join(", ")
                        ),
                    ))
                }
            };
            let model = if detected.language == target {
                None
            } else {
                Some(
                    state
                        .registry
                        .resolve(None, Some(&detected.language), Some(target))?,
                )
            };
            Ok(Routed { model, detected })
        })
        .collect()
}

/// Translates `inputs` with one model: the best translation and `alternatives`
/// more per input. For HTML each text node is translated on its own and the
/// markup kept; a plain text is one sentence.
pub async fn translate_inputs(
    state: &AppState,
    model: usize,
    inputs: &[String],
    html: bool,
    alternatives: usize,
    options: DecodeOptions,
    arrived: Instant,
) -> Result<Vec<(String, Vec<String>)>, ApiError> {
    let segments: Vec<Vec<markup::Segment>> = if html {
        inputs.iter().map(|s| markup::split(s)).collect()
    } else {
        Vec::new()
    };
    let job_texts: Vec<String> = if html {
        segments.iter().flat_map(|s| markup::texts(s)).collect()
    } else {
        inputs.to_vec()
    };
    let translations = if job_texts.is_empty() {
        Vec::new()
    } else {
        run_job(state, model, job_texts, options, arrived).await?
    };
    if !html {
        return Ok(translations
            .into_iter()
            .map(|t| {
                let alts = t.alternatives.into_iter().map(|a| a.text).collect();
                (t.text, alts)
            })
            .collect());
    }
    let mut rest = translations.into_iter();
    Ok(segments
        .iter()
        .map(|segs| {
            let mine: Vec<_> = rest.by_ref().take(markup::texts(segs).len()).collect();
            let best: Vec<String> = mine.iter().map(|t| t.text.clone()).collect();
            // Alternative k swaps in each node's k-th alternative (its best when it has fewer).
            let alts = (0..alternatives)
                .map(|k| {
                    let nodes: Vec<String> = mine
                        .iter()
                        .map(|t| {
                            t.alternatives
                                .get(k)
                                .map_or_else(|| t.text.clone(), |a| a.text.clone())
                        })
                        .collect();
                    markup::join(segs, &nodes)
                })
                .collect();
            (markup::join(segs, &best), alts)
        })
        .collect())
}

/// Translate text (LibreTranslate API).
#[utoipa::path(
    post,
    path = "/translate",
    tag = "libretranslate",
    request_body(
        content(
            (LibreRequest = "application/json"),
            (LibreRequest = "application/x-www-form-urlencoded"),
            (LibreRequest = "multipart/form-data")
        ),
        description = "JSON, or a url-encoded or multipart form with the same fields (repeat `q` for a list)"
    ),
    responses(
        (status = 200, body = LibreResponse),
        (status = 400, description = "Missing or bad field, empty or over-long text, unsupported language pair, source `auto` and the language not detected", body = ErrorBody),
        (status = 401, description = "API key required", body = ErrorBody),
        (status = 403, description = "Invalid API key", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 429, description = "Over a per-client rate limit (`--req-limit`, `--char-budget`), with Retry-After", body = ErrorBody),
        (status = 503, description = "Queue full (with Retry-After)", body = ErrorBody),
        (status = 504, body = ErrorBody),
    )
)]
pub async fn translate(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let arrived = Instant::now();
    room_in_queue(&state).await?;
    let request = read_request(&state, &req, payload).await?;
    let client = check_api_key(&state, &req, request.api_key.as_deref())?;
    let Some(q) = request.q else {
        return Err(ApiError::bad_request(
            "no_text",
            "Invalid request: missing q parameter",
        ));
    };
    let source = required(request.source, "source")?;
    let target = required(request.target, "target")?;
    let html = match request.format.as_deref() {
        None | Some("text") => false,
        Some("html") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_field",
                format!("Invalid request: format {other:?} is not text or html"),
            ))
        }
    };
    let (inputs, single) = match q {
        OneOrMany::One(s) => (vec![s], true),
        OneOrMany::Many(v) => (v, false),
    };
    check_texts(&state.settings, &inputs)?;
    let alternatives = request.alternatives.unwrap_or(0);
    let n_best = alternatives + 1;
    let options = DecodeOptions {
        beam_size: state.settings.default_beam.max(n_best),
        n_best,
        max_length: None,
        return_attention: false,
    };
    if n_best > state.settings.limits.max_n_best {
        return Err(ApiError::bad_request(
            "n_best_too_large",
            format!(
                "alternatives {alternatives} is more than this server allows ({})",
                state.settings.limits.max_n_best.saturating_sub(1)
            ),
        ));
    }
    check_options(&state.settings, &options)?;
    check_rate(&state, &client, char_count(&inputs)).await?;
    let auto = is_auto(&source);
    // The model for each input, and with `auto` what was detected.
    let (models, detected): (Vec<Option<usize>>, Vec<DetectedLanguage>) = if auto {
        let plain: Vec<String> = if html {
            inputs
                .iter()
                .map(|s| markup::texts(&markup::split(s)).join("\n"))
                .collect()
        } else {
            inputs.clone()
        };
        route_auto(&state, &plain, &target)?
            .into_iter()
            .map(|r| (r.model, r.detected))
            .unzip()
    } else {
        let model = state.registry.resolve(None, Some(&source), Some(&target))?;
        (vec![Some(model); inputs.len()], Vec::new())
    };
    // outputs[i] = (best, alternatives) for input i; a text already in the target language
    // is its own translation.
    let mut outputs: Vec<(String, Vec<String>)> = vec![Default::default(); inputs.len()];
    // One job per model (only `auto` can need several); they run side by side.
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, m) in models.iter().enumerate() {
        match m {
            Some(m) => groups.entry(*m).or_default().push(i),
            None => outputs[i].0 = inputs[i].clone(),
        }
    }
    let jobs =
        groups.iter().map(|(&model, indices)| {
            let texts: Vec<String> = indices.iter().map(|&i| inputs[i].clone()).collect();
            let state = &state;
            async move {
                translate_inputs(state, model, &texts, html, alternatives, options, arrived).await
            }
        });
    let results = futures_util::future::try_join_all(jobs).await?;
    for (indices, translated) in groups.values().zip(results) {
        for (&i, out) in indices.iter().zip(translated) {
            outputs[i] = out;
        }
    }
    let response = if single {
        let (text, alts) = outputs.into_iter().next().unwrap_or_default();
        LibreResponse {
            translated_text: OneOrMany::One(text),
            alternatives: (alternatives > 0).then_some(AlternativesOut::One(alts)),
            detected_language: detected.into_iter().next().map(DetectedOut::One),
        }
    } else {
        let (texts, alts): (Vec<String>, Vec<Vec<String>>) = outputs.into_iter().unzip();
        LibreResponse {
            translated_text: OneOrMany::Many(texts),
            alternatives: (alternatives > 0).then_some(AlternativesOut::Many(alts)),
            detected_language: auto.then_some(DetectedOut::Many(detected)),
        }
    };
    Ok(HttpResponse::Ok().json(response))
}

/// Detect the language of a text (LibreTranslate API).
///
/// Among the languages of the served models (sources and targets). The list
/// holds the best guess only; when the text gives no clue (digits,
/// punctuation, a script no served language uses) it is English, or else the
/// first served language, with confidence 0, as LibreTranslate answers.
#[utoipa::path(
    post,
    path = "/detect",
    tag = "libretranslate",
    request_body(
        content(
            (DetectRequest = "application/json"),
            (DetectRequest = "application/x-www-form-urlencoded"),
            (DetectRequest = "multipart/form-data")
        ),
        description = "JSON, or a url-encoded or multipart form with the same fields"
    ),
    responses(
        (status = 200, description = "Detections, most likely first", body = Vec<DetectedLanguage>),
        (status = 400, description = "Missing, empty or over-long text, bad body", body = ErrorBody),
        (status = 401, description = "API key required", body = ErrorBody),
        (status = 403, description = "Invalid API key", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 429, description = "Over a per-client rate limit (`--req-limit`, `--char-budget`), with Retry-After", body = ErrorBody),
    )
)]
pub async fn detect(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let kind = BodyKind::of(media_type(&req).as_deref())?;
    let body = read_body(payload, state.settings.limits.max_body_bytes).await?;
    let request: DetectRequest = match kind {
        BodyKind::Json => parse_json(body_text(&body)?)?,
        BodyKind::UrlEncoded | BodyKind::Multipart => {
            let r = from_fields(form::text_fields(&req, kind, body).await?)?;
            DetectRequest {
                q: r.q,
                api_key: r.api_key,
            }
        }
    };
    let client = check_api_key(&state, &req, request.api_key.as_deref())?;
    let Some(q) = request.q else {
        return Err(ApiError::bad_request(
            "no_text",
            "Invalid request: missing q parameter",
        ));
    };
    let texts = match q {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    };
    check_texts(&state.settings, &texts)?;
    check_rate(&state, &client, char_count(&texts)).await?;
    let codes = state.registry.codes();
    let candidates: Vec<&str> = codes.iter().map(String::as_str).collect();
    let found = state
        .detector
        .detect(&texts.join("\n"), &candidates)
        .unwrap_or_else(|| DetectedLanguage {
            confidence: 0.0,
            language: if codes.iter().any(|c| c == "en") {
                "en".to_string()
            } else {
                codes.first().cloned().unwrap_or_default()
            },
        });
    Ok(HttpResponse::Ok().json(vec![found]))
}

/// Languages and the targets each translates into (LibreTranslate API).
#[utoipa::path(
    get,
    path = "/languages",
    tag = "libretranslate",
    responses((status = 200, body = Vec<Language>))
)]
pub async fn languages(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(state.registry.languages())
}

/// What LibreTranslate's web page waits after the last keystroke before it
/// translates, in ms: LibreTranslate's own default. It only paces that page;
/// nothing in this server depends on it, so it is not a setting here.
const FRONTEND_TIMEOUT_MS: u64 = 500;

/// Settings LibreTranslate's web page reads (LibreTranslate API).
#[utoipa::path(
    get,
    path = "/frontend/settings",
    tag = "libretranslate",
    responses((status = 200, body = FrontendSettings))
)]
pub async fn frontend_settings(state: web::Data<AppState>) -> HttpResponse {
    let settings = &state.settings;
    let keys = !settings.api_keys.is_empty();
    let first = state.registry.models.first();
    let named = |code: &str| FrontendLanguage {
        code: code.to_string(),
        name: language_name(code),
    };
    // "auto" is offered when it can work: some source language is detectable.
    let detectable = state
        .registry
        .models
        .iter()
        .any(|m| !state.detector.undetectable().contains(&m.source));
    let source = if detectable {
        FrontendLanguage {
            code: "auto".into(),
            name: "Auto Detect".into(),
        }
    } else {
        named(first.map_or("", |m| m.source.as_str()))
    };
    let files = settings.files.enabled;
    HttpResponse::Ok().json(FrontendSettings {
        char_limit: settings.limits.max_chars,
        frontend_timeout: FRONTEND_TIMEOUT_MS,
        api_keys: keys,
        // Every key this server has is required: there is no anonymous quota.
        key_required: keys,
        suggestions: false,
        files_translation: files,
        supported_files_format: if files {
            EXTENSIONS.iter().map(|(ext, _)| ext.to_string()).collect()
        } else {
            Vec::new()
        },
        language: FrontendLanguages {
            source,
            target: named(first.map_or("", |m| m.target.as_str())),
        },
    })
}
