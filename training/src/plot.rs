//! `curves.svg` in the run directory: training and validation loss, and validation BLEU,
//! by update. Redrawn from `train.jsonl` and `valid.jsonl` after every validation, so a
//! browser pointed at the file shows how a run is going (and a resumed run's whole history).

use std::path::Path;

use plotters::prelude::*;

use crate::checkpoint::write_atomic;
use crate::log::{read_log, LogError, TrainRecord, ValidRecord, TRAIN_LOG, VALID_LOG};

/// File name of the plot in the run directory.
pub const CURVES_FILE: &str = "curves.svg";

/// Why the plot could not be drawn or written.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("drawing {CURVES_FILE}: {0}")]
    Draw(String),
    #[error(transparent)]
    Write(#[from] crate::checkpoint::CheckpointError),
}

fn draw_err<E: std::fmt::Display>(e: E) -> PlotError {
    PlotError::Draw(e.to_string())
}

/// Draws the curves of a run as an SVG document: loss per target token (training, label
/// smoothed, every `log_every` updates; validation) on top, validation BLEU below.
pub fn curves_svg(train: &[TrainRecord], valid: &[ValidRecord]) -> Result<String, PlotError> {
    figures::register_font();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 640)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let (top, bottom) = root.split_vertically(340);
        let last_step = train
            .iter()
            .map(|r| r.step)
            .chain(valid.iter().map(|r| r.step))
            .max()
            .unwrap_or(1)
            .max(1) as f64;

        let losses = train
            .iter()
            .map(|r| r.loss)
            .chain(valid.iter().map(|r| r.loss))
            .filter(|l| l.is_finite());
        let (lo, hi) = losses.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), l| {
            (lo.min(l), hi.max(l))
        });
        let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
        let pad = ((hi - lo) * 0.05).max(0.01);
        let mut chart = ChartBuilder::on(&top)
            .caption("loss per target token", (figures::FONT, 18))
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..last_step, (lo - pad)..(hi + pad))
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc("update")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_desc("loss")
            .draw()
            .map_err(draw_err)?;
        let points = |f: &dyn Fn(&TrainRecord) -> f64| -> Vec<(f64, f64)> {
            train
                .iter()
                .map(|r| (r.step as f64, f(r)))
                .filter(|p| p.1.is_finite())
                .collect()
        };
        chart
            .draw_series(LineSeries::new(points(&|r| r.loss), &BLUE))
            .map_err(draw_err)?
            .label("training")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
        let valid_loss: Vec<(f64, f64)> = valid
            .iter()
            .map(|r| (r.step as f64, r.loss))
            .filter(|p| p.1.is_finite())
            .collect();
        chart
            .draw_series(LineSeries::new(valid_loss.clone(), &RED))
            .map_err(draw_err)?
            .label("validation")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
        chart
            .draw_series(valid_loss.iter().map(|&p| Circle::new(p, 3, RED.filled())))
            .map_err(draw_err)?;
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(draw_err)?;

        let bleu: Vec<(f64, f64)> = valid
            .iter()
            .filter_map(|r| r.bleu.map(|b| (r.step as f64, b)))
            .filter(|p| p.1.is_finite())
            .collect();
        let top_bleu = bleu.iter().map(|p| p.1).fold(0.0f64, f64::max);
        let mut chart = ChartBuilder::on(&bottom)
            .caption(
                "validation BLEU (greedy; dots: new best)",
                (figures::FONT, 18),
            )
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..last_step, 0.0..(top_bleu * 1.1).max(1.0))
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc("update")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_desc("BLEU")
            .draw()
            .map_err(draw_err)?;
        chart
            .draw_series(LineSeries::new(bleu, &GREEN))
            .map_err(draw_err)?;
        chart
            .draw_series(
                valid
                    .iter()
                    .filter(|r| r.best)
                    .filter_map(|r| r.bleu.map(|b| (r.step as f64, b)))
                    .map(|p| Circle::new(p, 4, GREEN.filled())),
            )
            .map_err(draw_err)?;
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

/// Redraws `<run>/curves.svg` from the run's logs (written atomically).
pub fn write_run_curves(run_root: &Path) -> Result<(), PlotError> {
    let train: Vec<TrainRecord> = read_if_present(&run_root.join(TRAIN_LOG))?;
    let valid: Vec<ValidRecord> = read_if_present(&run_root.join(VALID_LOG))?;
    let svg = curves_svg(&train, &valid)?;
    write_atomic(&run_root.join(CURVES_FILE), svg.as_bytes())?;
    Ok(())
}

/// A log that does not exist yet reads as empty.
fn read_if_present<T: for<'de> serde::Deserialize<'de>>(path: &Path) -> Result<Vec<T>, LogError> {
    if path.exists() {
        read_log(path)
    } else {
        Ok(Vec::new())
    }
}
