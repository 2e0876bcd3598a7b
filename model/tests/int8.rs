//! int8 bundles (`nmt-bundle compress --int8`): the int8 matrices of the step executors
//! against the dequantized float reference within the quantization bound, bundles that
//! round-trip through save/load, and clear errors. Bundles are small random ones written
//! here (`write_untrained_bundle_with`).

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use model::bundle::{self, WeightsDtype, FORMAT_VERSION_INT8};
use model::cell::Matrix;
use model::config::LowRankRows;
use model::Bundle;
use quantized::{dequantize_rows, error_bound, quantize_rows, Int8Weight};
use tch::{Device, Kind, Tensor};

#[allow(dead_code)] // the shared helpers this binary does not call
mod common;

fn original(root: &Path, name: &str, cell: model::CellKind) -> PathBuf {
    common::original_with(root, name, cell, false)
}

fn random(shape: &[i64], seed: i64) -> Tensor {
    common::with_seed(seed, || Tensor::randn(shape, (Kind::Float, Device::Cpu)))
}

/// `y` against `reference` row block by row block: the int8 rows (`rows`) within the
/// kernel's bound for the dequantized weights `deq` (`[rows, C]`, already scaled as the
/// matrix is), the float rows to float32 rounding.
fn assert_within_bound(
    y: &Tensor,
    reference: &Tensor,
    x: &Tensor,
    deq: &Tensor,
    rows: &Range<i64>,
) {
    let n = rows.end - rows.start;
    let diff = (y - reference).abs();
    let int8_part = diff.narrow(-1, rows.start, n);
    let slack = 1e-5 * (1.0 + reference.abs().max().double_value(&[]));
    let excess = (int8_part - error_bound(x, deq) - slack)
        .max()
        .double_value(&[]);
    assert!(
        excess <= 0.0,
        "int8 rows off by {excess} more than the bound"
    );
    let r = y.size()[y.dim() - 1];
    for (a, b) in [(0, rows.start), (rows.end, r)] {
        if b > a {
            let float_part = diff.narrow(-1, a, b - a).max().double_value(&[]);
            assert!(float_part <= slack, "float rows off by {float_part}");
        }
    }
}

/// [`assert_within_bound`] for `m.linear(x)` against `x · denseᵀ`.
fn assert_matrix_within_bound(
    m: &Matrix,
    x: &Tensor,
    dense: &Tensor,
    deq: &Tensor,
    rows: &Range<i64>,
) {
    let reference = x.linear::<&Tensor>(dense, None);
    assert_within_bound(&m.linear(x, None), &reference, x, deq, rows);
}

#[test]
fn int8_matrices_match_the_dequantized_reference_in_every_form_the_executors_use() {
    // [4H, C] with H = 6: the gate rows 0..12 int8, the other rows float (and all rows int8).
    let w = random(&[24, 10], 1);
    let bias = random(&[24], 2);
    for rows in [0..12, 0..24] {
        let (chosen, rest) = model::cell::split_rows(&w, &rows, 0);
        let (q, step) = quantize_rows(&chosen).unwrap();
        let m = Matrix::Int8 {
            q: Arc::new(Int8Weight::new(q.shallow_clone())),
            columns: 0..10,
            scale: step.shallow_clone(),
            rows: rows.clone(),
            rest,
        };
        let deq = dequantize_rows(&q, &step);
        let dense = model::cell::join_rows(&deq, m_rest(&m).as_ref(), rows.start, 0);
        // Plain, with a bias, on a [B, T, C] batch.
        let x = random(&[5, 10], 3);
        assert_matrix_within_bound(&m, &x, &dense, &deq, &rows);
        for x in [&x, &random(&[2, 3, 10], 4)] {
            let (got, want) = (m.linear(x, Some(&bias)), x.linear(&dense, Some(&bias)));
            assert_within_bound(&got, &want, x, &deq, &rows);
        }
        // Column blocks (the prepared decoder's ahead and late columns).
        for (start, len) in [(0, 7), (7, 3)] {
            let xc = random(&[4, len], 5 + start);
            let part = m.narrow_columns(start, len);
            assert_within_bound(
                &part.linear(&xc, Some(&bias)),
                &xc.linear(&dense.narrow(1, start, len), Some(&bias)),
                &xc,
                &deq.narrow(1, start, len),
                &rows,
            );
        }
        // Rows scaled (a gate temperature folded in): the first 12 rows times 2.
        let factor = Tensor::cat(
            &[
                Tensor::full([12, 1], 2.0, (Kind::Float, Device::Cpu)),
                Tensor::ones([12, 1], (Kind::Float, Device::Cpu)),
            ],
            0,
        );
        let scaled = m.scale_rows(|t| t * &factor);
        let deq_scaled = &deq * factor.narrow(0, rows.start, rows.end - rows.start);
        assert_within_bound(
            &scaled.linear(&x, None),
            &x.linear::<&Tensor>(&(&dense * &factor), None),
            &x,
            &deq_scaled,
            &rows,
        );
        assert!(
            m.dense().is_none(),
            "int8 matrices must keep the fused kernels away"
        );
    }
}

