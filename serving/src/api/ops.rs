//! Operations routes and the web page.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use super::dto::StatusResponse;
use super::AppState;

/// The single-file web page (text box, translate button, alternatives, attention heatmap).
pub const INDEX_HTML: &str = include_str!("../../static/index.html");

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, body = StatusResponse)))]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(StatusResponse {
        status: "ok".into(),
        queue_depth: None,
        queue_capacity: None,
        models: None,
    })
}

/// Readiness: models loaded, batcher running and the queue not full.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "operations",
    responses(
        (status = 200, description = "Ready", body = StatusResponse),
        (status = 503, description = "Queue full or batcher stopped", body = StatusResponse)
    )
)]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let depth = state.batcher.depth();
    let capacity = state.batcher.capacity();
    let (status, word) = if !state.batcher.alive() {
        (StatusCode::SERVICE_UNAVAILABLE, "stopped")
    } else if depth >= capacity {
        (StatusCode::SERVICE_UNAVAILABLE, "saturated")
    } else {
        (StatusCode::OK, "ready")
    };
    HttpResponse::build(status).json(StatusResponse {
        status: word.into(),
        queue_depth: Some(depth),
        queue_capacity: Some(capacity),
        models: Some(state.registry.models.len()),
    })
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain; version=0.0.4", body = String))
)]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}

/// This schema, with this server's limits, models and languages.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1 document (JSON)", content_type = "application/json", body = Object))
)]
pub async fn openapi(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(state.openapi.clone())
}

/// The web page.
#[utoipa::path(
    get,
    path = "/",
    tag = "operations",
    responses((status = 200, description = "HTML page", content_type = "text/html", body = String))
)]
pub async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(INDEX_HTML)
}
