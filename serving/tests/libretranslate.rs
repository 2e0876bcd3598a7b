//! The LibreTranslate routes beyond `/translate`: `/detect`, `source: "auto"`
//! with several models, `/frontend/settings`, `/translate_file` and
//! `/download_file`, good and bad input, against the real `nmt-serve` binary.

mod common;

use common::*;
use serde_json::{json, Value};

const GERMAN: &str = "Ein Mann fährt mit dem Fahrrad über die Straße.";
const ENGLISH: &str = "Two dogs are playing in the snow with a ball.";
// ASCII only, so that the German/English test vocabulary can encode it.
const FRENCH: &str = "Deux chiens jouent dans la neige avec un enfant.";

/// Three models, two of them into English (de→en, fr→en), so that `auto`
/// must detect to choose; small limits to reach them cheaply.
fn server(extra: &[&str]) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let de_en = bundle(dir.path(), "m-de-en", ("de", "en"), 1);
    let fr_en = bundle(dir.path(), "m-fr-en", ("fr", "en"), 2);
    let en_de = bundle(dir.path(), "m-en-de", ("en", "de"), 3);
    let mut flags = vec![
        "--max-chars",
        "200",
        "--max-texts",
        "4",
        "--max-body-bytes",
        "4096",
        "--max-file-texts",
        "5",
        "--beam-size",
        "2",
    ];
    flags.extend_from_slice(extra);
    let s = Server::serving(&[&de_en, &fr_en, &en_de], &flags);
    (dir, s)
}

/// The best translation of each text by the named model, through the JSON API.
fn by_model(s: &Server, model: &str, texts: &[&str]) -> Vec<String> {
    texts_of(&post_json(
        &s.url("/v1/translate"),
        &json!({"texts": texts, "model": model, "beam_size": 2}),
    ))
}

fn confidence(d: &Value) -> f64 {
    d["confidence"]
        .as_f64()
        .unwrap_or_else(|| panic!("no confidence in {d}"))
}

#[test]
fn detect_answers_as_libretranslate_does() {
    let (_dir, s) = server(&[]);
    let url = s.url("/detect");
    // JSON, url-encoded (LibreTranslate's API clients), multipart (its web page).
    let de = post_json(&url, &json!({"q": GERMAN}));
    assert_eq!(de.status, 200, "{}", de.body);
    let de = de.json();
    let list = de.as_array().expect("a list");
    assert_eq!(list.len(), 1, "{de}");
    assert_eq!(list[0]["language"], "de", "{de}");
    let c = confidence(&list[0]);
    assert!(c > 0.0 && c <= 100.0, "confidence {c} outside (0, 100]");

    let body = format!("q={}", ENGLISH.replace(' ', "+"));
    let en = post_raw(&url, "application/x-www-form-urlencoded", body.as_bytes()).json();
    assert_eq!(en[0]["language"], "en", "{en}");
    let fr = post_multipart(
        &url,
        &[("q", None, FRENCH.as_bytes()), ("api_key", None, b"")],
    );
    assert_eq!(fr.status, 200, "{}", fr.body);
    assert_eq!(fr.json()[0]["language"], "fr", "{}", fr.body);
    // A list is detected as one text.
    let many = post_json(&url, &json!({"q": [GERMAN, "Ein Hund."]})).json();
    assert_eq!(many[0]["language"], "de", "{many}");
    // No clue in the text: English with confidence 0, as LibreTranslate answers.
    let none = post_json(&url, &json!({"q": "12345 !!!"})).json();
    assert_eq!(none, json!([{"confidence": 0.0, "language": "en"}]));

    // Bad input: the JSON 4xx of the other routes.
    let msg = post_json(&url, &json!({})).assert_error(400, "no_text");
    assert!(msg.contains("missing q"), "{msg}");
    post_json(&url, &json!({"q": "  "})).assert_error(400, "empty_text");
    post_json(&url, &json!({"q": "x".repeat(201)})).assert_error(400, "text_too_long");
    post_json(&url, &json!({"q": ["a", "b", "c", "d", "e"]})).assert_error(400, "too_many_texts");
    post_json(&url, &json!({"q": 5})).assert_error(400, "invalid_field");
    post_raw(&url, "application/json", b"{\"q\": ").assert_error(400, "invalid_json");
    post_raw(&url, "application/json", b"{\"q\": \"caf\xe9\"}").assert_error(400, "invalid_utf8");
    post_raw(&url, "application/json", &vec![b' '; 5000]).assert_error(413, "body_too_large");
    post_raw(&url, "text/plain", b"q=a").assert_error(415, "unsupported_media_type");
    post_raw(&url, "multipart/form-data", b"--x--").assert_error(400, "invalid_form");
    get(&url).assert_error(405, "method_not_allowed");
}