fn m_rest(m: &Matrix) -> Option<Tensor> {
    match m {
        Matrix::Int8 { rest, .. } => rest.as_ref().map(Tensor::shallow_clone),
        _ => None,
    }
}

/// The codes and steps `compress_int8` must store for the weight `base` (`w`, its rows
/// `range`): the decoder's input and recurrent matrices of a layer quantized side by side.
fn expected_codes(
    float_vars: &std::collections::HashMap<String, Tensor>,
    base: &str,
    w: &Tensor,
    range: &Range<i64>,
) -> (Tensor, Tensor) {
    let (chosen, _) = model::cell::split_rows(w, range, 0);
    let partner = if base.starts_with("decoder.rnn.weight_ih_l") {
        Some(base.replace("weight_ih_l", "weight_hh_l"))
    } else if base.starts_with("decoder.rnn.weight_hh_l") {
        Some(base.replace("weight_hh_l", "weight_ih_l"))
    } else {
        None
    };
    match partner {
        Some(p) => {
            let (other, _) = model::cell::split_rows(&float_vars[&p], range, 0);
            let (codes, step) = quantized::quantize_rows_joint(&[&chosen, &other]).unwrap();
            (codes[0].shallow_clone(), step)
        }
        None => quantize_rows(&chosen).unwrap(),
    }
}

