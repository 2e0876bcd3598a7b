//! The TOML config: presets, unknown keys, overrides, validation.

use std::path::Path;

use training::config::{apply_override, BestOn, Config, CorpusPart, CorpusParts, ValidSets};

const PRESETS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../configs");

const MINIMAL: &str = r#"
[data]
src_lang = "de"
tgt_lang = "en"
train = "data/train"
valid = [{ src = "v.de", tgt = "/abs/v.en" }]
"#;

fn load(text: &str, overrides: &[&str]) -> Result<Config, training::config::ConfigError> {
    let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    Config::from_toml_str(text, "test.toml", Path::new("/base"), &o)
}

#[test]
fn every_preset_loads_and_its_model_section_is_a_valid_model_config() {
    let mut n = 0;
    for entry in std::fs::read_dir(PRESETS).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let cfg = Config::load(&path, &[]).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        cfg.model
            .with_vocab_sizes(8000, 8000)
            .validate()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // Corpus paths are resolved against the config's folder.
        for part in cfg.data.train.parts() {
            let (CorpusPart::Prefix(p) | CorpusPart::WeightedPrefix { prefix: p, .. }) = part
            else {
                panic!("{}: train is not a list of prefixes", path.display())
            };
            assert!(p.starts_with(PRESETS), "{}", p.display());
        }
        n += 1;
    }
    assert_eq!(n, 9);
    let m = Config::load(&Path::new(PRESETS).join("multi30k-de-en.toml"), &[]).unwrap();
    // The G2 and sharpened presets are the multi30k preset with only the gate mode changed.
    for (name, kind) in [
        ("multi30k-de-en-g2.toml", model::GateKind::Gumbel),
        ("multi30k-de-en-sharpened.toml", model::GateKind::Sharpened),
    ] {
        let mut variant = Config::load(&Path::new(PRESETS).join(name), &[]).unwrap();
        assert_eq!(
            variant.model.gates,
            model::GateConfig::of_kind(kind),
            "{name}"
        );
        variant.model.gates = m.model.gates;
        assert_eq!(
            variant, m,
            "{name} differs from multi30k-de-en.toml in more than its gates"
        );
    }
    assert_eq!(m.vocab.size, 8000);
    assert_eq!(m.model.encoder_layers, 2);

    // The everyday presets: the two directions differ only in their languages and
    // descriptions, and each G2 variant only in its gates.
    let everyday = |name: &str| Config::load(&Path::new(PRESETS).join(name), &[]).unwrap();
    let de_en = everyday("everyday-de-en.toml");
    let en_de = everyday("everyday-en-de.toml");
    assert_eq!(
        (de_en.data.src_lang.as_str(), de_en.data.tgt_lang.as_str()),
        ("de", "en")
    );
    assert_eq!(
        (en_de.data.src_lang.as_str(), en_de.data.tgt_lang.as_str()),
        ("en", "de")
    );
    let mut flipped = en_de.clone();
    flipped.data.src_lang = de_en.data.src_lang.clone();
    flipped.data.tgt_lang = de_en.data.tgt_lang.clone();
    flipped.data.description = de_en.data.description.clone();
    assert_eq!(
        flipped, de_en,
        "the everyday presets differ in more than their direction"
    );
    for (base, g2) in [
        (&de_en, "everyday-de-en-g2.toml"),
        (&en_de, "everyday-en-de-g2.toml"),
    ] {
        let mut variant = everyday(g2);
        assert_eq!(
            variant.model.gates,
            model::GateConfig::of_kind(model::GateKind::Gumbel)
        );
        variant.model.gates = base.model.gates;
        assert_eq!(&variant, base, "{g2} differs in more than its gates");
    }
    let ValidSets::Named(sets) = &de_en.data.valid else {
        panic!("everyday-de-en.toml: data.valid is not a table of named sets")
    };
    assert_eq!(sets.keys().collect::<Vec<_>>(), ["multi30k", "tatoeba"]);
    assert_eq!(de_en.training.best_on, BestOn::Mean);
    assert!(de_en
        .data
        .description
        .as_deref()
        .unwrap_or("")
        .contains("tatoeba.org"));
}

