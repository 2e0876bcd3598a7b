//! Which executor runs each recurrent part of the network: the one place that decides.
//!
//! Three ways to run the same parameters ([`crate::rnn`]):
//!
//! - [`Exec::Fused`]: libtorch's fused kernels (cuDNN on GPUs, packed sequences for the
//!   encoder). Fastest for the encoder; computes standard gates only and shows none.
//! - [`Exec::Prepared`]: this crate's fast step executor for LSTMs: the input projection of
//!   every time step that is known ahead in one GEMM, one GEMM per step for the rest, the
//!   gate temperature folded into the weights and the noise into the precomputed part. The
//!   teacher-forced LSTM decoder always runs it (it beats libtorch's per-step call, which
//!   reorders the weights every step on the CPU), so does search on the CPU.
//! - [`Exec::Reference`]: the classic equations of [`crate::cell`], step by step, written to
//!   be read. The GRU's step executor, and the yardstick the tests hold the others to.

use tch::Device;

use crate::config::{CellKind, Executor};
use crate::gates::StepContext;

/// A recurrent part of the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RnnPart {
    /// The encoder over whole source sentences.
    Encoder,
    /// The decoder over a known target (training, validation loss, analysis).
    TeacherForcedDecoder,
    /// The decoder one step at a time (greedy and beam search).
    SearchDecoder,
    /// One decoder step without prepared weights ([`crate::Seq2Seq::decode_step`]): fused
    /// where allowed, else the reference equations.
    DecoderStep,
}

/// How a part runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exec {
    Fused,
    Prepared,
    Reference,
}

/// Picks the executor of `part` for a model with `cell` and `executor` in a pass `ctx` on
/// `device`. `auto` runs the fused kernels where they suffice (standard gates, nothing
/// recorded); a recorder always gets a step executor, `fused` or not, since it asked to see
/// the gates. (`fused` with non-standard gates is refused by [`crate::ModelConfig::validate`].)
pub fn pick(
    part: RnnPart,
    cell: CellKind,
    executor: Executor,
    ctx: &StepContext<'_>,
    device: Device,
) -> Exec {
    let fused_allowed = executor != Executor::Step && ctx.fused_suffices();
    let step = if cell.is_lstm() {
        Exec::Prepared
    } else {
        Exec::Reference
    };
    match part {
        RnnPart::Encoder if fused_allowed => Exec::Fused,
        RnnPart::Encoder => step,
        RnnPart::TeacherForcedDecoder if cell.is_lstm() => Exec::Prepared,
        RnnPart::SearchDecoder if cell.is_lstm() && device == Device::Cpu => Exec::Prepared,
        RnnPart::TeacherForcedDecoder | RnnPart::SearchDecoder if fused_allowed => Exec::Fused,
        RnnPart::TeacherForcedDecoder | RnnPart::SearchDecoder => step,
        RnnPart::DecoderStep if fused_allowed => Exec::Fused,
        RnnPart::DecoderStep => Exec::Reference,
    }
}
