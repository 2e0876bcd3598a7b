//! Prometheus metrics (`GET /metrics`).

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    /// `nmt_http_requests_total{route,method,status}`.
    pub requests: IntCounterVec,
    /// `nmt_http_request_duration_seconds{route}`.
    pub latency: HistogramVec,
    /// `nmt_batch_sentences`: sentences per model call.
    pub batch_sentences: Histogram,
    /// `nmt_batch_requests`: requests per model call.
    pub batch_requests: Histogram,
    /// `nmt_batch_seconds`: time of one model call.
    pub batch_seconds: Histogram,
    /// `nmt_queue_depth`: requests accepted and not yet answered by the batcher.
    pub queue_depth: IntGauge,
    /// `nmt_rejected_total{reason}`: `queue_full`, `deadline`, `rate_limit` (`--req-limit`)
    /// or `char_budget` (`--char-budget`).
    pub rejected: IntCounterVec,
    /// `nmt_source_tokens_total` translated.
    pub source_tokens: IntCounter,
    /// `nmt_target_tokens_total` produced (best hypotheses).
    pub target_tokens: IntCounter,
    /// `nmt_sentences_total` translated.
    pub sentences: IntCounter,
    /// `nmt_tokens_per_second`: target tokens per second of the last model call.
    pub tokens_per_second: prometheus::Gauge,
}

impl Metrics {
    /// Builds and registers every metric. Only fails on a programming error
    /// (duplicate names), which the unit test below catches.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "nmt_http_requests_total",
                "HTTP requests by route, method and status",
            ),
            &["route", "method", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new("nmt_http_request_duration_seconds", "HTTP request latency")
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    30.0,
                ]),
            &["route"],
        )?;
        let sizes = vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
        let batch_sentences = Histogram::with_opts(
            HistogramOpts::new("nmt_batch_sentences", "Sentences per batched model call")
                .buckets(sizes.clone()),
        )?;
        let batch_requests = Histogram::with_opts(
            HistogramOpts::new("nmt_batch_requests", "Requests per batched model call")
                .buckets(sizes),
        )?;
        let batch_seconds = Histogram::with_opts(
            HistogramOpts::new("nmt_batch_seconds", "Duration of one batched model call").buckets(
                vec![
                    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ],
            ),
        )?;
        let queue_depth = IntGauge::new(
            "nmt_queue_depth",
            "Translate requests accepted and not yet answered by the batcher",
        )?;
        let rejected = IntCounterVec::new(
            Opts::new(
                "nmt_rejected_total",
                "Requests refused (queue_full, deadline, rate_limit, char_budget)",
            ),
            &["reason"],
        )?;
        let source_tokens = IntCounter::new("nmt_source_tokens_total", "Source tokens translated")?;
        let target_tokens = IntCounter::new(
            "nmt_target_tokens_total",
            "Target tokens produced (best hypotheses)",
        )?;
        let sentences = IntCounter::new("nmt_sentences_total", "Sentences translated")?;
        let tokens_per_second = prometheus::Gauge::new(
            "nmt_tokens_per_second",
            "Target tokens per second of the last batched model call",
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(batch_sentences.clone()))?;
        registry.register(Box::new(batch_requests.clone()))?;
        registry.register(Box::new(batch_seconds.clone()))?;
        registry.register(Box::new(queue_depth.clone()))?;
        registry.register(Box::new(rejected.clone()))?;
        registry.register(Box::new(source_tokens.clone()))?;
        registry.register(Box::new(target_tokens.clone()))?;
        registry.register(Box::new(sentences.clone()))?;
        registry.register(Box::new(tokens_per_second.clone()))?;
        Ok(Self {
            registry,
            requests,
            latency,
            batch_sentences,
            batch_requests,
            batch_seconds,
            queue_depth,
            rejected,
            source_tokens,
            target_tokens,
            sentences,
            tokens_per_second,
        })
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        // Encoding into a Vec only fails on invalid metric data, never here.
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family() {
        let m = Metrics::new().unwrap();
        m.requests
            .with_label_values(&["/health", "GET", "200"])
            .inc();
        m.rejected.with_label_values(&["queue_full"]).inc();
        m.latency.with_label_values(&["/health"]).observe(0.01);
        let text = m.render();
        for name in [
            "nmt_http_requests_total{method=\"GET\",route=\"/health\",status=\"200\"} 1",
            "nmt_http_request_duration_seconds_bucket",
            "nmt_queue_depth 0",
            "nmt_rejected_total{reason=\"queue_full\"} 1",
        ] {
            assert!(text.contains(name), "missing {name} in\n{text}");
        }
    }
}
