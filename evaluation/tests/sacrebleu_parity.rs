//! Parity with sacreBLEU itself: the same hypotheses and references are scored by
//! this crate and by sacreBLEU's Python API (the pinned release in the project's
//! virtual environment, installed on first use), and every corpus score, sentence
//! score, BLEU statistic and signature must agree (scores to 1e-4).
//!
//! Data: real test sets cut from ../shared/data at run time (the two tests that read
//! them are marked as needing the corpora; `make test` runs them when they are there)
//! and hand-written adversarial text.
//! If sacreBLEU cannot be installed the tests fail: they never pass without
//! comparing.

#[path = "../../test-support/process.rs"]
mod process;
#[path = "../../test-support/sacrebleu.rs"]
mod support;

use std::path::Path;
use std::process::Command;

use evaluation::{Bleu, BleuOptions, Chrf, ChrfOptions, EvalError, Smoothing, Tokenizer};
use serde_json::{json, Value};
use support::{data_dir, sacrebleu_python, SACREBLEU_PIN};

const TOL: f64 = 1e-4;

/// Scores `jobs` with sacreBLEU and returns its results, one per job.
fn sacrebleu_scores(jobs: &[Value]) -> Vec<Value> {
    let python = sacrebleu_python();
    let dir = tempfile::tempdir().unwrap();
    let job_file = dir.path().join("jobs.json");
    std::fs::write(&job_file, serde_json::to_vec(jobs).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/sacrebleu_ref.py");
    let out = process::output_ok(
        Command::new(python).arg(&script).arg(&job_file),
        "sacreBLEU script failed:\n",
    );
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(results.len(), jobs.len());
    results
}

/// One scoring configuration applied to one data set.
struct Case {
    label: String,
    hyps: Vec<String>,
    refs: Vec<Vec<String>>,
    sentence: bool,
    metric: Metric,
}

enum Metric {
    Bleu(BleuOptions),
    Chrf(ChrfOptions),
}

impl Case {
    fn job(&self) -> Value {
        let (metric, options) = match &self.metric {
            Metric::Bleu(o) => {
                let (method, value) = match o.smoothing {
                    Smoothing::Exp => ("exp", None),
                    Smoothing::None => ("none", None),
                    Smoothing::Floor(v) => ("floor", Some(v)),
                    Smoothing::AddK(v) => ("add-k", Some(v)),
                };
                let eff = o.effective_order.unwrap_or(self.sentence);
                (
                    "bleu",
                    json!({"tokenize": o.tokenize.name(), "lowercase": o.lowercase,
                           "smooth_method": method, "smooth_value": value,
                           "max_ngram_order": o.max_ngram_order, "effective_order": eff}),
                )
            }
            Metric::Chrf(o) => (
                "chrf",
                json!({"char_order": o.char_order, "word_order": o.word_order, "beta": o.beta,
                       "lowercase": o.lowercase, "whitespace": o.whitespace,
                       "eps_smoothing": o.eps_smoothing}),
            ),
        };
        json!({"metric": metric, "hyps": self.hyps, "refs": self.refs,
               "sentence": self.sentence, "options": options})
    }

    /// Compares this crate's result with sacreBLEU's `want`.
    fn check(&self, want: &Value) {
        let label = &self.label;
        let close = |got: f64, want: &Value, what: &str| {
            let want = want
                .as_f64()
                .unwrap_or_else(|| panic!("{label}: no {what} in {want}"));
            assert!(
                (got - want).abs() <= TOL,
                "{label}: {what}: nmt-eval {got} vs sacreBLEU {want}"
            );
        };
        match &self.metric {
            Metric::Bleu(o) => {
                let bleu = Bleu::new(&self.refs, o.clone()).unwrap();
                if self.sentence {
                    let got = bleu.sentence_scores(&self.hyps).unwrap();
                    let want_scores = want["scores"].as_array().unwrap();
                    assert_eq!(got.len(), want_scores.len(), "{label}");
                    for (i, (g, w)) in got.iter().zip(want_scores).enumerate() {
                        close(g.score, w, &format!("sentence {}", i + 1));
                    }
                    if let Some(first) = got.first() {
                        assert_eq!(first.signature.to_string(), want["signature"], "{label}");
                    }
                } else {
                    let got = bleu.corpus_score(&self.hyps).unwrap();
                    close(got.score, &want["score"], "score");
                    close(got.bp, &want["bp"], "bp");
                    assert_eq!(
                        got.sys_len as u64,
                        want["sys_len"].as_u64().unwrap(),
                        "{label}: sys_len"
                    );
                    assert_eq!(
                        got.ref_len as u64,
                        want["ref_len"].as_u64().unwrap(),
                        "{label}: ref_len"
                    );
                    for (n, p) in got.precisions.iter().enumerate() {
                        close(*p, &want["precisions"][n], &format!("precision {}", n + 1));
                    }
                    // sacreBLEU reports add-k counts after adding k to orders >= 2.
                    let k = match o.smoothing {
                        Smoothing::AddK(k) => k,
                        _ => 0.0,
                    };
                    for n in 0..got.counts.len() {
                        let add = if n > 0 { k } else { 0.0 };
                        close(got.counts[n] as f64 + add, &want["counts"][n], "counts");
                        close(got.totals[n] as f64 + add, &want["totals"][n], "totals");
                    }
                    assert_eq!(got.signature.to_string(), want["signature"], "{label}");
                }
            }
            Metric::Chrf(o) => {
                let chrf = Chrf::new(&self.refs, o.clone()).unwrap();
                if self.sentence {
                    let got = chrf.sentence_scores(&self.hyps).unwrap();
                    let want_scores = want["scores"].as_array().unwrap();
                    assert_eq!(got.len(), want_scores.len(), "{label}");
                    for (i, (g, w)) in got.iter().zip(want_scores).enumerate() {
                        close(g.score, w, &format!("sentence {}", i + 1));
                    }
                } else {
                    let got = chrf.corpus_score(&self.hyps).unwrap();
                    close(got.score, &want["score"], "score");
                    assert_eq!(got.signature.to_string(), want["signature"], "{label}");
                }
            }
        }
    }
}

fn run_cases(cases: &[Case]) {
    let jobs: Vec<Value> = cases.iter().map(Case::job).collect();
    let wants = sacrebleu_scores(&jobs);
    for (case, want) in cases.iter().zip(&wants) {
        case.check(want);
    }
    eprintln!(
        "{} configurations agree with sacreBLEU {SACREBLEU_PIN}",
        cases.len()
    );
}

/// Lines of a real data file. Panics, saying why, when ../shared/data is absent: only the
/// tests marked as needing the corpora call this.
fn real_lines(rel: &str, limit: usize) -> Vec<String> {
    let dir = data_dir();
    assert!(
        dir.exists(),
        "this test needs ../shared/data (the project's corpora), and {} is absent",
        dir.display()
    );
    let text = std::fs::read_to_string(dir.join(rel))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join(rel).display()));
    text.lines().take(limit).map(str::to_owned).collect()
}