#[test]
fn int8_bundles_store_the_quantized_rows_round_trip_and_translate() {
    let root = tempfile::tempdir().unwrap();
    let texts: Vec<String> = common::TEXTS.iter().map(|s| s.to_string()).collect();
    let cases = [
        (model::CellKind::Lstm, false),
        (model::CellKind::Lstm, true),
        (model::CellKind::Gru, false),
    ];
    for (cell, tied) in cases {
        let input =
            common::original_with(root.path(), &format!("float-{cell:?}-{tied}"), cell, tied);
        let float = Bundle::load(&input, Device::Cpu).unwrap();
        let float_vars = float.vars.variables();
        for (rows, linear) in [
            (LowRankRows::Gates, false),
            (LowRankRows::All, false),
            (LowRankRows::All, true),
        ] {
            let out = root
                .path()
                .join(format!("int8-{cell:?}-{tied}-{rows:?}-{linear}"));
            let int8 =
                bundle::compress_int8(&input, &out, rows, linear, WeightsDtype::Float32).unwrap();
            assert_eq!(int8.config.format_version, FORMAT_VERSION_INT8);
            assert_eq!(int8.metadata.extra["compression"]["method"], "int8");
            let vars = int8.vars.variables();
            let mut matrices = 0;
            for (name, w) in &float_vars {
                let Some(q) = vars.get(&format!("{name}_int8_q")) else {
                    assert!(vars[name].equal(w), "{name} should be copied unchanged");
                    continue;
                };
                matrices += 1;
                let range = if name.contains(".rnn.") {
                    rows.range(int8.config.model.hidden_dim, w.size()[0])
                } else {
                    0..w.size()[0]
                };
                let (_, rest) = model::cell::split_rows(w, &range, 0);
                // What was loaded back from disk is what quantizing the original gives.
                let (q_expected, step_expected) = expected_codes(&float_vars, name, w, &range);
                assert_eq!(q.kind(), Kind::Int8);
                assert!(
                    q.equal(&q_expected),
                    "{name}: codes changed through save/load"
                );
                assert!(
                    vars[&format!("{name}_int8_scale")].equal(&step_expected),
                    "{name}"
                );
                match (rest, vars.get(&format!("{name}_int8_rest"))) {
                    (Some(a), Some(b)) => assert!(a.equal(b), "{name}: float rows changed"),
                    (None, None) => {}
                    (a, b) => panic!("{name}: rest {:?} vs {:?}", a.is_some(), b.is_some()),
                }
            }
            // 2 encoder layers × 2 directions + 2 decoder layers, two matrices each; with
            // `linear` also the attention's key projection and W_c.
            let expected = if linear { 14 } else { 12 };
            assert_eq!(matrices, expected, "{cell:?} {rows:?} {linear}");
            // The output projection: an int8 copy of its float weight (kept), with `linear`.
            let (weight, bias) = float.model.output_projection();
            match vars.get("output_int8_q") {
                Some(q) => {
                    assert!(linear);
                    let (q_expected, step_expected) = quantize_rows(weight).unwrap();
                    assert!(
                        q.equal(&q_expected) && vars["output_int8_scale"].equal(&step_expected)
                    );
                    // It runs: logits within the kernel's bound of the dequantized reference.
                    let deq = dequantize_rows(q, &vars["output_int8_scale"]);
                    let x = random(&[7, deq.size()[1]], 8).tanh();
                    let all = 0..deq.size()[0];
                    assert_within_bound(
                        &int8.model.project(&x),
                        &x.linear(&deq, bias),
                        &x,
                        &deq,
                        &all,
                    );
                    // The float weight is the original's, for the lookups and `project_float`.
                    let (kept, _) = int8.model.output_projection();
                    assert!(kept.equal(weight));
                }
                None => assert!(!linear),
            }
            // Load the written bundle again: the same outputs, bit for bit.
            let again = Bundle::load(&out, Device::Cpu).unwrap();
            for (a, b) in common::translate_both(&int8, &again, &texts) {
                assert_eq!(a.text, b.text, "{cell:?} {rows:?}");
                assert_eq!(a.score, b.score, "{cell:?} {rows:?}");
                assert!(a.score.is_finite());
            }
        }
    }
}

