//! Builds the actix application and runs it until SIGTERM/SIGINT, then
//! drains: stop accepting, let in-flight requests finish (up to
//! `--shutdown-timeout-s`), let the batcher answer what it holds, exit.

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use actix_cors::Cors;
use actix_web::dev::Service;
use actix_web::http::header;
use actix_web::middleware::Condition;
use actix_web::{web, App, HttpServer, ResponseError};

use crate::api::{self, AppState};
use crate::batcher::{Batcher, StartError};
use crate::config::Settings;
use crate::detect::LanguageDetector;
use crate::errors::{extractor_error, ApiError};
use crate::files::FileStore;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("invalid CORS origin {0:?}: expected `*` or a URL such as https://example.org")]
    Cors(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

async fn not_found() -> actix_web::HttpResponse {
    ApiError::not_found("no such route; see GET /openapi.json").error_response()
}

/// 405 naming the methods the route takes in `Allow` (RFC 9110, section 15.5.6).
fn method_not_allowed(allow: &'static str) -> actix_web::HttpResponse {
    let mut response = ApiError::new(
        actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("method not allowed on this route (it takes {allow}); see GET /openapi.json"),
    )
    .error_response();
    response
        .headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static(allow));
    response
}

fn check_origins(origins: &[String]) -> Result<(), ServeError> {
    for o in origins {
        let ok = o == "*"
            || (o
                .parse::<actix_web::http::Uri>()
                .is_ok_and(|u| u.scheme().is_some() && u.host().is_some()));
        if !ok {
            return Err(ServeError::Cors(o.clone()));
        }
    }
    Ok(())
}

fn cors(origins: &[String]) -> Cors {
    let base = if origins.iter().any(|o| o == "*") {
        Cors::default().allow_any_origin()
    } else {
        origins
            .iter()
            .fold(Cors::default(), |c, o| c.allowed_origin(o))
    };
    base.allowed_methods(["GET", "POST"])
        .allowed_headers([header::CONTENT_TYPE, header::AUTHORIZATION, header::ACCEPT])
        .expose_headers([header::RETRY_AFTER])
        .max_age(3600)
}

/// A resource that answers other methods with 405 and `Allow: {allow}`.
fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move || async move { method_not_allowed(allow) }))
}

/// A `GET` resource, which answers `HEAD` too (the same head, no body).
fn get_resource<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args> + Clone,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    resource(path, "GET, HEAD")
        .route(web::get().to(handler.clone()))
        .route(web::head().to(handler))
}

/// A `POST` resource.
fn post_resource<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    resource(path, "POST").route(web::post().to(handler))
}

/// Registers every route on `cfg`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(post_resource("/v1/translate", api::v1::translate))
        .service(get_resource("/v1/models", api::v1::models))
        .service(post_resource("/translate", api::libre::translate))
        .service(post_resource("/detect", api::libre::detect))
        .service(get_resource("/languages", api::libre::languages))
        .service(get_resource(
            "/frontend/settings",
            api::libre::frontend_settings,
        ))
        .service(post_resource("/translate_file", api::files::translate_file))
        .service(get_resource(
            "/download_file/{name}",
            api::files::download_file,
        ))
        .service(get_resource("/health", api::ops::health))
        .service(get_resource("/ready", api::ops::ready))
        .service(get_resource("/metrics", api::ops::metrics))
        .service(get_resource("/openapi.json", api::ops::openapi))
        .service(get_resource("/", api::ops::index));
}

/// Loads the models, serves until a signal, drains. Blocks the calling thread.
pub fn run(settings: Settings) -> Result<(), ServeError> {
    check_origins(&settings.cors_origins)?;
    let metrics = Arc::new(Metrics::new()?);
    let loading = Instant::now();
    let (batcher, registry, thread) = Batcher::start(
        &settings.batch,
        settings.models.clone(),
        settings.device,
        metrics.clone(),
    )?;
    tracing::info!(
        models = ?registry.names(),
        pairs = ?registry.pairs(),
        seconds = loading.elapsed().as_secs_f64(),
        torch_threads = settings.batch.torch_threads,
        compute_dtype = settings.batch.compute_dtype.name(),
        "models loaded"
    );
    for m in registry.models.iter().filter(|m| m.description.is_none()) {
        tracing::warn!(
            model = %m.name,
            "the bundle does not say what it was trained on; users see no domain (set it with `nmt-bundle describe DIR --text ...`)"
        );
    }
    let result = actix_web::rt::System::new().block_on(serve(settings, registry, batcher, metrics));
    // Every Batcher handle lived in the app state, dropped with the server:
    // the thread answers what is left in its queue and exits.
    thread.join();
    tracing::info!("batcher drained; bye");
    result
}