/// A deterministic, line-dependent corruption of a reference, so that scores are
/// neither 0 nor 100 and every n-gram order sees both hits and misses.
fn perturb(lines: &[String], salt: usize) -> Vec<String> {
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let mut words: Vec<String> = line.split(' ').map(str::to_owned).collect();
            let k = i + salt;
            match k % 6 {
                0 => {
                    let j = k % words.len();
                    words.remove(j);
                }
                1 if words.len() > 2 => {
                    let last = words.len() - 1;
                    words.swap(1, last);
                }
                2 => words
                    .iter_mut()
                    .step_by(3)
                    .for_each(|w| *w = w.to_uppercase()),
                3 => words.push(words[0].clone()),
                4 => words.truncate(words.len().div_ceil(2)),
                _ => {}
            }
            if k % 97 == 5 {
                return String::new();
            }
            words.join(" ")
        })
        .collect()
}

fn bleu(tokenize: Tokenizer, lowercase: bool, smoothing: Smoothing) -> BleuOptions {
    BleuOptions {
        tokenize,
        lowercase,
        smoothing,
        ..BleuOptions::default()
    }
}

const SMOOTHINGS: [Smoothing; 6] = [
    Smoothing::Exp,
    Smoothing::None,
    Smoothing::Floor(0.1),
    Smoothing::Floor(0.3),
    Smoothing::AddK(1.0),
    Smoothing::AddK(2.0),
];