#[test]
fn int8_nonsense_is_a_clear_error() {
    let root = tempfile::tempdir().unwrap();
    let input = original(root.path(), "float", model::CellKind::Lstm);
    let int8_dir = root.path().join("int8");
    bundle::compress_int8(
        &input,
        &int8_dir,
        LowRankRows::All,
        false,
        WeightsDtype::Float16,
    )
    .unwrap();
    // Twice: names the input.
    let err = bundle::compress_int8(
        &int8_dir,
        &root.path().join("twice"),
        LowRankRows::All,
        false,
        WeightsDtype::Float16,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("compressed already") && err.contains("int8"),
        "{err}"
    );
    // On CUDA: refused at load, naming config.json (no CUDA work is done before).
    let err = Bundle::load(&int8_dir, Device::Cuda(0))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("config.json") && err.contains("CPU only"),
        "{err}"
    );
    // Codes stored as floats: names the file and the weight.
    let broken = root.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    for f in std::fs::read_dir(&int8_dir).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, broken.join(f.file_name().unwrap())).unwrap();
    }
    let weights = broken.join(bundle::WEIGHTS_FILE);
    let mut named = Tensor::read_safetensors(&weights).unwrap();
    let (name, t) = named
        .iter_mut()
        .find(|(n, _)| n.ends_with("_int8_q"))
        .unwrap();
    let name = name.clone();
    *t = t.to_kind(Kind::Float);
    Tensor::write_safetensors(&named, &weights).unwrap();
    let err = Bundle::load(&broken, Device::Cpu).unwrap_err().to_string();
    assert!(
        err.contains("model.safetensors") && err.contains(&name) && err.contains("int8"),
        "{err}"
    );
    // The command line: --int8 with --round or --svd-rank is refused, naming the flags.
    let run = common::nmt_bundle;
    let (i, o) = (input.to_str().unwrap(), root.path().join("cli"));
    let o = o.to_str().unwrap();
    for extra in [&[][..], &["--params", "recurrent"][..]] {
        let mut args = vec!["compress", i, o, "--int8", "--svd-rank", "4"];
        args.extend(extra);
        let (ok, _, err) = run(&args);
        assert!(
            !ok && err.contains("--int8") && err.contains("--svd-rank") && err.contains("combined"),
            "{err}"
        );
        assert!(!Path::new(o).exists(), "nothing is written when refused");
    }
    let (ok, _, err) = run(&["compress", i, o, "--int8", "--round", "0.5"]);
    assert!(
        !ok && err.contains("--round") && err.contains("--int8"),
        "{err}"
    );
    let (ok, out, err) = run(&["compress", i, o, "--int8"]);
    assert!(ok, "{err}");
    let info: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(info["format_version"], FORMAT_VERSION_INT8);
    assert_eq!(info["compression"]["params"], "recurrent");
    assert_eq!(info["model"]["int8"]["rows"], "all");
    let (ok, out, _) = run(&["info", o]);
    assert!(ok && out.contains("\"int8\""), "{out}");
    // --params all: the linear layers too.
    let (ok, out, err) = run(&["compress", i, o, "--int8", "--params", "all"]);
    assert!(ok, "{err}");
    let info: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(info["compression"]["params"], "all");
    assert_eq!(info["model"]["int8"]["linear"], true);
    // The help names the options.
    let (ok, out, _) = run(&["compress", "--help"]);
    assert!(ok && out.contains("--int8") && out.contains("W_c"), "{out}");
}

/// An int8 matrix over all rows of `q` with steps `step` (no float rows).
fn int8_matrix(q: &Tensor, step: &Tensor) -> Matrix {
    Matrix::Int8 {
        q: Arc::new(Int8Weight::new(q.shallow_clone())),
        columns: 0..q.size()[1],
        scale: step.shallow_clone(),
        rows: 0..q.size()[0],
        rest: None,
    }
}