#[test]
fn auto_source_detects_each_text_and_picks_its_model() {
    let (_dir, s) = server(&[]);
    let url = s.url("/translate");
    let de_en = by_model(&s, "m-de-en", &[GERMAN]);
    let fr_en = by_model(&s, "m-fr-en", &[FRENCH]);
    // The models differ, so a text sent to the wrong one would show.
    assert_ne!(by_model(&s, "m-fr-en", &[GERMAN]), de_en);

    let one = post_json(
        &url,
        &json!({"q": GERMAN, "source": "auto", "target": "en"}),
    );
    assert_eq!(one.status, 200, "{}", one.body);
    let one = one.json();
    assert_eq!(one["translatedText"], de_en[0], "{one}");
    assert_eq!(one["detectedLanguage"]["language"], "de", "{one}");
    assert!(confidence(&one["detectedLanguage"]) > 0.0, "{one}");

    // A list mixing languages: each text goes to its own model, answers in order.
    let both = post_json(
        &url,
        &json!({"q": [FRENCH, GERMAN], "source": "auto", "target": "en"}),
    )
    .json();
    assert_eq!(
        both["translatedText"],
        json!([fr_en[0], de_en[0]]),
        "{both}"
    );
    let detected = both["detectedLanguage"].as_array().expect("one per text");
    assert_eq!(detected.len(), 2, "{both}");
    assert_eq!(detected[0]["language"], "fr");
    assert_eq!(detected[1]["language"], "de");

    // The web page's multipart form, with HTML: the markup is left out of detection.
    let html = format!("<p class=\"x\">{FRENCH}</p>");
    let page = post_multipart(
        &url,
        &[
            ("q", None, html.as_bytes()),
            ("source", None, b"auto"),
            ("target", None, b"en"),
            ("format", None, b"html"),
            ("api_key", None, b""),
        ],
    );
    assert_eq!(page.status, 200, "{}", page.body);
    let page = page.json();
    assert_eq!(page["detectedLanguage"]["language"], "fr", "{page}");
    let escaped = fr_en[0]
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    assert_eq!(
        page["translatedText"],
        format!("<p class=\"x\">{escaped}</p>")
    );

    // One model into German: detection only reports, and English is what it finds.
    let only = post_json(
        &url,
        &json!({"q": ENGLISH, "source": "auto", "target": "de"}),
    )
    .json();
    assert_eq!(only["detectedLanguage"]["language"], "en", "{only}");
    assert_eq!(
        only["translatedText"],
        by_model(&s, "m-en-de", &[ENGLISH])[0]
    );
    // A text already in the target language comes back as it is (as LibreTranslate
    // answers), also in a list beside one that needs translating.
    let same = post_json(
        &url,
        &json!({"q": GERMAN, "source": "auto", "target": "de", "alternatives": 1}),
    )
    .json();
    assert_eq!(same["translatedText"], GERMAN, "{same}");
    assert_eq!(same["detectedLanguage"]["language"], "de", "{same}");
    assert_eq!(same["alternatives"], json!([]), "{same}");
    let mixed = post_json(
        &url,
        &json!({"q": [GERMAN, ENGLISH], "source": "auto", "target": "de"}),
    )
    .json();
    assert_eq!(
        mixed["translatedText"],
        json!([GERMAN, by_model(&s, "m-en-de", &[ENGLISH])[0]]),
        "{mixed}"
    );
    let english = post_json(
        &url,
        &json!({"q": ENGLISH, "source": "auto", "target": "en"}),
    )
    .json();
    assert_eq!(english["translatedText"], ENGLISH, "{english}");
    // An explicit source reports nothing.
    let explicit = post_json(&url, &json!({"q": GERMAN, "source": "de", "target": "en"})).json();
    assert!(explicit.get("detectedLanguage").is_none(), "{explicit}");

    // Two candidates and no clue: a clear 400, not a guess.
    let msg = post_json(
        &url,
        &json!({"q": "12345", "source": "auto", "target": "en"}),
    )
    .assert_error(400, "undetected_language");
    assert!(msg.contains("de") && msg.contains("fr"), "{msg}");
    post_json(
        &url,
        &json!({"q": GERMAN, "source": "auto", "target": "xx"}),
    )
    .assert_error(400, "unsupported_language_pair");
}