#[test]
#[ignore = "needs ../shared/data (the project's corpora)"]
fn real_data_bleu_matches_sacrebleu() {
    let (m30k, wmt_en, wmt_de, iwslt_raw, iwslt_tok) = (
        real_lines("multi30k/test.en", usize::MAX),
        real_lines("wmt14/test.en", usize::MAX),
        real_lines("wmt14/test.de", usize::MAX),
        real_lines("iwslt14/test.en", 2000),
        real_lines("iwslt14/fairseq_tok/test.en", 2000),
    );
    assert_eq!(wmt_en.len(), 3003);
    let mut cases = Vec::new();
    let m30k_hyp = perturb(&m30k, 0);
    for tok in Tokenizer::ALL {
        for lc in [false, true] {
            cases.push(Case {
                label: format!("multi30k corpus tok={tok} lc={lc}"),
                hyps: m30k_hyp.clone(),
                refs: vec![m30k.clone()],
                sentence: false,
                metric: Metric::Bleu(bleu(tok, lc, Smoothing::Exp)),
            });
        }
    }
    for s in SMOOTHINGS {
        cases.push(Case {
            label: format!("multi30k sentence smooth={s} (first 300)"),
            hyps: m30k_hyp[..300].to_vec(),
            refs: vec![m30k[..300].to_vec()],
            sentence: true,
            metric: Metric::Bleu(bleu(Tokenizer::Thirteen, false, s)),
        });
    }
    let wmt_hyp = perturb(&wmt_en, 1);
    for (tok, lines) in [(Tokenizer::Thirteen, wmt_en.len()), (Tokenizer::Intl, 1000)] {
        cases.push(Case {
            label: format!("wmt14 corpus tok={tok} (first {lines})"),
            hyps: wmt_hyp[..lines].to_vec(),
            refs: vec![wmt_en[..lines].to_vec()],
            sentence: false,
            metric: Metric::Bleu(bleu(tok, false, Smoothing::Exp)),
        });
    }
    // German output against English references: low scores, many zero orders.
    for s in [Smoothing::Exp, Smoothing::None, Smoothing::Floor(0.1)] {
        cases.push(Case {
            label: format!("wmt14 de-vs-en corpus smooth={s} (first 1000)"),
            hyps: wmt_de[..1000].to_vec(),
            refs: vec![wmt_en[..1000].to_vec()],
            sentence: false,
            metric: Metric::Bleu(bleu(Tokenizer::Thirteen, false, s)),
        });
    }
    cases.push(Case {
        label: "wmt14 de-vs-en sentence (first 300)".into(),
        hyps: wmt_de[..300].to_vec(),
        refs: vec![wmt_en[..300].to_vec()],
        sentence: true,
        metric: Metric::Bleu(bleu(Tokenizer::Thirteen, false, Smoothing::Exp)),
    });
    // IWSLT14 as papers report it: tokenized, lowercased references.
    let iwslt_hyp = perturb(&iwslt_tok, 2);
    for tok in [Tokenizer::None, Tokenizer::Thirteen] {
        cases.push(Case {
            label: format!("iwslt14 tokenized lc tok={tok}"),
            hyps: iwslt_hyp.clone(),
            refs: vec![iwslt_tok.clone()],
            sentence: false,
            metric: Metric::Bleu(bleu(tok, true, Smoothing::None)),
        });
    }
    cases.push(Case {
        label: "iwslt14 raw corpus 13a".into(),
        hyps: perturb(&iwslt_raw, 3),
        refs: vec![iwslt_raw.clone()],
        sentence: false,
        metric: Metric::Bleu(BleuOptions::default()),
    });
    // Two references: the clean one and another corruption of it.
    cases.push(Case {
        label: "multi30k two references".into(),
        hyps: m30k_hyp.clone(),
        refs: vec![m30k.clone(), perturb(&m30k, 4)],
        sentence: false,
        metric: Metric::Bleu(BleuOptions::default()),
    });
    cases.push(Case {
        label: "multi30k two references, sentence (first 300)".into(),
        hyps: m30k_hyp[..300].to_vec(),
        refs: vec![perturb(&m30k[..300], 3), perturb(&m30k[..300], 5)],
        sentence: true,
        metric: Metric::Bleu(BleuOptions::default()),
    });
    cases.push(Case {
        label: "wmt14 corpus effective order (first 1000)".into(),
        hyps: wmt_hyp[..1000].to_vec(),
        refs: vec![wmt_en[..1000].to_vec()],
        sentence: false,
        metric: Metric::Bleu(BleuOptions {
            effective_order: Some(true),
            ..BleuOptions::default()
        }),
    });
    run_cases(&cases);
}