#[test]
fn joined_int8_columns_match_the_dequantized_reference() {
    // A decoder layer's W_ih [4H, I] and W_hh [4H, H], H = 6, I = 10 (the first 7 input
    // columns projected ahead, the last 3 joined with W_hh as the prepared step does).
    let (w_ih, w_hh) = (random(&[24, 10], 11), random(&[24, 6], 12) * 0.3);
    let (codes, step) = quantized::quantize_rows_joint(&[&w_ih, &w_hh]).unwrap();
    let (ih, hh) = (int8_matrix(&codes[0], &step), int8_matrix(&codes[1], &step));
    let deq_ih = dequantize_rows(&codes[0], &step);
    let deq_hh = dequantize_rows(&codes[1], &step);
    let all = 0..24;
    for (start, len) in [(0, 10), (7, 3)] {
        let late = ih.narrow_columns(start, len);
        let joint = Matrix::join_columns(&late, &hh).expect("equal steps join");
        let deq = Tensor::cat(&[deq_ih.narrow(1, start, len), deq_hh.shallow_clone()], 1);
        let xh = random(&[5, len + 6], 13 + start).tanh();
        let bias = random(&[5, 24], 14);
        // The joint call against the dequantized product and against the two calls apart.
        let y = joint.linear(&xh, Some(&bias));
        assert_within_bound(
            &y,
            &(xh.linear::<&Tensor>(&deq, None) + &bias),
            &xh,
            &deq,
            &all,
        );
        let (x, h) = (xh.narrow(1, 0, len), xh.narrow(1, len, 6));
        let split = late.linear(&x, None) + hh.linear(&h, None) + &bias;
        let both = error_bound(&xh, &deq)
            + error_bound(&x, &deq_ih.narrow(1, start, len))
            + error_bound(&h, &deq_hh);
        let excess = ((&y - split).abs() - both - 1e-5).max().double_value(&[]);
        assert!(
            excess <= 0.0,
            "joint and split calls differ by {excess} more than their bounds"
        );
        // Scaled rows (a gate temperature) keep the join's steps equal.
        let factor = Tensor::linspace(0.5, 2.0, 24, (Kind::Float, Device::Cpu)).unsqueeze(1);
        let scaled = joint.scale_rows(|t| t * &factor);
        assert_within_bound(
            &scaled.linear(&xh, None),
            &xh.linear::<&Tensor>(&(&deq * &factor), None),
            &xh,
            &(&deq * &factor),
            &all,
        );
    }
    // Gate rows only: the float rows are joined too.
    let rows = 0..12;
    let (c_ih, rest_ih) = model::cell::split_rows(&w_ih, &rows, 0);
    let (c_hh, rest_hh) = model::cell::split_rows(&w_hh, &rows, 0);
    let (codes, step) = quantized::quantize_rows_joint(&[&c_ih, &c_hh]).unwrap();
    let part = |q: &Tensor, rest: Option<Tensor>| Matrix::Int8 {
        q: Arc::new(Int8Weight::new(q.shallow_clone())),
        columns: 0..q.size()[1],
        scale: step.shallow_clone(),
        rows: rows.clone(),
        rest,
    };
    let joint = Matrix::join_columns(&part(&codes[0], rest_ih), &part(&codes[1], rest_hh))
        .expect("equal steps join");
    let deq_rows = Tensor::cat(
        &[
            dequantize_rows(&codes[0], &step),
            dequantize_rows(&codes[1], &step),
        ],
        1,
    );
    let dense = Tensor::cat(&[&w_ih, &w_hh], 1);
    let dense = model::cell::join_rows(&deq_rows, Some(&dense.narrow(0, 12, 12)), 0, 0);
    let xh = random(&[4, 16], 15).tanh();
    assert_matrix_within_bound(&joint, &xh, &dense, &deq_rows, &rows);
    // Steps of their own (bundles made before the join) and float matrices: no join.
    let (q_ih, s_ih) = quantize_rows(&w_ih).unwrap();
    let (q_hh, s_hh) = quantize_rows(&w_hh).unwrap();
    assert!(Matrix::join_columns(&int8_matrix(&q_ih, &s_ih), &int8_matrix(&q_hh, &s_hh)).is_none());
    assert!(Matrix::join_columns(&Matrix::Dense(w_ih), &Matrix::Dense(w_hh)).is_none());
}

#[test]
fn int8_linear_layers_match_the_dequantized_reference() {
    let vs = tch::nn::VarStore::new(Device::Cpu);
    for bias in [false, true] {
        let name = format!("l{bias}");
        let layer = model::linear::Linear::new(vs.root() / name.as_str(), 10, 7, bias, true);
        let w = random(&[7, 10], 21);
        let (q, step) = quantize_rows(&w).unwrap();
        let vars = vs.variables();
        tch::no_grad(|| {
            vars[&format!("{name}.weight_int8_q")]
                .shallow_clone()
                .copy_(&q);
            vars[&format!("{name}.weight_int8_scale")]
                .shallow_clone()
                .copy_(&step);
        });
        let b = vars.get(&format!("{name}.bias"));
        assert_eq!(b.is_some(), bias);
        assert!(
            !vars.contains_key(&format!("{name}.weight")),
            "no float weight"
        );
        let deq = dequantize_rows(&q, &step);
        let x = random(&[3, 4, 10], 22);
        assert_within_bound(&layer.forward(&x), &x.linear(&deq, b), &x, &deq, &(0..7));
    }
}

