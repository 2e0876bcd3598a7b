//! Terminal progress bar: step count, loss, tokens/s, learning rate, ETA.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The bar's template when the number of updates is known.
const TEMPLATE_WITH_TOTAL: &str =
    "{elapsed_precise} [{wide_bar}] {pos}/{len} steps, ETA {eta} | {msg}";
/// The bar's template when it is not.
const TEMPLATE_OPEN: &str = "{elapsed_precise} step {pos} | {msg}";

/// The bar's style; `with_total`: whether the number of updates is known. The templates are
/// constants, parsed by the unit test below through this very function, so a bad one fails
/// the test rather than falling back to another look.
fn style(with_total: bool) -> ProgressStyle {
    let template = if with_total {
        TEMPLATE_WITH_TOTAL
    } else {
        TEMPLATE_OPEN
    };
    ProgressStyle::with_template(template)
        .unwrap_or_else(|e| panic!("progress template {template:?}: {e}"))
        .progress_chars("=> ")
}

/// A progress bar over updates; draws nothing when stderr is not a terminal or when quiet.
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// `total`: the number of updates the run will make, when known (max_steps); `done`: updates
    /// already made (a resumed run).
    pub fn new(total: Option<u64>, done: u64, quiet: bool) -> Self {
        let bar = match total {
            Some(t) => ProgressBar::new(t),
            None => ProgressBar::no_length(),
        };
        if quiet || !std::io::stderr().is_terminal() {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        bar.set_style(style(total.is_some()));
        bar.set_position(done);
        bar.reset_eta();
        Self { bar }
    }

    /// Moves to update `step` and shows the latest figures.
    pub fn update(&self, step: u64, epoch: u64, loss: f64, tokens_per_sec: f64, lr: f64) {
        self.bar.set_position(step);
        self.bar.set_message(format!(
            "epoch {epoch} loss {loss:.3} {tokens_per_sec:.0} tok/s lr {lr:.2e}"
        ));
    }

    /// Prints a line above the bar (or plainly when hidden it prints nothing: tracing logs it).
    pub fn println(&self, line: &str) {
        if !self.bar.is_hidden() {
            self.bar.println(line);
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    /// Whether the bar is drawn.
    pub fn is_hidden(&self) -> bool {
        self.bar.is_hidden()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_bar_is_hidden_and_tracks_position() {
        let p = Progress::new(Some(100), 10, true);
        assert!(p.is_hidden());
        assert_eq!(p.bar.position(), 10);
        p.update(42, 1, 3.5, 1000.0, 1e-3);
        assert_eq!(p.bar.position(), 42);
        assert!(p.bar.message().contains("loss 3.500"));
    }

    #[test]
    fn templates_parse() {
        // The styles the bar is built with (a template that does not parse panics here).
        style(true);
        style(false);
        // And both bars build with them.
        Progress::new(Some(10), 0, true);
        Progress::new(None, 0, true);
    }
}
