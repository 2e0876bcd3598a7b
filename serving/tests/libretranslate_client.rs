//! LibreTranslate's own Python client (`libretranslatepy`, the pinned release
//! from PyPI, installed into the project's virtual environment on first use)
//! against the real `nmt-serve`: languages, translate with an explicit and an
//! `auto` source, detect, and an error. If the client cannot be installed the
//! test fails: it never passes without having driven the client.

mod common;
#[path = "../../test-support/process.rs"]
mod process;
#[path = "../../test-support/pypi.rs"]
mod pypi;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::{json, Value};

/// The client release this test drives.
const CLIENT_PIN: &str = "2.1.4";

const GERMAN: &str = "Ein Mann fährt mit dem Fahrrad über die Straße.";
const FRENCH: &str = "Deux chiens jouent dans la neige avec un enfant.";
const ENGLISH: &str = "Two dogs are playing in the snow with a ball.";

/// The venv's Python with `libretranslatepy==CLIENT_PIN` importable, installing
/// it with pip when it is not; panics, saying why, when that is impossible.
fn client_python() -> PathBuf {
    let check = format!(
        "import importlib.metadata as m, sys, libretranslatepy; sys.exit(m.version('libretranslatepy') != '{CLIENT_PIN}')"
    );
    pypi::pinned("libretranslatepy", CLIENT_PIN, &check)
        .unwrap_or_else(|e| panic!("LibreTranslate client test NOT RUN: {e}"))
}

#[test]
fn libretranslate_python_client_works_against_the_server() {
    let python = client_python();
    let dir = tempfile::tempdir().unwrap();
    let de_en = bundle(dir.path(), "m-de-en", ("de", "en"), 1);
    let fr_en = bundle(dir.path(), "m-fr-en", ("fr", "en"), 2);
    let s = Server::serving(&[&de_en, &fr_en], &["--beam-size", "2"]);
    let direct = |model: &str, text: &str| {
        texts_of(&post_json(
            &s.url("/v1/translate"),
            &json!({"text": text, "model": model, "beam_size": 2}),
        ))
        .remove(0)
    };
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/libretranslate_client.py");
    let out = process::output_ok(
        Command::new(&python)
            .arg(&script)
            .args([s.base.as_str(), GERMAN, FRENCH, ENGLISH]),
        "the client script failed:\n",
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "client output is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    assert_eq!(got["version"], CLIENT_PIN);
    assert_eq!(
        got["languages"]["ok"],
        json!([
            {"code": "de", "name": "German", "targets": ["en"]},
            {"code": "en", "name": "English", "targets": []},
            {"code": "fr", "name": "French", "targets": ["en"]}
        ]),
        "{got}"
    );
    let de = direct("m-de-en", GERMAN);
    let fr = direct("m-fr-en", FRENCH);
    assert_eq!(got["explicit"]["ok"], de, "{got}");
    // `auto` through the client: detection sends each text to its own model.
    assert_eq!(got["auto_de"]["ok"], de, "{got}");
    assert_eq!(got["auto_fr"]["ok"], fr, "{got}");
    for (key, lang) in [
        ("detect_de", "de"),
        ("detect_fr", "fr"),
        ("detect_en", "en"),
    ] {
        let d = &got[key]["ok"];
        assert_eq!(d[0]["language"], lang, "{key}: {got}");
        let c = d[0]["confidence"].as_f64().unwrap_or(-1.0);
        assert!(c > 0.0 && c <= 100.0, "{key}: confidence {c}");
    }
    assert_eq!(got["bad_pair"]["status"], 400, "{got}");
    assert_eq!(got["bad_pair"]["body"]["code"], "unsupported_language_pair");
    // The pinned client has no file method, so files are not driven through it;
    // tests/libretranslate.rs covers /translate_file and /download_file over HTTP.
    assert_eq!(
        got["file_method"],
        Value::Null,
        "libretranslatepy {CLIENT_PIN} grew a file method: drive /translate_file through it here"
    );
    eprintln!(
        "note: libretranslatepy {CLIENT_PIN} has no file translation method; /translate_file is tested over HTTP in tests/libretranslate.rs"
    );
}
