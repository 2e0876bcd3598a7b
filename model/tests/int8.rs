//! int8 bundles (`nmt-bundle compress --int8`): the int8 matrices of the step executors
//! against the dequantized float reference within the quantization bound, bundles that
//! round-trip through save/load, and clear errors. Bundles are small random ones written
//! here (`write_untrained_bundle_with`).

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use model::bundle::{self, WeightsDtype, FORMAT_VERSION_INT8};
use model::cell::Matrix;
use model::config::LowRankRows;
use model::translate::{translate, TranslateOptions};
use model::Bundle;
use quantized::{dequantize_rows, error_bound, quantize_rows, Int8Weight};
use tch::{Device, Kind, Tensor};

#[allow(dead_code)] // the shared helpers this binary does not call
mod common;
use common::LINES;

fn original(root: &Path, name: &str, cell: model::CellKind) -> PathBuf {
    let dir = root.join(name);
    let train = vocab::TrainConfig {
        vocab_size: 50,
        min_frequency: 1,
        ..Default::default()
    };
    model::testing::write_untrained_bundle_with(&dir, LINES, &train, ("de", "en"), 31, |m| {
        model::ModelConfig { cell, ..m }
    })
    .unwrap();
    dir
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
        assert_within_bound(
            &m.linear(&x, None),
            &x.linear::<&Tensor>(&dense, None),
            &x,
            &deq,
            &rows,
        );
        assert_within_bound(
            &m.linear(&x, Some(&bias)),
            &x.linear(&dense, Some(&bias)),
            &x,
            &deq,
            &rows,
        );
        let x3 = random(&[2, 3, 10], 4);
        assert_within_bound(
            &m.linear(&x3, Some(&bias)),
            &x3.linear(&dense, Some(&bias)),
            &x3,
            &deq,
            &rows,
        );
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

#[test]
fn int8_bundles_store_the_quantized_rows_round_trip_and_translate() {
    let root = tempfile::tempdir().unwrap();
    let texts: Vec<String> = common::TEXTS.iter().map(|s| s.to_string()).collect();
    for cell in [model::CellKind::Lstm, model::CellKind::Gru] {
        let input = original(root.path(), &format!("float-{cell:?}"), cell);
        let float = Bundle::load(&input, Device::Cpu).unwrap();
        let float_vars = float.vars.variables();
        for rows in [LowRankRows::Gates, LowRankRows::All] {
            let out = root.path().join(format!("int8-{cell:?}-{rows:?}"));
            let int8 = bundle::compress_int8(&input, &out, rows, WeightsDtype::Float32).unwrap();
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
                let range = rows.range(int8.config.model.hidden_dim, w.size()[0]);
                let (chosen, rest) = model::cell::split_rows(w, &range, 0);
                // What was loaded back from disk is what quantizing the original gives.
                let (q_expected, step_expected) = quantize_rows(&chosen).unwrap();
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
            // 2 encoder layers × 2 directions + 2 decoder layers, two matrices each.
            assert_eq!(matrices, 12, "{cell:?} {rows:?}");
            // Load the written bundle again: the same outputs, bit for bit.
            let again = Bundle::load(&out, Device::Cpu).unwrap();
            let opts = TranslateOptions::default();
            let (a, b) = (
                translate(&int8, &texts, &opts, |_| {}).unwrap(),
                translate(&again, &texts, &opts, |_| {}).unwrap(),
            );
            for (a, b) in a.iter().zip(&b) {
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
    bundle::compress_int8(&input, &int8_dir, LowRankRows::All, WeightsDtype::Float16).unwrap();
    // Twice: names the input.
    let err = bundle::compress_int8(
        &int8_dir,
        &root.path().join("twice"),
        LowRankRows::All,
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
    // The command line: --params all and --int8 with --round are refused, naming the flags.
    let bin = env!("CARGO_BIN_EXE_nmt-bundle");
    let run = |args: &[&str]| {
        let o = Command::new(bin).args(args).output().unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (i, o) = (input.to_str().unwrap(), root.path().join("cli"));
    let o = o.to_str().unwrap();
    let (ok, _, err) = run(&["compress", i, o, "--int8", "--params", "all"]);
    assert!(
        !ok && err.contains("--int8") && err.contains("--params"),
        "{err}"
    );
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
}