#[test]
fn frontend_settings_tell_the_web_page_this_servers_configuration() {
    let (_dir, s) = server(&[]);
    let settings = get(&s.url("/frontend/settings"));
    assert_eq!(settings.status, 200, "{}", settings.body);
    assert_eq!(
        settings.json(),
        json!({
            "charLimit": 200,
            "frontendTimeout": 500,
            "apiKeys": false,
            "keyRequired": false,
            "suggestions": false,
            "filesTranslation": true,
            "supportedFilesFormat": [".txt", ".html", ".htm"],
            "language": {
                "source": {"code": "auto", "name": "Auto Detect"},
                "target": {"code": "en", "name": "English"}
            }
        })
    );
    get(&s.url("/frontend/settings/x")).assert_error(404, "not_found");
    drop(s);

    // Keys required, files off, another character limit: the settings follow.
    let dir = tempfile::tempdir().unwrap();
    let m = bundle(dir.path(), "m", ("de", "en"), 4);
    let s = Server::start_with_env(
        &[
            "--model",
            m.to_str().unwrap(),
            "--api-key",
            "secret",
            "--max-chars",
            "77",
        ],
        &[("NMT_DISABLE_FILES_TRANSLATION", "1")],
    );
    let v = get(&s.url("/frontend/settings")).json();
    assert_eq!(v["charLimit"], 77);
    assert_eq!(v["apiKeys"], true);
    assert_eq!(v["keyRequired"], true);
    assert_eq!(v["filesTranslation"], false);
    assert_eq!(v["supportedFilesFormat"], json!([]));
    assert_eq!(v["language"]["target"]["code"], "en");
    // The key guards /detect and the file route as it guards /translate.
    post_json(&s.url("/detect"), &json!({"q": GERMAN})).assert_error(401, "missing_api_key");
    post_json(&s.url("/detect"), &json!({"q": GERMAN, "api_key": "nope"}))
        .assert_error(403, "invalid_api_key");
    let ok = post_json(
        &s.url("/detect"),
        &json!({"q": GERMAN, "api_key": "secret"}),
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
    post_multipart(
        &s.url("/translate_file"),
        &[
            ("file", Some("a.txt"), GERMAN.as_bytes()),
            ("source", None, b"de"),
            ("target", None, b"en"),
            ("api_key", None, b"secret"),
        ],
    )
    .assert_error(403, "files_translation_disabled");
    get(&s.url("/download_file/x.txt")).assert_error(404, "not_found");
}

/// Sends a file to /translate_file; the reply.
fn send_file(s: &Server, name: &str, content: &[u8], source: &str) -> Reply {
    post_multipart(
        &s.url("/translate_file"),
        &[
            ("file", Some(name), content),
            ("source", None, source.as_bytes()),
            ("target", None, b"en"),
        ],
    )
}

/// The download URL of a successful /translate_file reply.
fn file_url(s: &Server, reply: &Reply) -> String {
    assert_eq!(reply.status, 200, "{}", reply.body);
    let url = reply.json()["translatedFileUrl"]
        .as_str()
        .expect("translatedFileUrl")
        .to_string();
    assert!(
        url.starts_with(&s.url("/download_file/")),
        "{url} is not under {}",
        s.base
    );
    url
}

#[test]
fn translate_file_keeps_the_layout_and_serves_the_result() {
    let (_dir, s) = server(&[]);
    let lines = [GERMAN, "Zwei Hunde spielen im Schnee."];
    let expected = by_model(&s, "m-de-en", &lines);

    // Plain text: blank lines, indentation and CRLF line ends kept.
    let content = format!("{}\r\n\r\n   {}  \n", lines[0], lines[1]);
    let url = file_url(
        &s,
        &send_file(&s, "Brief an Oma.txt", content.as_bytes(), "de"),
    );
    let file = get(&url);
    assert_eq!(file.status, 200, "{}", file.body);
    assert_eq!(
        file.body,
        format!("{}\r\n\r\n   {}  \n", expected[0], expected[1])
    );
    assert!(file
        .header("content-type")
        .unwrap()
        .starts_with("text/plain"));
    let disposition = file.header("content-disposition").unwrap();
    assert!(
        disposition.starts_with("attachment") && disposition.contains("Brief_an_Oma.txt"),
        "{disposition}"
    );

    // HTML: markup kept byte for byte, text nodes translated.
    let page = format!(
        "<!DOCTYPE html>\n<html><head><style>p {{ color: red }}</style></head>\n<body><p class=\"a\">{}</p><!-- x --><b>{}</b></body></html>\n",
        lines[0], lines[1]
    );
    let url = file_url(&s, &send_file(&s, "seite.HTML", page.as_bytes(), "de"));
    let file = get(&url);
    let esc = |t: &str| {
        t.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    assert_eq!(
        file.body,
        format!(
            "<!DOCTYPE html>\n<html><head><style>p {{ color: red }}</style></head>\n<body><p class=\"a\">{}</p><!-- x --><b>{}</b></body></html>\n",
            esc(&expected[0]),
            esc(&expected[1])
        )
    );
    assert!(file
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));

    // `auto`: a French file goes to the French model.
    let url = file_url(&s, &send_file(&s, "f.txt", FRENCH.as_bytes(), "auto"));
    assert_eq!(get(&url).body, by_model(&s, "m-fr-en", &[FRENCH])[0]);
}

#[test]
fn translate_file_refuses_bad_files_with_json_4xx() {
    let (_dir, s) = server(&[]);
    let url = s.url("/translate_file");
    let msg =
        send_file(&s, "report.pdf", b"%PDF-1.4", "de").assert_error(400, "unsupported_file_format");
    assert!(msg.contains(".txt") && msg.contains(".html"), "{msg}");
    send_file(&s, "noextension", GERMAN.as_bytes(), "de")
        .assert_error(400, "unsupported_file_format");
    send_file(&s, "empty.txt", b"", "de").assert_error(400, "empty_file");
    send_file(&s, "blank.txt", b" \n\t\r\n", "de").assert_error(400, "empty_file");
    send_file(&s, "tags.html", b"<p> </p><br/>", "de").assert_error(400, "empty_file");
    let msg = send_file(&s, "latin1.txt", b"Stra\xdfe", "de").assert_error(400, "invalid_utf8");
    assert!(msg.contains("offset 4"), "{msg}");
    send_file(&s, "big.txt", &vec![b'a'; 5000], "de").assert_error(413, "body_too_large");
    let six = "Ein Hund.\n".repeat(6);
    send_file(&s, "six.txt", six.as_bytes(), "de").assert_error(400, "too_many_texts");
    let long = format!("Ein Hund.\n{}\n", "x".repeat(201));
    let msg = send_file(&s, "long.txt", long.as_bytes(), "de").assert_error(400, "text_too_long");
    assert!(msg.contains("file text 1"), "{msg}");
    send_file(&s, "pair.txt", GERMAN.as_bytes(), "xx")
        .assert_error(400, "unsupported_language_pair");
    send_file(&s, "what.txt", b"12345", "auto").assert_error(400, "undetected_language");
    // Missing parts: no file, a `file` field that is no file, no target.
    post_multipart(&url, &[("source", None, b"de"), ("target", None, b"en")])
        .assert_error(400, "no_file");
    post_multipart(
        &url,
        &[
            ("file", None, b"text"),
            ("source", None, b"de"),
            ("target", None, b"en"),
        ],
    )
    .assert_error(400, "no_file");
    let msg = post_multipart(
        &url,
        &[("file", Some("a.txt"), b"Hund"), ("source", None, b"de")],
    )
    .assert_error(400, "invalid_field");
    assert!(msg.contains("target"), "{msg}");
    post_json(&url, &json!({"file": "a"})).assert_error(415, "unsupported_media_type");
    post_raw(&url, "multipart/form-data; boundary=zz", b"garbage")
        .assert_error(400, "invalid_form");
    get(&url).assert_error(405, "method_not_allowed");
    get(&s.url("/download_file/0123.txt")).assert_error(404, "not_found");
    get(&s.url("/download_file/..%2F..%2Fetc%2Fpasswd")).assert_error(404, "not_found");
}

#[test]
fn stored_files_are_bounded_in_number_and_time() {
    let (_dir, s) = server(&["--max-stored-files", "2", "--file-ttl-s", "3"]);
    let urls: Vec<String> = (0..3)
        .map(|i| {
            let text = format!("{GERMAN}\n{i}\n");
            file_url(
                &s,
                &send_file(&s, &format!("f{i}.txt"), text.as_bytes(), "de"),
            )
        })
        .collect();
    assert_ne!(urls[1], urls[2]);
    // Three stored with room for two: the oldest went.
    let gone = get(&urls[0]);
    let msg = gone.assert_error(404, "not_found");
    assert!(msg.contains("3 s") && msg.contains("2"), "{msg}");
    assert_eq!(get(&urls[1]).status, 200);
    assert_eq!(get(&urls[2]).status, 200);
    // And past their time, none is left.
    std::thread::sleep(std::time::Duration::from_millis(3500));
    get(&urls[2]).assert_error(404, "not_found");
}

#[test]
fn of_two_models_of_one_pair_the_first_given_answers_libretranslate() {
    // Two German→English models (a newer one first, say) and English→German: a request that
    // names no model is not ambiguous; the first `--model` of its pair answers it.
    let dir = tempfile::tempdir().unwrap();
    let first = bundle(dir.path(), "everyday-de-en", ("de", "en"), 4);
    let second = bundle(dir.path(), "captions-de-en", ("de", "en"), 5);
    let en_de = bundle(dir.path(), "everyday-en-de", ("en", "de"), 6);
    let s = Server::serving(&[&first, &second, &en_de], &["--beam-size", "2"]);
    let from_first = by_model(&s, "everyday-de-en", &[GERMAN]);
    let from_second = by_model(&s, "captions-de-en", &[GERMAN]);
    assert_ne!(
        from_first, from_second,
        "two random models must translate differently for this test to tell them apart"
    );
    for source in ["de", "auto"] {
        let r = post_json(
            &s.url("/translate"),
            &json!({"q": GERMAN, "source": source, "target": "en"}),
        );
        assert_eq!(r.status, 200, "source {source}: {}", r.body);
        assert_eq!(r.json()["translatedText"], from_first[0], "source {source}");
    }
    let v1 = post_json(
        &s.url("/v1/translate"),
        &json!({"text": GERMAN, "source": "de", "target": "en", "beam_size": 2}),
    );
    assert_eq!(v1.json()["model"], "everyday-de-en", "{}", v1.body);
    // Named, the second answers; /languages lists the pair once per direction.
    assert_eq!(by_model(&s, "captions-de-en", &[GERMAN]), from_second);
    let langs = request("GET", &s.url("/languages"), &[], b"").json();
    let de = langs
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["code"] == "de")
        .unwrap();
    assert_eq!(de["targets"], json!(["en"]));
}

