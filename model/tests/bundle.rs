//! Bundles on disk: round trips, fp16, atomic replacement, and clear errors
//! for every kind of broken bundle.

#[allow(dead_code)] // the shared helpers this binary does not call
mod common;

use std::fs;
use std::path::{Path, PathBuf};

use model::atomic::write_dir_atomically;
use model::beam::BeamOptions;
use model::bundle::{
    self, BundleConfig, BundleContents, BundleMetadata, ComputeDtype, WeightsDtype, FORMAT_VERSION,
};
use model::search::MaxLength;
use model::translate::{translate, TranslateOptions};
use model::{Bundle, ModelConfig, ModelError, Seq2Seq};
use tch::{nn, Device, Kind, Tensor};
use vocab::Vocab;

const LINES: &[&str] = &[
    "ein hund läuft über die wiese",
    "zwei männer spielen fußball im park",
    "eine frau liest ein buch",
    "kinder spielen am strand",
    "a dog runs across the meadow",
    "two men play soccer in the park",
    "a woman reads a book",
    "children play on the beach",
];

/// A joint vocabulary file trained on LINES, and a bundle built on it.
fn make_bundle(dir: &Path, dtype: WeightsDtype) -> (BundleConfig, nn::VarStore) {
    let vocab_path = dir.with_extension("vocab.json");
    let v = vocab::train_lines(
        &vocab::TrainConfig {
            vocab_size: 60,
            min_frequency: 1,
            ..Default::default()
        },
        LINES.iter().copied(),
    )
    .unwrap();
    v.save(&vocab_path).unwrap();
    let n = v.len() as i64;
    tch::manual_seed(1);
    let vs = nn::VarStore::new(Device::Cpu);
    let model_cfg = ModelConfig {
        embed_dim: 8,
        hidden_dim: 8,
        dropout: 0.0,
        share_embeddings: true,
        ..ModelConfig::new(n, n)
    };
    Seq2Seq::new(&vs.root(), &model_cfg).unwrap();
    let config = de_en_config(model_cfg, "vocab.json", "vocab.json");
    let metadata = BundleMetadata {
        format_version: FORMAT_VERSION,
        step: 7,
        epoch: 1,
        ..Default::default()
    };
    let files = vec![("vocab.json".to_string(), vocab_path)];
    bundle::save(
        dir,
        &BundleContents {
            config: &config,
            metadata: &metadata,
            vars: &vs,
            vocab_files: &files,
            dtype,
        },
    )
    .unwrap();
    (config, vs)
}

fn logits(model: &Seq2Seq) -> Tensor {
    let src = Tensor::from_slice(&[5i64, 6, 7, 3]).view([1, 4]);
    model.forward(
        &src,
        &Tensor::from_slice(&[4i64]),
        &Tensor::from_slice(&[2i64, 9]).view([1, 2]),
        &model.context(false),
    )
}

fn expect_error(dir: &Path, needle: &str) -> String {
    let err = Bundle::load(dir, Device::Cpu)
        .expect_err("a broken bundle must not load")
        .to_string();
    assert!(
        err.contains(needle),
        "error {err:?} should mention {needle:?}"
    );
    err
}

#[test]
fn save_then_load_gives_the_same_model() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("b");
    let (config, vs) = make_bundle(&dir, WeightsDtype::Float32);
    let loaded = Bundle::load(&dir, Device::Cpu).unwrap();
    assert_eq!(loaded.config, config);
    assert_eq!(loaded.metadata.step, 7);
    let original = Seq2Seq::new(&vs.root(), &config.model).unwrap();
    drop(original);
    // Rebuild the original from its var store to compare outputs.
    let mut fresh = nn::VarStore::new(Device::Cpu);
    let model = Seq2Seq::new(&fresh.root(), &config.model).unwrap();
    fresh.copy(&vs).unwrap();
    assert!(
        (logits(&model) - logits(&loaded.model))
            .abs()
            .max()
            .double_value(&[])
            < 1e-7
    );
    // Both sides name the same vocabulary file here; it is the one the bundle was made from.
    let written = vocab::load(dir.with_extension("vocab.json")).unwrap();
    for line in LINES {
        let ids = written.encode(line).unwrap();
        assert_eq!(loaded.src_vocab.encode(line).unwrap(), ids, "{line}");
        assert_eq!(loaded.tgt_vocab.encode(line).unwrap(), ids, "{line}");
    }
}

