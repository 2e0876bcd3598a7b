//! The web page end to end in headless Chromium: type a sentence, click
//! Translate, see the translation, the alternatives and the attention heatmap.
//!
//! Chromium is driven over the DevTools protocol (a websocket, `tungstenite`):
//! no chromedriver, no browser download. Needs Debian's `chromium`
//! (scripts/setup-system.sh installs it); without it this test fails rather
//! than passing silently.

mod common;

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in ["/usr/bin", "/usr/local/bin", "/snap/bin"] {
            let p = PathBuf::from(dir).join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "Chromium is not installed: run scripts/setup-system.sh (it installs Debian's `chromium`); \
         this end-to-end test of the web page needs it"
    );
}

/// A headless Chromium and a DevTools connection to its page.
struct Browser {
    child: Child,
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn launch() -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let child = Command::new(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromium");
        // Chromium writes the port it chose into the profile.
        let port_file = profile.path().join("DevToolsActivePort");
        let started = Instant::now();
        let port = loop {
            if let Some(port) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|s| s.lines().next().and_then(|l| l.trim().parse::<u16>().ok()))
            {
                break port;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "chromium did not open its DevTools port"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let targets: Value = get(&format!("http://127.0.0.1:{port}/json/list")).json();
        let page = targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .expect("a page target");
        let url = page["webSocketDebuggerUrl"].as_str().unwrap();
        let (ws, _) = tungstenite::connect(url).expect("DevTools websocket");
        Browser {
            child,
            ws,
            next_id: 0,
            _profile: profile,
        }
    }

    /// Sends a DevTools command and returns its result.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({"id": id, "method": method, "params": params});
        self.ws.send(Message::text(msg.to_string())).unwrap();
        loop {
            let Message::Text(text) = self.ws.read().unwrap() else {
                continue;
            };
            let v: Value = serde_json::from_str(text.as_str()).unwrap();
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// Evaluates JavaScript in the page; fails on a thrown exception.
    fn eval(&mut self, js: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": js, "returnByValue": true, "awaitPromise": true}),
        );
        assert!(r.get("exceptionDetails").is_none(), "{js}: {r}");
        r["result"]["value"].clone()
    }

    /// Opens the page at `url`, waits for `model` in its model list (filled from
    /// /v1/models), types `sentence` into the text box as key input into the focused
    /// element, clicks Translate and waits for the translation or an error.
    fn translate_on_page(&mut self, url: &str, model: &str, sentence: &str) {
        self.call("Page.enable", json!({}));
        self.call("Page.navigate", json!({"url": url}));
        self.wait_for(
            &format!(
                "document.readyState === 'complete' && !!document.querySelector(\"#model option[value='{model}']\")"
            ),
            "the model list",
        );
        self.eval("document.getElementById('source').focus()");
        self.call("Input.insertText", json!({"text": sentence}));
        assert_eq!(
            self.eval("document.getElementById('source').value"),
            json!(sentence)
        );
        self.eval("document.getElementById('translate').click()");
        self.wait_for(
            "document.getElementById('result').dataset.done === '1' || document.getElementById('error').textContent !== ''",
            "the translation",
        );
    }

    /// Polls `js` until it is true.
    fn wait_for(&mut self, js: &str, what: &str) {
        let started = Instant::now();
        while self.eval(js) != json!(true) {
            if started.elapsed() > Duration::from_secs(60) {
                let page = self.eval("document.body ? document.body.innerText : ''");
                panic!("timed out waiting for {what}; page text:\n{page}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn page_translates_and_draws_the_heatmap() {
    let chromium_path = chromium();
    assert!(chromium_path.exists());
    let (_dir, _, s) = de_en_server("web-de-en", 21, &[]);
    let sentence = SENTENCES[5];
    // What the page should show: the API's answer with the page's settings (beam 5, 2 alternatives).
    let expected = post_json(
        &s.url("/v1/translate"),
        &json!({"text": sentence, "beam_size": 5, "n_best": 3, "return_attention": true}),
    )
    .json();
    let t = &expected["translations"][0];
    let rows = t["target_tokens"].as_array().unwrap().len();
    let cols = t["source_tokens"].as_array().unwrap().len();

    let mut b = Browser::launch();
    b.translate_on_page(&s.url("/"), "web-de-en", sentence);
    let page = b.eval(
        "JSON.stringify({
            result: document.getElementById('result').textContent,
            error: document.getElementById('error').textContent,
            sources: [...document.querySelectorAll('table.heatmap th.src')].map(th => th.textContent),
            rows: [...document.querySelectorAll('table.heatmap tr')].slice(1).map(tr => ({
                target: tr.querySelector('th').textContent,
                cells: [...tr.querySelectorAll('td')].map(td => ({
                    background: td.style.background,
                    text: td.textContent,
                    title: td.title
                }))
            })),
            alternatives: document.querySelectorAll('#alternatives li').length
        })",
    );
    let page: Value = serde_json::from_str(page.as_str().unwrap()).unwrap();
    assert_eq!(page["error"], "", "the page shows an error: {page}");
    assert_eq!(page["result"], t["text"], "{page}");
    // Heatmap: one column per source piece, one row per target piece (there are some: an
    // empty heatmap would check nothing), and each cell shows the API's attention weight.
    let attention = t["attention"].as_array().unwrap();
    assert!(rows > 0, "the API's translation has no target tokens: {t}");
    assert_eq!(attention.len(), rows);
    assert_eq!(page["sources"], t["source_tokens"], "{page}");
    let page_rows = page["rows"].as_array().unwrap();
    assert_eq!(page_rows.len(), rows, "{page}");
    for (i, (row, weights)) in page_rows.iter().zip(attention).enumerate() {
        assert_eq!(row["target"], t["target_tokens"][i], "row {i}: {page}");
        let (cells, weights) = (
            row["cells"].as_array().unwrap(),
            weights.as_array().unwrap(),
        );
        assert_eq!(cells.len(), cols, "row {i}: {page}");
        assert_eq!(weights.len(), cols);
        for (j, (cell, w)) in cells.iter().zip(weights).enumerate() {
            let w = w.as_f64().unwrap();
            let at = format!("cell ({i}, {j}), weight {w}: {cell}");
            // The tooltip prints the weight to 3 decimals, the text in percent.
            let title = cell["title"].as_str().unwrap();
            let shown: f64 = title.rsplit(": ").next().unwrap().parse().unwrap();
            assert!((shown - w).abs() <= 5e-4 + 1e-9, "{at}");
            let percent: f64 = cell["text"].as_str().unwrap().parse().unwrap();
            assert!((percent - w * 100.0).abs() <= 0.5 + 1e-9, "{at}");
            // The colour's opacity is the weight (browsers keep alpha to about 1/255).
            let background = cell["background"].as_str().unwrap();
            let alpha: f64 = background
                .strip_prefix("rgba(20, 80, 200, ")
                .and_then(|r| r.strip_suffix(')'))
                .unwrap_or_else(|| panic!("{at}: background {background}"))
                .parse()
                .unwrap();
            assert!((alpha - w).abs() <= 0.005, "{at}");
        }
    }
    assert_eq!(
        page["alternatives"],
        t["alternatives"].as_array().unwrap().len(),
        "{page}"
    );
}

/// Colour strings the page gives a value: the gate strips use the heatmap's blue with the
/// value as opacity; the neuron strips blue for positive, red for negative values.
fn alpha_of(background: &str, prefix: &str) -> Option<f64> {
    background
        .strip_prefix(prefix)?
        .strip_suffix(')')?
        .parse()
        .ok()
}

#[test]
fn page_shows_gate_strips_and_explores_a_neuron() {
    let (_dir, _, s) = de_en_server("web-de-en", 21, &[]);
    let sentence = SENTENCES[2];
    let expected = post_json(
        &s.url("/v1/translate"),
        &json!({"text": sentence, "beam_size": 5, "n_best": 3, "return_gates": true,
                "return_neurons": {"side": "encoder", "layer": 1, "direction": "backward", "neurons": [7]}}),
    )
    .json();
    let t = &expected["translations"][0];

    let mut b = Browser::launch();
    b.translate_on_page(&s.url("/"), "web-de-en", sentence);
    let strips = b.eval(
        "JSON.stringify({
            error: document.getElementById('error').textContent,
            strips: [...document.querySelectorAll('#gates .strip')].map(d => ({
                side: d.dataset.side, layer: d.dataset.layer, direction: d.dataset.direction, gate: d.dataset.gate,
                tokens: [...d.querySelectorAll('.tok')].map(s => ({text: s.textContent, background: s.style.background, title: s.title}))
            })),
            layers: [...document.querySelectorAll('#n-layer option')].map(o => o.value)
        })",
    );
    let page: Value = serde_json::from_str(strips.as_str().unwrap()).unwrap();
    assert_eq!(page["error"], "", "{page}");
    // One strip per layer and gate shown (input and forget): 6 layers × 2.
    let shown = page["strips"].as_array().unwrap();
    assert_eq!(shown.len(), 6 * 2, "{page}");
    assert_eq!(page["layers"], json!(["0", "1"]));
    for strip in shown {
        let layer = t["gates"]["layers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| {
                l["side"] == strip["side"]
                    && l["layer"].as_u64().map(|n| n.to_string()).as_deref()
                        == strip["layer"].as_str()
                    && l["direction"] == strip["direction"]
            })
            .unwrap_or_else(|| panic!("no API layer for {strip}"));
        let values = layer["gates"][strip["gate"].as_str().unwrap()]
            .as_array()
            .unwrap();
        let tokens = if strip["side"] == "encoder" {
            &t["gates"]["source_tokens"]
        } else {
            &t["gates"]["target_tokens"]
        };
        let spans = strip["tokens"].as_array().unwrap();
        assert_eq!(spans.len(), values.len(), "{strip}");
        for ((span, v), piece) in spans.iter().zip(values).zip(tokens.as_array().unwrap()) {
            let v = v.as_f64().unwrap();
            assert_eq!(span["text"], *piece, "{strip}");
            let alpha = alpha_of(span["background"].as_str().unwrap(), "rgba(20, 80, 200, ")
                .unwrap_or_else(|| panic!("{span}"));
            assert!((alpha - v).abs() <= 0.005, "{span} vs {v}");
            let shown: f64 = span["title"]
                .as_str()
                .unwrap()
                .rsplit(": ")
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert!((shown - v).abs() <= 5e-4 + 1e-9, "{span} vs {v}");
        }
    }

