//! HTTP routes: the JSON API (`/v1/...`), the LibreTranslate-compatible API
//! (`/translate`, `/detect`, `/languages`, `/frontend/settings`,
//! `/translate_file`, `/download_file/<name>`), operations (`/health`,
//! `/ready`, `/metrics`, `/openapi.json`) and the web page (`/`).

pub mod dto;
pub mod files;
pub mod form;
pub mod libre;
pub mod ops;
pub mod v1;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::header;
use actix_web::web::{self, Bytes};
use actix_web::HttpRequest;
use model::translate::Translation;
use subtle::ConstantTimeEq;
use tokio::sync::oneshot;

use crate::batcher::{Batcher, DecodeOptions, InspectRequest, Job, JobError, JobOutput};
use crate::config::Settings;
use crate::detect::LanguageDetector;
use crate::errors::ApiError;
use crate::files::FileStore;
use crate::metrics::Metrics;
use crate::ratelimit::{Limited, RateLimiter};
use crate::registry::Registry;

/// What every handler shares.
pub struct AppState {
    pub settings: Settings,
    pub registry: Registry,
    pub batcher: Batcher,
    pub metrics: Arc<Metrics>,
    /// Over the served models' languages.
    pub detector: LanguageDetector,
    /// Translated files waiting for download.
    pub files: FileStore,
    /// Per-client request and character budgets.
    pub limiter: RateLimiter,
    /// `GET /openapi.json`, made once at start-up ([`crate::openapi::document`]).
    pub openapi: Bytes,
}

/// Holds a refusal that says "come back later" (503, 429) for `--reject-delay-ms` before
/// it goes out. A client that retries as soon as it is refused then sends a request per
/// delay instead of as many as the CPU can refuse, and the model keeps the CPU.
pub async fn paced(state: &AppState, err: ApiError) -> ApiError {
    let later = err.status == actix_web::http::StatusCode::SERVICE_UNAVAILABLE
        || err.status == actix_web::http::StatusCode::TOO_MANY_REQUESTS;
    if later && state.settings.reject_delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(state.settings.reject_delay_ms)).await;
    }
    err
}

/// 503 `queue_full` (paced) when the batcher's queue has no room, before anything of the
/// request is read: under overload a refusal costs the least it can.
pub async fn room_in_queue(state: &AppState) -> Result<(), ApiError> {
    if !state.batcher.is_full() {
        return Ok(());
    }
    state
        .metrics
        .rejected
        .with_label_values(&["queue_full"])
        .inc();
    Err(paced(state, ApiError::queue_full(state.batcher.capacity(), 1)).await)
}

/// Counts a request of `chars` characters against `client`'s limits (`--req-limit`,
/// `--char-budget`); over one: 429 with `Retry-After` (paced), counted in
/// `nmt_rejected_total{reason="rate_limit"|"char_budget"}`.
pub async fn check_rate(state: &AppState, client: &str, chars: usize) -> Result<(), ApiError> {
    let Err(limited) = state.limiter.check(client, chars as u64) else {
        return Ok(());
    };
    let retry = limited.retry_after_s();
    let (reason, code, message) = match limited {
        Limited::Requests { limit, .. } => (
            "rate_limit",
            "too_many_requests",
            format!("this client made {limit} requests in the last minute, the limit (--req-limit); retry in {retry} s"),
        ),
        Limited::Characters { limit, .. } => (
            "char_budget",
            "too_many_characters",
            format!("this client sent {limit} characters in the last minute, its budget (--char-budget); retry in {retry} s"),
        ),
    };
    state.metrics.rejected.with_label_values(&[reason]).inc();
    Err(paced(state, ApiError::too_many(code, message, retry)).await)
}

/// Characters in `texts`, as `--char-budget` counts them.
pub fn char_count(texts: &[String]) -> usize {
    texts.iter().map(|t| t.chars().count()).sum()
}