fn chrf(word_order: usize, lowercase: bool, whitespace: bool, eps: bool) -> ChrfOptions {
    ChrfOptions {
        word_order,
        lowercase,
        whitespace,
        eps_smoothing: eps,
        ..ChrfOptions::default()
    }
}

#[test]
#[ignore = "needs ../shared/data (the project's corpora)"]
fn real_data_chrf_matches_sacrebleu() {
    let (m30k, wmt_en, wmt_de) = (
        real_lines("multi30k/test.en", usize::MAX),
        real_lines("wmt14/test.en", usize::MAX),
        real_lines("wmt14/test.de", usize::MAX),
    );
    let mut cases = Vec::new();
    let wmt_hyp = perturb(&wmt_en, 1);
    for (word_order, lines) in [(0, wmt_en.len()), (2, 1000)] {
        cases.push(Case {
            label: format!("wmt14 chrF nw={word_order} (first {lines})"),
            hyps: wmt_hyp[..lines].to_vec(),
            refs: vec![wmt_en[..lines].to_vec()],
            sentence: false,
            metric: Metric::Chrf(chrf(word_order, false, false, false)),
        });
    }
    cases.push(Case {
        label: "wmt14 de-vs-en chrF++ lc (first 1000)".into(),
        hyps: wmt_de[..1000].to_vec(),
        refs: vec![wmt_en[..1000].to_vec()],
        sentence: false,
        metric: Metric::Chrf(chrf(2, true, false, false)),
    });
    let m30k = m30k[..300].to_vec();
    let m30k_hyp = perturb(&m30k, 0);
    for (nw, lc, ws, eps) in [
        (0, false, true, false),
        (2, true, false, true),
        (0, false, false, false),
    ] {
        cases.push(Case {
            label: format!("multi30k sentence chrF nw={nw} lc={lc} ws={ws} eps={eps}"),
            hyps: m30k_hyp.clone(),
            refs: vec![m30k.clone()],
            sentence: true,
            metric: Metric::Chrf(chrf(nw, lc, ws, eps)),
        });
    }
    cases.push(Case {
        label: "multi30k chrF++ two references".into(),
        hyps: m30k_hyp,
        refs: vec![perturb(&m30k, 2), perturb(&m30k, 5)],
        sentence: false,
        metric: Metric::Chrf(chrf(2, false, false, false)),
    });
    run_cases(&cases);
}

