//! Helpers shared by the test files: real data from ../shared/data, cut at
//! test time, generated text, and small vocabularies trained once per test
//! binary. Tests that read ../shared/data are marked
//! `#[ignore = "needs ../shared/data (the project's corpora)"]`; `make test`
//! runs them when the corpora are there and counts them when they are not.
#![allow(dead_code)]

#[path = "../../../test-support/process.rs"]
pub mod process;

use std::path::PathBuf;
use std::sync::OnceLock;

use vocab::{
    train_lines, HfVocab, ModelType, TrainConfig, Vocab, BOS_ID, EOS_ID, PAD_ID, UNK_ID,
    UNK_SURFACE,
};

pub const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data");

/// Path of a data file; panics, saying why, when the shared data folder is
/// absent (only tests marked as needing the corpora call this).
pub fn data_file(rel: &str) -> PathBuf {
    let root = PathBuf::from(DATA);
    assert!(
        root.is_dir(),
        "this test needs ../shared/data (the project's corpora), and {DATA} is absent"
    );
    let p = root.join(rel);
    assert!(
        p.is_file(),
        "{} is missing from the shared data",
        p.display()
    );
    p
}

/// The first `n` lines of a data file.
pub fn head(rel: &str, n: usize) -> Vec<String> {
    let p = data_file(rel);
    let text = std::fs::read_to_string(&p).unwrap();
    text.lines().take(n).map(String::from).collect()
}

/// Training text: the first 3000 lines of Multi30k train, both sides.
pub fn train_text() -> Vec<String> {
    let mut lines = head("multi30k/train.de", 3000);
    lines.extend(head("multi30k/train.en", 3000));
    lines
}

/// Generated training text that needs nothing outside the repository: 3000
/// sentences drawn with a fixed seed from a few common German and English
/// words ("Ein", "Mann", "Hund", "A", "man", ...) and 1500 made-up words of
/// 2 to 4 syllables, so that every ASCII letter, the umlauts, ß and the usual
/// punctuation occur and a 2000-id vocabulary has material to learn from.
pub fn generated_text() -> Vec<String> {
    const COMMON: &[&str] = &[
        "Ein", "Eine", "Mann", "Frau", "Hund", "Kinder", "spielen", "läuft", "über", "die",
        "Straße", "Mädchen", "fährt", "im", "Schnee", "A", "man", "woman", "dog", "children",
        "play", "runs", "across", "the", "street", "girl", "rides", "a", "in", "snow", "it's",
    ];
    const SYLLABLES: &[&str] = &[
        "ba", "be", "bi", "bo", "bu", "ca", "ce", "da", "de", "do", "fa", "fe", "ga", "go", "ha",
        "he", "ja", "ka", "ke", "ko", "la", "le", "li", "ma", "me", "mo", "na", "ne", "no", "pa",
        "pe", "qu", "ra", "re", "ro", "sa", "se", "so", "ta", "te", "to", "va", "ve", "wa", "we",
        "xa", "ya", "za", "ze", "zu", "ä", "ö", "ü", "ß", "sch", "ch", "st", "th", "ng", "er",
        "en", "an", "in", "ung", "keit", "tion", "ly", "ed", "ing", "-",
    ];
    const PUNCT: &[&str] = &[".", ".", ".", ",", "!", "?"];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: usize| {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    };
    let mut words: Vec<String> = COMMON.iter().map(|w| w.to_string()).collect();
    while words.len() < COMMON.len() + 1500 {
        let mut w: String = (0..2 + next(3))
            .map(|_| SYLLABLES[next(SYLLABLES.len())])
            .collect();
        if next(4) == 0 {
            let mut chars = w.chars();
            let first = chars.next().unwrap();
            w = first.to_uppercase().collect::<String>() + chars.as_str();
        }
        if w.starts_with('-') || w.ends_with('-') {
            continue;
        }
        words.push(w);
    }
    (0..3000)
        .map(|_| {
            let len = 3 + next(10);
            // A third of the words are common ones; the rest skewed towards the front.
            let line: Vec<&str> = (0..len)
                .map(|_| match next(3) {
                    0 => COMMON[next(COMMON.len())],
                    _ => words[next(words.len()).min(next(words.len()))].as_str(),
                })
                .collect();
            line.join(" ") + PUNCT[next(PUNCT.len())]
        })
        .collect()
}

/// A joint 2000-id vocabulary on [`generated_text`], trained once per test
/// binary (for the property tests, which need no real data).
pub fn trained_generated(model: ModelType) -> &'static HfVocab {
    static TRAINED: [OnceLock<HfVocab>; 2] = [OnceLock::new(), OnceLock::new()];
    trained_once(&TRAINED, model, generated_text)
}

