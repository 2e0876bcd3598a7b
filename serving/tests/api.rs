//! Every route and every bad input against the real `nmt-serve` binary.

mod common;
#[path = "../../test-support/process.rs"]
mod process;

use common::*;
use serde_json::{json, Value};

/// One server with two models (de→en, en→de) shared by the tests of this file.
fn server() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = both_ways(dir.path(), (1, 2));
    let s = Server::serving(
        &[&a, &b],
        &[
            "--max-chars",
            "200",
            "--max-texts",
            "4",
            "--max-beam",
            "6",
            "--max-n-best",
            "3",
            "--max-body-bytes",
            "4096",
            "--beam-size",
            "3",
        ],
    );
    (dir, s)
}

#[test]
fn operations_routes_answer() {
    let (_dir, s) = server();
    let health = get(&s.url("/health"));
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "ok");
    let ready = get(&s.url("/ready"));
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.json()["models"], 2);

    let models = get(&s.url("/v1/models")).json();
    let names: Vec<&str> = models["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["m-de-en", "m-en-de"]);
    assert_eq!(models["models"][0]["source"], "de");
    assert_eq!(models["models"][0]["target"], "en");

    let langs = get(&s.url("/languages")).json();
    assert_eq!(
        langs,
        json!([
            {"code": "de", "name": "German", "targets": ["en"]},
            {"code": "en", "name": "English", "targets": ["de"]}
        ])
    );

    let page = get(&s.url("/"));
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(page.body.contains("id=\"heatmap\"") && page.body.contains("/v1/translate"));

    let api = get(&s.url("/openapi.json")).json();
    assert!(api["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/v1/translate",
        "/v1/models",
        "/translate",
        "/detect",
        "/languages",
        "/frontend/settings",
        "/translate_file",
        "/download_file/{name}",
        "/health",
        "/ready",
        "/metrics",
        "/openapi.json",
        "/",
    ] {
        assert!(
            api["paths"].get(path).is_some(),
            "{path} missing from the schema"
        );
    }
    let req = &api["components"]["schemas"]["TranslateRequest"]["properties"];
    for field in [
        "text",
        "texts",
        "beam_size",
        "n_best",
        "max_length",
        "return_attention",
    ] {
        assert!(req.get(field).is_some(), "TranslateRequest.{field} missing");
    }
    assert!(api["components"]["schemas"]["ErrorBody"].is_object());
    assert!(api["paths"]["/v1/translate"]["post"]["responses"]["503"].is_object());
    // The LibreTranslate routes take the body encodings their clients send.
    let libre_body = &api["paths"]["/translate"]["post"]["requestBody"]["content"];
    for media in [
        "application/json",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ] {
        assert!(libre_body.get(media).is_some(), "/translate lacks {media}");
    }
    let file_body = &api["paths"]["/translate_file"]["post"]["requestBody"]["content"];
    assert!(
        file_body.get("multipart/form-data").is_some(),
        "{file_body}"
    );
    for schema in [
        "DetectedLanguage",
        "FrontendSettings",
        "TranslateFileResponse",
    ] {
        assert!(
            api["components"]["schemas"][schema].is_object(),
            "{schema} missing from the schema"
        );
    }

    // Traffic so far shows in the metrics.
    let metrics = get(&s.url("/metrics"));
    assert_eq!(metrics.status, 200);
    assert!(metrics
        .header("content-type")
        .unwrap()
        .starts_with("text/plain"));
    assert!(
        metrics.body.contains(
            "nmt_http_requests_total{method=\"GET\",route=\"/languages\",status=\"200\"} 1"
        ),
        "{}",
        metrics.body
    );
    assert!(metrics.body.contains("nmt_queue_depth 0"));
}

#[test]
fn v1_translate_shapes_and_options() {
    let (dir, s) = server();
    let url = s.url("/v1/translate");
    let sent = std::time::Instant::now();
    let one = post_json(&url, &json!({"text": SENTENCES[0], "model": "m-de-en"}));
    let round_trip_ms = sent.elapsed().as_secs_f64() * 1000.0;
    let v = one.json();
    assert_eq!(v["model"], "m-de-en");
    // The server's time for the request: some, and within what the client waited.
    let timing = v["timing_ms"].as_f64().unwrap();
    assert!(
        timing > 0.0 && timing <= round_trip_ms,
        "timing_ms {timing} outside (0, {round_trip_ms}]"
    );
    let t = &v["translations"][0];
    assert!(t["text"].is_string());
    assert!(
        t.get("score").is_none() && t.get("attention").is_none() && t.get("alternatives").is_none()
    );

    // Same text again: same answer (deterministic), and by language pair.
    let again = post_json(
        &url,
        &json!({"text": SENTENCES[0], "source": "de", "target": "en"}),
    );
    assert_eq!(texts_of(&again), texts_of(&one));
    // The other model gives something else for the same input (different weights).
    let other = post_json(
        &url,
        &json!({"text": SENTENCES[0], "source": "en", "target": "de"}),
    );
    assert_eq!(other.json()["model"], "m-en-de");
    assert_ne!(
        texts_of(&other),
        texts_of(&one),
        "both routes reached the same model"
    );
    let by_name = post_json(&url, &json!({"text": SENTENCES[0], "model": "m-en-de"}));
    assert_eq!(texts_of(&other), texts_of(&by_name));

    let many = post_json(
        &url,
        &json!({"texts": [SENTENCES[1], SENTENCES[0]], "model": "m-de-en"}),
    );
    let texts = texts_of(&many);
    assert_eq!(texts.len(), 2);
    assert_eq!(texts[1], texts_of(&one)[0], "order of texts is kept");

    let rich = post_json(
        &url,
        &json!({"text": SENTENCES[2], "model": "m-de-en", "beam_size": 4, "n_best": 3,
                "return_scores": true, "return_attention": true, "max_length": 7}),
    )
    .json();
    let t = &rich["translations"][0];
    // n_best 3: the best and exactly two alternatives, each with its ranking score and
    // log-probability, sorted by the score they show (the ranking one).
    let alts = t["alternatives"].as_array().unwrap();
    assert_eq!(alts.len(), 2, "{t}");
    let mut shown = vec![t["score"].as_f64().unwrap()];
    for a in alts {
        assert!(a["text"].is_string(), "{t}");
        assert!(a["log_prob"].as_f64().unwrap() < 0.0, "{t}");
        shown.push(a["score"].as_f64().unwrap());
    }
    assert!(
        shown.windows(2).all(|w| w[0] >= w[1]),
        "the n-best list is not in the order of its scores: {shown:?}"
    );
    let src = t["source_tokens"].as_array().unwrap();
    let tgt = t["target_tokens"].as_array().unwrap();
    assert_eq!(src.last().unwrap(), "</s>");
    assert!(tgt.len() <= 7, "max_length caps the output: {t}");
    // `log_prob` is the model's log-probability of the returned tokens, recomputed here
    // teacher-forced from the bundle's weights; `score` is it over the GNMT length penalty
    // of the beam search (α 0.6, the length with EOS unless the output was cut).
    let score = t["log_prob"].as_f64().unwrap();
    let ranking = t["score"].as_f64().unwrap();
    let gnmt = |len: usize| ((5.0 + len as f64) / 6.0).powf(0.6);
    assert!(
        (ranking - score / gnmt(tgt.len() + 1)).abs() < 1e-6
            || (tgt.len() == 7 && (ranking - score / gnmt(tgt.len())).abs() < 1e-6),
        "score {ranking} is not log_prob {score} over the length penalty"
    );
    let pieces = |v: &[Value]| -> Vec<String> {
        v.iter().map(|p| p.as_str().unwrap().to_string()).collect()
    };
    let (with_eos, without_eos) = model::testing::teacher_forced_log_prob(
        &dir.path().join("m-de-en"),
        &pieces(src),
        &pieces(tgt),
    );
    if tgt.len() < 7 {
        assert!(
            (score - with_eos).abs() < 1e-3,
            "score {score}, model {with_eos}"
        );
    } else {
        // At the length limit the hypothesis may have been cut before its EOS.
        assert!(
            (score - with_eos).abs() < 1e-3 || (score - without_eos).abs() < 1e-3,
            "score {score}, model {with_eos} (with EOS) or {without_eos} (cut)"
        );
    }
    let att = t["attention"].as_array().unwrap();
    assert_eq!(att.len(), tgt.len());
    for row in att {
        let row = row.as_array().unwrap();
        assert_eq!(row.len(), src.len());
        let sum: f64 = row.iter().map(|x| x.as_f64().unwrap()).sum();
        assert!((sum - 1.0).abs() < 1e-3, "attention rows sum to 1: {sum}");
    }
}

#[test]
fn libretranslate_compatible_route() {
    let (_dir, s) = server();
    let url = s.url("/translate");
    let direct = texts_of(&post_json(
        &s.url("/v1/translate"),
        &json!({"text": SENTENCES[3], "model": "m-de-en", "beam_size": 3}),
    ));

    let one = post_json(
        &url,
        &json!({"q": SENTENCES[3], "source": "de", "target": "en"}),
    );
    assert_eq!(one.status, 200, "{}", one.body);
    let v = one.json();
    assert_eq!(v, json!({"translatedText": direct[0]}));

    let list = post_json(
        &url,
        &json!({"q": [SENTENCES[3], SENTENCES[4]], "source": "de", "target": "en", "alternatives": 2}),
    )
    .json();
    assert_eq!(list["translatedText"][0], direct[0]);
    assert_eq!(list["translatedText"].as_array().unwrap().len(), 2);
    assert_eq!(list["alternatives"].as_array().unwrap().len(), 2);
    for per_text in list["alternatives"].as_array().unwrap() {
        assert_eq!(per_text.as_array().unwrap().len(), 2, "{list}");
    }

    let alts = post_json(
        &url,
        &json!({"q": SENTENCES[3], "source": "de", "target": "en", "alternatives": 1}),
    )
    .json();
    assert!(alts["translatedText"].is_string());
    assert_eq!(alts["alternatives"].as_array().unwrap().len(), 1, "{alts}");

    // Form-urlencoded, as LibreTranslate's own clients send it.
    let body = format!(
        "q={}&source=de&target=en&format=text",
        SENTENCES[3].replace(' ', "+")
    );
    let form = post_raw(&url, "application/x-www-form-urlencoded", body.as_bytes());
    assert_eq!(form.json()["translatedText"], direct[0]);

    // source=auto: only one model translates into German, so it is used.
    let auto = post_json(
        &url,
        &json!({"q": "A man rides a bike.", "source": "auto", "target": "de"}),
    )
    .json();
    assert!(auto["translatedText"].is_string());
    assert_eq!(auto["detectedLanguage"]["language"], "en");

    // HTML: tags kept byte for byte, text nodes translated.
    let html = format!(
        "<p class=\"x\">{}</p><br/><b>{}</b>",
        SENTENCES[3], SENTENCES[3]
    );
    let out = post_json(
        &url,
        &json!({"q": html, "source": "de", "target": "en", "format": "html"}),
    )
    .json();
    let text = out["translatedText"].as_str().unwrap();
    let escaped = direct[0]
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    assert_eq!(
        text,
        format!("<p class=\"x\">{escaped}</p><br/><b>{escaped}</b>")
    );
}

#[test]
fn bad_inputs_get_json_4xx() {
    let (_dir, s) = server();
    let url = s.url("/v1/translate");
    let json_ct = "application/json";
    post_raw(&url, json_ct, b"{\"text\": ").assert_error(400, "invalid_json");
    post_raw(&url, json_ct, b"{\"text\": 5}").assert_error(400, "invalid_field");
    post_raw(&url, json_ct, b"[1,2]").assert_error(400, "invalid_field");
    post_json(&url, &json!({"txt": "x"})).assert_error(400, "invalid_field");
    post_json(&url, &json!({"text": "a", "texts": ["b"]})).assert_error(400, "invalid_field");
    post_json(&url, &json!({})).assert_error(400, "no_text");
    post_json(&url, &json!({"texts": []})).assert_error(400, "no_text");
    post_json(&url, &json!({"text": "  ", "model": "m-de-en"})).assert_error(400, "empty_text");
    let msg = post_json(&url, &json!({"text": "x".repeat(201), "model": "m-de-en"}))
        .assert_error(400, "text_too_long");
    assert!(msg.contains("200"), "{msg}");
    post_json(
        &url,
        &json!({"texts": ["a", "b", "c", "d", "e"], "model": "m-de-en"}),
    )
    .assert_error(400, "too_many_texts");
    post_raw(&url, json_ct, b"{\"text\": \"caf\xe9\"}").assert_error(400, "invalid_utf8");
    post_json(&url, &json!({"text": "a", "model": "nope"})).assert_error(400, "unknown_model");
    post_json(&url, &json!({"text": "a", "source": "fr", "target": "en"}))
        .assert_error(400, "unsupported_language_pair");
    post_json(&url, &json!({"text": "a"})).assert_error(400, "ambiguous_model");
    post_json(
        &url,
        &json!({"text": "a", "model": "m-de-en", "source": "en"}),
    )
    .assert_error(400, "language_mismatch");
    post_json(
        &url,
        &json!({"text": "a", "model": "m-de-en", "beam_size": 7}),
    )
    .assert_error(400, "beam_too_large");
    post_json(
        &url,
        &json!({"text": "a", "model": "m-de-en", "beam_size": 0}),
    )
    .assert_error(400, "beam_too_large");
    post_json(
        &url,
        &json!({"text": "a", "model": "m-de-en", "beam_size": -1}),
    )
    .assert_error(400, "invalid_field");
    post_json(
        &url,
        &json!({"text": "a", "model": "m-de-en", "beam_size": 5, "n_best": 4}),
    )
    .assert_error(400, "n_best_too_large");
    post_json(
        &url,
        &json!({"text": "a", "model": "m-de-en", "beam_size": 2, "n_best": 3}),
    )
    .assert_error(400, "n_best_above_beam");
    post_json(
        &url,
        &json!({"text": "a", "model": "m-de-en", "max_length": 100000}),
    )
    .assert_error(400, "max_length_too_large");
    post_raw(&url, json_ct, &vec![b' '; 5000]).assert_error(413, "body_too_large");
    post_raw(&url, "text/plain", b"hello").assert_error(415, "unsupported_media_type");
    get(&url).assert_error(405, "method_not_allowed");
    get(&s.url("/nope")).assert_error(404, "not_found");

    // The LibreTranslate route: same limits, its own messages, still {"error", "code"}.
    let libre = s.url("/translate");
    let msg =
        post_json(&libre, &json!({"source": "de", "target": "en"})).assert_error(400, "no_text");
    assert!(msg.contains("missing q"), "{msg}");
    post_json(&libre, &json!({"q": "a", "target": "en"})).assert_error(400, "invalid_field");
    post_json(&libre, &json!({"q": "a", "source": "de", "target": "xx"}))
        .assert_error(400, "unsupported_language_pair");
    post_json(
        &libre,
        &json!({"q": "a", "source": "de", "target": "en", "format": "pdf"}),
    )
    .assert_error(400, "invalid_field");
    post_json(
        &libre,
        &json!({"q": "a", "source": "de", "target": "en", "alternatives": 9}),
    )
    .assert_error(400, "n_best_too_large");
    post_json(&libre, &json!({"q": "", "source": "de", "target": "en"}))
        .assert_error(400, "empty_text");
    post_json(&libre, &json!({"q": 3, "source": "de", "target": "en"}))
        .assert_error(400, "invalid_field");
    post_raw(
        &libre,
        "application/x-www-form-urlencoded",
        b"q=a&source=de&target=en&alternatives=x",
    )
    .assert_error(400, "invalid_field");
    post_raw(&libre, "text/plain", b"q=a").assert_error(415, "unsupported_media_type");
    // Multipart is read (LibreTranslate's web page posts FormData): an empty one has no q.
    post_raw(&libre, "multipart/form-data; boundary=x", b"--x--\r\n").assert_error(400, "no_text");
    post_raw(&libre, "multipart/form-data", b"--x--").assert_error(400, "invalid_form");
    // The service still works after all that.
    let ok = post_json(&url, &json!({"text": SENTENCES[0], "model": "m-de-en"}));
    assert_eq!(ok.status, 200);
    let metrics = get(&s.url("/metrics")).body;
    assert!(
        metrics.contains(
            "nmt_http_requests_total{method=\"POST\",route=\"/v1/translate\",status=\"400\"}"
        ),
        "{metrics}"
    );
}

#[test]
fn api_keys_guard_both_translate_routes() {
    let dir = tempfile::tempdir().unwrap();
    let m = bundle(dir.path(), "m", ("de", "en"), 3);
    let keys = dir.path().join("keys.txt");
    std::fs::write(&keys, "# keys\nfile-key\n\n").unwrap();
    let s = Server::serving(
        &[&m],
        &[
            "--api-key",
            "secret",
            "--api-key-file",
            keys.to_str().unwrap(),
            "--cors-origin",
            "http://example.org",
        ],
    );
    let url = s.url("/v1/translate");
    let body = json!({"text": SENTENCES[0]}).to_string();
    let ct = ("Content-Type", "application/json");
    request("POST", &url, &[ct], body.as_bytes()).assert_error(401, "missing_api_key");
    request(
        "POST",
        &url,
        &[ct, ("Authorization", "Bearer wrong")],
        body.as_bytes(),
    )
    .assert_error(403, "invalid_api_key");
    for key in ["secret", "file-key"] {
        let auth = format!("Bearer {key}");
        let ok = request(
            "POST",
            &url,
            &[ct, ("Authorization", &auth)],
            body.as_bytes(),
        );
        assert_eq!(ok.status, 200, "{}", ok.body);
    }
    let libre = s.url("/translate");
    post_json(
        &libre,
        &json!({"q": "a", "source": "de", "target": "en", "api_key": "bad"}),
    )
    .assert_error(403, "invalid_api_key");
    let ok = post_json(
        &libre,
        &json!({"q": SENTENCES[0], "source": "de", "target": "en", "api_key": "secret"}),
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
    // Read-only routes stay open.
    assert_eq!(get(&s.url("/languages")).status, 200);
    // CORS: the allowed origin is echoed, others are not.
    // The CORS origin the server allows for a GET of /v1/models from `origin`.
    let allowed_origin = |origin: &str| {
        let reply = request("GET", &s.url("/v1/models"), &[("Origin", origin)], b"");
        reply
            .header("access-control-allow-origin")
            .map(str::to_owned)
    };
    assert_eq!(
        allowed_origin("http://example.org").as_deref(),
        Some("http://example.org")
    );
    let pre = request(
        "OPTIONS",
        &url,
        &[
            ("Origin", "http://example.org"),
            ("Access-Control-Request-Method", "POST"),
            (
                "Access-Control-Request-Headers",
                "content-type,authorization",
            ),
        ],
        b"",
    );
    assert_eq!(pre.status, 200, "{:?}", pre);
    assert_ne!(
        allowed_origin("http://evil.test").as_deref(),
        Some("http://evil.test")
    );
}

#[test]
fn settings_from_environment_and_toml_file() {
    let dir = tempfile::tempdir().unwrap();
    let m = bundle(dir.path(), "env-model", ("de", "en"), 4);
    let toml = dir.path().join("serve.toml");
    std::fs::write(&toml, "max_chars = 10\nmax_texts = 1\n").unwrap();
    let s = Server::start_with_env(
        &[],
        &[
            ("NMT_MODEL", m.to_str().unwrap()),
            ("NMT_CONFIG", toml.to_str().unwrap()),
            ("NMT_MAX_TEXTS", "2"),
        ],
    );
    let models: Value = get(&s.url("/v1/models")).json();
    assert_eq!(models["models"][0]["name"], "env-model");
    let url = s.url("/v1/translate");
    post_json(&url, &json!({"text": "elf Zeichen"})).assert_error(400, "text_too_long");
    // The variable beats the file.
    assert_eq!(
        post_json(&url, &json!({"texts": ["Ein Mann", "Hund"]})).status,
        200
    );
    post_json(&url, &json!({"texts": ["a", "b", "c"]})).assert_error(400, "too_many_texts");
}

#[test]
fn startup_errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-bundle");
    let serve = || std::process::Command::new(env!("CARGO_BIN_EXE_nmt-serve"));
    // The stderr of nmt-serve failing to start on the bundle `model` at `addr`.
    let fails_to_serve = |model: &std::path::Path, addr: &str| {
        let model = model.to_str().unwrap();
        process::stderr_of_failure(
            serve().args(["--model", model, "--addr", addr, "--device", "cpu"]),
        )
    };
    let err = fails_to_serve(&missing, "127.0.0.1:0");
    assert!(err.contains("no-such-bundle"), "{err}");

    let err = process::stderr_of_failure(serve().env_remove("NMT_MODEL"));
    assert!(err.contains("--model"));

    let m = bundle(dir.path(), "m", ("de", "en"), 5);
    let err = fails_to_serve(&m, "not-an-address");
    assert!(err.contains("not-an-address"));
}