async fn serve(
    settings: Settings,
    registry: crate::registry::Registry,
    batcher: Batcher,
    metrics: Arc<Metrics>,
) -> Result<(), ServeError> {
    let addr = settings.addr.clone();
    let workers = settings.workers;
    let shutdown = settings.shutdown_timeout_s;
    let origins = settings.cors_origins.clone();
    let detector = LanguageDetector::new(registry.codes());
    if !detector.undetectable().is_empty() {
        tracing::warn!(
            languages = ?detector.undetectable(),
            "no language identifier for these languages: /detect and source \"auto\" never name them"
        );
    }
    let files = FileStore::new(
        std::time::Duration::from_secs(settings.files.ttl_s),
        settings.files.max_stored,
    );
    let limiter = RateLimiter::new(settings.rate);
    let openapi = serde_json::to_vec(&crate::openapi::document(&settings, &registry))
        .map_err(|e| ServeError::Io(std::io::Error::other(e)))?
        .into();
    let state = web::Data::new(AppState {
        settings,
        registry,
        batcher,
        metrics: metrics.clone(),
        detector,
        files,
        limiter,
        openapi,
    });
    let server = HttpServer::new(move || {
        let metrics = metrics.clone();
        App::new()
            .app_data(state.clone())
            .app_data(web::JsonConfig::default().error_handler(on_extractor_error))
            .app_data(web::FormConfig::default().error_handler(on_extractor_error))
            .app_data(web::QueryConfig::default().error_handler(on_extractor_error))
            .app_data(web::PathConfig::default().error_handler(on_extractor_error))
            .wrap(Condition::new(!origins.is_empty(), cors(&origins)))
            .wrap_fn(move |req, srv| {
                let started = Instant::now();
                let route = req.match_pattern().unwrap_or_else(|| "other".into());
                let method = req.method().to_string();
                let metrics = metrics.clone();
                let fut = srv.call(req);
                async move {
                    let res = fut.await?;
                    let status = res.status().as_u16().to_string();
                    metrics
                        .requests
                        .with_label_values(&[route.as_str(), method.as_str(), status.as_str()])
                        .inc();
                    metrics
                        .latency
                        .with_label_values(&[route.as_str()])
                        .observe(started.elapsed().as_secs_f64());
                    Ok(res)
                }
            })
            .configure(routes)
            .default_service(web::to(not_found))
    })
    .workers(workers)
    .shutdown_timeout(shutdown)
    // Signals are ours: actix treats SIGINT as a forced stop, we drain on both.
    .disable_signals()
    .bind(&addr)
    .map_err(|source| ServeError::Bind {
        addr: addr.clone(),
        source,
    })?;
    let bound: Vec<String> = server.addrs().iter().map(|a| a.to_string()).collect();
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        wait_for_signal().await;
        tracing::info!("signal received: draining in-flight requests");
        handle.stop(true).await;
    });
    // Tests and scripts read this line to learn the port when --addr ends in :0.
    let mut out = std::io::stdout();
    let _ = writeln!(
        out,
        "nmt-serve listening on http://{}",
        bound.join(" http://")
    );
    let _ = out.flush();
    tracing::info!(addr = ?bound, "listening");
    server.await?;
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            tracing::error!("cannot install signal handlers; stop with SIGKILL");
            std::future::pending::<()>().await
        }
    }
}

/// The error handler of the JSON, form, query and path extractors: [`extractor_error`] with
/// the error's own status.
fn on_extractor_error<E: ResponseError>(err: E, _req: &actix_web::HttpRequest) -> actix_web::Error {
    let status = err.status_code();
    extractor_error(err, status)
}
