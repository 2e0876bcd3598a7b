//! Training options (module `train`): size, coverage, frequency, piece
//! length, joint vs separate, bad input.

mod common;

use std::io::Write;

use vocab::{train_files, train_lines, ModelType, TrainConfig, Vocab, VocabError, UNK_ID};

const MODELS: [ModelType; 2] = [ModelType::Unigram, ModelType::Bpe];

#[test]
#[ignore = "needs ../shared/data (the project's corpora)"]
fn vocab_size_is_honoured() {
    let lines = common::train_text();
    for model in MODELS {
        for size in [1000, 3000] {
            let v = train_lines(&common::config(model, size), &lines).unwrap();
            assert_eq!(v.len(), size, "{model:?} asked for {size}");
            // Every id has a distinct piece.
            let pieces: std::collections::HashSet<String> = (0..size as u32)
                .map(|id| v.id_to_piece(id).unwrap())
                .collect();
            assert_eq!(pieces.len(), size);
        }
    }
}

#[test]
#[ignore = "needs ../shared/data (the project's corpora)"]
fn max_piece_length_is_honoured() {
    let lines = common::train_text();
    for model in MODELS {
        let config = TrainConfig {
            max_piece_length: 4,
            ..common::config(model, 1500)
        };
        let v = train_lines(&config, &lines).unwrap();
        let longest = (4..v.len() as u32)
            .map(|id| v.id_to_piece(id).unwrap().chars().count())
            .max()
            .unwrap();
        assert!(longest <= 4, "{model:?}: a piece of {longest} chars");
        assert!(longest >= 3, "{model:?}: pieces suspiciously short");
    }
}

#[test]
#[ignore = "needs ../shared/data (the project's corpora)"]
fn character_coverage_drops_rare_characters() {
    let mut lines = common::train_text();
    // One rare character, seen twice in ~400K characters.
    lines.push("Ein Hund mit ж.".into());
    lines.push("A dog with ж.".into());
    for model in MODELS {
        let full = train_lines(&common::config(model, 2000), &lines).unwrap();
        assert!(
            full.piece_to_id("ж").is_some(),
            "{model:?}: coverage 1.0 keeps every character"
        );
        assert!(!full.encode("ж").unwrap().contains(&UNK_ID));

        let config = TrainConfig {
            character_coverage: 0.9995,
            ..common::config(model, 2000)
        };
        let cut = train_lines(&config, &lines).unwrap();
        assert_eq!(cut.piece_to_id("ж"), None, "{model:?}");
        assert!(cut.encode("Hund ж").unwrap().contains(&UNK_ID));
        // Frequent letters stay.
        for c in ["e", "n", "a"] {
            assert!(cut.piece_to_id(c).is_some(), "{model:?} lost {c}");
        }
    }
}

#[test]
fn control_characters_never_enter_the_vocabulary() {
    let lines: Vec<String> = (0..200)
        .map(|i| format!("word{} \u{1}x\u{7}y tail", i % 7))
        .collect();
    for model in MODELS {
        let v = train_lines(&common::config(model, 60), &lines).unwrap();
        assert_eq!(v.piece_to_id("\u{1}"), None);
        let ids = v.encode("\u{1}x").unwrap();
        assert_eq!(ids.iter().filter(|&&id| id == UNK_ID).count(), 1, "{ids:?}");
    }
}

#[test]
#[ignore = "needs ../shared/data (the project's corpora)"]
fn min_frequency_limits_bpe_merges() {
    let lines = common::head("multi30k/train.en", 500);
    let size = |min_frequency| {
        let config = TrainConfig {
            min_frequency,
            ..common::config(ModelType::Bpe, 20_000)
        };
        train_lines(&config, &lines).unwrap().len()
    };
    // With room for every merge, the frequency floor decides how many happen.
    let (loose, strict) = (size(2), size(50));
    assert!(
        strict < loose,
        "min frequency 50 gave {strict} ids, 2 gave {loose}"
    );
}

#[test]
fn min_frequency_drops_rare_words_for_unigram() {
    let mut lines = vec!["Hund Katze Maus".to_string(); 50];
    // Seen twice each: kept at min frequency 1, dropped at 3.
    lines.extend([
        "Zebraflosse Zebraflossen".to_string(),
        "Zebraflosse Zebraflossen".to_string(),
    ]);
    let config = |min_frequency| TrainConfig {
        min_frequency,
        ..common::config(ModelType::Unigram, 100)
    };
    let flo_pieces = |v: &vocab::HfVocab| {
        (4..v.len() as u32)
            .filter(|&id| v.id_to_piece(id).unwrap().contains("flo"))
            .count()
    };
    let keep = train_lines(&config(1), &lines).unwrap();
    let drop = train_lines(&config(3), &lines).unwrap();
    assert!(flo_pieces(&keep) > 0);
    assert_eq!(flo_pieces(&drop), 0);
    // The dropped words' characters stay in the alphabet.
    assert!(drop.piece_to_id("Z").is_some());
    assert!(!drop.encode("Zebraflosse").unwrap().contains(&UNK_ID));
}

