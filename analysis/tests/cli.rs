//! `nmt-analyze` as a user runs it: on a small, randomly initialised real bundle and
//! generated sentence files (toy data made here), every command writes its figures and
//! data, and bad input fails with a message naming the file, line or option.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const DE: &[&str] = &[
    "ein Mann läuft im Park",
    "eine Frau sitzt",
    "ein roter Hund läuft schnell",
    "ein Mann sitzt im Park",
    "Frau",
];
const EN: &[&str] = &[
    "a man runs in the park",
    "a woman sits",
    "a red dog runs fast",
    "a man sits in the park",
    "woman",
];

struct Fixture {
    dir: tempfile::TempDir,
    bundle: PathBuf,
    src: PathBuf,
    tgt: PathBuf,
}

/// Writes an untrained bundle for `pair` at `path`, its vocabulary trained on the toy lines.
fn toy_bundle(path: &Path, pair: (&str, &str), seed: i64) {
    let lines: Vec<&str> = DE.iter().chain(EN).copied().collect();
    model::testing::write_untrained_bundle(path, &lines, 60, pair, seed).unwrap();
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    toy_bundle(&bundle, ("de", "en"), 4);
    let src = dir.path().join("toy.de");
    let tgt = dir.path().join("toy.en");
    std::fs::write(&src, DE.join("\n") + "\n").unwrap();
    std::fs::write(&tgt, EN.join("\n") + "\n").unwrap();
    Fixture {
        dir,
        bundle,
        src,
        tgt,
    }
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nmt-analyze"))
        .args(args)
        .args(["--device", "cpu", "--quiet"])
        .output()
        .unwrap()
}

/// `nmt-analyze COMMAND --model MODEL --src SRC [--tgt TGT] --out OUT EXTRA...`.
fn analyze(
    command: &str,
    model: &str,
    src: &str,
    tgt: Option<&str>,
    out: &str,
    extra: &[&str],
) -> Output {
    let mut args = vec![command, "--model", model, "--src", src];
    if let Some(tgt) = tgt {
        args.extend(["--tgt", tgt]);
    }
    args.extend(["--out", out]);
    args.extend(extra);
    run(&args)
}

impl Fixture {
    /// `command` on the fixture's bundle and source file, writing to `out`.
    fn on_sources(&self, command: &str, out: &Path, extra: &[&str]) -> Output {
        analyze(command, p(&self.bundle), p(&self.src), None, p(out), extra)
    }

    /// `command` on the fixture's bundle and parallel files, writing to `out`.
    fn on_pairs(&self, command: &str, out: &Path, extra: &[&str]) -> Output {
        let tgt = Some(p(&self.tgt));
        analyze(command, p(&self.bundle), p(&self.src), tgt, p(out), extra)
    }
}