#[test]
#[ignore = "needs ../shared/data (the project's corpora)"]
fn the_presets_that_train_here_name_corpora_that_exist() {
    let shared = Path::new(PRESETS).join("../../shared/data/multi30k");
    assert!(
        shared.is_dir(),
        "this test needs ../shared/data (the project's corpora), and {} is absent",
        shared.display()
    );
    let m = Config::load(&Path::new(PRESETS).join("multi30k-de-en.toml"), &[]).unwrap();
    let CorpusParts::One(CorpusPart::Prefix(p)) = &m.data.train else {
        panic!("multi30k-de-en.toml: train is not one prefix")
    };
    for lang in ["de", "en"] {
        let file = format!("{}.{lang}", p.display());
        assert!(Path::new(&file).is_file(), "{file} does not exist");
    }
    // The everyday presets' training corpora and validation sets, both directions.
    for name in [
        "everyday-de-en",
        "everyday-en-de",
        "everyday-de-en-g2",
        "everyday-en-de-g2",
    ] {
        let cfg = Config::load(&Path::new(PRESETS).join(format!("{name}.toml")), &[]).unwrap();
        let valid = cfg.data.valid.named();
        let parts = cfg
            .data
            .train
            .parts()
            .into_iter()
            .chain(valid.iter().flat_map(|(_, p)| p.parts()));
        for part in parts {
            let (CorpusPart::Prefix(p) | CorpusPart::WeightedPrefix { prefix: p, .. }) = part
            else {
                panic!("{name}: not a prefix: {part:?}")
            };
            for lang in [&cfg.data.src_lang, &cfg.data.tgt_lang] {
                let file = format!("{}.{lang}", p.display());
                assert!(Path::new(&file).is_file(), "{name}: {file} does not exist");
            }
        }
    }
}

#[test]
fn defaults_fill_a_minimal_file_and_relative_paths_are_resolved() {
    let cfg = load(MINIMAL, &[]).unwrap();
    assert_eq!(cfg.training.batch_tokens, 4000);
    assert_eq!(
        cfg.data.train,
        CorpusParts::One(CorpusPart::Prefix("/base/data/train".into()))
    );
    let ValidSets::One(CorpusParts::Many(v)) = &cfg.data.valid else {
        panic!()
    };
    assert_eq!(
        v[0],
        CorpusPart::Files {
            src: "/base/v.de".into(),
            tgt: "/abs/v.en".into(),
            weight: None,
        }
    );
    // The saved copy round-trips.
    let again =
        Config::from_toml_str(&cfg.to_toml(), "saved", Path::new("/elsewhere"), &[]).unwrap();
    assert_eq!(again, cfg);
}

#[test]
fn unknown_keys_are_errors_naming_the_key() {
    for (extra, key) in [
        ("[training]\nlrr = 0.1", "training"),
        ("[model]\nhiden_dim = 3", "model"),
        (
            "[training.schedule]\nkind = \"constant\"\nwarmpu_steps = 3",
            "training.schedule",
        ),
        ("[nonsense]\na = 1", "nonsense"),
    ] {
        let err = load(&format!("{MINIMAL}\n{extra}"), &[])
            .unwrap_err()
            .to_string();
        let bad = extra
            .lines()
            .last()
            .unwrap()
            .split('=')
            .next()
            .unwrap()
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']');
        assert!(err.contains(bad), "{err} should name {bad}");
        assert!(err.contains(key), "{err} should name {key}");
        assert!(err.contains("test.toml"), "{err}");
    }
}

