//! Line streams (module `stream`): encode/decode line by line, errors with
//! the line number.

mod common;

use vocab::stream::{decode_stream, encode_stream, parse_ids, EncodeOutput};
use vocab::{ModelType, Vocab, VocabError};

#[test]
fn encode_then_decode_restores_lines() {
    let v = common::trained_generated(ModelType::Bpe);
    let lines = common::generated_text()[..100].to_vec();
    let input = lines.join("\n") + "\n";
    let mut ids = Vec::new();
    let n = encode_stream(v, input.as_bytes(), "test", &mut ids, EncodeOutput::Ids).unwrap();
    assert_eq!(n, 100);
    let mut text = Vec::new();
    assert_eq!(
        decode_stream(v, ids.as_slice(), "ids", &mut text).unwrap(),
        100
    );
    let text = String::from_utf8(text).unwrap();
    for (got, line) in text.lines().zip(&lines) {
        let ids = v.encode(line).unwrap();
        assert_eq!(got, v.decode(&ids).unwrap());
    }
    assert_eq!(text.lines().count(), 100);
}

#[test]
fn pieces_output_and_crlf() {
    let v = common::trained_generated(ModelType::Unigram);
    let mut out = Vec::new();
    encode_stream(
        v,
        "Ein Mann\r\n\nA man\n".as_bytes(),
        "t",
        &mut out,
        EncodeOutput::Pieces,
    )
    .unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), "▁Ein ▁Mann\n\n▁A ▁man\n");
}

#[test]
fn invalid_utf8_names_the_line() {
    let v = common::trained_generated(ModelType::Unigram);
    let input: &[u8] = b"Ein Hund\nA dog\nkaputt \xc3\x28 hier\n";
    let err = encode_stream(v, input, "<stdin>", Vec::new(), EncodeOutput::Ids).unwrap_err();
    assert!(matches!(err, VocabError::Input { line: 3, .. }), "{err:?}");
    assert!(
        err.to_string().starts_with("<stdin>:3: not valid UTF-8"),
        "{err}"
    );
}

#[test]
fn bad_ids_name_the_line() {
    let v = common::trained_generated(ModelType::Unigram);
    let too_big = v.len();
    for (input, line, what) in [
        ("5 6\nfoo\n".to_string(), 2, "\"foo\" is not an id"),
        ("5 -1\n".to_string(), 1, "\"-1\" is not an id"),
        (format!("5\n6\n{too_big}\n"), 3, "out of range"),
    ] {
        let err = decode_stream(v, input.as_bytes(), "ids.txt", Vec::new()).unwrap_err();
        assert!(
            matches!(&err, VocabError::Input { line: l, .. } if *l == line),
            "{err:?}"
        );
        assert!(err.to_string().contains(what), "{err}");
    }
}

#[test]
fn parse_ids_accepts_any_whitespace() {
    assert_eq!(parse_ids(" 4\t5  6 ").unwrap(), [4, 5, 6]);
    assert_eq!(parse_ids("").unwrap(), Vec::<u32>::new());
    assert!(parse_ids("4 5.0").is_err());
    assert!(parse_ids("99999999999").is_err());
}