/// Reads the whole body, refusing more than `--max-body-bytes` with 413.
pub async fn read_body(payload: web::Payload, limit: usize) -> Result<Bytes, ApiError> {
    match payload.to_bytes_limited(limit).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => Err(ApiError::bad_request(
            "bad_body",
            format!("could not read the request body: {e}"),
        )),
        Err(_) => Err(ApiError::new(
            actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is larger than {limit} bytes"),
        )),
    }
}

/// The body as text, or 400 `invalid_utf8` naming the first bad byte.
pub fn body_text(body: &[u8]) -> Result<&str, ApiError> {
    std::str::from_utf8(body).map_err(|e| {
        ApiError::bad_request(
            "invalid_utf8",
            format!(
                "the request body is not valid UTF-8 (first bad byte at offset {})",
                e.valid_up_to()
            ),
        )
    })
}

/// Parses JSON; syntax errors are `invalid_json`, wrong fields or types `invalid_field`.
/// A number with a zero fraction (`2.0`, `1e1`) is an integer, as JSON Schema counts it.
pub fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ApiError> {
    let mut value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("invalid JSON body: {e}")))?;
    integral_floats_to_integers(&mut value);
    serde_json::from_value(value)
        .map_err(|e| ApiError::bad_request("invalid_field", format!("invalid JSON body: {e}")))
}

/// Rewrites every float with a zero fraction that an integer type holds exactly as that
/// integer, so that integer fields take `2.0` like `2`.
fn integral_floats_to_integers(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0) {
                // Within ±2^53 every integer is exact in an f64 and in an i64.
                if f.abs() <= 9_007_199_254_740_992.0 {
                    *value = Value::from(f as i64);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_to_integers),
        Value::Object(map) => map.values_mut().for_each(integral_floats_to_integers),
        _ => {}
    }
}

/// The media type of the request, lower-cased, without parameters; `None` when absent.
pub fn media_type(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
}

/// Checks the API key (when the server has any): `Authorization: Bearer KEY`
/// or the body's `api_key`. Missing: 401; wrong: 403. Returns who the client is for the
/// rate limits: its key when keys are checked, its IP address otherwise (an unchecked key
/// could be changed at will).
pub fn check_api_key(
    state: &AppState,
    req: &HttpRequest,
    body_key: Option<&str>,
) -> Result<String, ApiError> {
    let keys = &state.settings.api_keys;
    if keys.is_empty() {
        return Ok(req.peer_addr().map_or_else(
            || "address:unknown".into(),
            |a| format!("address:{}", a.ip()),
        ));
    }
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let Some(given) = bearer.or(body_key).filter(|k| !k.is_empty()) else {
        return Err(ApiError::new(
            actix_web::http::StatusCode::UNAUTHORIZED,
            "missing_api_key",
            "an API key is required: send `Authorization: Bearer KEY` (or `api_key` on the LibreTranslate routes)",
        ));
    };
    // Constant-time comparison, so response timing does not reveal key prefixes.
    let ok = keys.iter().fold(false, |found, k| {
        found | bool::from(k.as_bytes().ct_eq(given.as_bytes()))
    });
    if ok {
        Ok(format!("key:{given}"))
    } else {
        Err(ApiError::new(
            actix_web::http::StatusCode::FORBIDDEN,
            "invalid_api_key",
            "Invalid API key",
        ))
    }
}

/// Checks the texts against the limits: at least one, at most `--max-texts`,
/// none empty, none over `--max-chars` characters.
pub fn check_texts(settings: &Settings, texts: &[String]) -> Result<(), ApiError> {
    let limits = &settings.limits;
    if texts.is_empty() {
        return Err(ApiError::bad_request("no_text", "no text to translate"));
    }
    if texts.len() > limits.max_texts {
        return Err(ApiError::bad_request(
            "too_many_texts",
            format!(
                "{} texts in one request; the limit is {}",
                texts.len(),
                limits.max_texts
            ),
        ));
    }
    check_each_text(settings, texts, "text")
}

