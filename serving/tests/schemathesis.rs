//! Schemathesis (the pinned release from PyPI, installed into the project's virtual
//! environment on first use) fuzzes the running `nmt-serve` from its own `/openapi.json`
//! with every check: no server error, every answer's status, content type, headers and
//! body as documented, requests the schema allows accepted and those it forbids refused,
//! and 405 with `Allow` for the methods a route does not take. Small limits keep the
//! model's work short; the examples per operation and a wall-clock limit bound the run.
//! If schemathesis cannot be installed the test fails, saying it did NOT run: it never
//! passes without having fuzzed the server.

mod common;
#[path = "../../test-support/pypi.rs"]
mod pypi;

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The schemathesis release this test drives.
const PIN: &str = "4.32.5";

/// Generated requests per operation and phase.
const MAX_EXAMPLES: &str = "25";

/// The whole run is stopped (and the test fails) past this.
const WALL_CLOCK: Duration = Duration::from_secs(240);

fn schemathesis_python() -> PathBuf {
    let check = format!(
        "import importlib.metadata as m, sys, schemathesis; sys.exit(m.version('schemathesis') != '{PIN}')"
    );
    pypi::pinned("schemathesis", PIN, &check).unwrap_or_else(|e| {
        panic!("schemathesis test NOT RUN: the server was NOT fuzzed against its schema: {e}")
    })
}

#[test]
fn schemathesis_finds_nothing_with_all_checks() {
    let python = schemathesis_python();
    // Limits small enough that every generated request is quick for the model, and low
    // enough that the fuzzer reaches them.
    let (dir, _, s) = de_en_server(
        "m-de-en",
        5,
        &[
            "--max-chars",
            "40",
            "--max-texts",
            "3",
            "--max-beam",
            "3",
            "--max-n-best",
            "2",
            "--beam-size",
            "2",
            "--max-output-tokens",
            "8",
            "--max-source-tokens",
            "16",
            "--max-file-texts",
            "3",
            "--max-body-bytes",
            "4096",
        ],
    );
    // A translated file to download, so that /download_file is fuzzed past its 404.
    let upload = post_multipart(
        &s.url("/translate_file"),
        &[
            ("file", Some("a.txt"), SENTENCES[0].as_bytes()),
            ("source", None, b"de"),
            ("target", None, b"en"),
        ],
    );
    assert_eq!(upload.status, 200, "{}", upload.body);
    let file_url = upload.json()["translatedFileUrl"]
        .as_str()
        .unwrap()
        .to_string();
    let name = file_url.rsplit('/').next().unwrap();
    // What a file may hold (UTF-8 text of at most --max-file-texts non-blank lines of at
    // most --max-chars characters) is beyond JSON Schema: the operation's description says
    // it, so a file the schema allows may be refused there with 400, which this one
    // operation's check of schema-valid data accepts.
    std::fs::write(
        dir.path().join("schemathesis.toml"),
        format!(
            "[[operations]]\ninclude-path = \"/translate_file\"\n\
             checks.positive_data_acceptance.expected-statuses = [\"2xx\", \"400\", \"401\", \"403\", \"404\", \"429\"]\n\n\
             [[operations]]\ninclude-path = \"/download_file/{{name}}\"\nparameters = {{ name = \"{name}\" }}\n"
        ),
    )
    .unwrap();
    let schema = s.url("/openapi.json");
    let mut child = Command::new(&python)
        .args(["-m", "schemathesis.cli", "--no-color", "--config-file"])
        .arg(dir.path().join("schemathesis.toml"))
        .args(["run", &schema])
        .args(["--checks", "all", "--max-examples", MAX_EXAMPLES])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args([
            "--workers",
            "2",
            "--seed",
            "1",
            "--generation-database",
            "none",
        ])
        .args(["--request-timeout", "30"])
        // Nothing of the run is left in the source tree.
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run schemathesis");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > WALL_CLOCK {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "schemathesis ran past {WALL_CLOCK:?}; output so far:\n{}",
                reader.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = reader.join().unwrap_or_default();
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    eprintln!(
        "schemathesis {PIN}: {:.0} s, exit {status}",
        started.elapsed().as_secs_f64()
    );
    assert!(
        status.success(),
        "schemathesis found failures:\n{out}\n{err}"
    );
    // It must have tested every operation, not skipped them.
    let tested = out
        .lines()
        .find(|l| l.contains("API Operations:") || l.contains("Operations:"));
    assert!(tested.is_some(), "no summary in the output:\n{out}\n{err}");
    assert!(
        !out.contains("Skipped:") || out.contains("Skipped: 0"),
        "operations were skipped:\n{out}"
    );
}
