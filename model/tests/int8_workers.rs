//! An int8 bundle translated with batches side by side (model replicas on worker threads,
//! which share the packed int8 matrices) gives what one batch at a time gives.
//!
//! A test binary of its own, with libtorch held to one intra-op thread: int8's per-call
//! activation quantization turns the last-bit differences between float GEMMs run with
//! different thread counts into whole quantization steps (and so, on a random model's
//! near-tied beams, into other words), and MKL's thread count is process-wide, so tests
//! running beside this one in a shared binary would change it underneath.

#[allow(dead_code)] // the shared helpers this binary does not call
mod common;

use model::translate::{translate, TranslateOptions};

#[test]
fn int8_bundles_translate_the_same_with_batches_side_by_side() {
    tch::set_num_threads(1);
    let root = tempfile::tempdir().unwrap();
    let int8 = common::int8_all_lstm(root.path());
    let texts: Vec<String> = common::LINES.iter().map(|s| s.to_string()).collect();
    let run = |workers| {
        let opts = TranslateOptions {
            // Small batches, so that there are several to share out.
            max_tokens: 16,
            workers,
            ..Default::default()
        };
        translate(&int8, &texts, &opts, |_| {}).unwrap()
    };
    let one_at_a_time = run(1);
    for workers in [2, 3] {
        let side_by_side = run(workers);
        assert_eq!(side_by_side.len(), texts.len());
        for (i, (a, b)) in one_at_a_time.iter().zip(&side_by_side).enumerate() {
            assert_eq!(a.text, b.text, "line {i}, {workers} workers");
            assert_eq!(a.score, b.score, "line {i}, {workers} workers");
        }
    }
}
