//! The command-line names of this crate's enums for `nmt-vocab` (feature `cli`, on by
//! default; library users take `default-features = false` and get no clap).

use clap::builder::PossibleValue;
use clap::ValueEnum;

use crate::ModelType;

impl ValueEnum for ModelType {
    fn value_variants<'a>() -> &'a [Self] {
        &[ModelType::Unigram, ModelType::Bpe]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            ModelType::Unigram => {
                PossibleValue::new("unigram").help("SentencePiece-style unigram language model")
            }
            ModelType::Bpe => PossibleValue::new("bpe").help("Byte-pair encoding"),
        })
    }
}
