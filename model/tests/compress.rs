//! Compressed bundles: round/clip leaves only the allowed values in the chosen rows and every
//! other weight bit-identical, stores them as codebooks that load back exactly, shrinks the
//! bundle, and still translates; averaging; clear errors for nonsense options and broken
//! compressed files. Bundles are small random ones written here (`write_untrained_bundle`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use model::bundle::{self, WeightsDtype, FORMAT_VERSION_COMPRESSED};
use model::compress::{self, ParamSet, RoundClip};
use model::translate::{translate, TranslateOptions};
use model::Bundle;
use tch::{Device, Tensor};

#[allow(dead_code)] // the shared helpers this binary does not call
mod common;
use common::LINES;

/// A round/clip setting: steps of `round`, values clipped to ±`clip` first when given.
fn rounding(round: f64, clip: Option<f64>) -> RoundClip {
    RoundClip { round, clip }
}

fn original(root: &Path, seed: i64) -> PathBuf {
    let dir = root.join(format!("original-{seed}"));
    model::testing::write_untrained_bundle(&dir, LINES, 50, ("de", "en"), seed).unwrap();
    dir
}

fn weights(b: &Bundle) -> BTreeMap<String, Tensor> {
    b.vars.variables().into_iter().collect()
}

fn size(dir: &Path) -> u64 {
    std::fs::metadata(dir.join(bundle::WEIGHTS_FILE))
        .unwrap()
        .len()
}

#[test]
fn round_clip_keeps_only_allowed_values_and_leaves_the_rest_identical() {
    let root = tempfile::tempdir().unwrap();
    let input = original(root.path(), 1);
    let out = root.path().join("rc");
    // Weights of the random bundle lie in ±1/√16; a step of 0.1 and a clip of 0.2 leave
    // {0, ±0.1, ±0.2}.
    let rc = rounding(0.1, Some(0.2));
    let compressed =
        bundle::compress_round_clip(&input, &out, ParamSet::Gates, rc, WeightsDtype::Float32)
            .unwrap();
    assert_eq!(compressed.config.format_version, FORMAT_VERSION_COMPRESSED);
    let before = Bundle::load(&input, Device::Cpu).unwrap();
    let (a, b) = (weights(&before), weights(&compressed));
    let hidden = before.config.model.hidden_dim;
    let mut gate_tensors = 0;
    for (name, old) in &a {
        let new = &b[name];
        let recurrent_matrix = name.contains(".rnn.weight_");
        let (gate_rows, other_rows) = if recurrent_matrix {
            gate_tensors += 1;
            (
                Some(new.narrow(0, 0, 2 * hidden)),
                Some((
                    old.narrow(0, 2 * hidden, old.size()[0] - 2 * hidden),
                    new.narrow(0, 2 * hidden, new.size()[0] - 2 * hidden),
                )),
            )
        } else {
            (None, None)
        };
        match (gate_rows, other_rows) {
            (Some(gates), Some((old_rest, new_rest))) => {
                // Allowed values only, each the rounded and clipped original.
                let allowed = Tensor::from_slice(&[-0.2f32, -0.1, 0.0, 0.1, 0.2]);
                let distance = (gates.unsqueeze(-1) - &allowed)
                    .abs()
                    .min_dim(-1, false)
                    .0
                    .max()
                    .double_value(&[]);
                assert!(
                    distance < 1e-6,
                    "{name}: a value off the grid by {distance}"
                );
                let expected = rc.apply(&old.narrow(0, 0, 2 * hidden));
                assert!(
                    gates.equal(&expected),
                    "{name}: gate rows are not round/clip of the original"
                );
                // Some values really changed (else the test would check nothing).
                assert!(!gates.equal(&old.narrow(0, 0, 2 * hidden)), "{name}");
                assert!(new_rest.equal(&old_rest), "{name}: the other rows changed");
            }
            _ => assert!(
                new.equal(old),
                "{name}: a weight outside the chosen set changed"
            ),
        }
    }
    // 2 encoder layers × 2 directions and 2 decoder layers, input and recurrent matrices.
    assert_eq!(gate_tensors, 12);
    assert!(
        size(&out) < size(&input),
        "{} vs {}",
        size(&out),
        size(&input)
    );
    let info: serde_json::Value = compressed.metadata.extra["compression"].clone();
    assert_eq!(info["method"], "round_clip");
    assert_eq!(info["params"], "gates");
    // The compressed bundle translates, loaded like any other.
    let texts = vec!["ein hund läuft".to_string(), "zwei männer".to_string()];
    let result = translate(&compressed, &texts, &TranslateOptions::default(), |_| {}).unwrap();
    assert_eq!(result.len(), 2);
}