/// Checks that no text is empty or over `--max-chars` characters; errors name
/// a text as `{label} {index}`.
pub fn check_each_text(settings: &Settings, texts: &[String], label: &str) -> Result<(), ApiError> {
    let max = settings.limits.max_chars;
    for (i, text) in texts.iter().enumerate() {
        if text.trim().is_empty() {
            return Err(ApiError::bad_request(
                "empty_text",
                format!("{label} {i} is empty"),
            ));
        }
        let chars = text.chars().count();
        if chars > max {
            return Err(ApiError::bad_request(
                "text_too_long",
                format!("{label} {i} has {chars} characters; the limit is {max}"),
            ));
        }
    }
    Ok(())
}

/// Checks decoding options against the limits.
pub fn check_options(settings: &Settings, options: &DecodeOptions) -> Result<(), ApiError> {
    let limits = &settings.limits;
    check_range(
        "beam_too_large",
        "beam_size",
        options.beam_size,
        limits.max_beam,
    )?;
    check_range(
        "n_best_too_large",
        "n_best",
        options.n_best,
        limits.max_n_best,
    )?;
    if options.n_best > options.beam_size {
        return Err(ApiError::bad_request(
            "n_best_above_beam",
            format!(
                "n_best {} is larger than beam_size {}",
                options.n_best, options.beam_size
            ),
        ));
    }
    if let Some(n) = options.max_length {
        check_range(
            "max_length_too_large",
            "max_length",
            n,
            limits.max_output_tokens,
        )?;
    }
    Ok(())
}

/// A 400 with `code` unless option `name`'s `value` is in `1..=max`.
fn check_range(code: &'static str, name: &str, value: usize, max: usize) -> Result<(), ApiError> {
    if value == 0 || value > max {
        return Err(ApiError::bad_request(
            code,
            format!("{name} {value} is outside 1..={max}"),
        ));
    }
    Ok(())
}

/// Queues the texts for the batcher and waits for their translations until the request deadline.
pub async fn run_job(
    state: &AppState,
    model: usize,
    texts: Vec<String>,
    options: DecodeOptions,
    arrived: Instant,
) -> Result<Vec<Translation>, ApiError> {
    Ok(
        run_job_inspected(state, model, texts, options, None, arrived)
            .await?
            .translations,
    )
}

/// [`run_job`], and a look inside the model at each translation when `inspect` asks.
pub async fn run_job_inspected(
    state: &AppState,
    model: usize,
    texts: Vec<String>,
    options: DecodeOptions,
    inspect: Option<InspectRequest>,
    arrived: Instant,
) -> Result<JobOutput, ApiError> {
    let timeout = Duration::from_millis(state.settings.request_timeout_ms);
    let deadline = arrived + timeout;
    let (reply, rx) = oneshot::channel();
    let submitted = state.batcher.submit(Job {
        model,
        texts,
        options,
        inspect,
        deadline,
        reply,
    });
    if let Err(e) = submitted {
        return Err(paced(state, e).await);
    }
    let left = deadline.saturating_duration_since(Instant::now());
    match tokio::time::timeout(left, rx).await {
        Ok(Ok(Ok(output))) => Ok(output),
        Ok(Ok(Err(JobError::Deadline))) | Err(_) => {
            state
                .metrics
                .rejected
                .with_label_values(&["deadline"])
                .inc();
            Err(ApiError::deadline(state.settings.request_timeout_ms))
        }
        Ok(Ok(Err(JobError::BadText { index, message }))) => Err(ApiError::bad_request(
            "untranslatable_text",
            format!("text {index}: {message}"),
        )),
        Ok(Ok(Err(JobError::BadInspection(message)))) => {
            Err(ApiError::bad_request("invalid_neurons", message))
        }
        Ok(Ok(Err(JobError::Internal(message)))) => Err(ApiError::internal(message)),
        Ok(Err(_)) => Err(ApiError::shutting_down()),
    }
}
