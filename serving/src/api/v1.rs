//! The JSON API: `POST /v1/translate`, `GET /v1/models`.

use std::time::Instant;

use actix_web::{web, HttpRequest, HttpResponse};

use super::dto::{
    AlternativeOut, ModelsResponse, TranslateRequest, TranslateResponse, TranslationOut,
};
use super::{
    body_text, char_count, check_api_key, check_options, check_rate, check_texts, media_type,
    parse_json, read_body, room_in_queue, run_job_inspected, AppState,
};
use crate::batcher::{DecodeOptions, InspectRequest};
use crate::errors::{ApiError, ErrorBody};

/// Translate one text or a list of texts.
#[utoipa::path(
    post,
    path = "/v1/translate",
    tag = "translate",
    request_body = TranslateRequest,
    responses(
        (status = 200, description = "Translations, in input order", body = TranslateResponse),
        (status = 400, description = "Malformed body, bad field, empty or over-long text, unknown model or pair, option over a limit, a layer or unit the model lacks (`invalid_neurons`)", body = ErrorBody),
        (status = 401, description = "API key required", body = ErrorBody),
        (status = 403, description = "Wrong API key", body = ErrorBody),
        (status = 413, description = "Body over --max-body-bytes", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 429, description = "Over a per-client rate limit (`--req-limit`, `--char-budget`), with Retry-After", body = ErrorBody),
        (status = 503, description = "Queue full (with Retry-After) or shutting down", body = ErrorBody),
        (status = 504, description = "Request deadline passed", body = ErrorBody),
    )
)]
pub async fn translate(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let arrived = Instant::now();
    room_in_queue(&state).await?;
    let client = check_api_key(&state, &req, None)?;
    match media_type(&req).as_deref() {
        None | Some("application/json") => {}
        Some(other) => {
            return Err(ApiError::new(
                actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("Content-Type {other} is not supported; send application/json"),
            ))
        }
    }
    let body = read_body(payload, state.settings.limits.max_body_bytes).await?;
    let request: TranslateRequest = parse_json(body_text(&body)?)?;
    let texts = match (request.text, request.texts) {
        (Some(one), None) => vec![one],
        (None, Some(many)) => many,
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "invalid_field",
                "give either `text` or `texts`, not both",
            ))
        }
        (None, None) => {
            return Err(ApiError::bad_request(
                "no_text",
                "missing `text` (a string) or `texts` (a list of strings)",
            ))
        }
    };
    check_texts(&state.settings, &texts)?;
    let beam_size = request.beam_size.unwrap_or(state.settings.default_beam);
    let options = DecodeOptions {
        beam_size,
        n_best: request.n_best.unwrap_or(1),
        max_length: request.max_length,
        return_attention: request.return_attention,
    };
    check_options(&state.settings, &options)?;
    let model = state.registry.resolve(
        request.model.as_deref(),
        request.source.as_deref(),
        request.target.as_deref(),
    )?;
    check_rate(&state, &client, char_count(&texts)).await?;
    let inspect =
        (request.return_gates || request.return_neurons.is_some()).then_some(InspectRequest {
            gates: request.return_gates,
            neurons: request.return_neurons,
        });
    // Looking inside needs the exact pieces of each translation, which the search keeps
    // with its attention; whether attention is sent back stays the client's choice.
    let decode = DecodeOptions {
        return_attention: options.return_attention || inspect.is_some(),
        ..options
    };
    let output = run_job_inspected(&state, model, texts, decode, inspect, arrived).await?;
    let scores = request.return_scores;
    let mut inspections = output.inspections.into_iter();
    let translations = output
        .translations
        .into_iter()
        .map(|t| {
            let seen = inspections.next().unwrap_or_default();
            TranslationOut {
                text: t.text,
                score: scores.then_some(t.ranking_score),
                log_prob: scores.then_some(t.score),
                alternatives: (options.n_best > 1).then(|| {
                    t.alternatives
                        .into_iter()
                        .map(|a| AlternativeOut {
                            text: a.text,
                            score: scores.then_some(a.ranking_score),
                            log_prob: scores.then_some(a.score),
                        })
                        .collect()
                }),
                truncated: t.truncated,
                source_tokens: options.return_attention.then_some(t.source_tokens),
                target_tokens: options.return_attention.then_some(t.target_tokens),
                attention: options.return_attention.then_some(t.attention),
                gates: seen.gates,
                neurons: seen.neurons,
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(TranslateResponse {
        translations,
        model: state.registry.models[model].name.clone(),
        timing_ms: arrived.elapsed().as_secs_f64() * 1000.0,
    }))
}

/// The served models.
#[utoipa::path(
    get,
    path = "/v1/models",
    tag = "translate",
    responses((status = 200, body = ModelsResponse))
)]
pub async fn models(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(ModelsResponse {
        models: state.registry.models.clone(),
    })
}