#[test]
fn overrides_set_values_and_reject_unknown_keys() {
    let cfg = load(
        MINIMAL,
        &[
            "training.lr=0.002",
            "training.device=cuda:1",
            "model.cell=\"gru\"",
            "training.schedule.kind=inverse_sqrt",
            "training.bf16=true",
        ],
    )
    .unwrap();
    assert_eq!(cfg.training.lr, 0.002);
    assert_eq!(cfg.training.device, "cuda:1");
    assert_eq!(cfg.model.cell, model::CellKind::Gru);
    assert!(cfg.training.bf16);
    assert_eq!(
        cfg.training.schedule.kind,
        training::schedule::ScheduleKind::InverseSqrt
    );

    let err = load(MINIMAL, &["training.learning_rate=1"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("learning_rate"), "{err}");
    let err = load(MINIMAL, &["training.lr"]).unwrap_err().to_string();
    assert!(err.contains("section.key=value"), "{err}");
    let err = load(MINIMAL, &["training.lr=0.1", "training.lr.x=1"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("training.lr is not a table"), "{err}");
    let err = load(MINIMAL, &["training.lr.x=1"]).unwrap_err().to_string();
    assert!(
        err.contains("training.lr") && err.contains("expected f64"),
        "{err}"
    );
    let err = load(MINIMAL, &["training.lr=fast"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("training.lr"), "{err}");
}

#[test]
fn nonsense_values_are_errors_naming_the_key() {
    for (o, key) in [
        ("training.lr=-1", "training.lr"),
        ("training.label_smoothing=1.5", "training.label_smoothing"),
        ("training.batch_tokens=0", "training.batch_tokens"),
        ("training.device=tpu", "training.device"),
        ("model.dropout=1.0", "model.dropout"),
        ("vocab.mode=load", "vocab.path"),
    ] {
        let err = load(MINIMAL, &[o]).unwrap_err().to_string();
        assert!(err.contains(key), "{o}: {err}");
    }
    let err = load(MINIMAL, &["training.max_epochs=0", "training.max_steps=0"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("never end"), "{err}");
    // Averaging needs the checkpoints kept, and one checkpoint is no average.
    let err = load(MINIMAL, &["training.average_last=3"])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("training.average_last") && err.contains("keep_every"),
        "{err}"
    );
    let err = load(
        MINIMAL,
        &["training.average_last=1", "training.keep_every=5"],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("training.average_last"), "{err}");
    load(
        MINIMAL,
        &["training.average_last=3", "training.keep_every=5"],
    )
    .unwrap();
    let err = load(MINIMAL, &["data.format=tmx"]).unwrap_err().to_string();
    for needle in [
        "data.format",
        "tmx",
        "plain",
        "iwslt-tags",
        "iwslt-xml",
        "wmt-sgml",
        "auto",
    ] {
        assert!(err.contains(needle), "{needle} not in {err}");
    }
    assert_eq!(
        load(MINIMAL, &["data.format=auto"]).unwrap().data.format,
        None
    );
    let err = load("[data\n", &[]).unwrap_err().to_string();
    assert!(err.contains("test.toml"), "{err}");
}

#[test]
fn gate_modes_take_the_papers_parameters_and_refuse_impossible_combinations() {
    use model::gates::{GateInference, GateKind};
    let cfg = load(MINIMAL, &["model.gates.kind=gumbel"]).unwrap();
    assert_eq!(cfg.model.gates.kind, GateKind::Gumbel);
    assert_eq!(
        (cfg.model.gates.temperature, cfg.model.gates.noise_prob),
        (0.9, 0.2)
    );
    let cfg = load(
        MINIMAL,
        &[
            "model.gates.kind=sharpened",
            "model.gates.temperature=0.25",
            "model.gates.inference=hard",
        ],
    )
    .unwrap();
    assert_eq!(cfg.model.gates.temperature, 0.25);
    assert_eq!(cfg.model.gates.noise_prob, 0.0);
    assert_eq!(cfg.model.gates.inference, GateInference::Hard);
    // The names of earlier versions: the cell, with the executor left to `auto`.
    for old in ["fused-lstm", "lstm"] {
        let cfg = load(MINIMAL, &[&format!("model.cell=\"{old}\"")]).unwrap();
        assert_eq!(cfg.model.cell, model::CellKind::Lstm, "{old}");
        assert_eq!(cfg.model.executor, model::Executor::Auto, "{old}");
    }
    let cfg = load(MINIMAL, &["model.cell=fused-gru"]).unwrap();
    assert_eq!(cfg.model.cell, model::CellKind::Gru);

    for (overrides, needles) in [
        (
            &["model.executor=fused", "model.gates.kind=gumbel"][..],
            &["executor", "fused", "gates.kind", "gumbel"][..],
        ),
        (
            &["model.cell=gru", "model.gates.kind=sharpened"],
            &["gates.kind", "cell", "gru"],
        ),
        (
            &["model.gates.temperature=0.5"],
            &["model.gates", "standard", "temperature"],
        ),
        (
            &["model.gates.kind=gumbel", "model.gates.noise_prob=1.5"],
            &["model.gates", "noise_prob"],
        ),
        (
            &["model.gates.kind=gumbel", "model.gates.temperature=0"],
            &["model.gates", "temperature"],
        ),
        (&["model.gates.tau=1"], &["tau"]),
        (&["model.gates.kind=binary"], &["model.gates", "binary"]),
        (&["model.executor=cudnn"], &["model.executor", "cudnn"]),
    ] {
        let err = load(MINIMAL, overrides).unwrap_err().to_string();
        for needle in needles {
            assert!(
                err.contains(needle),
                "{overrides:?}: {err} should name {needle}"
            );
        }
    }
}

#[test]
fn apply_override_builds_missing_tables() {
    let mut t = toml::Table::new();
    apply_override(&mut t, "a.b.c=[1, 2]").unwrap();
    assert_eq!(t["a"]["b"]["c"].as_array().unwrap().len(), 2);
}

const TWO_SETS: &str = r#"
[data]
src_lang = "de"
tgt_lang = "en"
train = ["data/a", { prefix = "data/b", weight = 2.5 }, { src = "c.de", tgt = "c.en", weight = 0.5 }]

[data.valid]
tatoeba = "data/tatoeba-valid"
multi30k = [{ src = "m.de", tgt = "m.en" }]
"#;

#[test]
fn named_validation_sets_and_corpus_weights_load_and_round_trip() {
    let cfg = load(TWO_SETS, &[]).unwrap();
    let weights: Vec<f64> = cfg.data.train.parts().iter().map(|p| p.weight()).collect();
    assert_eq!(weights, [1.0, 2.5, 0.5]);
    let names: Vec<&str> = cfg.data.valid.named().iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["multi30k", "tatoeba"]);
    let ValidSets::Named(sets) = &cfg.data.valid else {
        panic!("{:?}", cfg.data.valid)
    };
    assert_eq!(
        sets["tatoeba"],
        CorpusParts::One(CorpusPart::Prefix("/base/data/tatoeba-valid".into()))
    );
    assert_eq!(cfg.training.best_on, BestOn::Mean);
    let again =
        Config::from_toml_str(&cfg.to_toml(), "saved", Path::new("/elsewhere"), &[]).unwrap();
    assert_eq!(again, cfg);
    // One unnamed set is named `valid`.
    let one = load(MINIMAL, &[]).unwrap();
    assert_eq!(one.data.valid.named()[0].0, "valid");
    // best_on takes a set's name.
    let on = load(TWO_SETS, &["training.best_on=tatoeba"]).unwrap();
    assert_eq!(on.training.best_on, BestOn::Set("tatoeba".into()));
    assert_eq!(
        Config::from_toml_str(&on.to_toml(), "saved", Path::new("/"), &[])
            .unwrap()
            .training
            .best_on,
        BestOn::Set("tatoeba".into())
    );
}

#[test]
fn bad_weights_and_validation_set_names_are_errors_naming_the_key() {
    for (text, overrides, needles) in [
        (
            TWO_SETS,
            &["training.best_on=wmt"][..],
            &["training.best_on", "wmt", "multi30k"][..],
        ),
        (
            MINIMAL,
            &["training.best_on=tatoeba"],
            &["training.best_on", "valid"],
        ),
        (
            &TWO_SETS.replace("weight = 2.5", "weight = 0"),
            &[],
            &["data.train[1].weight", "positive"],
        ),
        (
            &TWO_SETS.replace("weight = 2.5", "weight = -1"),
            &[],
            &["data.train[1].weight"],
        ),
        (
            &TWO_SETS.replace("tatoeba = ", "mean = "),
            &[],
            &["data.valid", "\"mean\""],
        ),
        (
            &TWO_SETS.replace(
                r#"multi30k = [{ src = "m.de", tgt = "m.en" }]"#,
                r#"multi30k = { prefix = "m", weight = 2.0 }"#,
            ),
            &[],
            &["data.valid", "multi30k", "weights are for training"],
        ),
        (
            &TWO_SETS.replace("weight = 0.5", "wieght = 0.5"),
            &[],
            &["data.train"],
        ),
    ] {
        let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        let err = Config::from_toml_str(text, "test.toml", Path::new("/base"), &o)
            .unwrap_err()
            .to_string();
        for needle in needles {
            assert!(err.contains(needle), "{err} should name {needle}");
        }
    }
}