/// The JSON array in `path`.
fn read_json(path: &Path) -> Vec<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails(out: &Output, expected: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "should fail; stderr: {stderr}");
    for e in expected {
        assert!(stderr.contains(e), "stderr should mention {e:?}: {stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn is_png_and_svg(stem: &Path) {
    let png = std::fs::read(stem.with_extension("png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{}", stem.display());
    let svg = std::fs::read_to_string(stem.with_extension("svg")).unwrap();
    assert!(
        svg.contains("<svg") && svg.contains("</svg>"),
        "{}",
        stem.display()
    );
}

#[test]
fn gates_writes_histograms_summary_and_figures_for_each_bundle() {
    let f = fixture();
    let other = f.dir.path().join("other");
    toy_bundle(&other, ("de", "en"), 9);
    let out = f.dir.path().join("gates");
    let stdout = ok(&f.on_pairs("gates", &out, &["--compare", p(&other)]));
    assert!(stdout.contains("forget"), "{stdout}");
    let summary = read_json(&out.join("summary.json"));
    // Two bundles × (2 encoder layers × 2 directions + 2 decoder layers) × 3 gates.
    assert_eq!(summary.len(), 2 * 6 * 3);
    let hidden = 16;
    for r in &summary {
        let tokens = match r["side"].as_str().unwrap() {
            // Source pieces plus </s> of each line; decoder: target pieces plus the EOS step.
            "encoder" | "decoder" => r["count"].as_u64().unwrap() / hidden,
            other => panic!("side {other}"),
        };
        assert!(tokens >= DE.len() as u64 * 2, "{r}");
        let sum =
            r["low"].as_f64().unwrap() + r["mid"].as_f64().unwrap() + r["high"].as_f64().unwrap();
        assert!((sum - 1.0).abs() < 1e-9, "{r}");
    }
    let models: std::collections::BTreeSet<&str> = summary
        .iter()
        .map(|r| r["model"].as_str().unwrap())
        .collect();
    assert_eq!(models.into_iter().collect::<Vec<_>>(), ["bundle", "other"]);
    let csv = std::fs::read_to_string(out.join("histograms.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 2 * 6 * 3 * 20);
    for site in [
        "encoder-l0-fwd",
        "encoder-l0-bwd",
        "encoder-l1-fwd",
        "encoder-l1-bwd",
        "decoder-l0",
        "decoder-l1",
    ] {
        is_png_and_svg(&out.join(format!("gates-{site}")));
    }
}

#[test]
fn tokens_traces_the_models_own_translations_without_targets() {
    let f = fixture();
    let out = f.dir.path().join("tokens");
    ok(&f.on_sources("tokens", &out, &["--plot", "2", "--min-count", "1"]));
    let tokens = read_json(&out.join("tokens.json"));
    assert_eq!(tokens.len(), DE.len());
    for t in &tokens {
        let n_src = t["source_tokens"].as_array().unwrap().len();
        let n_tgt = t["target_tokens"].as_array().unwrap().len();
        assert_eq!(
            t["source_tokens"].as_array().unwrap().last().unwrap(),
            "</s>"
        );
        assert_eq!(t["target_tokens"][0], "<s>");
        for site in t["sites"].as_array().unwrap() {
            let n = if site["side"] == "encoder" {
                n_src
            } else {
                n_tgt
            };
            for (_, values) in site["gates"].as_object().unwrap() {
                assert_eq!(values.as_array().unwrap().len(), n, "{site}");
            }
        }
    }
    let ranking = read_json(&out.join("ranking.json"));
    assert_eq!(ranking.len(), 6 * 3);
    is_png_and_svg(&out.join("tokens-line1"));
    is_png_and_svg(&out.join("tokens-line2"));
    assert!(!out.join("tokens-line3.png").exists());
}

#[test]
fn neurons_and_gradients_write_their_results() {
    let f = fixture();
    let out = f.dir.path().join("neurons");
    let extra = ["--neuron", "encoder-l1-bwd:15", "--top", "2"];
    let stdout = ok(&f.on_sources("neurons", &out, &extra));
    assert!(stdout.contains("position from start"), "{stdout}");
    let results = read_json(&out.join("neurons.json"));
    assert_eq!(results[0]["name"], "position from start");
    assert!(results
        .iter()
        .all(|r| r["top"].as_array().unwrap().len() <= 2));
    is_png_and_svg(&out.join("neuron-encoder-l1-bwd-15"));

    let out = f.dir.path().join("gradients");
    ok(&f.on_pairs("gradients", &out, &[]));
    let csv = std::fs::read_to_string(out.join("gradients.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert!(
        rows.iter()
            .any(|r| r.starts_with("bundle,encoder-l0-fwd,0,")),
        "{csv}"
    );
    for r in &rows {
        let norm: f64 = r.split(',').nth(3).unwrap().parse().unwrap();
        assert!(norm > 0.0 && norm.is_finite(), "{r}");
    }
    is_png_and_svg(&out.join("gradients"));
}

#[test]
fn bad_input_is_a_clear_error() {
    let f = fixture();
    let out = f.dir.path().join("out");
    let o = p(&out);
    let (bundle, src, tgt) = (p(&f.bundle), p(&f.src), p(&f.tgt));
    // A missing file, named.
    fails(
        &analyze("gates", bundle, "/nonexistent/x.de", Some(tgt), o, &[]),
        &["/nonexistent/x.de"],
    );
    // Files in the wrong languages (swapped).
    fails(
        &analyze("gates", bundle, tgt, Some(src), o, &[]),
        &["toy.en", "\"de\""],
    );
    // Line counts that differ.
    let short = f.dir.path().join("short.en");
    std::fs::write(&short, "a man\n").unwrap();
    fails(
        &analyze("gates", bundle, src, Some(p(&short)), o, &[]),
        &["short.en has 1", "parallel"],
    );
    // A line that is not UTF-8, by number.
    let latin1 = f.dir.path().join("latin1.de");
    std::fs::write(&latin1, b"ein Mann\nein M\xe4dchen\n").unwrap();
    fails(
        &analyze("neurons", bundle, p(&latin1), None, o, &[]),
        &["latin1.de:2", "UTF-8"],
    );
    // Units the model does not have.
    for (neuron, says) in [
        (
            "encoder-l9-fwd:1",
            &["encoder-l9-fwd", "encoder-l0-fwd"][..],
        ),
        ("decoder-l0:16", &["16 units"][..]),
        ("decoder-l0", &["SITE:INDEX"][..]),
    ] {
        fails(
            &analyze("neurons", bundle, src, None, o, &["--neuron", neuron]),
            says,
        );
    }
    // A bundle that is not one, and a compared bundle of other languages.
    fails(
        &analyze("tokens", o, src, None, o, &[]),
        &["cannot load model bundle"],
    );
    let fr = f.dir.path().join("fr");
    toy_bundle(&fr, ("fr", "en"), 4);
    fails(
        &analyze(
            "gradients",
            bundle,
            src,
            Some(tgt),
            o,
            &["--compare", p(&fr)],
        ),
        &["fr→en", "share their languages"],
    );
    // An empty source file.
    let empty = f.dir.path().join("empty.de");
    std::fs::write(&empty, "\n\n").unwrap();
    fails(
        &analyze("tokens", bundle, p(&empty), None, o, &[]),
        &["empty.de", "no non-empty line"],
    );
}
