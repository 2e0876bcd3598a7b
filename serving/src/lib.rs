//! `nmt-serve`: an HTTP translation service over lstm-nmt bundles with
//! dynamic batching.
//!
//! Request flow: an actix worker reads and checks the request
//! ([`api`], limits in [`config::Limits`], errors in [`errors`]), picks a
//! model ([`registry`]), and submits a job to the [`batcher`] thread, which
//! owns the models and batches concurrent jobs into one `translate` call.

pub mod api;
pub mod batcher;
pub mod config;
pub mod detect;
pub mod errors;
pub mod files;
pub mod markup;
pub mod metrics;
pub mod openapi;
pub mod ratelimit;
pub mod registry;
pub mod server;
