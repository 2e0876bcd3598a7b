//! Form bodies of the LibreTranslate routes: `application/x-www-form-urlencoded`
//! (LibreTranslate's API clients) and `multipart/form-data` (its web page
//! posts `FormData`, and files come that way).

use actix_web::error::PayloadError;
use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use actix_web::HttpRequest;
use futures_util::StreamExt;

use super::body_text;
use crate::errors::ApiError;

/// How a LibreTranslate route's body is encoded, from its `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    /// `application/json`, or no `Content-Type` at all.
    Json,
    UrlEncoded,
    Multipart,
}

impl BodyKind {
    /// The kind named by `media_type` (see [`super::media_type`]); 415 for anything else.
    pub fn of(media_type: Option<&str>) -> Result<BodyKind, ApiError> {
        match media_type {
            None | Some("application/json") => Ok(BodyKind::Json),
            Some("application/x-www-form-urlencoded") => Ok(BodyKind::UrlEncoded),
            Some("multipart/form-data") => Ok(BodyKind::Multipart),
            Some(other) => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "Content-Type {other} is not supported; send application/json, application/x-www-form-urlencoded or multipart/form-data"
                ),
            )),
        }
    }
}

/// One part of a multipart body.
#[derive(Debug)]
pub struct Part {
    /// The form field's name.
    pub name: String,
    /// The file name, for a file part.
    pub filename: Option<String>,
    pub data: Bytes,
}

fn invalid_form(e: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request("invalid_form", format!("invalid multipart body: {e}"))
}

/// What a form field may be named: ASCII letters, digits and `_ . - [ ]` (the schema's
/// `propertyNames`). Unknown fields are ignored, as LibreTranslate ignores them, but a name
/// outside this set is refused, in url-encoded and multipart bodies alike.
pub const FIELD_NAME_PATTERN: &str = "^[A-Za-z0-9_.\\[\\]-]+$";

fn check_field_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-[]".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_form",
            format!("invalid form field name {name:?}: use ASCII letters, digits and _ . - [ ]"),
        ))
    }
}

/// Splits a multipart body (already read, so already within `--max-body-bytes`) into its parts.
pub async fn multipart_parts(req: &HttpRequest, body: Bytes) -> Result<Vec<Part>, ApiError> {
    let limit = body.len();
    let stream = futures_util::stream::once(async move { Ok::<Bytes, PayloadError>(body) });
    let mut multipart = actix_multipart::Multipart::new(req.headers(), stream);
    let mut parts = Vec::new();
    while let Some(field) = multipart.next().await {
        let mut field = field.map_err(invalid_form)?;
        let name = field.name().unwrap_or_default().to_string();
        check_field_name(&name)?;
        let filename = field
            .content_disposition()
            .and_then(|cd| cd.get_filename())
            .map(str::to_string);
        let data = match field.bytes(limit).await {
            Ok(Ok(data)) => data,
            Ok(Err(e)) => return Err(invalid_form(e)),
            // A part cannot be longer than the body it came in.
            Err(_) => return Err(invalid_form("a part is longer than the body")),
        };
        parts.push(Part {
            name,
            filename,
            data,
        });
    }
    Ok(parts)
}

/// The text fields of a form, in order: url-encoded pairs, or the multipart
/// parts that are not files (their values must be UTF-8); none for JSON,
/// which has no fields of this kind.
pub async fn text_fields(
    req: &HttpRequest,
    kind: BodyKind,
    body: Bytes,
) -> Result<Vec<(String, String)>, ApiError> {
    match kind {
        BodyKind::UrlEncoded => {
            let pairs: Vec<(String, String)> = serde_urlencoded::from_str(body_text(&body)?)
                .map_err(|e| {
                    ApiError::bad_request("invalid_form", format!("invalid form body: {e}"))
                })?;
            for (name, _) in &pairs {
                check_field_name(name)?;
            }
            Ok(pairs)
        }
        BodyKind::Multipart => multipart_parts(req, body)
            .await?
            .into_iter()
            .filter(|p| p.filename.is_none())
            .map(|p| Ok((p.name, body_text(&p.data)?.to_string())))
            .collect(),
        BodyKind::Json => Ok(Vec::new()),
    }
}