    // Pick encoder, layer 1, backward, unit 7, and show it.
    b.eval(
        "(() => {
            document.getElementById('n-side').value = 'encoder';
            document.getElementById('n-layer').value = '1';
            document.getElementById('n-direction').value = 'backward';
            document.getElementById('n-index').value = '7';
            document.getElementById('n-show').click();
        })()",
    );
    b.wait_for(
        "document.getElementById('neuron').dataset.done === '1' || document.getElementById('error').textContent !== ''",
        "the neuron",
    );
    let neuron = b.eval(
        "JSON.stringify({
            error: document.getElementById('error').textContent,
            strips: [...document.querySelectorAll('#neuron .strip')].map(d => ({
                unit: d.dataset.unit,
                tokens: [...d.querySelectorAll('.tok')].map(s => ({text: s.textContent, background: s.style.background, title: s.title}))
            }))
        })",
    );
    let page: Value = serde_json::from_str(neuron.as_str().unwrap()).unwrap();
    assert_eq!(page["error"], "", "{page}");
    let strips = page["strips"].as_array().unwrap();
    assert_eq!(strips.len(), 1, "{page}");
    assert_eq!(strips[0]["unit"], "7");
    let unit = &t["neurons"]["units"][0];
    let values = unit["h"].as_array().unwrap();
    let spans = strips[0]["tokens"].as_array().unwrap();
    assert_eq!(spans.len(), values.len(), "{page}");
    for ((span, v), piece) in spans
        .iter()
        .zip(values)
        .zip(t["neurons"]["tokens"].as_array().unwrap())
    {
        let v = v.as_f64().unwrap();
        assert_eq!(span["text"], *piece);
        let background = span["background"].as_str().unwrap();
        let (alpha, positive) = match alpha_of(background, "rgba(33, 102, 172, ") {
            Some(a) => (a, true),
            None => (
                alpha_of(background, "rgba(178, 24, 43, ").unwrap_or_else(|| panic!("{span}")),
                false,
            ),
        };
        assert_eq!(positive, v >= 0.0, "{span} vs {v}");
        assert!((alpha - v.abs().min(1.0)).abs() <= 0.005, "{span} vs {v}");
    }
}
