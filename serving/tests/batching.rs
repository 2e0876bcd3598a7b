//! Dynamic batching under concurrency, queue overflow, deadlines and graceful shutdown.

mod common;

use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

fn metric(body: &str, name: &str) -> f64 {
    metric_or(body, name, None)
}

/// `name`'s value in a /metrics body; `default` when the series is absent (a labelled counter
/// appears at its first increment).
fn metric_or(body: &str, name: &str, default: Option<f64>) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.trim().parse().ok()))
        .or(default)
        .unwrap_or_else(|| panic!("{name} missing in\n{body}"))
}

/// The server's queue depth (requests accepted and not yet answered) and queue-full refusals.
fn queue_state(s: &Server) -> (f64, f64) {
    let body = get(&s.url("/metrics")).body;
    (
        metric(&body, "nmt_queue_depth"),
        metric_or(
            &body,
            "nmt_rejected_total{reason=\"queue_full\"}",
            Some(0.0),
        ),
    )
}

/// Polls `done` until it holds; fails naming `what` after 60 s.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// The tests of this file time requests against batch windows: one server at a time, so that
/// they do not compete for the CPU.
fn one_server_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// POSTs `text` to `url` (`/v1/translate`) from a new thread: the reply, when joined.
fn post_text_in_background(url: &str, text: &'static str) -> thread::JoinHandle<Reply> {
    let url = url.to_owned();
    thread::spawn(move || post_json(&url, &json!({ "text": text })))
}

#[test]
fn concurrent_requests_are_batched_and_answered_in_order() {
    let _one = one_server_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let m = bundle(dir.path(), "m", ("de", "en"), 11);
    // Reference: each text translated alone, one request at a time, by a server that does
    // not wait for company.
    let alone: Vec<String> = {
        let single = Server::serving(&[&m], &["--batch-wait-ms", "0", "--beam-size", "2"]);
        let url = single.url("/v1/translate");
        SENTENCES
            .iter()
            .map(|t| texts_of(&post_json(&url, &json!({"text": t})))[0].clone())
            .collect()
    };
    // A batch window wide enough that 32 clients started together share model calls even on
    // a busy machine.
    let s = Server::serving(
        &[&m],
        &[
            "--batch-wait-ms",
            "300",
            "--workers",
            "4",
            "--beam-size",
            "2",
        ],
    );
    let url = s.url("/v1/translate");
    let before = get(&s.url("/metrics")).body;
    let calls_before = metric(&before, "nmt_batch_requests_count");

    // 32 clients at once, each with one or two texts, in varying order.
    let handles: Vec<_> = (0..32)
        .map(|i| {
            let url = url.clone();
            thread::spawn(move || {
                let a = i % SENTENCES.len();
                let b = (i * 7 + 3) % SENTENCES.len();
                let texts = if i % 2 == 0 {
                    vec![SENTENCES[a]]
                } else {
                    vec![SENTENCES[a], SENTENCES[b]]
                };
                let reply = post_json(&url, &json!({"texts": texts}));
                (vec![a, b], i % 2 == 0, texts_of(&reply))
            })
        })
        .collect();
    for h in handles {
        let (idx, single, got) = h.join().unwrap();
        let want: Vec<String> = if single {
            vec![alone[idx[0]].clone()]
        } else {
            idx.iter().map(|&k| alone[k].clone()).collect()
        };
        assert_eq!(got, want, "texts {idx:?}");
    }
    let after = get(&s.url("/metrics")).body;
    let calls = metric(&after, "nmt_batch_requests_count") - calls_before;
    let requests =
        metric(&after, "nmt_batch_requests_sum") - metric(&before, "nmt_batch_requests_sum");
    assert_eq!(requests, 32.0);
    assert!(
        calls < 32.0,
        "32 concurrent requests should share model calls, got {calls} calls"
    );
    // 16 requests of one text and 16 of two.
    assert_eq!(
        metric(&after, "nmt_sentences_total") - metric(&before, "nmt_sentences_total"),
        48.0
    );
}

#[test]
fn full_queue_answers_503_with_retry_after_and_recovers() {
    let _one = one_server_at_a_time();
    // A queue of two and a batcher that waits two seconds for company:
    // the first two requests are accepted, everything else meanwhile is refused.
    let (_dir, _, s) = de_en_server(
        "m",
        12,
        &[
            "--queue-capacity",
            "2",
            "--batch-wait-ms",
            "2000",
            "--workers",
            "4",
        ],
    );
    let url = s.url("/v1/translate");
    let first = post_text_in_background(&url, SENTENCES[0]);
    wait_until("the first request in the queue", || {
        queue_state(&s) == (1.0, 0.0)
    });
    let handles: Vec<_> = (0..8)
        .map(|i| post_text_in_background(&url, SENTENCES[i + 1]))
        .collect();
    // While saturated, /ready says so (the batcher still holds the first two).
    wait_until("two requests queued and seven refused", || {
        queue_state(&s) == (2.0, 7.0)
    });
    let ready = get(&s.url("/ready"));
    let mut replies: Vec<Reply> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    replies.push(first.join().unwrap());
    let ok = replies.iter().filter(|r| r.status == 200).count();
    let full: Vec<&Reply> = replies.iter().filter(|r| r.status == 503).collect();
    assert_eq!(ok, 2, "exactly the queue's capacity is served: {replies:?}");
    assert_eq!(full.len(), 7, "{replies:?}");
    for r in &full {
        r.assert_error(503, "queue_full");
        assert_eq!(r.header("retry-after"), Some("1"));
    }
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert_eq!(ready.json()["status"], "saturated");
    // Once drained, the server is ready and answers again.
    wait_until("the queue to drain", || queue_state(&s).0 == 0.0);
    let ready = get(&s.url("/ready"));
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(post_json(&url, &json!({"text": SENTENCES[0]})).status, 200);
    let metrics = get(&s.url("/metrics")).body;
    assert_eq!(
        metric(&metrics, "nmt_rejected_total{reason=\"queue_full\"}"),
        7.0
    );
}

