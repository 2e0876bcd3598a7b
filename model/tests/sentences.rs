//! Paragraphs translated sentence by sentence (`model::sentences`, `TranslateOptions::
//! split_sentences`): the segmenter on real German and English examples, the text kept
//! exactly around the sentences, over-long sentences cut without losing a word, and a
//! paragraph translating as its sentences one by one.

#[allow(dead_code)] // the shared helpers this binary does not call
mod common;

use model::bundle::Bundle;
use model::sentences::{fit, split, Piece};
use model::translate::{translate, TranslateOptions};
use tch::Device;

fn sentences(pieces: &[Piece]) -> Vec<&str> {
    pieces
        .iter()
        .filter_map(|p| match p {
            Piece::Sentence(s) => Some(s.as_str()),
            Piece::Gap(_) => None,
        })
        .collect()
}

fn joined(pieces: &[Piece]) -> String {
    pieces
        .iter()
        .map(|p| match p {
            Piece::Sentence(s) | Piece::Gap(s) => s.as_str(),
        })
        .collect()
}

#[test]
fn abbreviations_ordinals_and_numbers_do_not_end_sentences() {
    let de = "Dr. Müller kommt am 3. Oktober nach Berlin. Er bringt z. B. Äpfel mit! \
              Kommst du auch? Die Firma zahlt 3.50 Euro.";
    assert_eq!(
        sentences(&split("de", de)),
        [
            "Dr. Müller kommt am 3. Oktober nach Berlin.",
            "Er bringt z. B. Äpfel mit!",
            "Kommst du auch?",
            "Die Firma zahlt 3.50 Euro.",
        ]
    );
    let en = "Dr. Smith moved to the U.S. in 1999. He likes fruit, e.g. apples. \
              Mr. Brown said \"Hi.\" Then he left.";
    assert_eq!(
        sentences(&split("en", en)),
        [
            "Dr. Smith moved to the U.S. in 1999.",
            "He likes fruit, e.g. apples.",
            "Mr. Brown said \"Hi.\"",
            "Then he left.",
        ]
    );
}

#[test]
fn the_text_around_the_sentences_is_kept_exactly() {
    for text in [
        "  Ein Hund läuft.   Zwei Katzen schlafen.\n\nNeuer Absatz.\n",
        "Zeile eins\nZeile zwei.\r\n\tEingerückt.",
        "\n\n\n",
        "",
        "Kein Satzende",
        "Ä.Ö.Ü. ß! ??? ... ——",
    ] {
        let pieces = split("de", text);
        assert_eq!(joined(&pieces), text, "{pieces:?}");
        for p in &pieces {
            match p {
                Piece::Sentence(s) => assert!(!s.is_empty() && s.trim() == s, "{p:?}"),
                Piece::Gap(g) => assert!(g.trim().is_empty() && !g.is_empty(), "{p:?}"),
            }
        }
    }
    // A line break ends a sentence; a blank line is one gap.
    let pieces = split("en", "One line\nanother line.\n\nA paragraph.");
    assert_eq!(
        pieces,
        [
            Piece::Sentence("One line".into()),
            Piece::Gap("\n".into()),
            Piece::Sentence("another line.".into()),
            Piece::Gap("\n\n".into()),
            Piece::Sentence("A paragraph.".into()),
        ]
    );
}