#[test]
fn separate_source_and_target_vocabularies_load_on_their_sides() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("b");
    // A German-only and an English-only vocabulary of different sizes.
    let train = |lines: &[&str], size: usize, name: &str| {
        let v = vocab::train_lines(
            &vocab::TrainConfig {
                vocab_size: size,
                min_frequency: 1,
                ..Default::default()
            },
            lines.iter().copied(),
        )
        .unwrap();
        let path = tmp.path().join(name);
        v.save(&path).unwrap();
        (v, path)
    };
    let (de, de_path) = train(&LINES[..4], 40, "de.json");
    let (en, en_path) = train(&LINES[4..], 45, "en.json");
    assert_ne!(de.len(), en.len());
    let model_cfg = ModelConfig {
        embed_dim: 8,
        hidden_dim: 8,
        ..ModelConfig::new(de.len() as i64, en.len() as i64)
    };
    let vs = nn::VarStore::new(Device::Cpu);
    Seq2Seq::new(&vs.root(), &model_cfg).unwrap();
    let config = de_en_config(model_cfg, "src.json", "tgt.json");
    let metadata = BundleMetadata {
        format_version: FORMAT_VERSION,
        ..Default::default()
    };
    let files = vec![
        ("src.json".to_string(), de_path),
        ("tgt.json".to_string(), en_path),
    ];
    bundle::save(
        &dir,
        &BundleContents {
            config: &config,
            metadata: &metadata,
            vars: &vs,
            vocab_files: &files,
            dtype: WeightsDtype::Float32,
        },
    )
    .unwrap();
    let loaded = Bundle::load(&dir, Device::Cpu).unwrap();
    assert_eq!(loaded.src_vocab.len(), de.len());
    assert_eq!(loaded.tgt_vocab.len(), en.len());
    for line in LINES {
        assert_eq!(
            loaded.src_vocab.encode(line).unwrap(),
            de.encode(line).unwrap()
        );
        assert_eq!(
            loaded.tgt_vocab.encode(line).unwrap(),
            en.encode(line).unwrap()
        );
    }
    // The two differ where it shows: English text is whole words only for the English side.
    let english = LINES[6];
    assert!(
        loaded.tgt_vocab.encode(english).unwrap().len()
            < loaded.src_vocab.encode(english).unwrap().len()
    );
}

#[test]
fn float16_bundles_are_half_the_size_and_close() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("f32"), tmp.path().join("f16"));
    // The same weights and vocabulary saved twice: seeding alone would not do,
    // since tests share libtorch's RNG and vocabulary training is not bit-deterministic.
    let (config, vars) = make_bundle(&a, WeightsDtype::Float32);
    let metadata = BundleMetadata {
        format_version: FORMAT_VERSION,
        ..Default::default()
    };
    let files = vec![("vocab.json".to_string(), a.join("vocab.json"))];
    bundle::save(
        &b,
        &BundleContents {
            config: &config,
            metadata: &metadata,
            vars: &vars,
            vocab_files: &files,
            dtype: WeightsDtype::Float16,
        },
    )
    .unwrap();
    let size = |d: &PathBuf| fs::metadata(d.join(bundle::WEIGHTS_FILE)).unwrap().len() as f64;
    assert!(size(&b) < 0.6 * size(&a), "{} vs {}", size(&b), size(&a));
    let (la, lb) = (
        Bundle::load(&a, Device::Cpu).unwrap(),
        Bundle::load(&b, Device::Cpu).unwrap(),
    );
    let diff = (logits(&la.model) - logits(&lb.model))
        .abs()
        .max()
        .double_value(&[]);
    assert!(diff < 1e-2, "fp16 logits differ by {diff}");
}