/// Text chosen to stress tokenizers, lowercasing and whitespace rules.
fn adversarial_refs() -> Vec<String> {
    let long = "the quick brown fox, jumps over 1,234.5 lazy dogs; ".repeat(100);
    [
        "«Hallo», sagte er — „wirklich?“ ‚ja‘… (sic!) [1] {x} ¿Qué? ¡Sí!",
        "1,000,000.50 and 3.14-2.71 in 1990-2000, 5,5 % of 10.000 were -3 or +4.",
        "&quot;AT&amp;T&quot; &lt;b&gt;bold&lt;/b&gt; it&apos;s &#39;x&#39; &nbsp; a&b",
        "",
        "   \t  ",
        &long,
        "我们今天去北京。你好，世界！「引用」",
        "東京都に行きました。ラーメンを食べた！",
        "สวัสดีครับ ผมชื่อสมชาย ยินดีที่ได้รู้จัก",
        "안녕하세요, 세계! 반갑습니다.",
        "ΟΔΟΣ ΣΑΣ Σοφία İSTANBUL STRASSE straße ﬁnal Éé é",
        "a\u{1c}b c\u{a0}d e\u{3000}f g\u{200b}h i\u{2009}j trailing   ",
        "5€ + 3$ = ? ∑∞≈ 😀👍🏽 © ® ™ § ¶ † ‡ • ° ± × ÷",
        "well-known — e.g. U.S.A. isn't Mr. O'Neil's 'quote' \"double\" ...",
        "<skipped> tokens <skipped> here and a hyphen-\nated break",
        "tab\tseparated\tfields and\r\ncarriage returns\r",
        ".,;:!? ,.  . , ...   ,,,",
        "x",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn adversarial_hyps(refs: &[String]) -> Vec<String> {
    let mut hyps = perturb(refs, 0);
    // Some lines keep the original, some get case changes and extra punctuation.
    hyps[0] = refs[0].to_lowercase();
    hyps[6] = "我们明天去北京。你好，世界！".into();
    hyps[8] = "สวัสดีครับ ผมชื่อสมศักดิ์".into();
    hyps[10] = refs[10].to_lowercase();
    hyps[12] = "5 € + 3 $ = ? ∑∞ 😀 © ™ §".into();
    hyps[13] = "well known - eg USA is not Mr. O'Neil's quote \"double\"...".into();
    hyps[17] = "x".into();
    hyps
}

#[test]
fn adversarial_text_matches_sacrebleu() {
    let refs = adversarial_refs();
    let hyps = adversarial_hyps(&refs);
    let second_ref: Vec<String> = perturb(&refs, 3);
    let mut cases = Vec::new();
    for tok in Tokenizer::ALL {
        for lc in [false, true] {
            for s in SMOOTHINGS {
                for sentence in [false, true] {
                    cases.push(Case {
                        label: format!(
                            "adversarial tok={tok} lc={lc} smooth={s} sentence={sentence}"
                        ),
                        hyps: hyps.clone(),
                        refs: vec![refs.clone()],
                        sentence,
                        metric: Metric::Bleu(bleu(tok, lc, s)),
                    });
                }
            }
            cases.push(Case {
                label: format!("adversarial two refs tok={tok} lc={lc}"),
                hyps: hyps.clone(),
                refs: vec![refs.clone(), second_ref.clone()],
                sentence: false,
                metric: Metric::Bleu(bleu(tok, lc, Smoothing::Exp)),
            });
        }
    }
    for nw in [0, 2] {
        for lc in [false, true] {
            for ws in [false, true] {
                for eps in [false, true] {
                    for sentence in [false, true] {
                        cases.push(Case {
                            label: format!("adversarial chrF nw={nw} lc={lc} ws={ws} eps={eps} sentence={sentence}"),
                            hyps: hyps.clone(),
                            refs: vec![refs.clone(), second_ref.clone()],
                            sentence,
                            metric: Metric::Chrf(chrf(nw, lc, ws, eps)),
                        });
                    }
                }
            }
        }
    }
    run_cases(&cases);
}

#[test]
fn mismatched_line_counts_are_a_clear_error() {
    let hyps = ["a", "b", "c"];
    let refs = vec![vec!["a", "b", "c"], vec!["a", "b"]];
    let err = evaluation::corpus_bleu(&hyps, &refs, &BleuOptions::default()).unwrap_err();
    assert!(matches!(
        err,
        EvalError::LineCountMismatch {
            hyp_lines: 3,
            ref_lines: 2,
            ..
        }
    ));
    assert!(err.to_string().contains("stream 2 has 2"), "{err}");
    let err = evaluation::corpus_chrf(&hyps, &refs[1..], &ChrfOptions::default()).unwrap_err();
    assert!(err.to_string().contains("have 3 lines"), "{err}");
    let bleu = Bleu::new(&refs[..1], BleuOptions::default()).unwrap();
    assert!(bleu.corpus_score(&hyps[..2]).is_err());
}