#[test]
fn codebooks_of_every_width_load_back_exactly() {
    let root = tempfile::tempdir().unwrap();
    let input = original(root.path(), 2);
    let before = Bundle::load(&input, Device::Cpu).unwrap();
    // Few levels (4-bit codes), many levels (8-bit codes), every weight of the model
    // (vectors, embeddings, all rows).
    for (i, (set, rc)) in [
        (ParamSet::Recurrent, rounding(0.05, Some(0.1))),
        (ParamSet::Gates, rounding(0.004, None)),
        (ParamSet::All, rounding(0.02, Some(0.5))),
    ]
    .into_iter()
    .enumerate()
    {
        let out = root.path().join(format!("c{i}"));
        let loaded =
            bundle::compress_round_clip(&input, &out, set, rc, WeightsDtype::Float32).unwrap();
        // The same rounding in memory, on a fresh copy of the original.
        let expected = Bundle::load(&input, Device::Cpu).unwrap();
        let chosen = compress::round_clip(&expected.vars, &expected.config.model, set, rc).unwrap();
        assert!(!chosen.is_empty());
        let (want, got) = (weights(&expected), weights(&loaded));
        for (name, w) in &want {
            assert!(
                got[name].equal(w),
                "{set:?} {rc:?}: {name} differs after save/load"
            );
        }
        let levels = |name: &str| {
            let rows = &chosen.iter().find(|s| s.name == name).unwrap().rows;
            want[name]
                .narrow(0, rows.start, rows.end - rows.start)
                .flatten(0, -1)
                .internal_unique(true, false)
                .0
                .size()[0]
        };
        let first = &chosen[0].name;
        match i {
            0 => assert!(levels(first) <= 16),
            1 => assert!(
                levels(first) > 16 && levels(first) <= 256,
                "{}",
                levels(first)
            ),
            _ => assert_eq!(chosen.len(), weights(&before).len()),
        }
    }
}

