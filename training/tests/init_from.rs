//! Fine-tuning's checks (`training::init_from`) on small random bundles: what a config may
//! and may not change, the bundles that cannot be parents, the adopted config and the copied
//! vocabulary. The whole run (`nmt-train --init-from`) is in `trainer_cli.rs`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use model::bundle::{self, WeightsDtype};
use training::config::{explicit_keys, Config, VocabMode};
use training::init_from::{adopt, copy_vocab, disagreements, read_parent, ParentVocab};

const LINES: &[&str] = &[
    "ein hund läuft über die wiese",
    "zwei männer spielen fußball im park",
    "a dog runs across the meadow",
    "two men play soccer in the park",
];

/// A random de→en bundle with a joint vocabulary of at most 60 pieces (the lines give
/// fewer).
fn parent(root: &Path) -> PathBuf {
    let dir = root.join("parent");
    model::testing::write_untrained_bundle(&dir, LINES, 60, ("de", "en"), 3).unwrap();
    dir
}

/// A config file in `root` with `extra` appended, its explicit keys and the parsed config.
fn config(root: &Path, extra: &str, overrides: &[&str]) -> (Config, BTreeSet<String>) {
    let path = root.join("fine-tune.toml");
    let text = format!(
        "[data]\nsrc_lang = \"de\"\ntgt_lang = \"en\"\ntrain = \"t\"\nvalid = \"v\"\n{extra}"
    );
    std::fs::write(&path, text).unwrap();
    let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    (
        Config::load(&path, &o).unwrap(),
        explicit_keys(&path, &o).unwrap(),
    )
}

#[test]
fn a_config_that_sets_nothing_of_the_architecture_takes_the_bundles() {
    let root = tempfile::tempdir().unwrap();
    let dir = parent(root.path());
    let (p, parent_config) = read_parent(&dir).unwrap();
    assert!(p.fingerprint.starts_with("sha256:") && p.fingerprint.len() == 7 + 64);
    assert_eq!(p.path, std::fs::canonicalize(&dir).unwrap());
    let vocab = ParentVocab::load(&dir, &parent_config).unwrap();
    assert!(vocab.joint);
    assert!(
        vocab.src_len > 20 && vocab.src_len == vocab.tgt_len,
        "{}",
        vocab.src_len
    );
    let size = vocab.src_len;
    // Dropout and executor may differ; nothing else is set, so nothing disagrees.
    let (cfg, keys) = config(
        root.path(),
        "[model]\ndropout = 0.05\nexecutor = \"step\"\n",
        &[],
    );
    assert!(keys.contains("model.dropout") && keys.contains("data.src_lang"));
    assert_eq!(disagreements(&cfg, &keys, &parent_config, &vocab), []);
    let adopted = adopt(&cfg, &parent_config, &vocab);
    assert_eq!(adopted.model.hidden_dim, parent_config.model.hidden_dim);
    assert_eq!(adopted.model.embed_dim, parent_config.model.embed_dim);
    assert_eq!(adopted.model.dropout, 0.05);
    assert_eq!(adopted.model.executor, model::Executor::Step);
    assert_eq!(
        adopted.model.src_vocab_size, 0,
        "sizes come from the vocabulary"
    );
    assert_eq!(
        (adopted.vocab.mode, adopted.vocab.size, adopted.vocab.joint),
        (VocabMode::Train, size, true)
    );
    // The adopted config is a valid config, and the same keys written out agree too.
    adopted.validate().unwrap();
    let (same, keys) = config(
        root.path(),
        &format!(
            "[model]\nhidden_dim = {}\n[vocab]\nsize = {size}\nkind = \"unigram\"\n",
            parent_config.model.hidden_dim
        ),
        &[],
    );
    assert_eq!(disagreements(&same, &keys, &parent_config, &vocab), []);
}

#[test]
fn every_disagreeing_key_is_named_in_one_error() {
    let root = tempfile::tempdir().unwrap();
    let dir = parent(root.path());
    let (_, parent_config) = read_parent(&dir).unwrap();
    let vocab = ParentVocab::load(&dir, &parent_config).unwrap();
    let (cfg, keys) = config(
        root.path(),
        "[model]\nhidden_dim = 999\ndropout = 0.1\n[model.gates]\nkind = \"gumbel\"\n[vocab]\nsize = 123\nkind = \"bpe\"\n",
        &["data.tgt_lang=fr", "model.attention=dot", "model.bidirectional=false"],
    );
    let found: Vec<String> = disagreements(&cfg, &keys, &parent_config, &vocab)
        .into_iter()
        .map(|d| d.key)
        .collect();
    for key in [
        "data.tgt_lang",
        "model.hidden_dim",
        "model.gates.kind",
        "model.attention",
        "model.bidirectional",
        "vocab.size",
        "vocab.kind",
    ] {
        assert!(found.contains(&key.to_string()), "{key} not in {found:?}");
    }
    assert!(!found.iter().any(|k| k == "model.dropout"), "{found:?}");
    let (load, keys) = config(
        root.path(),
        "[vocab]\nmode = \"load\"\npath = \"x.json\"\n",
        &[],
    );
    let found: Vec<String> = disagreements(&load, &keys, &parent_config, &vocab)
        .into_iter()
        .map(|d| d.key)
        .collect();
    assert_eq!(found, ["vocab.mode", "vocab.path"]);
}

#[test]
fn compressed_int8_and_low_rank_bundles_cannot_be_parents() {
    use model::compress::{ParamSet, RoundClip};
    use model::config::LowRankRows;
    let root = tempfile::tempdir().unwrap();
    let dir = parent(root.path());
    let rc = root.path().join("rc");
    let round = RoundClip {
        round: 0.1,
        clip: None,
    };
    bundle::compress_round_clip(&dir, &rc, ParamSet::Gates, round, WeightsDtype::Float32).unwrap();
    let int8 = root.path().join("int8");
    bundle::compress_int8(&dir, &int8, LowRankRows::All, false, WeightsDtype::Float32).unwrap();
    let svd = root.path().join("svd");
    bundle::compress_low_rank(&dir, &svd, LowRankRows::Gates, 2, WeightsDtype::Float32).unwrap();
    for (bundle_dir, needle) in [(&rc, "compressed"), (&int8, "int8"), (&svd, "low-rank")] {
        let e = read_parent(bundle_dir).unwrap_err().to_string();
        assert!(e.contains(needle) && e.contains("float bundle"), "{e}");
    }
    let e = read_parent(&root.path().join("nothing"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("nothing"), "{e}");
    // A float16 copy is a float bundle: it can be a parent.
    let f16 = root.path().join("f16");
    bundle::convert(&dir, &f16, WeightsDtype::Float16).unwrap();
    read_parent(&f16).unwrap();
}

#[test]
fn the_parents_vocabulary_is_copied_where_a_run_keeps_its_own() {
    let root = tempfile::tempdir().unwrap();
    let dir = parent(root.path());
    let (_, parent_config) = read_parent(&dir).unwrap();
    let run_vocab = root.path().join("run/vocab");
    std::fs::create_dir_all(run_vocab.parent().unwrap()).unwrap();
    copy_vocab(&dir, &parent_config, &run_vocab).unwrap();
    let copied = std::fs::read(run_vocab.join("joint").join(&parent_config.src_vocab)).unwrap();
    let original = std::fs::read(dir.join(&parent_config.src_vocab)).unwrap();
    assert_eq!(copied, original);
    let vocab = ParentVocab::load(&dir, &parent_config).unwrap();
    assert_eq!(
        vocab::load(run_vocab.join("joint")).unwrap().len(),
        vocab.tgt_len
    );
}
