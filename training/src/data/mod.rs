//! The parallel-corpus pipeline: reading aligned text in the usual release
//! formats, checking it, encoding it with a [`vocab::Vocab`] into compact
//! storage, filtering by length, and cutting token-budget batches.
//!
//! Typical use (vocabularies from `vocab::load`, passed as `&*boxed`):
//! ```no_run
//! # fn demo(src_vocab: &dyn vocab::Vocab, tgt_vocab: &dyn vocab::Vocab) -> Result<(), training::data::DataError> {
//! use training::data::*;
//! let spec = CorpusSpec::prefix("data/train", "de", "en");
//! let opts = ReadOptions { skip_bad_lines: true, ..Default::default() };
//! let filter = LengthFilter::moses(1, 175, 1.5);
//! let (corpus, report) = EncodedCorpus::read(&spec, &opts, src_vocab, tgt_vocab, &filter)?;
//! eprintln!("{report}");
//! let batcher = TokenBatcher::new(&corpus, BatchConfig::tokens(4096), 1)?;
//! for epoch in 0..10 {
//!     let plan = batcher.epoch(epoch);
//!     for batch in plan.batches(&corpus, 0) {
//!         // batch.src: [batch, src_len] i64 ...
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! Nothing here depends on tch: batches are plain arrays.

pub mod batch;
pub mod error;
pub mod filter;
pub mod readers;
pub mod store;

pub use batch::{Batch, BatchConfig, BatchPlan, TokenBatcher};
pub use error::{DataError, FilterReason, LineProblem, Origin, Report, Side, SkipReason};
pub use filter::LengthFilter;
pub use readers::{
    CorpusSpec, FilePair, Format, Pair, PairOrigin, PairReader, RawPairs, ReadOptions, TagLines,
    TextColumn,
};
pub use store::{
    restore_order, CorpusBuilder, EncodedCorpus, IdWidth, SentenceEncoder, TokenColumn, TokenIds,
};