#[test]
fn an_over_long_sentence_is_cut_at_clauses_then_words_and_loses_no_word() {
    let words = |t: &str| -> Result<usize, ()> { Ok(t.split_whitespace().count()) };
    let sentence = "Als wir ankamen, regnete es, und der Zug, der schon wartete, fuhr ab; \
                    wir standen lange auf dem leeren kalten nassen Bahnsteig herum.";
    assert_eq!(fit(sentence, 100, &words).unwrap(), [sentence]);
    let pieces = fit(sentence, 6, &words).unwrap();
    assert!(pieces.iter().all(|p| words(p).unwrap() <= 6), "{pieces:?}");
    assert_eq!(pieces[0], "Als wir ankamen, regnete es,");
    let rejoined: Vec<&str> = pieces.iter().flat_map(|p| p.split_whitespace()).collect();
    let original: Vec<&str> = sentence.split_whitespace().collect();
    assert_eq!(rejoined, original);
    // A word longer than the limit is a piece of its own (translation truncates it).
    let long = fit(
        "kurz Donaudampfschifffahrtsgesellschaft kurz",
        1,
        &|t: &str| Ok::<_, ()>(t.len() / 8),
    )
    .unwrap();
    assert_eq!(long, ["kurz", "Donaudampfschifffahrtsgesellschaft", "kurz"]);
}

#[test]
fn a_paragraph_translates_as_its_sentences_one_by_one_with_its_spacing() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("m");
    model::testing::write_untrained_bundle(&dir, common::LINES, 50, ("de", "en"), 7).unwrap();
    let bundle = Bundle::load(&dir, Device::Cpu).unwrap();
    // Capitalised, as the segmenter wants a new sentence to start (a lowercase word after
    // a full stop may follow an abbreviation).
    let five = [
        "Ein hund läuft über die wiese.",
        "Zwei männer spielen fußball im park.",
        "Eine frau liest ein buch.",
        "Ein hund liest.",
        "Zwei männer laufen.",
    ];
    let paragraph = format!(
        "{} {}  {}\n\n{}\n{}",
        five[0], five[1], five[2], five[3], five[4]
    );
    let opts = TranslateOptions {
        split_sentences: true,
        ..Default::default()
    };
    let whole = TranslateOptions::default();
    let texts: Vec<String> = five.iter().map(|s| s.to_string()).collect();
    let one_by_one = translate(&bundle, &texts, &whole, |_| {}).unwrap();
    let split = translate(&bundle, &[paragraph], &opts, |_| {}).unwrap();
    let t: Vec<&str> = one_by_one.iter().map(|t| t.text.as_str()).collect();
    assert_eq!(
        split[0].text,
        format!("{} {}  {}\n\n{}\n{}", t[0], t[1], t[2], t[3], t[4])
    );
    let sum: f64 = one_by_one.iter().map(|t| t.score).sum();
    assert!(
        (split[0].score - sum).abs() < 1e-4,
        "{} vs {sum}",
        split[0].score
    );
    // An over-long sentence: cut to fit, every piece translated, nothing truncated.
    let long = "ein hund läuft über die wiese, zwei männer spielen fußball im park, eine frau liest ein buch";
    let short = TranslateOptions {
        max_source_tokens: 12,
        ..opts.clone()
    };
    let cut = translate(&bundle, &[long.to_string()], &short, |_| {}).unwrap();
    assert!(!cut[0].truncated);
    let parts = fit(long, 12, &|t: &str| {
        bundle.src_vocab.encode(t).map(|ids| ids.len())
    })
    .unwrap();
    assert!(parts.len() > 1, "{parts:?}");
    let each = translate(&bundle, &parts, &whole, |_| {}).unwrap();
    let expected: Vec<&str> = each.iter().map(|t| t.text.as_str()).collect();
    assert_eq!(cut[0].text, expected.join(" "));
    // Without splitting the same sentence is cut short and says so.
    let truncated = translate(
        &bundle,
        &[long.to_string()],
        &TranslateOptions {
            split_sentences: false,
            ..short
        },
        |_| {},
    )
    .unwrap();
    assert!(truncated[0].truncated);
    // Texts without a sentence translate to nothing; progress counts texts.
    let mut reported = 0;
    let empty = translate(&bundle, &["  \n ".to_string(), String::new()], &opts, |n| {
        reported += n
    })
    .unwrap();
    assert_eq!(empty[0].text, "");
    assert_eq!(reported, 2);
}