/// The config of a de→en bundle of `model` whose vocabularies are the files `src_vocab` and
/// `tgt_vocab`.
fn de_en_config(model: ModelConfig, src_vocab: &str, tgt_vocab: &str) -> BundleConfig {
    BundleConfig {
        format_version: FORMAT_VERSION,
        src_lang: "de".into(),
        tgt_lang: "en".into(),
        src_vocab: src_vocab.into(),
        tgt_vocab: tgt_vocab.into(),
        model,
    }
}

/// Rewrites `dir/config.json` with `edit`.
fn edit_config(dir: &Path, edit: impl FnOnce(String) -> String) {
    let path = dir.join("config.json");
    let text = fs::read_to_string(&path).unwrap();
    fs::write(&path, edit(text)).unwrap();
}

#[test]
fn broken_bundles_fail_with_errors_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good");
    make_bundle(&good, WeightsDtype::Float32);
    let copy = |name: &str| -> PathBuf {
        let d = tmp.path().join(name);
        fs::create_dir_all(&d).unwrap();
        for e in fs::read_dir(&good).unwrap() {
            let e = e.unwrap();
            fs::copy(e.path(), d.join(e.file_name())).unwrap();
        }
        d
    };
    expect_error(&tmp.path().join("absent"), "no such bundle directory");

    let d = copy("no-weights");
    fs::remove_file(d.join("model.safetensors")).unwrap();
    expect_error(&d, "model.safetensors");

    let d = copy("truncated");
    let w = d.join("model.safetensors");
    let bytes = fs::read(&w).unwrap();
    fs::write(&w, &bytes[..bytes.len() / 2]).unwrap();
    expect_error(&d, "truncated");

    let d = copy("garbage-config");
    fs::write(d.join("config.json"), "{ not json").unwrap();
    expect_error(&d, "config.json");

    let d = copy("future");
    edit_config(&d, |text| {
        text.replace(
            &format!("\"format_version\": {FORMAT_VERSION}"),
            "\"format_version\": 99",
        )
    });
    expect_error(&d, "format version 99");

    let d = copy("shape");
    edit_config(&d, |text| {
        text.replace("\"hidden_dim\": 8", "\"hidden_dim\": 12")
    });
    expect_error(&d, "has shape");

    let d = copy("unknown-field");
    edit_config(&d, |text| text.replacen('{', "{\"colour\": 1,", 1));
    expect_error(&d, "colour");

    let d = copy("no-vocab");
    fs::remove_file(d.join("vocab.json")).unwrap();
    expect_error(&d, "vocab.json");

    let d = copy("escaping-vocab");
    edit_config(&d, |text| {
        text.replace(
            "\"src_vocab\": \"vocab.json\"",
            "\"src_vocab\": \"../good/vocab.json\"",
        )
    });
    expect_error(&d, "plain file name");
}

#[test]
fn atomic_writes_replace_whole_or_not_at_all() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ckpt");
    write_dir_atomically::<ModelError>(&dir, |d| {
        fs::write(d.join("a"), "old").map_err(|e| ModelError::Config(e.to_string()))
    })
    .unwrap();
    // A writer that fails halfway leaves the old version untouched and no debris.
    let failed = write_dir_atomically::<ModelError>(&dir, |d| {
        fs::write(d.join("a"), "new").unwrap();
        Err(ModelError::Config("disk full".into()))
    });
    assert!(failed.is_err());
    assert_eq!(fs::read_to_string(dir.join("a")).unwrap(), "old");
    write_dir_atomically::<ModelError>(&dir, |d| {
        fs::write(d.join("b"), "new").map_err(|e| ModelError::Config(e.to_string()))
    })
    .unwrap();
    assert!(!dir.join("a").exists(), "the old version is gone");
    assert_eq!(fs::read_to_string(dir.join("b")).unwrap(), "new");
    let leftovers: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("ckpt")]);
}

