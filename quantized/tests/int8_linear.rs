//! The int8 layer against the obvious reference: the dequantized weights in a float32 matmul,
//! within the bound the activation rounding allows ([`quantized::error_bound`]), and the
//! dequantized weights within half a step of the originals.

use quantized::{dequantize_rows, error_bound, quantize_rows, Int8Weight, QuantError, QMAX};
use tch::{Device, Kind, Tensor};

fn random(shape: &[i64], seed: i64) -> Tensor {
    tch::manual_seed(seed);
    Tensor::randn(shape, (Kind::Float, Device::Cpu))
}

#[test]
fn quantized_rows_are_within_half_a_step() {
    // Rows of very different scales: per-row steps must follow each row.
    let w = random(&[48, 40], 1)
        * Tensor::logspace(-3.0, 1.0, 48, 10.0, (Kind::Float, Device::Cpu)).unsqueeze(1);
    let (q, step) = quantize_rows(&w).unwrap();
    assert_eq!(q.kind(), Kind::Int8);
    assert!(q.abs().max().int64_value(&[]) <= QMAX);
    let err = (dequantize_rows(&q, &step) - &w).abs();
    let allowed = &step.unsqueeze(1) / 2.0 * (1.0 + 1e-5);
    assert!(bool::try_from(err.le_tensor(&allowed).all()).unwrap());
    // Each row uses its full range: its largest weight maps to ±QMAX.
    let row_max = q.abs().amax([1i64].as_slice(), false).to_kind(Kind::Int64);
    assert_eq!(row_max.min().int64_value(&[]), QMAX);
}

#[test]
fn zero_rows_stay_zero() {
    let w = Tensor::cat(
        &[
            random(&[3, 8], 2),
            Tensor::zeros([2, 8], (Kind::Float, Device::Cpu)),
        ],
        0,
    );
    let (q, step) = quantize_rows(&w).unwrap();
    assert_eq!(q.narrow(0, 3, 2).abs().sum(Kind::Int64).int64_value(&[]), 0);
    assert!(bool::try_from(step.isfinite().all()).unwrap());
}

/// Checks `layer.linear(x, columns)` against the reference within the bound, for inputs of
/// several signs and shapes (all-positive inputs are the worst case for int16 saturation).
fn check_against_reference(
    w: &Tensor,
    x: &Tensor,
    columns: std::ops::Range<i64>,
    bias: Option<&Tensor>,
) {
    let (q, step) = quantize_rows(w).unwrap();
    let layer = Int8Weight::new(q.shallow_clone());
    let y = layer.linear(x, columns.clone(), &step, bias).unwrap();
    let deq = dequantize_rows(&q, &step).narrow(1, columns.start, columns.end - columns.start);
    let reference = x.linear(&deq, bias);
    assert_eq!(y.size(), reference.size());
    let bound = error_bound(x, &deq);
    // float32 sums of C products: a relative 1e-5 of the magnitudes involved is ample.
    let slack =
        x.abs().max().double_value(&[]) * deq.abs().sum(Kind::Float).double_value(&[]) * 1e-6
            + 1e-6;
    let excess = ((y - &reference).abs() - bound - slack)
        .max()
        .double_value(&[]);
    assert!(
        excess <= 0.0,
        "int8 output off the reference by {excess} more than the bound"
    );
}

#[test]
fn int8_linear_matches_dequantized_reference() {
    let w = random(&[96, 64], 3);
    let bias = random(&[96], 4);
    check_against_reference(&w, &random(&[5, 64], 5), 0..64, None);
    check_against_reference(&w, &random(&[5, 64], 6), 0..64, Some(&bias));
    check_against_reference(&w, &random(&[2, 3, 64], 7), 0..64, Some(&bias));
    // All positive, large: every product near the int16 limit.
    check_against_reference(&w, &(random(&[7, 64], 8).abs() * 30.0), 0..64, None);
    // Column blocks, as the step executor splits layer 0.
    check_against_reference(&w, &random(&[4, 24], 9), 40..64, None);
    check_against_reference(&w, &random(&[4, 40], 10), 0..40, Some(&bias));
    // A bias per input row too (added after fbgemm's output stage, not in it).
    check_against_reference(
        &w,
        &random(&[5, 64], 11),
        0..64,
        Some(&random(&[5, 96], 12)),
    );
}

#[test]
fn int8_linear_is_close_to_float32() {
    // Against the original weights: relative error of a few percent of the output range at
    // most (7-bit weights, 8-bit activations).
    let w = random(&[256, 128], 11);
    let x = random(&[16, 128], 12);
    let (q, step) = quantize_rows(&w).unwrap();
    let y = Int8Weight::new(q).linear(&x, 0..128, &step, None).unwrap();
    let exact = x.linear::<&Tensor>(&w, None);
    let rel = ((y - &exact).abs().max() / exact.abs().max()).double_value(&[]);
    assert!(rel < 0.03, "relative error {rel}");
    // No rows in, no rows out (a batch with nothing left to decode).
    let empty = Int8Weight::new(quantize_rows(&w).unwrap().0)
        .linear(&random(&[0, 128], 13), 0..128, &step, None)
        .unwrap();
    assert_eq!(empty.size(), [0, 256]);
}

#[test]
fn bad_inputs_are_errors() {
    let (q, step) = quantize_rows(&random(&[8, 4], 13)).unwrap();
    let layer = Int8Weight::new(q);
    let err = layer
        .linear(&random(&[2, 5], 14), 0..4, &step, None)
        .unwrap_err();
    assert!(matches!(err, QuantError::Shape(_)), "{err}");
    let err = layer
        .linear(&random(&[2, 4], 15), 2..6, &step, None)
        .unwrap_err();
    assert!(err.to_string().contains("columns 2..6"), "{err}");
    assert!(quantize_rows(&Tensor::zeros([3], (Kind::Float, Device::Cpu))).is_err());
    let err = Int8Weight::new(Tensor::zeros([2, 2], (Kind::Float, Device::Cpu)))
        .linear(&random(&[1, 2], 16), 0..2, &step.narrow(0, 0, 2), None)
        .unwrap_err();
    assert!(err.to_string().contains("expected int8"), "{err}");
    if tch::Cuda::is_available() {
        let err = layer
            .linear(
                &random(&[2, 4], 17).to_device(Device::Cuda(0)),
                0..4,
                &step,
                None,
            )
            .unwrap_err();
        assert!(matches!(err, QuantError::NotCpu { .. }), "{err}");
    }
}

#[test]
fn packing_follows_new_values_after_invalidate() {
    let (q, step) = quantize_rows(&random(&[8, 4], 18)).unwrap();
    let layer = Int8Weight::new(q.shallow_clone());
    let x = random(&[3, 4], 19);
    let before = layer.linear(&x, 0..4, &step, None).unwrap();
    let mut handle = layer.q();
    tch::no_grad(|| handle.copy_(&q.neg()));
    layer.invalidate();
    let after = layer.linear(&x, 0..4, &step, None).unwrap();
    assert!(bool::try_from((after + before).abs().max().le(1e-3)).unwrap());
    quantized::check_supported().unwrap();
}