#[test]
#[ignore = "needs ../shared/data (the project's corpora)"]
fn joint_vocabulary_covers_both_languages_separate_does_not() {
    let (de, en) = (
        common::data_file("multi30k/train.de"),
        common::data_file("multi30k/train.en"),
    );
    let dir = tempfile::tempdir().unwrap();
    // Cuts of 2000 lines per side keep this fast.
    let cut = |src: &std::path::Path, name: &str| {
        let lines: Vec<String> = std::fs::read_to_string(src)
            .unwrap()
            .lines()
            .take(2000)
            .map(String::from)
            .collect();
        let p = dir.path().join(name);
        std::fs::write(&p, lines.join("\n")).unwrap();
        p
    };
    let (de, en) = (cut(&de, "de.txt"), cut(&en, "en.txt"));
    for model in MODELS {
        let config = common::config(model, 1500);
        let joint = train_files(&config, &[&de, &en]).unwrap();
        let de_only = train_files(&config, &[&de]).unwrap();
        assert!(joint.piece_to_id("▁Mann").is_some() && joint.piece_to_id("▁man").is_some());
        assert!(de_only.piece_to_id("▁Mann").is_some());
        // English-specific words get fewer pieces from the joint vocabulary.
        let en_text = "The man is wearing a shirt while walking";
        let n = |v: &vocab::HfVocab| v.encode(en_text).unwrap().len();
        assert!(
            n(&joint) < n(&de_only),
            "{model:?}: {} vs {}",
            n(&joint),
            n(&de_only)
        );
    }
}

#[test]
fn invalid_utf8_input_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.txt");
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(b"ein Hund\nzwei Hunde\n\xff\xfe kaputt\n")
        .unwrap();
    drop(f);
    let err = train_files(&common::config(ModelType::Unigram, 100), &[&path]).unwrap_err();
    match &err {
        VocabError::Input { path: p, line, .. } => {
            assert_eq!(*line, 3);
            assert!(p.ends_with("bad.txt"));
        }
        other => panic!("expected Input error, got {other:?}"),
    }
    assert!(err.to_string().contains("bad.txt:3:"), "{err}");
}

#[test]
fn missing_input_file_is_an_error_naming_it() {
    let err = train_files(
        &common::config(ModelType::Bpe, 100),
        &["/no/such/corpus.txt"],
    )
    .unwrap_err();
    assert!(matches!(err, VocabError::Io { .. }));
    assert!(err.to_string().contains("/no/such/corpus.txt"), "{err}");
}

#[test]
fn bad_options_and_empty_text_are_errors() {
    let lines = vec!["ein kleiner Hund".to_string(); 10];
    let bad = [
        TrainConfig {
            vocab_size: 4,
            ..TrainConfig::default()
        },
        TrainConfig {
            character_coverage: 0.0,
            ..TrainConfig::default()
        },
        TrainConfig {
            character_coverage: 1.5,
            ..TrainConfig::default()
        },
        TrainConfig {
            character_coverage: f64::NAN,
            ..TrainConfig::default()
        },
        TrainConfig {
            max_piece_length: 0,
            ..TrainConfig::default()
        },
    ];
    for config in bad {
        assert!(
            matches!(train_lines(&config, &lines), Err(VocabError::Train(_))),
            "{config:?}"
        );
    }
    for empty in [vec![], vec!["".to_string(), "   ".to_string()]] {
        let err = train_lines(&TrainConfig::default(), &empty).unwrap_err();
        assert!(err.to_string().contains("no text"), "{err}");
    }
    let no_files: [&str; 0] = [];
    assert!(train_files(&TrainConfig::default(), &no_files).is_err());
}

#[test]
fn vocabulary_too_small_for_the_alphabet_is_an_error() {
    let lines = vec!["abcdefghijklmnopqrstuvwxyz".to_string(); 5];
    for model in MODELS {
        let err = train_lines(&common::config(model, 20), &lines).unwrap_err();
        assert!(err.to_string().contains("too small"), "{err}");
    }
}