#[test]
fn deadline_answers_504() {
    let _one = one_server_at_a_time();
    // The batcher waits 10 s for company; the deadline is 100 ms, so only the deadline can
    // answer within the window.
    let (_dir, _, s) = de_en_server(
        "m",
        13,
        &["--batch-wait-ms", "10000", "--request-timeout-ms", "100"],
    );
    let started = Instant::now();
    let r = post_json(&s.url("/v1/translate"), &json!({"text": SENTENCES[0]}));
    r.assert_error(504, "deadline_exceeded");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "answered by the batcher"
    );
    let r = post_json(
        &s.url("/translate"),
        &json!({"q": SENTENCES[0], "source": "de", "target": "en"}),
    );
    r.assert_error(504, "deadline_exceeded");
    // The server is fine afterwards.
    assert_eq!(get(&s.url("/health")).status, 200);
}

fn shutdown_finishes_in_flight(signal: nix::sys::signal::Signal) {
    let _one = one_server_at_a_time();
    // Requests sit in the batcher for up to 2 s; the signal comes once all four are queued.
    let (_dir, _, s) = de_en_server("m", 14, &["--batch-wait-ms", "2000", "--workers", "2"]);
    let url = s.url("/v1/translate");
    let handles: Vec<_> = (0..4)
        .map(|i| post_text_in_background(&url, SENTENCES[i]))
        .collect();
    wait_until("four requests in flight", || queue_state(&s).0 == 4.0);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(s.pid()), signal).unwrap();
    for h in handles {
        let r = h.join().unwrap();
        assert_eq!(r.status, 200, "in-flight request must complete: {}", r.body);
        assert_eq!(texts_of(&r).len(), 1);
    }
    let (code, stderr) = s.wait();
    assert_eq!(
        code,
        Some(0),
        "exit status after {signal:?}; stderr:\n{stderr}"
    );
    // Logs into a pipe are plain text: no ANSI colour codes.
    assert!(stderr.contains("listening"), "{stderr}");
    assert!(
        !stderr.contains('\x1b'),
        "colour codes in piped logs:\n{stderr}"
    );
    assert!(
        try_request("GET", &url, &[], b"").is_err(),
        "no longer listening"
    );
}

#[test]
fn sigterm_drains_and_exits_0() {
    shutdown_finishes_in_flight(nix::sys::signal::Signal::SIGTERM);
}

#[test]
fn sigint_drains_and_exits_0() {
    shutdown_finishes_in_flight(nix::sys::signal::Signal::SIGINT);
}

#[test]
fn full_queue_refuses_before_reading_the_body_and_holds_the_refusal() {
    use std::io::{Read, Write};
    let _one = one_server_at_a_time();
    let (_dir, _, s) = de_en_server(
        "m",
        15,
        &[
            "--queue-capacity",
            "1",
            "--batch-wait-ms",
            "3000",
            "--reject-delay-ms",
            "400",
        ],
    );
    let url = s.url("/v1/translate");
    let first = post_text_in_background(&url, SENTENCES[0]);
    wait_until("the first request in the queue", || {
        queue_state(&s).0 == 1.0
    });
    // A request that announces 100 kB of body and sends 8 bytes of it: with the queue full
    // the server answers without waiting for the rest.
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let sent = Instant::now();
    conn.write_all(
        b"POST /v1/translate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"text\":",
    )
    .unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("queue_full") {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
        }
    }
    let held = sent.elapsed();
    let answer = String::from_utf8_lossy(&answer).to_string();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1"),
        "{answer}"
    );
    assert!(answer.contains("\"code\":\"queue_full\""), "{answer}");
    // Held --reject-delay-ms before it went out (a lower bound: the refusal is paced).
    assert!(
        held >= Duration::from_millis(400),
        "answered after {held:?}"
    );
    assert_eq!(first.join().unwrap().status, 200);
    let metrics = get(&s.url("/metrics")).body;
    assert_eq!(
        metric(&metrics, "nmt_rejected_total{reason=\"queue_full\"}"),
        1.0
    );
}