#[test]
fn untrained_bundles_load_and_translate() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tiny");
    let config = model::testing::write_untrained_bundle(&dir, LINES, 50, ("de", "en"), 3).unwrap();
    let loaded = Bundle::load(&dir, Device::Cpu).unwrap();
    assert_eq!(loaded.config, config);
    assert_eq!(loaded.src_vocab.len() as i64, config.model.src_vocab_size);
    // The vocabulary was trained on LINES: they encode without unknown pieces.
    for line in LINES {
        let ids = loaded.src_vocab.encode(line).unwrap();
        assert!(!ids.contains(&vocab::UNK_ID), "{line}: {ids:?}");
        assert_eq!(loaded.src_vocab.decode(&ids).unwrap(), *line);
    }
    // Greedy search (beam 1) with attention, so the output can be checked step by step.
    let opts = TranslateOptions {
        beam: BeamOptions {
            beam_size: 1,
            length_penalty: model::beam::LengthPenalty::None,
            ..Default::default()
        },
        return_attention: true,
        ..Default::default()
    };
    let out = translate(&loaded, &["ein hund".to_string()], &opts, |_| {}).unwrap();
    assert_eq!(out.len(), 1);
    let t = &out[0];
    let src = model::testing::source_ids(&loaded, &t.source_tokens);
    let mut expected_src: Vec<i64> = loaded
        .src_vocab
        .encode("ein hund")
        .unwrap()
        .iter()
        .map(|&i| i as i64)
        .collect();
    expected_src.push(vocab::EOS_ID as i64);
    assert_eq!(src, expected_src, "{t:?}");
    let tgt: Vec<i64> = t
        .target_tokens
        .iter()
        .map(|p| loaded.tgt_vocab.piece_to_id(p).unwrap() as i64)
        .collect();
    let ids: Vec<u32> = tgt.iter().map(|&i| i as u32).collect();
    assert_eq!(loaded.tgt_vocab.decode(&ids).unwrap(), t.text);
    // The translation is the model's own greedy decode: teacher-forced on its output, each
    // position's most likely token is the next output token, then EOS (unless the length
    // limit cut it), and the score is the sum of their log-probabilities.
    let log_probs = model::testing::teacher_forced_log_probs(&loaded, &src, &tgt);
    let argmax: Vec<i64> = Vec::try_from(log_probs.argmax(-1, false)).unwrap();
    assert_eq!(argmax[..tgt.len()], tgt[..], "not the greedy decode");
    let limit = MaxLength::default().for_source(src.len() as i64) as usize;
    let ended = argmax[tgt.len()] == vocab::EOS_ID as i64;
    assert!(ended || tgt.len() >= limit, "{t:?}");
    let mut score: f64 = (0..tgt.len())
        .map(|i| log_probs.double_value(&[i as i64, tgt[i]]))
        .sum();
    if ended {
        score += log_probs.double_value(&[tgt.len() as i64, vocab::EOS_ID as i64]);
    }
    assert!(
        (t.score - score).abs() < 1e-3,
        "score {} vs {score}",
        t.score
    );
    let leftovers: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("tiny")]);
}

/// A float32 bundle written to a temporary folder and loaded on the CPU.
fn loaded_float32_bundle() -> (tempfile::TempDir, Bundle) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("b");
    make_bundle(&dir, WeightsDtype::Float32);
    let bundle = Bundle::load(&dir, Device::Cpu).unwrap();
    (tmp, bundle)
}

