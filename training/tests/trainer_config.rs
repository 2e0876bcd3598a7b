//! The TOML config: presets, unknown keys, overrides, validation.

use std::path::Path;

use training::config::{apply_override, Config, CorpusPart, CorpusParts};

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
        let json = cfg.model.to_json(8000, 8000);
        let model: model::ModelConfig =
            serde_json::from_value(json).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        model
            .validate()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // Corpus paths are resolved against the config's folder.
        let CorpusParts::One(CorpusPart::Prefix(p)) = &cfg.data.train else {
            panic!("{}: train", path.display())
        };
        assert!(p.starts_with(PRESETS), "{}", p.display());
        n += 1;
    }
    assert_eq!(n, 3);
    let m = Config::load(&Path::new(PRESETS).join("multi30k-de-en.toml"), &[]).unwrap();
    assert_eq!(m.vocab.size, 8000);
    assert_eq!(m.model.encoder_layers, 2);
    // The multi30k preset names corpora that exist.
    let shared = Path::new(PRESETS).join("../../shared/data/multi30k");
    if shared.is_dir() {
        let CorpusParts::One(CorpusPart::Prefix(p)) = &m.data.train else {
            unreachable!()
        };
        assert!(Path::new(&format!("{}.de", p.display())).is_file());
    } else {
        eprintln!(
            "note: {} absent, corpus existence not checked",
            shared.display()
        );
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
    let CorpusParts::Many(v) = &cfg.data.valid else {
        panic!()
    };
    assert_eq!(
        v[0],
        CorpusPart::Files {
            src: "/base/v.de".into(),
            tgt: "/abs/v.en".into()
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
    assert_eq!(cfg.model.cell, "gru");
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
    let err = load("[data\n", &[]).unwrap_err().to_string();
    assert!(err.contains("test.toml"), "{err}");
}

#[test]
fn apply_override_builds_missing_tables() {
    let mut t = toml::Table::new();
    apply_override(&mut t, "a.b.c=[1, 2]").unwrap();
    assert_eq!(t["a"]["b"]["c"].as_array().unwrap().len(), 2);
}