#[test]
fn nonsense_options_and_broken_files_are_clear_errors() {
    let root = tempfile::tempdir().unwrap();
    let input = original(root.path(), 3);
    let out = root.path().join("out");
    for (rc, says) in [
        (rounding(0.0, None), "--round"),
        (rounding(-0.5, None), "--round"),
        (rounding(f64::NAN, None), "--round"),
        (rounding(0.5, Some(0.0)), "--clip"),
    ] {
        let e =
            bundle::compress_round_clip(&input, &out, ParamSet::Gates, rc, WeightsDtype::Float16)
                .unwrap_err();
        assert!(e.to_string().contains(says), "{e}");
    }
    // Too many distinct values for a codebook: named, with the way out.
    let e = bundle::compress_round_clip(
        &input,
        &out,
        ParamSet::All,
        rounding(1e-5, None),
        WeightsDtype::Float16,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("distinct values") && e.contains("--clip"), "{e}");
    // The input itself as output, and compressing twice.
    let e = bundle::compress_round_clip(
        &input,
        &input,
        ParamSet::Gates,
        rounding(0.1, None),
        WeightsDtype::Float16,
    )
    .unwrap_err();
    assert!(e.to_string().contains("output is the input"), "{e}");
    bundle::compress_round_clip(
        &input,
        &out,
        ParamSet::Gates,
        rounding(0.1, Some(0.2)),
        WeightsDtype::Float16,
    )
    .unwrap();
    let again = root.path().join("again");
    let e = bundle::compress_round_clip(
        &out,
        &again,
        ParamSet::Gates,
        rounding(0.1, None),
        WeightsDtype::Float16,
    )
    .unwrap_err();
    assert!(e.to_string().contains("compressed already"), "{e}");
    let e = bundle::convert(&out, &again, WeightsDtype::Float32).unwrap_err();
    assert!(e.to_string().contains("compressed"), "{e}");

    // A codes tensor cut short, and a layout that points outside the weight.
    let path = out.join(bundle::WEIGHTS_FILE);
    let stored = Tensor::read_safetensors(&path).unwrap();
    let codes_name = stored
        .iter()
        .find(|(n, _)| n.ends_with("::codes"))
        .unwrap()
        .0
        .clone();
    let layout_name = codes_name.replace("::codes", "::layout");
    for (target, broken, says) in [
        (codes_name.clone(), None, "codes for"),
        (
            layout_name.clone(),
            Some(Tensor::from_slice(&[0i64, 9999, 4, 64, 16])),
            "invalid layout",
        ),
        (
            layout_name.clone(),
            Some(Tensor::from_slice(&[0i64])),
            "expected [start",
        ),
    ] {
        let tensors: Vec<(String, Tensor)> = stored
            .iter()
            .map(|(n, t)| {
                let t = if *n == target {
                    match &broken {
                        Some(b) => b.shallow_clone(),
                        None => t.narrow(0, 0, t.size()[0] - 1),
                    }
                } else {
                    t.shallow_clone()
                };
                (n.clone(), t)
            })
            .collect();
        Tensor::write_safetensors(&tensors, &path).unwrap();
        let e = Bundle::load(&out, Device::Cpu).unwrap_err().to_string();
        assert!(
            e.contains(says) && e.contains("model.safetensors"),
            "{says}: {e}"
        );
    }
}

