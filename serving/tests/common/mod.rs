//! Shared by the integration tests: untrained bundles, a running `nmt-serve`
//! child process, and a small HTTP client.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/multi30k");

/// German and English lines to train the bundles' vocabulary on: the first
/// Multi30k training lines when the shared data is there, a few built-in
/// sentences otherwise (the vocabulary only needs to cover the test texts).
pub fn lines() -> Vec<String> {
    let mut out = Vec::new();
    for lang in ["de", "en"] {
        let path = Path::new(DATA).join(format!("train.{lang}"));
        if let Ok(text) = std::fs::read_to_string(&path) {
            out.extend(text.lines().take(300).map(String::from));
        }
    }
    if out.is_empty() {
        eprintln!("note: {DATA} absent; training the test vocabulary on built-in sentences");
    }
    out.extend(SENTENCES.iter().map(|s| s.to_string()));
    out
}

/// Test sentences (German, Multi30k style).
pub const SENTENCES: &[&str] = &[
    "Ein Mann fährt Fahrrad.",
    "Zwei Hunde spielen im Schnee.",
    "Eine Frau liest ein Buch im Park.",
    "Kinder spielen auf der Straße.",
    "Ein kleines Mädchen klettert auf einen Baum.",
    "Ein Mann in einem blauen Hemd steht auf einer Leiter.",
    "Zwei junge Männer spielen Fußball.",
    "Eine Gruppe von Menschen steht vor einem Gebäude.",
    "Ein Hund rennt über eine Wiese.",
    "Eine ältere Frau sitzt auf einer Bank.",
    "Ein Junge springt in einen See.",
    "Leute sitzen in einem Restaurant.",
    "A man rides a bike.",
    "Two dogs play in the snow.",
    "A woman reads a book in the park.",
    "Children play on the street.",
];

/// Writes an untrained bundle named `name` for `pair` under `root`.
pub fn bundle(root: &Path, name: &str, pair: (&str, &str), seed: i64) -> PathBuf {
    let dir = root.join(name);
    let owned = lines();
    let refs: Vec<&str> = owned.iter().map(String::as_str).collect();
    model::testing::write_untrained_bundle(&dir, &refs, 200, pair, seed).unwrap();
    dir
}

/// Two untrained bundles under `root`, German→English (`m-de-en`, written with `seeds.0`)
/// and English→German (`m-en-de`, `seeds.1`).
pub fn both_ways(root: &Path, seeds: (i64, i64)) -> (PathBuf, PathBuf) {
    (
        bundle(root, "m-de-en", ("de", "en"), seeds.0),
        bundle(root, "m-en-de", ("en", "de"), seeds.1),
    )
}

/// `nmt-serve` serving one untrained German→English bundle, `name` written with `seed` in a
/// new temporary folder (which lives as long as the returned `TempDir`), with `flags`.
pub fn de_en_server(name: &str, seed: i64, flags: &[&str]) -> (tempfile::TempDir, PathBuf, Server) {
    let dir = tempfile::tempdir().unwrap();
    let m = bundle(dir.path(), name, ("de", "en"), seed);
    let s = Server::serving(&[&m], flags);
    (dir, m, s)
}

/// A running `nmt-serve`, killed on drop.
pub struct Server {
    pub child: Child,
    pub base: String,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Server {
    /// Starts `nmt-serve` on a free loopback port with `args` (plus `--addr`, `--device cpu`, one torch thread).
    pub fn start(args: &[&str]) -> Server {
        Self::start_with_env(args, &[])
    }

    /// Starts `nmt-serve` serving `models` (a `--model` each), then `flags` (see [`Server::start`]).
    pub fn serving(models: &[&Path], flags: &[&str]) -> Server {
        let mut args = Vec::new();
        for m in models {
            args.extend(["--model", m.to_str().unwrap()]);
        }
        args.extend_from_slice(flags);
        Self::start(&args)
    }

    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_nmt-serve"));
        cmd.args([
            "--addr",
            "127.0.0.1:0",
            "--device",
            "cpu",
            "--torch-threads",
            "1",
        ])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn nmt-serve");
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("nmt-serve listening on ") {
                    let _ = tx.send(url.split_whitespace().next().unwrap_or("").to_string());
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(base) => Server {
                child,
                base,
                stderr: Some(stderr),
            },
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "nmt-serve did not start; stderr:\n{}",
                    stderr.join().unwrap_or_default()
                );
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits for exit and returns the status code and stderr.
    pub fn wait(mut self) -> (Option<i32>, String) {
        let status = self.child.wait().unwrap();
        let err = self
            .stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        (status.code(), err)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {} body is not JSON ({e}): {}",
                self.status, self.body
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Asserts an error answer: this status, JSON `{"error": non-empty, "code": code}`.
    pub fn assert_error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status, status, "body: {}", self.body);
        let v = self.json();
        assert_eq!(v["code"], code, "body: {}", self.body);
        let msg = v["error"].as_str().expect("error message").to_string();
        assert!(!msg.is_empty());
        msg
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(120))
        .build()
}

fn finish(result: Result<ureq::Response, ureq::Error>) -> Reply {
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport error: {e}"),
    };
    let status = response.status();
    let headers = response
        .headers_names()
        .into_iter()
        .filter_map(|k| response.header(&k).map(|v| (k.clone(), v.to_string())))
        .collect();
    let body = response.into_string().unwrap_or_default();
    Reply {
        status,
        headers,
        body,
    }
}

/// Like [`request`] but returns transport errors instead of panicking.
pub fn try_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Reply, String> {
    let mut req = agent().request(method, url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    match req.send_bytes(body) {
        Err(ureq::Error::Transport(t)) => Err(t.to_string()),
        other => Ok(finish(other)),
    }
}

pub fn get(url: &str) -> Reply {
    finish(agent().get(url).call())
}

pub fn request(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    try_request(method, url, headers, body).unwrap_or_else(|e| panic!("transport error: {e}"))
}

pub fn post_json(url: &str, body: &Value) -> Reply {
    post_raw(url, "application/json", body.to_string().as_bytes())
}

pub fn post_raw(url: &str, content_type: &str, body: &[u8]) -> Reply {
    request("POST", url, &[("Content-Type", content_type)], body)
}

/// The texts of a `/v1/translate` answer.
pub fn texts_of(reply: &Reply) -> Vec<String> {
    assert_eq!(reply.status, 200, "body: {}", reply.body);
    reply.json()["translations"]
        .as_array()
        .expect("translations")
        .iter()
        .map(|t| t["text"].as_str().expect("text").to_string())
        .collect()
}

/// One field of a multipart/form-data body: name, file name (for a file), content.
pub type Field<'a> = (&'a str, Option<&'a str>, &'a [u8]);

/// A multipart/form-data body, as a browser's `FormData` sends it: (Content-Type, bytes).
pub fn multipart(fields: &[Field]) -> (String, Vec<u8>) {
    let boundary = "----nmtTestBoundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, filename, data) in fields {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match filename {
            Some(f) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// POSTs a multipart/form-data body.
pub fn post_multipart(url: &str, fields: &[Field]) -> Reply {
    let (content_type, body) = multipart(fields);
    post_raw(url, &content_type, &body)
}
