//! LibreTranslate's file routes: `POST /translate_file` (multipart: `file`,
//! `source`, `target`, `api_key`) answers `{"translatedFileUrl": ...}`, and
//! `GET /download_file/<name>` serves the translated file from the bounded
//! in-memory store ([`crate::files`]).

use std::time::Instant;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};

use super::dto::{TranslateFileForm, TranslateFileResponse, Upload};
use super::form::{self, BodyKind};
use super::libre::{is_auto, required, route_auto, translate_inputs};
use super::{
    char_count, check_api_key, check_each_text, check_rate, media_type, read_body, room_in_queue,
    AppState,
};
use crate::batcher::DecodeOptions;
use crate::errors::{ApiError, ErrorBody};
use crate::files::{safe_name, Document, FileFormat, StoredFile, EXTENSIONS};

impl TranslateFileForm {
    /// Gathers the form's fields; the first `file` part with a file name is the file.
    fn from_parts(parts: Vec<form::Part>) -> Result<Self, ApiError> {
        let mut out = TranslateFileForm::default();
        for part in parts {
            let text = || super::body_text(&part.data).map(str::to_string);
            match (part.name.as_str(), &part.filename) {
                ("file", Some(filename)) if out.file.is_none() => {
                    out.file = Some(Upload {
                        filename: filename.clone(),
                        data: part.data.clone(),
                    });
                }
                ("source", None) => out.source = Some(text()?),
                ("target", None) => out.target = Some(text()?),
                ("api_key", None) => out.api_key = Some(text()?),
                // LibreTranslate ignores fields it does not use; so do we.
                _ => {}
            }
        }
        Ok(out)
    }
}

fn supported() -> String {
    EXTENSIONS
        .iter()
        .map(|(ext, _)| *ext)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Translate a file (LibreTranslate API).
///
/// Plain text (`.txt`: each non-blank line is a text, the layout kept) or
/// HTML (`.html`, `.htm`: each text node is a text, the markup kept), UTF-8.
/// The whole request is held to `--max-body-bytes`, the file to
/// `--max-file-texts` texts of at most `--max-chars` characters each, and the
/// translation to the request deadline.
#[utoipa::path(
    post,
    path = "/translate_file",
    tag = "libretranslate",
    request_body(content = TranslateFileForm, content_type = "multipart/form-data"),
    responses(
        (status = 200, body = TranslateFileResponse),
        (status = 400, description = "No file, unsupported file format, empty file, file not UTF-8, too many texts or an over-long one, missing or bad field, unsupported language pair", body = ErrorBody),
        (status = 401, description = "API key required", body = ErrorBody),
        (status = 403, description = "Invalid API key, or file translation turned off", body = ErrorBody),
        (status = 413, description = "Request over --max-body-bytes", body = ErrorBody),
        (status = 415, description = "Not multipart/form-data", body = ErrorBody),
        (status = 429, description = "Over a per-client rate limit (`--req-limit`, `--char-budget`), with Retry-After", body = ErrorBody),
        (status = 503, description = "Queue full (with Retry-After)", body = ErrorBody),
        (status = 504, body = ErrorBody),
    )
)]
pub async fn translate_file(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let arrived = Instant::now();
    if !state.settings.files.enabled {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "files_translation_disabled",
            "Files translation are disabled on this server.",
        ));
    }
    if BodyKind::of(media_type(&req).as_deref())? != BodyKind::Multipart {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the file as multipart/form-data (fields file, source, target, api_key)",
        ));
    }
    room_in_queue(&state).await?;
    let body = read_body(payload, state.settings.limits.max_body_bytes).await?;
    let form = TranslateFileForm::from_parts(form::multipart_parts(&req, body).await?)?;
    let client = check_api_key(&state, &req, form.api_key.as_deref())?;
    let Some(file) = form.file else {
        return Err(ApiError::bad_request(
            "no_file",
            "Invalid request: missing file parameter (a multipart part named file, with a file name)",
        ));
    };
    let source = required(form.source, "source")?;
    let target = required(form.target, "target")?;
    let Some(format) = FileFormat::of(&file.filename) else {
        return Err(ApiError::bad_request(
            "unsupported_file_format",
            format!(
                "Invalid request: file format not supported ({:?}); supported: {}",
                file.filename,
                supported()
            ),
        ));
    };
    let content = std::str::from_utf8(&file.data).map_err(|e| {
        ApiError::bad_request(
            "invalid_utf8",
            format!(
                "the file is not valid UTF-8 (first bad byte at offset {})",
                e.valid_up_to()
            ),
        )
    })?;
    let document = Document::split(content, format);
    let texts = document.texts();
    if texts.is_empty() {
        return Err(ApiError::bad_request(
            "empty_file",
            "Invalid request: empty file (no text to translate)",
        ));
    }
    let max = state.settings.limits.max_file_texts;
    if texts.len() > max {
        return Err(ApiError::bad_request(
            "too_many_texts",
            format!(
                "the file has {} texts (non-blank lines or text nodes); the limit is {max}",
                texts.len()
            ),
        ));
    }
    check_each_text(&state.settings, &texts, "file text")?;
    check_rate(&state, &client, char_count(&texts)).await?;
    // A file is one document: `auto` detects its language once, from all its text.
    let model = if is_auto(&source) {
        let whole = [texts.join("\n")];
        let routed = route_auto(&state, &whole, &target)?;
        match routed.first() {
            Some(r) => r.model,
            None => return Err(ApiError::internal("no model chosen for the file")),
        }
    } else {
        Some(state.registry.resolve(None, Some(&source), Some(&target))?)
    };
    let options = DecodeOptions {
        beam_size: state.settings.default_beam,
        n_best: 1,
        max_length: None,
        return_attention: false,
    };
    // The document has already taken the markup out: its texts are plain. A file already
    // in the target language (`auto` only) comes back as it is.
    let best: Vec<String> = match model {
        Some(model) => translate_inputs(&state, model, &texts, false, 0, options, arrived)
            .await?
            .into_iter()
            .map(|(t, _)| t)
            .collect(),
        None => texts.clone(),
    };
    let name = state.files.put(StoredFile {
        download_name: safe_name(&file.filename),
        content_type: format.content_type(),
        bytes: document.join(&best).into_bytes().into(),
    });
    // Absolute, as LibreTranslate answers; behind a proxy the Forwarded /
    // X-Forwarded-Host / X-Forwarded-Proto headers name the public address.
    let info = req.connection_info();
    Ok(HttpResponse::Ok().json(TranslateFileResponse {
        translated_file_url: format!("{}://{}/download_file/{name}", info.scheme(), info.host()),
    }))
}

/// Download a translated file (LibreTranslate API).
#[utoipa::path(
    get,
    path = "/download_file/{name}",
    tag = "libretranslate",
    params(("name" = String, Path, description = "The last part of `translatedFileUrl`")),
    responses(
        (status = 200, description = "The translated file, as an attachment", content_type = "text/plain", body = String),
        (status = 404, description = "No such file: never made, expired (--file-ttl-s), dropped for newer ones (--max-stored-files), or file translation turned off", body = ErrorBody),
    )
)]
pub async fn download_file(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let files = &state.settings.files;
    let found = files
        .enabled
        .then(|| state.files.get(&name))
        .flatten()
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no translated file named {:?}: files are kept {} s, at most {} of them",
                name.as_str(),
                files.ttl_s,
                files.max_stored
            ))
        })?;
    Ok(HttpResponse::Ok()
        .content_type(found.content_type)
        .insert_header((
            header::CONTENT_DISPOSITION,
            header::ContentDisposition::attachment(found.download_name),
        ))
        .body(found.bytes))
}
