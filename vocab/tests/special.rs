//! Special ids (module `special`): fixed layout in every backend, never
//! produced from text, even from text spelling their names.

mod common;

use vocab::{
    train_lines, ModelType, Vocab, BOS_ID, EOS_ID, NUM_SPECIAL, PAD_ID, SPECIAL_PIECES, UNK_ID,
};

#[test]
fn ids_and_names_are_fixed() {
    assert_eq!(
        (PAD_ID, UNK_ID, BOS_ID, EOS_ID, NUM_SPECIAL),
        (0, 1, 2, 3, 4)
    );
    assert_eq!(SPECIAL_PIECES, ["<pad>", "<unk>", "<s>", "</s>"]);
    assert!(vocab::special::is_special(3) && !vocab::special::is_special(4));
}

#[test]
fn trained_models_hold_specials_at_0_to_3() {
    for model in [ModelType::Unigram, ModelType::Bpe] {
        let v = common::trained_generated(model);
        for (id, name) in SPECIAL_PIECES.iter().enumerate() {
            assert_eq!(v.id_to_piece(id as u32).as_deref(), Some(*name));
            assert_eq!(v.piece_to_id(name), Some(id as u32));
        }
        // No other id carries a special name.
        for id in NUM_SPECIAL..v.len() as u32 {
            let p = v.id_to_piece(id).unwrap();
            assert!(!SPECIAL_PIECES.contains(&p.as_str()), "id {id} is {p}");
        }
    }
}

#[test]
fn spm_model_maps_specials_to_0_to_3() {
    let lines = common::generated_text();
    let dir = tempfile::tempdir().unwrap();
    let path = common::spm_train(dir.path(), &lines, &["--vocab_size=1000"]);
    let v = vocab::load(&path).unwrap();
    for (id, name) in SPECIAL_PIECES.iter().enumerate() {
        assert_eq!(v.id_to_piece(id as u32).as_deref(), Some(*name));
    }
}

#[test]
fn special_names_in_text_stay_text() {
    // Training text that contains the names, so their characters are known
    // and the models may even learn them as pieces.
    let mut lines = common::generated_text();
    for _ in 0..200 {
        lines.push("Tags wie <s> und </s> oder <pad> und <unk> sind Text.".into());
    }
    let text = "x <pad> y <s> z </s> <unk> <s></s>";
    for model in [ModelType::Unigram, ModelType::Bpe] {
        let v = train_lines(&common::config(model, 2000), &lines).unwrap();
        let ids = v.encode(text).unwrap();
        assert!(
            ids.iter().all(|&id| id >= NUM_SPECIAL),
            "{model:?}: special id from text: {ids:?} {:?}",
            v.tokenize(text).unwrap()
        );
        assert_eq!(v.decode(&ids).unwrap(), text, "{model:?}");
    }
}