/// The 2000-id vocabulary of kind `model` on `text`, trained on first use and kept in
/// `cells` (one a model type).
fn trained_once(
    cells: &'static [OnceLock<HfVocab>; 2],
    model: ModelType,
    text: fn() -> Vec<String>,
) -> &'static HfVocab {
    let cell = match model {
        ModelType::Unigram => &cells[0],
        ModelType::Bpe => &cells[1],
    };
    cell.get_or_init(|| train_lines(&config(model, 2000), text()).unwrap())
}

pub fn config(model: ModelType, vocab_size: usize) -> TrainConfig {
    TrainConfig {
        model,
        vocab_size,
        ..TrainConfig::default()
    }
}

/// A joint 2000-id vocabulary on [`train_text`], trained once per test binary.
pub fn trained(model: ModelType) -> &'static HfVocab {
    static TRAINED: [OnceLock<HfVocab>; 2] = [OnceLock::new(), OnceLock::new()];
    trained_once(&TRAINED, model, train_text)
}

/// A SentencePiece command-line tool from the Debian package. Cargo puts
/// the vendored libsentencepiece (built by sentencepiece-sys) on the test's
/// LD_LIBRARY_PATH; the Debian tools must not pick it up (newer, with other
/// flag handling: spm_train would silently ignore its flags).
pub fn spm_command(tool: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(tool);
    cmd.env_remove("LD_LIBRARY_PATH");
    cmd
}

/// Runs `spm_train` on `lines` into `dir` with extra flags; returns the
/// model path. Panics, saying why, when spm_train is absent (`make test`
/// installs it: Debian package sentencepiece).
pub fn spm_train(dir: &std::path::Path, lines: &[String], extra: &[&str]) -> PathBuf {
    assert!(
        spm_command("spm_train").arg("--help").output().is_ok(),
        "spm_train is not installed (Debian package sentencepiece; `make setup` installs it)"
    );
    let input = dir.join("spm_input.txt");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let prefix = dir.join("spm");
    process::output_ok(
        spm_command("spm_train")
            .arg(format!("--input={}", input.display()))
            .arg(format!("--model_prefix={}", prefix.display()))
            .arg("--minloglevel=2")
            .args(extra),
        "spm_train failed: ",
    );
    prefix.with_extension("model")
}

/// Encodes `line` with `v` and checks the encode/decode contract: no id is pad, bos or eos,
/// and decoding gives the line back as `v` normalizes it, unless an id is unk (then the
/// decoded text shows [`UNK_SURFACE`]). Returns the ids, and the decoded text when no id was
/// unk.
pub fn encode_decode(v: &dyn Vocab, line: &str) -> (Vec<u32>, Option<String>) {
    let ids = v.encode(line).unwrap();
    assert!(
        ids.iter()
            .all(|&id| id != PAD_ID && id != BOS_ID && id != EOS_ID),
        "{line:?} encoded to a pad/bos/eos id: {ids:?}"
    );
    let decoded = v.decode(&ids).unwrap();
    if ids.contains(&UNK_ID) {
        assert!(decoded.contains(UNK_SURFACE), "{line:?} -> {decoded:?}");
        (ids, None)
    } else {
        assert_eq!(
            decoded,
            v.normalize(line).unwrap(),
            "round trip of {line:?}"
        );
        (ids, Some(decoded))
    }
}

/// Checks [`encode_decode`]'s contract on one line; returns whether the line encoded
/// without unk.
pub fn round_trips(v: &dyn Vocab, line: &str) -> bool {
    encode_decode(v, line).1.is_some()
}

/// Test sets whose round trip is checked.
pub const TEST_SETS: [&str; 6] = [
    "multi30k/test.de",
    "multi30k/test.en",
    "iwslt14/test.de",
    "iwslt14/test.en",
    "wmt14/test.de",
    "wmt14/test.en",
];

/// Text mixing what real input and hostile input hold: letters the model
/// knows, whitespace of all kinds, control characters, combining marks,
/// emoji, other scripts, word marks and special-piece names (for the round-trip property
/// tests of every vocabulary kind).
pub fn text() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;

    let fragment = prop_oneof![
        4 => "[A-Za-zäöüßÄÖÜ.,!?'-]{1,12}",
        2 => prop::sample::select(vec![" ", "  ", "\t", "\n", "\r\n", "\u{a0}", "\u{3000}", "\u{2028}"]).prop_map(String::from),
        1 => prop::sample::select(vec!["\u{0}", "\u{1}", "\u{7f}", "\u{85}", "\u{200b}", "\u{feff}", "\u{fffd}"]).prop_map(String::from),
        1 => prop::sample::select(vec!["e\u{301}", "\u{301}", "a\u{308}\u{323}", "\u{1f600}", "👨‍👩‍👧", "🇩🇪", "日本語", "Привет", "\u{2581}", "<s>", "</s>", "<pad>", "<unk>", "ﬁ", "Ⅻ", "①"]).prop_map(String::from),
        1 => any::<String>(),
    ];
    prop::collection::vec(fragment, 0..40).prop_map(|v| v.concat())
}
