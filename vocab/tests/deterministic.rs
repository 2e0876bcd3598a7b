//! Vocabulary training is deterministic: the same lines and options give byte-identical
//! `tokenizer.json` files, trained again in the same process, with other rayon thread
//! counts, and by separate `nmt-vocab` processes. Generated text only (no corpora needed).

mod common;

use std::path::Path;

use vocab::{train_lines, ModelType, TrainConfig, Vocab};

/// [`common::generated_text`] plus lines that make Unigram's last step choose by hash
/// order when it is not made canonical: twelve characters that occur only in words seen
/// once (below `min_frequency` = 2, so training never sees them and they are inserted at
/// the end), and words of equal counts (pieces with tied scores).
fn text_with_inserted_characters() -> Vec<String> {
    let mut lines = common::generated_text();
    for (i, c) in "жфцчшщъыьэюя".chars().enumerate() {
        lines.push(format!("Der {c}{} kommt.", "ab".repeat(i % 3 + 1)));
    }
    for w in ["kolu", "mavi", "tesk", "rupo"] {
        for _ in 0..7 {
            lines.push(format!("{w} {w}s."));
        }
    }
    lines
}

fn json(model: ModelType, lines: &[String]) -> String {
    let config = TrainConfig {
        model,
        vocab_size: 1500,
        ..TrainConfig::default()
    };
    let vocab = train_lines(&config, lines).expect("training on generated text");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(vocab.file_name());
    vocab.save(&path).unwrap();
    std::fs::read_to_string(&path).unwrap()
}

/// Asserts that two `tokenizer.json` texts are equal; the failure names `what` and the
/// first line where they differ.
fn assert_same(a: &str, b: &str, what: &str) {
    if a == b {
        return;
    }
    let at = a
        .lines()
        .zip(b.lines())
        .enumerate()
        .find(|(_, (x, y))| x != y)
        .map(|(i, (x, y))| format!("line {}: {x:?} vs {y:?}", i + 1))
        .unwrap_or_else(|| format!("lengths {} vs {}", a.len(), b.len()));
    panic!("{what}: {at}");
}

#[test]
fn the_text_holds_characters_that_training_inserts_at_the_end() {
    // The premise of the tests below: the rare characters are in the vocabulary (coverage
    // 1.0 keeps them) although training never saw them. Without such characters the
    // Unigram trainer has no hash-order choice to make and the tests would prove nothing.
    let v = train_lines(
        &TrainConfig {
            vocab_size: 1500,
            ..TrainConfig::default()
        },
        text_with_inserted_characters(),
    )
    .unwrap();
    for c in "жфцчшщъыьэюя".chars() {
        assert!(
            v.piece_to_id(&c.to_string()).is_some(),
            "{c} is not a piece"
        );
    }
}

#[test]
fn training_twice_in_one_process_gives_identical_files() {
    let lines = text_with_inserted_characters();
    for model in [ModelType::Unigram, ModelType::Bpe] {
        let first = json(model, &lines);
        // Each training builds its hash sets anew, with new random keys: four more tries
        // make a hash-order dependence all but certain to show (12 inserted characters).
        for attempt in 2..=5 {
            let again = json(model, &lines);
            assert_same(
                &first,
                &again,
                &format!("{model:?}: training {attempt} differs from the first"),
            );
        }
    }
}

#[test]
fn the_number_of_threads_does_not_change_the_result() {
    let lines = text_with_inserted_characters();
    let in_pool = |threads: usize, model: ModelType| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| json(model, &lines))
    };
    for model in [ModelType::Unigram, ModelType::Bpe] {
        let one = in_pool(1, model);
        for threads in [2, 5] {
            let many = in_pool(threads, model);
            assert_same(
                &one,
                &many,
                &format!("{model:?}: {threads} threads differ from one"),
            );
        }
    }
}

#[test]
fn separate_nmt_vocab_processes_write_identical_files() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("text.txt");
    std::fs::write(&input, text_with_inserted_characters().join("\n") + "\n").unwrap();
    let train = |out: &Path| {
        common::process::output_ok(
            std::process::Command::new(env!("CARGO_BIN_EXE_nmt-vocab"))
                .arg("train")
                .args(["--model", "unigram", "--vocab-size", "1500", "--input"])
                .arg(&input)
                .arg("--output")
                .arg(out),
            "nmt-vocab train: ",
        )
    };
    let outputs: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            let out = dir.path().join(format!("run{i}"));
            train(&out);
            std::fs::read(out.join("tokenizer.json")).unwrap()
        })
        .collect();
    assert!(outputs[0] == outputs[1] && outputs[1] == outputs[2]);
}