#[test]
fn paragraphs_go_sentence_by_sentence_and_keep_their_breaks() {
    let (_dir, s) = server(&[]);
    let sentences = [
        GERMAN,
        "Zwei Hunde spielen im Schnee.",
        "Die Frau liest ein Buch.",
    ];
    let each = by_model(&s, "m-de-en", &sentences);
    let text = format!("{} {}\n\n{}", sentences[0], sentences[1], sentences[2]);
    let expected = format!("{} {}\n\n{}", each[0], each[1], each[2]);
    let r = post_json(
        &s.url("/translate"),
        &json!({"q": text, "source": "de", "target": "en"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["translatedText"], expected);
    // The same through /v1/translate, and in a file.
    let v1 = by_model(&s, "m-de-en", &[text.as_str()]);
    assert_eq!(v1[0], expected);
    let url = file_url(&s, &send_file(&s, "absatz.txt", text.as_bytes(), "de"));
    assert_eq!(get(&url).body, expected);
    // A file already in the target language, with `auto`, comes back as it is.
    let same = post_multipart(
        &s.url("/translate_file"),
        &[
            ("file", Some("deutsch.txt"), text.as_bytes()),
            ("source", None, b"auto"),
            ("target", None, b"de"),
        ],
    );
    assert_eq!(get(&file_url(&s, &same)).body, text);
}