#[test]
fn translate_keeps_order_and_handles_empty_and_long_lines() {
    let (_tmp, bundle) = loaded_float32_bundle();
    let long = "ein hund ".repeat(200);
    let texts: Vec<String> = vec![
        "ein hund".into(),
        "".into(),
        long.clone(),
        "   ".into(),
        "kinder spielen am strand".into(),
    ];
    let opts = TranslateOptions {
        max_source_tokens: 50,
        return_attention: true,
        max_tokens: 60,
        ..Default::default()
    };
    let mut seen = 0;
    let out = translate(&bundle, &texts, &opts, |n| seen += n).unwrap();
    assert_eq!(seen, texts.len());
    assert_eq!(out.len(), 5);
    assert_eq!(out[1].text, "");
    assert_eq!(out[3].text, "");
    assert!(out[2].truncated && !out[0].truncated);
    assert_eq!(out[2].source_tokens.len(), 51, "50 pieces and </s>");
    for r in [&out[0], &out[4]] {
        assert_eq!(r.attention.len(), r.target_tokens.len());
        assert!(r
            .attention
            .iter()
            .all(|row| row.len() == r.source_tokens.len()));
    }
    // Each sentence alone gives the same as inside the batch.
    for i in [0, 4] {
        let alone = translate(&bundle, &texts[i..=i], &opts, |_| {}).unwrap();
        assert_eq!(alone[0].text, out[i].text);
    }
}

#[test]
fn decoding_batches_side_by_side_changes_nothing() {
    let (_tmp, bundle) = loaded_float32_bundle();
    // The replicas read the original's weights: no copy, the same storage.
    let (vars, _replica) = bundle.share_model().unwrap();
    let original = bundle.vars.variables();
    for (name, var) in vars.variables() {
        assert_eq!(var.data_ptr(), original[&name].data_ptr(), "{name}");
    }
    let words = [
        "ein", "hund", "kinder", "spielen", "am", "strand", "zwei", "männer",
    ];
    let texts: Vec<String> = (0..40)
        .map(|i| {
            (0..1 + i % 7)
                .map(|j| words[(i * 3 + j) % words.len()])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .chain(["".to_string()])
        .collect();
    let opts = |workers| TranslateOptions {
        // Small batches, so that there are many to share out.
        max_tokens: 24,
        beam: BeamOptions {
            beam_size: 3,
            n_best: 2,
            ..Default::default()
        },
        return_attention: true,
        workers,
        ..Default::default()
    };
    let run = |workers| {
        let mut seen = 0;
        let out = translate(&bundle, &texts, &opts(workers), |n| seen += n).unwrap();
        assert_eq!(seen, texts.len(), "progress with {workers} workers");
        out
    };
    let one_at_a_time = run(1);
    for workers in [2, 3, 64] {
        let side_by_side = run(workers);
        for (i, (a, b)) in one_at_a_time.iter().zip(&side_by_side).enumerate() {
            common::assert_same_translation(a, b, 1e-4, &format!("line {i}, {workers} workers"));
            assert_eq!(a.target_tokens, b.target_tokens, "line {i}");
            assert_eq!(a.alternatives.len(), b.alternatives.len(), "line {i}");
        }
    }
    assert!(one_at_a_time.last().is_some_and(|t| t.text.is_empty()));
}

#[test]
fn convert_writes_a_float16_copy_that_keeps_everything_else() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("f32"), tmp.path().join("f16"));
    let (config, _) = make_bundle(&a, WeightsDtype::Float32);
    let converted = bundle::convert(&a, &b, WeightsDtype::Float16).unwrap();
    assert_eq!(converted.config, config);
    assert_eq!(converted.metadata.step, 7);
    assert_eq!(
        converted.metadata.extra.get("weights_dtype"),
        Some(&serde_json::json!("float16"))
    );
    let size = |d: &PathBuf| fs::metadata(d.join(bundle::WEIGHTS_FILE)).unwrap().len() as f64;
    assert!(size(&b) < 0.6 * size(&a), "{} vs {}", size(&b), size(&a));
    assert_eq!(
        fs::read(a.join("vocab.json")).unwrap(),
        fs::read(b.join("vocab.json")).unwrap()
    );
    let original = Bundle::load(&a, Device::Cpu).unwrap();
    let diff = (logits(&original.model) - logits(&converted.model))
        .abs()
        .max()
        .double_value(&[]);
    assert!(diff > 0.0 && diff < 1e-2, "fp16 logits differ by {diff}");

    let err = bundle::convert(&a, &a, WeightsDtype::Float16)
        .expect_err("converting a bundle onto itself must be refused")
        .to_string();
    assert!(err.contains("output is the input"), "{err}");
    let missing = tmp.path().join("nope");
    let err = bundle::convert(&missing, &tmp.path().join("out"), WeightsDtype::Float16)
        .expect_err("a missing input must fail")
        .to_string();
    assert!(err.contains("nope"), "{err}");
    assert!(!tmp.path().join("out").exists());
}