#[test]
fn averaging_copies_gives_the_bundle_and_two_bundles_their_mean() {
    let root = tempfile::tempdir().unwrap();
    let a = original(root.path(), 4);
    // Another model: trained on other lines, so its vocabulary (and with it the embedding
    // sizes) differs. Vocabulary training is deterministic: a bundle made from the same
    // lines with another seed would share `a`'s vocabulary and shapes.
    let b = root.path().join("other-vocabulary");
    let other_lines: Vec<String> = LINES
        .iter()
        .map(|l| l.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .collect();
    let other_lines: Vec<&str> = other_lines.iter().map(String::as_str).collect();
    model::testing::write_untrained_bundle(&b, &other_lines, 40, ("de", "en"), 5).unwrap();
    let same = root.path().join("same");
    let averaged = bundle::average(
        &[a.clone(), a.clone(), a.clone()],
        &same,
        WeightsDtype::Float32,
    )
    .unwrap();
    let first = Bundle::load(&a, Device::Cpu).unwrap();
    for (name, w) in weights(&first) {
        assert!(weights(&averaged)[&name].equal(&w), "{name}");
    }
    // A second checkpoint of the same model: the first's weights plus 1 (and a third with
    // plus 2), 100 (200) steps later; their mean is the first plus 1.
    let shifted = |by: f64, name: &str| -> PathBuf {
        let b = Bundle::load(&a, Device::Cpu).unwrap();
        tch::no_grad(|| {
            for (_, mut v) in b.vars.variables() {
                let _ = v.g_add_scalar_(by);
            }
        });
        let mut metadata = b.metadata.clone();
        metadata.step += 100 * by as u64;
        metadata.validation.insert("bleu".into(), 30.0 + by);
        let dir = root.path().join(name);
        bundle::save(
            &dir,
            &bundle::BundleContents {
                config: &b.config,
                metadata: &metadata,
                vars: &b.vars,
                vocab_files: &b.vocab_files(),
                dtype: WeightsDtype::Float32,
            },
        )
        .unwrap();
        dir
    };
    let (plus1, plus2) = (shifted(1.0, "plus1"), shifted(2.0, "plus2"));
    let mean_dir = root.path().join("mean");
    let mean =
        bundle::average(&[a.clone(), plus1, plus2], &mean_dir, WeightsDtype::Float32).unwrap();
    for (name, w) in weights(&first) {
        let diff = (&weights(&mean)[&name] - (w + 1.0))
            .abs()
            .max()
            .double_value(&[]);
        assert!(diff < 1e-6, "{name}: {diff}");
    }
    assert!(mean.metadata.extra["averaged"].as_array().unwrap().len() == 3);
    // Its metadata is the newest checkpoint's, without scores it was never validated on.
    assert_eq!(mean.metadata.step, first.metadata.step + 200);
    assert!(
        mean.metadata.validation.is_empty(),
        "{:?}",
        mean.metadata.validation
    );
    // Another model (its own vocabulary and sizes) is refused, by name.
    let e = bundle::average(
        &[a.clone(), b.clone()],
        &root.path().join("x"),
        WeightsDtype::Float32,
    )
    .unwrap_err();
    assert!(e.to_string().contains("other-vocabulary"), "{e}");
    // Two seeds of one model (same lines, so the same vocabulary) average.
    let seed5 = original(root.path(), 5);
    bundle::average(
        &[a.clone(), seed5],
        &root.path().join("seeds"),
        WeightsDtype::Float32,
    )
    .unwrap();
    let compressed = root.path().join("rc");
    bundle::compress_round_clip(
        &a,
        &compressed,
        ParamSet::Gates,
        rounding(0.1, None),
        WeightsDtype::Float32,
    )
    .unwrap();
    let e = bundle::average(
        &[a.clone(), compressed],
        &root.path().join("z"),
        WeightsDtype::Float32,
    )
    .unwrap_err();
    assert!(e.to_string().contains("compressed"), "{e}");
    let e = bundle::average(&[], &mean_dir, WeightsDtype::Float32).unwrap_err();
    assert!(e.to_string().contains("at least one"), "{e}");
    let e = bundle::average(
        &[a.clone(), mean_dir.clone()],
        &mean_dir,
        WeightsDtype::Float32,
    )
    .unwrap_err();
    assert!(e.to_string().contains("output is the input"), "{e}");
}

#[test]
fn nmt_bundle_compress_and_average_from_the_command_line() {
    let root = tempfile::tempdir().unwrap();
    let input = original(root.path(), 6);
    let out = root.path().join("cli");
    let (i, o) = (input.to_str().unwrap(), out.to_str().unwrap());
    let (ok, stdout, stderr) =
        common::nmt_bundle(&["compress", i, o, "--round", "0.1", "--clip", "0.2"]);
    assert!(ok, "{stderr}");
    let info: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(info["format_version"], 2);
    assert_eq!(info["compression"]["round"], 0.1);
    assert_eq!(info["compression"]["clip"], 0.2);
    let (_, stdout, _) = common::nmt_bundle(&["info", o]);
    let info: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(info["compression"]["method"], "round_clip");
    assert!(info["weights_bytes"].as_u64().unwrap() > 0);
    let (ok, _, stderr) = common::nmt_bundle(&["compress", i, o, "--round", "0"]);
    assert!(!ok);
    assert!(stderr.contains("--round must be a positive number"));
    let (ok, _, _) = common::nmt_bundle(&["average", i]);
    assert!(!ok);
    let avg = root.path().join("avg");
    let (ok, _, stderr) = common::nmt_bundle(&["average", i, i, avg.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(avg.join(bundle::WEIGHTS_FILE).is_file());
}

#[test]
fn low_rank_factors_reach_the_eckart_young_error() {
    tch::manual_seed(11);
    let w = Tensor::randn([48, 20], (tch::Kind::Float, Device::Cpu));
    // σ² are the eigenvalues of W Wᵀ (ascending): an independent route to the singular values.
    let sigma2: Vec<f64> = Vec::try_from(
        &w.to_kind(tch::Kind::Double)
            .matmul(&w.to_kind(tch::Kind::Double).tr())
            .linalg_eigvalsh("L")
            .flip([0])
            .narrow(0, 0, 20),
    )
    .unwrap();
    for rank in [1, 5, 12, 20] {
        let (u, v) = compress::low_rank_factors(&w, rank).unwrap();
        assert_eq!((u.size(), v.size()), (vec![48, rank], vec![rank, 20]));
        let error = (&w - u.matmul(&v))
            .square()
            .sum(tch::Kind::Double)
            .double_value(&[]);
        let expected: f64 = sigma2[rank as usize..].iter().sum();
        assert!(
            (error - expected).abs() <= 1e-4 * (1.0 + expected),
            "rank {rank}: error {error}, Eckart–Young {expected}"
        );
    }
    for bad in [0, 21] {
        let e = compress::low_rank_factors(&w, bad).unwrap_err().to_string();
        assert!(e.contains("1..=20"), "{e}");
    }
}

#[test]
fn factored_bundles_compute_what_their_dense_equivalent_does() {
    use model::config::LowRankRows;
    let root = tempfile::tempdir().unwrap();
    for cell in [model::CellKind::Lstm, model::CellKind::Gru] {
        let dense_dir = root.path().join(format!("dense-{cell:?}"));
        let train = vocab::TrainConfig {
            vocab_size: 50,
            min_frequency: 1,
            ..Default::default()
        };
        model::testing::write_untrained_bundle_with(
            &dense_dir,
            LINES,
            &train,
            ("de", "en"),
            21,
            |m| model::ModelConfig { cell, ..m },
        )
        .unwrap();
        for rows in [LowRankRows::Gates, LowRankRows::All] {
            let dir = root.path().join(format!("svd-{cell:?}-{rows:?}"));
            let factored =
                bundle::compress_low_rank(&dense_dir, &dir, rows, 6, WeightsDtype::Float32)
                    .unwrap();
            assert_eq!(factored.config.format_version, FORMAT_VERSION_COMPRESSED);
            // The dense model whose matrices are exactly U V (and the other rows): what the
            // factored executors (two GEMMs, split prepared steps) must compute.
            let equivalent = Bundle::load(&dense_dir, Device::Cpu).unwrap();
            let f = weights(&factored);
            let mut factored_count = 0;
            tch::no_grad(|| {
                for (name, mut w) in equivalent.vars.variables() {
                    let Some(u) = f.get(&format!("{name}_svd_u")) else {
                        assert!(f[&name].equal(&w), "{name} should be copied unchanged");
                        continue;
                    };
                    factored_count += 1;
                    let uv = u.matmul(&f[&format!("{name}_svd_v")]);
                    let n = uv.size()[0];
                    let full = match f.get(&format!("{name}_svd_rest")) {
                        Some(rest) => Tensor::cat(&[uv, rest.shallow_clone()], 0),
                        None => uv,
                    };
                    assert_eq!(full.size(), w.size(), "{name}");
                    assert!(n == w.size()[0] || rows == LowRankRows::Gates);
                    w.copy_(&full);
                }
            });
            // 2 encoder layers × 2 directions + 2 decoder layers, two matrices each.
            assert_eq!(factored_count, 12, "{cell:?} {rows:?}");
            let texts: Vec<String> = common::TEXTS.iter().map(|s| s.to_string()).collect();
            for t in &texts {
                let mut src: Vec<i64> = equivalent
                    .src_vocab
                    .encode(t)
                    .unwrap()
                    .into_iter()
                    .map(i64::from)
                    .collect();
                src.push(vocab::EOS_ID as i64);
                let n = src.len() as i64;
                let src = Tensor::from_slice(&src).unsqueeze(0);
                let lengths = Tensor::from_slice(&[n]);
                let tgt_in = Tensor::from_slice(&[vocab::BOS_ID as i64, 7, 9, 11]).unsqueeze(0);
                let _g = tch::no_grad_guard();
                let logits = |b: &Bundle| {
                    let ctx = b.model.context(false);
                    b.model
                        .forward_packed(&src, &lengths, &tgt_in, &[4], &ctx)
                        .0
                };
                let (a, b) = (logits(&equivalent), logits(&factored));
                let diff = (a - b).abs().max().double_value(&[]);
                assert!(diff < 1e-4, "{cell:?} {rows:?}: logits differ by {diff}");
            }
            for (x, y) in common::translate_both(&equivalent, &factored, &texts) {
                common::assert_same_translation(&x, &y, 1e-3, &format!("{cell:?} {rows:?}"));
            }
        }
    }
}

#[test]
fn a_factored_bundle_is_smaller_and_nonsense_ranks_are_errors() {
    use model::config::LowRankRows;
    let root = tempfile::tempdir().unwrap();
    let input = original(root.path(), 7);
    let out = root.path().join("svd4");
    let b = bundle::compress_low_rank(&input, &out, LowRankRows::All, 4, WeightsDtype::Float32)
        .unwrap();
    assert!(
        size(&out) < size(&input),
        "{} vs {}",
        size(&out),
        size(&input)
    );
    assert_eq!(b.metadata.extra["compression"]["method"], "svd");
    assert_eq!(b.metadata.extra["compression"]["rank"], 4);
    let texts = vec!["ein hund".to_string()];
    assert_eq!(
        translate(&b, &texts, &TranslateOptions::default(), |_| {})
            .unwrap()
            .len(),
        1
    );
    for (rank, says) in [(0, "1..=16"), (17, "1..=16")] {
        let e = bundle::compress_low_rank(
            &input,
            &root.path().join("x"),
            LowRankRows::Gates,
            rank,
            WeightsDtype::Float32,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains(says), "{e}");
    }
    let e = bundle::compress_low_rank(
        &out,
        &root.path().join("y"),
        LowRankRows::Gates,
        2,
        WeightsDtype::Float32,
    )
    .unwrap_err();
    assert!(e.to_string().contains("compressed already"), "{e}");
    let (ok, _, stderr) = common::nmt_bundle(&[
        "compress",
        input.to_str().unwrap(),
        root.path().join("z").to_str().unwrap(),
        "--svd-rank",
        "4",
        "--params",
        "all",
    ]);
    assert!(!ok);
    assert!(stderr.contains("--params gates or recurrent"));
}

#[test]
fn rows_split_apart_and_join_back_in_order() {
    use model::cell::{join_rows, split_rows};
    let t = Tensor::arange(6 * 4, (tch::Kind::Float, Device::Cpu)).view([6, 4]);
    for (dim, n) in [(0i64, 6i64), (-1, 4)] {
        for rows in [0..2, 1..3, 2..n, 0..n] {
            let (chosen, rest) = split_rows(&t, &rows, dim);
            assert_eq!(
                chosen.size()[dim.rem_euclid(2) as usize],
                rows.end - rows.start
            );
            let others = n - (rows.end - rows.start);
            assert_eq!(
                rest.as_ref()
                    .map_or(0, |r| r.size()[dim.rem_euclid(2) as usize]),
                others
            );
            // The rest keeps the other rows in order: its first row is row 0 unless chosen.
            if let Some(r) = &rest {
                let first = if rows.start == 0 { rows.end } else { 0 };
                assert!(
                    r.narrow(dim, 0, 1).equal(&t.narrow(dim, first, 1)),
                    "{rows:?} dim {dim}"
                );
            }
            assert!(
                join_rows(&chosen, rest.as_ref(), rows.start, dim).equal(&t),
                "{rows:?} dim {dim}"
            );
        }
    }
}