#[test]
fn the_joined_int8_decoder_step_matches_the_reference_step() {
    // The prepared search step (embedding columns ahead, [feed; h] · [W_ih | W_hh] as one
    // int8 call per layer) against the reference equations (each matrix its own int8 call):
    // both approximate the same dequantized network. Bound: each layer's pre-activations are
    // off by at most the two paths' kernel bounds plus what the layer below's output error
    // becomes through W_ih (its row sums of |W|); h and c by at most 2·(1 + max|c|) times that
    // (σ' ≤ 1/4, tanh' ≤ 1).
    let root = tempfile::tempdir().unwrap();
    let int8 = common::int8_all_lstm(root.path());
    let cfg = &int8.config.model;
    let rnn = &int8.model.decoder.rnn;
    let ctx = int8.model.context(false);
    let (batch, embed, input_dim) = (5, cfg.embed_dim, rnn.shape().input_dim);
    let x = random(&[batch, input_dim], 31).tanh();
    let state = model::rnn::RnnState {
        h: random(&[cfg.decoder_layers, batch, cfg.hidden_dim], 32).tanh(),
        c: Some(random(&[cfg.decoder_layers, batch, cfg.hidden_dim], 33)),
    };
    let (top_ref, ref_state) = rnn.step(&x, &state, &ctx, 0);
    let prepared = rnn.prepare(embed, &ctx).expect("an LSTM decoder prepares");
    let ahead = rnn.ahead(&prepared, &x.narrow(1, 0, embed));
    let (top, fast_state) = rnn.step_prepared(
        &prepared,
        &ahead,
        &x.narrow(1, embed, input_dim - embed),
        &state,
        &ctx,
        0,
    );
    let vars = int8.vars.variables();
    let deq = |name: &str| {
        dequantize_rows(
            &vars[&format!("decoder.rnn.{name}_int8_q")],
            &vars[&format!("decoder.rnn.{name}_int8_scale")],
        )
    };
    let c_max = 1.0 + state.c.as_ref().unwrap().abs().max().double_value(&[]);
    let mut below = 0.0; // the bound on the previous layer's output error
    let mut layer_input = x.shallow_clone();
    for layer in 0..cfg.decoder_layers {
        let (w_ih, w_hh) = (
            deq(&format!("weight_ih_l{layer}")),
            deq(&format!("weight_hh_l{layer}")),
        );
        let h = state.h.get(layer);
        let max = |t: Tensor| t.max().double_value(&[]);
        let reference = max(error_bound(&layer_input, &w_ih) + error_bound(&h, &w_hh));
        let fast = if layer == 0 {
            let late = input_dim - embed;
            let joint = Tensor::cat(&[w_ih.narrow(1, embed, late), w_hh.shallow_clone()], 1);
            let feed_h = Tensor::cat(&[layer_input.narrow(1, embed, late), h], 1);
            max(
                error_bound(&layer_input.narrow(1, 0, embed), &w_ih.narrow(1, 0, embed))
                    + error_bound(&feed_h, &joint),
            )
        } else {
            let joint = Tensor::cat(&[&w_ih, &w_hh], 1);
            max(error_bound(&Tensor::cat(&[&layer_input, &h], 1), &joint))
        };
        let propagated = below * max(w_ih.abs().sum_dim_intlist(1, false, Kind::Float));
        let bound = 2.0 * c_max * (reference + fast + propagated) + 1e-5;
        let dh = max((fast_state.h.get(layer) - ref_state.h.get(layer)).abs());
        let dc = max((fast_state.c.as_ref().unwrap().get(layer)
            - ref_state.c.as_ref().unwrap().get(layer))
        .abs());
        assert!(
            dh <= bound && dc <= bound,
            "layer {layer}: h off by {dh}, c by {dc}, bound {bound}"
        );
        below = bound;
        layer_input = ref_state.h.get(layer);
    }
    let last = cfg.decoder_layers - 1;
    assert!(top.equal(&fast_state.h.get(last)) && top_ref.equal(&ref_state.h.get(last)));
}