#[test]
fn bfloat16_compute_converts_every_weight_and_stays_close() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tiny");
    model::testing::write_untrained_bundle(&dir, LINES, 50, ("de", "en"), 3).unwrap();
    let mut loaded = Bundle::load(&dir, Device::Cpu).unwrap();
    let reference = logits(&loaded.model);
    let texts = vec![
        "ein hund".to_string(),
        String::new(),
        "zwei männer".to_string(),
    ];
    let out32 = translate(&loaded, &texts, &TranslateOptions::default(), |_| {}).unwrap();

    loaded.set_compute_dtype(ComputeDtype::Bfloat16);
    for (name, var) in loaded.vars.variables() {
        assert_eq!(var.kind(), Kind::BFloat16, "{name} was not converted");
    }
    let approx = logits(&loaded.model).to_kind(Kind::Float);
    let scale = reference.abs().max().double_value(&[]);
    let diff = (&approx - &reference).abs().max().double_value(&[]);
    assert!(
        diff <= 0.05 * scale,
        "bfloat16 logits off by {diff} (scale {scale})"
    );
    let out16 = translate(&loaded, &texts, &TranslateOptions::default(), |_| {}).unwrap();
    assert_eq!(out16.len(), out32.len());
    assert_eq!(out16[1].text, "", "an empty line stays empty");
    assert!(out16.iter().all(|t| t.score.is_finite()));

    // On the shipped trained model (peaked distributions, unlike an untrained one's),
    // bfloat16 gives the float32 translations with nearly the same scores.
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../checkpoints/multi30k-de-en");
    let mut trained = Bundle::load(&shipped, Device::Cpu).unwrap();
    let captions: Vec<String> = [
        "Ein Mann fährt Fahrrad.",
        "Zwei Hunde spielen im Schnee.",
        "Eine Frau sitzt auf einer Bank.",
        "Kinder spielen auf der Straße.",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let f32_out = translate(&trained, &captions, &TranslateOptions::default(), |_| {}).unwrap();
    trained.set_compute_dtype(ComputeDtype::Bfloat16);
    let bf16_out = translate(&trained, &captions, &TranslateOptions::default(), |_| {}).unwrap();
    for (a, b) in f32_out.iter().zip(&bf16_out) {
        assert!(!a.text.is_empty());
        assert_eq!(a.text, b.text, "bfloat16 changed the translation");
        assert!(
            (a.score - b.score).abs() <= 0.05 * a.score.abs() + 0.05,
            "{}: float32 score {}, bfloat16 {}",
            a.text,
            a.score,
            b.score
        );
    }

    loaded.set_compute_dtype(ComputeDtype::Float32);
    for (name, var) in loaded.vars.variables() {
        assert_eq!(var.kind(), Kind::Float, "{name} is not float32 again");
    }
}

