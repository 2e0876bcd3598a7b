//! LibreTranslate-compatible routes: `POST /translate`, `GET /languages`.
//!
//! Shapes follow LibreTranslate: `q` a string → `translatedText` a string
//! (and `alternatives` a list of strings); `q` a list → lists. Errors are
//! `{"error": ...}` (plus our `code`). `source: "auto"` is accepted when
//! exactly one served model translates into `target`; the answer then
//! carries `detectedLanguage` with that model's source language (no language
//! detection is done).

use std::time::Instant;

use actix_web::{web, HttpRequest, HttpResponse};

use super::dto::{
    AlternativesOut, DetectedLanguage, DetectedOut, LibreRequest, LibreResponse, OneOrMany,
};
use super::{
    body_text, check_api_key, check_options, check_texts, media_type, parse_json, read_body,
    run_job, AppState,
};
use crate::batcher::DecodeOptions;
use crate::errors::{ApiError, ErrorBody};
use crate::markup;
use crate::registry::Language;

/// Reads a form-urlencoded body into a [`LibreRequest`]; `q` may repeat for a list.
fn parse_form(text: &str) -> Result<LibreRequest, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(text)
        .map_err(|e| ApiError::bad_request("invalid_form", format!("invalid form body: {e}")))?;
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
                request.alternatives = Some(value.trim().parse().map_err(|_| {
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

/// Translate text (LibreTranslate API).
#[utoipa::path(
    post,
    path = "/translate",
    tag = "libretranslate",
    request_body(content = LibreRequest, description = "JSON, or application/x-www-form-urlencoded with the same fields (repeat `q` for a list)"),
    responses(
        (status = 200, body = LibreResponse),
        (status = 400, description = "Missing or bad field, empty or over-long text, unsupported language pair", body = ErrorBody),
        (status = 401, description = "API key required", body = ErrorBody),
        (status = 403, description = "Invalid API key", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody),
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
    let kind = media_type(&req);
    let form = match kind.as_deref() {
        None | Some("application/json") => false,
        Some("application/x-www-form-urlencoded") => true,
        Some(other) => {
            return Err(ApiError::new(
                actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "Content-Type {other} is not supported; send application/json or application/x-www-form-urlencoded"
                ),
            ))
        }
    };
    let body = read_body(payload, state.settings.limits.max_body_bytes).await?;
    let text = body_text(&body)?;
    let request: LibreRequest = if form {
        parse_form(text)?
    } else {
        parse_json(text)?
    };
    check_api_key(&state, &req, request.api_key.as_deref())?;
    let Some(q) = request.q else {
        return Err(ApiError::bad_request(
            "no_text",
            "Invalid request: missing q parameter",
        ));
    };
    let Some(source) = request.source.filter(|s| !s.trim().is_empty()) else {
        return Err(ApiError::bad_request(
            "invalid_field",
            "Invalid request: missing source parameter",
        ));
    };
    let Some(target) = request.target.filter(|s| !s.trim().is_empty()) else {
        return Err(ApiError::bad_request(
            "invalid_field",
            "Invalid request: missing target parameter",
        ));
    };
    let html = match request.format.as_deref().map(str::trim) {
        None | Some("") | Some("text") => false,
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
    let auto = source.trim().eq_ignore_ascii_case("auto");
    let model = state
        .registry
        .resolve(None, Some(&source), Some(&target))
        .map_err(|e| {
            if auto && e.code == "ambiguous_model" {
                ApiError::bad_request(
                    "ambiguous_source",
                    format!(
                        "source \"auto\": several served models translate into {target:?} and this server does not detect languages; give the source language"
                    ),
                )
            } else {
                e
            }
        })?;
    // For HTML, each text node is translated on its own; plain texts are one sentence each.
    let segments: Vec<Vec<markup::Segment>> = if html {
        inputs.iter().map(|s| markup::split(s)).collect()
    } else {
        Vec::new()
    };
    let job_texts: Vec<String> = if html {
        segments.iter().flat_map(|s| markup::texts(s)).collect()
    } else {
        inputs.clone()
    };
    let translations = if job_texts.is_empty() {
        Vec::new()
    } else {
        run_job(&state, model, job_texts, options, arrived).await?
    };
    // outputs[i] = (best, alternatives) for input i.
    let outputs: Vec<(String, Vec<String>)> = if html {
        let mut rest = translations.into_iter();
        segments
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
            .collect()
    } else {
        translations
            .into_iter()
            .map(|t| {
                let alts = t.alternatives.into_iter().map(|a| a.text).collect();
                (t.text, alts)
            })
            .collect()
    };
    let info = &state.registry.models[model];
    let detected = DetectedLanguage {
        confidence: 100.0,
        language: info.source.clone(),
    };
    let response = if single {
        let (text, alts) = outputs.into_iter().next().unwrap_or_default();
        LibreResponse {
            translated_text: OneOrMany::One(text),
            alternatives: (alternatives > 0).then_some(AlternativesOut::One(alts)),
            detected_language: auto.then_some(DetectedOut::One(detected)),
        }
    } else {
        let count = outputs.len();
        let (texts, alts): (Vec<String>, Vec<Vec<String>>) = outputs.into_iter().unzip();
        LibreResponse {
            translated_text: OneOrMany::Many(texts),
            alternatives: (alternatives > 0).then_some(AlternativesOut::Many(alts)),
            detected_language: auto.then(|| DetectedOut::Many(vec![detected; count])),
        }
    };
    Ok(HttpResponse::Ok().json(response))
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
