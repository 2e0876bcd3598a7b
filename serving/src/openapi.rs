//! The OpenAPI document of every route, generated from the handlers'
//! `#[utoipa::path]` attributes and the DTO types.

use utoipa::OpenApi;

use crate::api;

/// `GET /openapi.json`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "nmt-serve",
        description = "lstm-nmt translation service: JSON API, LibreTranslate-compatible API, operations routes. Errors are always `{\"error\", \"code\"}`."
    ),
    paths(
        api::v1::translate,
        api::v1::models,
        api::libre::translate,
        api::libre::detect,
        api::libre::languages,
        api::libre::frontend_settings,
        api::files::translate_file,
        api::files::download_file,
        api::ops::health,
        api::ops::ready,
        api::ops::metrics,
        api::ops::openapi,
        api::ops::index,
    ),
    tags(
        (name = "translate", description = "JSON translation API"),
        (name = "libretranslate", description = "LibreTranslate-compatible API"),
        (name = "operations", description = "Health, readiness, metrics, schema, web page")
    )
)]
pub struct ApiDoc;