#[test]
fn compute_dtypes_parse_by_name_and_alias() {
    assert_eq!("bf16".parse(), Ok(ComputeDtype::Bfloat16));
    assert_eq!("BFloat16".parse(), Ok(ComputeDtype::Bfloat16));
    assert_eq!("f32".parse(), Ok(ComputeDtype::Float32));
    let err = "fp8".parse::<ComputeDtype>().unwrap_err();
    assert!(err.contains("float32 or bfloat16"), "{err}");
}

#[test]
fn unknown_tokens_are_replaced_by_the_most_attended_source_token() {
    use model::beam::{BeamOptions, UnkPolicy};
    use model::search::MaxLength;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tiny");
    model::testing::write_untrained_bundle(&dir, LINES, 50, ("de", "en"), 3).unwrap();
    let loaded = Bundle::load(&dir, Device::Cpu).unwrap();
    // A model that says <unk> at every step.
    tch::no_grad(|| {
        for (name, var) in loaded.vars.variables() {
            if name.starts_with("output") && name.ends_with("bias") {
                let _ = var.get(vocab::UNK_ID as i64).fill_(100.0);
            }
        }
    });
    let unk_piece = loaded.tgt_vocab.id_to_piece(vocab::UNK_ID).unwrap();
    let texts = vec!["ein hund läuft über die wiese".to_string()];
    for beam_size in [1, 3] {
        for unk in [UnkPolicy::Allow, UnkPolicy::Replace] {
            let opts = TranslateOptions {
                beam: BeamOptions {
                    beam_size,
                    unk,
                    max_length: MaxLength { a: 0.0, b: 4 },
                    ..Default::default()
                },
                return_attention: true,
                ..Default::default()
            };
            let out = translate(&loaded, &texts, &opts, |_| {}).unwrap();
            let t = &out[0];
            assert_eq!(t.target_tokens.len(), 4, "beam {beam_size}: {t:?}");
            let source: Vec<&String> = t.source_tokens.iter().filter(|p| *p != "</s>").collect();
            for piece in &t.target_tokens {
                match unk {
                    UnkPolicy::Allow => assert_eq!(piece, &unk_piece, "beam {beam_size}"),
                    _ => assert!(
                        source.contains(&piece),
                        "beam {beam_size}: {piece:?} is not a source piece of {source:?}"
                    ),
                }
            }
        }
    }
}

/// The shipped model was written when `cell` named the cell and the executor in one word
/// (`fused-lstm`): it loads as an LSTM with `executor = "auto"` and standard gates, and the
/// step executor translates it as the fused kernels do.
#[test]
fn the_shipped_bundle_with_the_old_cell_name_loads_and_runs_on_either_executor() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../checkpoints/multi30k-de-en");
    let raw = fs::read_to_string(dir.join("config.json")).unwrap();
    assert!(
        raw.contains("\"fused-lstm\""),
        "the fixture is an old bundle"
    );
    let mut bundle = Bundle::load(&dir, Device::Cpu).unwrap();
    let cfg = &bundle.config.model;
    assert_eq!(cfg.cell, model::CellKind::Lstm);
    assert_eq!(cfg.executor, model::Executor::Auto);
    assert_eq!(cfg.gates, model::GateConfig::default());
    let texts = vec![
        "Ein Mann fährt Fahrrad.".to_string(),
        "Zwei Hunde spielen im Schnee.".to_string(),
    ];
    let opts = TranslateOptions::default();
    let fused = translate(&bundle, &texts, &opts, |_| {}).unwrap();
    assert_eq!(fused[0].text, "A man is riding a bike.");
    bundle.model.encoder.rnn.set_executor(model::Executor::Step);
    bundle.model.decoder.rnn.set_executor(model::Executor::Step);
    let step = translate(&bundle, &texts, &opts, |_| {}).unwrap();
    for (a, b) in fused.iter().zip(&step) {
        assert_eq!(a.text, b.text);
        assert!(
            (a.score - b.score).abs() < 1e-3,
            "{} vs {}",
            a.score,
            b.score
        );
    }
}
