//! The recorders against what the model computes: traces in token order, batch-invariant,
//! matching the encoder's own outputs; histograms that count every real token once; the
//! neuron search and the gradient flow on known inputs. Toy data is generated here; the
//! bundles are small, randomly initialised real bundles (`write_untrained_bundle_with`).

use tempfile::TempDir;

use analysis::corpus::{batches, encode, Sentence};
use analysis::gradients::GradientFlow;
use analysis::histogram::{GateHistograms, BINS};
use analysis::neurons::{NeuronSearch, Property, State};
use analysis::record::{self, trace_batch, GateName, Keep, SentenceTrace, SiteTrace};
use model::gates::{GateSide, GateSite};
use model::{Bundle, CellKind};
use tch::{Device, Kind, Tensor};

const WORDS_DE: &[&str] = &[
    "ein", "Mann", "eine", "Frau", "Hund", "läuft", "sitzt", "im", "Park", "rot", "blau", "schnell",
];
const WORDS_EN: &[&str] = &[
    "a", "man", "woman", "dog", "runs", "sits", "in", "the", "park", "red", "blue", "fast",
];

/// `n` pseudo-random sentences of 1–`max_len` words (a fixed LCG: the same each run).
fn sentences(words: &[&str], n: usize, max_len: usize, seed: u64) -> Vec<String> {
    let mut state = seed;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as usize
    };
    (0..n)
        .map(|_| {
            let len = 1 + next() % max_len;
            (0..len)
                .map(|_| words[next() % words.len()])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// An untrained bundle with `cell`s, written into a new temporary folder (returned with it),
/// its vocabulary trained on generated sentences.
fn bundle(cell: CellKind) -> (TempDir, Bundle) {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = sentences(WORDS_DE, 50, 8, 1);
    lines.extend(sentences(WORDS_EN, 50, 8, 2));
    let train = vocab::TrainConfig {
        vocab_size: 60,
        min_frequency: 1,
        ..Default::default()
    };
    model::testing::write_untrained_bundle_with(dir.path(), &lines, &train, ("de", "en"), 7, |m| {
        model::ModelConfig {
            cell,
            hidden_dim: 12,
            ..m
        }
    })
    .unwrap();
    let b = Bundle::load(dir.path(), Device::Cpu).unwrap();
    (dir, b)
}

fn corpus(b: &Bundle, n: usize) -> Vec<Sentence> {
    let src = sentences(WORDS_DE, n, 9, 11);
    let tgt = sentences(WORDS_EN, n, 9, 12);
    src.iter()
        .zip(&tgt)
        .enumerate()
        .map(|(i, (s, t))| encode(b, i + 1, s, t, 100).unwrap())
        .collect()
}

fn assert_close(a: &Tensor, b: &Tensor, what: &str) {
    assert_eq!(a.size(), b.size(), "{what}: shapes");
    let diff = (a - b).abs().max().double_value(&[]);
    assert!(diff < 1e-5, "{what}: max difference {diff}");
}

fn same_trace(a: &SentenceTrace, b: &SentenceTrace, what: &str) {
    assert_eq!(
        a.sites.keys().collect::<Vec<_>>(),
        b.sites.keys().collect::<Vec<_>>()
    );
    for (site, sa) in &a.sites {
        let sb: &SiteTrace = &b.sites[site];
        assert_eq!(
            sa.gates.keys().collect::<Vec<_>>(),
            sb.gates.keys().collect::<Vec<_>>()
        );
        for (gate, ta) in &sa.gates {
            assert_close(ta, &sb.gates[gate], &format!("{what} {site:?} {gate:?}"));
        }
        assert_close(
            sa.h.as_ref().unwrap(),
            sb.h.as_ref().unwrap(),
            &format!("{what} {site:?} h"),
        );
    }
}

#[test]
fn traces_are_batch_invariant_and_in_token_order() {
    for cell in [CellKind::Lstm, CellKind::Gru] {
        let (_dir, b) = bundle(cell);
        let sents = corpus(&b, 12);
        let keep = Keep {
            gates: true,
            states: true,
        };
        // One batch of all (rows reordered by target length, padded), against each alone.
        let all = batches(&sents, 64, 100_000, Device::Cpu);
        assert_eq!(all.len(), 1);
        let batched = trace_batch(&b.model, &all[0], keep);
        for (row, &i) in all[0].rows.iter().enumerate() {
            let alone = batches(&sents[i..=i], 1, 100_000, Device::Cpu);
            let single = trace_batch(&b.model, &alone[0], keep);
            same_trace(&batched[row], &single[0], &format!("{cell:?} sentence {i}"));
            // Shapes: one row per source token / decoder step.
            let s = &sents[i];
            for (site, st) in &batched[row].sites {
                let len = match site.side {
                    GateSide::Encoder => s.src.len(),
                    GateSide::Decoder => s.steps(),
                } as i64;
                assert_eq!(st.h.as_ref().unwrap().size(), vec![len, 12], "{site:?}");
                let names: Vec<GateName> = st.gates.keys().copied().collect();
                match cell {
                    CellKind::Lstm => {
                        assert_eq!(names, [GateName::Input, GateName::Forget, GateName::Output]);
                        assert!(st.c.is_some());
                    }
                    CellKind::Gru => assert_eq!(names, [GateName::Reset, GateName::Update]),
                }
            }
        }
        // The top encoder layer's traced h, in token order, is the encoder's output
        // (forward direction in the first half, backward in the second).
        let batch = &all[0];
        let _g = tch::no_grad_guard();
        let enc = b
            .model
            .encode(&batch.src, &batch.src_lengths, &b.model.context(false));
        for (row, trace) in batched.iter().enumerate() {
            let len = batch.src_lengths_host[row];
            for direction in 0..2 {
                let site = GateSite {
                    side: GateSide::Encoder,
                    layer: 1,
                    direction,
                };
                let expected = enc.outputs.get(row as i64).narrow(0, 0, len).narrow(
                    1,
                    12 * direction as i64,
                    12,
                );
                assert_close(
                    trace.sites[&site].h.as_ref().unwrap(),
                    &expected,
                    &format!("{cell:?} row {row} dir {direction}"),
                );
            }
        }
    }
}

#[test]
fn histograms_count_every_real_token_once_and_match_the_traces() {
    let (_dir, b) = bundle(CellKind::Lstm);
    let sents = corpus(&b, 30);
    // Several batches of mixed lengths: padding must not be counted.
    let bs = batches(&sents, 7, 100_000, Device::Cpu);
    assert!(bs.len() > 1);
    let recorder = GateHistograms::new();
    let mut from_traces: std::collections::BTreeMap<(GateSite, GateName), Vec<Tensor>> =
        Default::default();
    for batch in &bs {
        record::teacher_forced(&b.model, batch, &recorder);
        for trace in trace_batch(
            &b.model,
            batch,
            Keep {
                gates: true,
                states: false,
            },
        ) {
            for (site, st) in trace.sites {
                for (gate, values) in st.gates {
                    from_traces.entry((site, gate)).or_default().push(values);
                }
            }
        }
    }
    let counts = recorder.finish().unwrap();
    let src_tokens: usize = sents.iter().map(|s| s.src.len()).sum();
    let tgt_steps: usize = sents.iter().map(|s| s.steps()).sum();
    // 2 encoder layers × 2 directions + 2 decoder layers, 3 gates each.
    assert_eq!(counts.len(), 6 * 3);
    for (&(site, gate), h) in &counts {
        let tokens = match site.side {
            GateSide::Encoder => src_tokens,
            GateSide::Decoder => tgt_steps,
        };
        assert_eq!(h.count(), (tokens * 12) as u64, "{site:?} {gate:?}");
        let values = Tensor::cat(&from_traces[&(site, gate)], 0).flatten(0, -1);
        for k in 0..BINS {
            let (lo, hi) = (k as f64 / BINS as f64, (k + 1) as f64 / BINS as f64);
            let inside = values.ge(lo)
                * if k + 1 == BINS {
                    values.le(hi)
                } else {
                    values.lt(hi)
                };
            let n = inside.sum(Kind::Int64).int64_value(&[]) as u64;
            assert_eq!(h.bins[k], n, "{site:?} {gate:?} bin {k}");
        }
        assert_eq!(
            h.low,
            values.lt(0.1).sum(Kind::Int64).int64_value(&[]) as u64
        );
        assert_eq!(
            h.high,
            values.ge(0.9).sum(Kind::Int64).int64_value(&[]) as u64
        );
        let (l, m, hi) = h.low_mid_high();
        assert!((l + m + hi - 1.0).abs() < 1e-9);
    }
}

/// The source embedding's name in the bundles written here (shared embeddings).
const EMBEDDING: &str = "src_embedding";

#[test]
fn the_first_encoder_step_has_the_textbook_gates() {
    // At step 0 the state is zero: i = σ(W_i x + b_ih_i + b_hh_i), straight from the weights.
    let (_dir, b) = bundle(CellKind::Lstm);
    let sents = corpus(&b, 1);
    let bs = batches(&sents, 1, 100_000, Device::Cpu);
    let trace = &trace_batch(
        &b.model,
        &bs[0],
        Keep {
            gates: true,
            states: false,
        },
    )[0];
    let vars = b.vars.variables();
    let var = |name: &str| {
        vars.get(name)
            .unwrap_or_else(|| panic!("no variable {name}; the bundle has {:?}", vars.keys()))
            .shallow_clone()
    };
    let (w_ih, b_ih, b_hh) = (
        var("encoder.rnn.weight_ih_l0"),
        var("encoder.rnn.bias_ih_l0"),
        var("encoder.rnn.bias_hh_l0"),
    );
    let embedding = var(EMBEDDING);
    let x = embedding.get(sents[0].src[0]);
    let pre = x.unsqueeze(0).matmul(&w_ih.tr()) + &b_ih + &b_hh;
    let expected_input = pre.narrow(1, 0, 12).sigmoid().squeeze_dim(0);
    let site = GateSite {
        side: GateSide::Encoder,
        layer: 0,
        direction: 0,
    };
    let traced = trace.sites[&site].gates[&GateName::Input].get(0);
    assert_close(&traced, &expected_input, "input gate at step 0");
}

#[test]
fn the_neuron_search_finds_a_unit_that_counts() {
    // Hand-made traces: unit 3 of the encoder's first layer holds the position, unit 5 flags
    // the end of the sentence, the rest is noise.
    let pieces = |n: usize| -> Vec<String> {
        let mut p: Vec<String> = (0..n - 1)
            .map(|i| {
                if i % 3 == 1 {
                    "ing".to_string()
                } else {
                    format!("▁w{i}")
                }
            })
            .collect();
        p.push("</s>".into());
        p
    };
    let site = GateSite {
        side: GateSide::Encoder,
        layer: 0,
        direction: 0,
    };
    let mut sents = Vec::new();
    let mut traces = Vec::new();
    tch::manual_seed(3);
    for (line, n) in [4usize, 7, 9, 5, 12].into_iter().enumerate() {
        let h = Tensor::randn([n as i64, 8], (Kind::Float, Device::Cpu)) * 0.1;
        let position = Tensor::arange(n as i64, (Kind::Float, Device::Cpu));
        h.select(1, 3).copy_(&position);
        h.select(1, 5)
            .copy_(&position.eq(n as f64 - 1.0).to_kind(Kind::Float));
        sents.push(Sentence {
            line,
            src: vec![0; n],
            tgt: vec![],
            src_pieces: pieces(n),
            tgt_pieces: vec!["<s>".into()],
        });
        let mut sites = std::collections::BTreeMap::new();
        sites.insert(
            site,
            SiteTrace {
                gates: Default::default(),
                h: Some(h),
                c: None,
            },
        );
        traces.push(SentenceTrace { sites });
    }
    let mut search = NeuronSearch::new(vec![
        Property::FromStart,
        Property::EndOfSentence,
        Property::Continuation,
    ]);
    for (s, t) in sents.iter().zip(&traces) {
        search.add(s, t);
    }
    assert_eq!(search.tokens(), 4 + 7 + 9 + 5 + 12);
    let results = search.finish(2, true).unwrap();
    assert_eq!(results[0].top[0].unit.index, 3, "{:?}", results[0].top);
    assert!((results[0].top[0].r - 1.0).abs() < 1e-9);
    assert_eq!(results[0].top[0].state, State::H);
    assert_eq!(results[1].top[0].unit.index, 5, "{:?}", results[1].top);
    assert!((results[1].top[0].r - 1.0).abs() < 1e-9);
    // Nothing follows the continuation flag: the best |r| stays well below 1.
    assert!(results[2].top[0].r.abs() < 0.9, "{:?}", results[2].top);
}

#[test]
fn gradient_flow_is_batch_invariant_and_covers_every_position() {
    let (_dir, b) = bundle(CellKind::Lstm);
    let sents = corpus(&b, 10);
    let mut together = GradientFlow::default();
    for batch in batches(&sents, 64, 100_000, Device::Cpu) {
        together.add_batch(&b.model, &batch).unwrap();
    }
    let mut alone = GradientFlow::default();
    for batch in batches(&sents, 1, 100_000, Device::Cpu) {
        alone.add_batch(&b.model, &batch).unwrap();
    }
    let (a, s) = (together.points(true), alone.points(true));
    assert_eq!(a.len(), s.len());
    let longest = sents.iter().map(|s| s.src.len()).max().unwrap();
    // 4 encoder sites, each with every distance up to the longest source.
    assert_eq!(a.len(), 4 * longest);
    for (x, y) in a.iter().zip(&s) {
        assert_eq!(
            (&x.site, x.distance, x.sentences),
            (&y.site, y.distance, y.sentences)
        );
        assert!(x.mean_norm > 0.0 && x.mean_norm.is_finite(), "{x:?}");
        assert!(
            (x.mean_norm - y.mean_norm).abs() <= 1e-4 * y.mean_norm,
            "{x:?} vs {y:?}"
        );
    }
    let at0: Vec<u64> = a
        .iter()
        .filter(|p| p.distance == 0)
        .map(|p| p.sentences)
        .collect();
    assert_eq!(at0, vec![10; 4]);
}
