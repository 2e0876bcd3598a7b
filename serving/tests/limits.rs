//! Per-client rate limits (`--req-limit`, `--char-budget`), 405 with `Allow`, `HEAD`, and the
//! schema saying the server's own limits and models.

mod common;

use common::*;
use serde_json::{json, Value};

fn retry_after(r: &Reply) -> u64 {
    r.header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Retry-After in {:?}", r.headers))
}

/// Fails unless `over` is a 429 with `code`, naming the option `flag`, with a Retry-After
/// within `seconds`.
fn assert_limited(over: &Reply, code: &str, flag: &str, seconds: std::ops::RangeInclusive<u64>) {
    let message = over.assert_error(429, code);
    assert!(message.contains(flag), "{message}");
    assert!(seconds.contains(&retry_after(over)), "{:?}", over.headers);
}

fn metric(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.trim().parse().ok()))
}

#[test]
fn request_limit_is_per_client_and_answers_429_with_retry_after() {
    let (_dir, _, s) = de_en_server(
        "m",
        3,
        &[
            "--req-limit",
            "2",
            "--api-key",
            "alpha,beta",
            "--reject-delay-ms",
            "0",
        ],
    );
    let url = s.url("/v1/translate");
    let post = |key: &str, body: &Value| {
        let auth = format!("Bearer {key}");
        request(
            "POST",
            &url,
            &[
                ("Content-Type", "application/json"),
                ("Authorization", &auth),
            ],
            body.to_string().as_bytes(),
        )
    };
    let body = json!({"text": SENTENCES[0]});
    assert_eq!(post("alpha", &body).status, 200);
    assert_eq!(post("alpha", &body).status, 200);
    let over = post("alpha", &body);
    // Two per minute: the next one in 30 s (less the time the first two took).
    assert_limited(&over, "too_many_requests", "--req-limit", 25..=30);
    // Another key is another client, on every limited route.
    assert_eq!(post("beta", &body).status, 200);
    let libre = post_json(
        &s.url("/translate"),
        &json!({"q": SENTENCES[1], "source": "de", "target": "en", "api_key": "beta"}),
    );
    assert_eq!(libre.status, 200, "{}", libre.body);
    let detect = post_json(
        &s.url("/detect"),
        &json!({"q": SENTENCES[1], "api_key": "beta"}),
    );
    detect.assert_error(429, "too_many_requests");
    // Other routes are not limited.
    assert_eq!(get(&s.url("/v1/models")).status, 200);
    let metrics = get(&s.url("/metrics")).body;
    assert_eq!(
        metric(&metrics, "nmt_rejected_total{reason=\"rate_limit\"}"),
        Some(2.0),
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "nmt_http_requests_total{method=\"POST\",route=\"/v1/translate\",status=\"429\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
}

#[test]
fn character_budget_counts_the_texts_and_limits_are_off_by_default() {
    let (_dir, m, s) = de_en_server("m", 4, &["--char-budget", "60", "--reject-delay-ms", "0"]);
    let url = s.url("/v1/translate");
    let chars = |s: &str| s.chars().count();
    // 23 + 29 characters: within 60; the next 33 are not.
    assert_eq!(chars(SENTENCES[0]) + chars(SENTENCES[1]), 52);
    assert_eq!(chars(SENTENCES[2]), 33);
    let two = post_json(&url, &json!({"texts": [SENTENCES[0], SENTENCES[1]]}));
    assert_eq!(two.status, 200, "{}", two.body);
    let over = post_json(&url, &json!({"text": SENTENCES[2]}));
    // 8 left (and one a second since), 33 needed: about 25 s.
    assert_limited(&over, "too_many_characters", "--char-budget", 20..=25);
    let metrics = get(&s.url("/metrics")).body;
    assert_eq!(
        metric(&metrics, "nmt_rejected_total{reason=\"char_budget\"}"),
        Some(1.0),
        "{metrics}"
    );
    drop(s);

    // Without the flags nothing is limited.
    let s = Server::serving(&[&m], &[]);
    for _ in 0..5 {
        let r = post_json(
            &s.url("/v1/translate"),
            &json!({"texts": [SENTENCES[2], SENTENCES[3]]}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
}

#[test]
fn other_methods_get_405_with_allow_and_get_routes_answer_head() {
    let (_dir, _, s) = de_en_server("m", 5, &[]);
    let posts = ["/v1/translate", "/translate", "/detect", "/translate_file"];
    let gets = [
        "/v1/models",
        "/languages",
        "/frontend/settings",
        "/download_file/x.txt",
        "/health",
        "/ready",
        "/metrics",
        "/openapi.json",
        "/",
    ];
    for path in posts {
        for method in ["GET", "PUT", "DELETE", "PATCH"] {
            let r = request(method, &s.url(path), &[], b"");
            r.assert_error(405, "method_not_allowed");
            assert_eq!(r.header("allow"), Some("POST"), "{method} {path}");
        }
    }
    for path in gets {
        for method in ["POST", "PUT", "DELETE"] {
            let r = request(method, &s.url(path), &[], b"");
            r.assert_error(405, "method_not_allowed");
            assert_eq!(r.header("allow"), Some("GET, HEAD"), "{method} {path}");
        }
    }
    let head = request("HEAD", &s.url("/health"), &[], b"");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty(), "HEAD has no body: {}", head.body);
}

#[test]
fn schema_and_models_say_the_servers_own_limits_models_and_descriptions() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = both_ways(dir.path(), (6, 7));
    model::bundle::set_description(&a, Some("Test captions, German to English.")).unwrap();
    let s = Server::serving(
        &[&a, &b],
        &[
            "--max-chars",
            "123",
            "--max-texts",
            "5",
            "--max-beam",
            "7",
            "--max-n-best",
            "4",
            "--max-output-tokens",
            "99",
        ],
    );
    let models = get(&s.url("/v1/models")).json();
    assert_eq!(
        models["models"][0]["description"],
        "Test captions, German to English."
    );
    assert_eq!(models["models"][1]["description"], Value::Null);

    let api = get(&s.url("/openapi.json")).json();
    let schemas = &api["components"]["schemas"];
    let req = &schemas["TranslateRequest"];
    let p = &req["properties"];
    assert_eq!(p["text"]["maxLength"], 123);
    assert_eq!(p["texts"]["maxItems"], 5);
    assert_eq!(p["texts"]["minItems"], 1);
    assert_eq!(p["texts"]["items"]["maxLength"], 123);
    assert_eq!(p["beam_size"]["maximum"], 7);
    assert_eq!(p["n_best"]["maximum"], 4);
    assert_eq!(p["max_length"]["maximum"], 99);
    assert_eq!(
        p["model"]["enum"],
        json!(["m-de-en", "m-en-de", null]),
        "{req}"
    );
    assert_eq!(req["additionalProperties"], false);
    // `text` or `texts`: one of two.
    assert_eq!(
        req["allOf"][0]["oneOf"].as_array().map(Vec::len),
        Some(2),
        "{req}"
    );
    // n_best at most the beam: one branch per possible n_best.
    assert_eq!(
        req["allOf"][1]["anyOf"].as_array().map(Vec::len),
        Some(4),
        "{req}"
    );
    // One model must match: a branch per model.
    assert_eq!(
        req["allOf"][2]["oneOf"].as_array().map(Vec::len),
        Some(2),
        "{req}"
    );

    let libre = &schemas["LibreRequest"];
    assert_eq!(libre["required"], json!(["q", "source", "target"]));
    assert_eq!(
        libre["properties"]["q"]["oneOf"][1]["minItems"], 1,
        "{libre}"
    );
    assert_eq!(
        libre["properties"]["q"]["oneOf"][1]["maxItems"], 5,
        "{libre}"
    );
    assert_eq!(libre["properties"]["alternatives"]["maximum"], 3, "{libre}");
    assert_eq!(
        libre["properties"]["source"]["enum"],
        json!(["de", "en", "auto"])
    );
    assert_eq!(schemas["DetectRequest"]["required"], json!(["q"]));
    assert_eq!(
        schemas["TranslateFileForm"]["required"],
        json!(["file", "source", "target"])
    );
    // 429 is documented where the limits apply.
    for path in ["/v1/translate", "/translate", "/detect", "/translate_file"] {
        assert!(
            api["paths"][path]["post"]["responses"]["429"].is_object(),
            "{path} lacks 429"
        );
    }
}
