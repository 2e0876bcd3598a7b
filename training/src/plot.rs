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
        // One line per validation set when there are several, then the scores that rank
        // validations (the only line with one set, or in logs from before sets had names).
        let series = valid_series(valid);
        let ranking = series.len() - 1;
        for (k, (name, scores)) in series.iter().enumerate() {
            let colour = VALID_COLOURS[if k == ranking {
                VALID_COLOURS.len() - 1
            } else {
                k
            }];
            let loss: Vec<(f64, f64)> = scores
                .iter()
                .map(|&(step, loss, _)| (step, loss))
                .filter(|p| p.1.is_finite())
                .collect();
            chart
                .draw_series(LineSeries::new(loss.clone(), colour))
                .map_err(draw_err)?
                .label(format!("validation {name}").trim_end())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
            chart
                .draw_series(loss.iter().map(|&p| Circle::new(p, 3, colour.filled())))
                .map_err(draw_err)?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(draw_err)?;

        let top_bleu = valid
            .iter()
            .flat_map(|r| r.sets.iter().map(|s| s.bleu).chain([r.bleu]))
            .flatten()
            .filter(|b| b.is_finite())
            .fold(0.0f64, f64::max);
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
        for (k, (_, scores)) in series.iter().enumerate() {
            let colour = BLEU_COLOURS[if k == ranking {
                BLEU_COLOURS.len() - 1
            } else {
                k
            }];
            let bleu: Vec<(f64, f64)> = scores
                .iter()
                .filter_map(|&(step, _, bleu)| bleu.map(|b| (step, b)))
                .filter(|p| p.1.is_finite())
                .collect();
            chart
                .draw_series(LineSeries::new(bleu, colour))
                .map_err(draw_err)?;
            if k == ranking {
                chart
                    .draw_series(
                        valid
                            .iter()
                            .filter(|r| r.best)
                            .filter_map(|r| r.bleu.map(|b| (r.step as f64, b)))
                            .map(|p| Circle::new(p, 4, colour.filled())),
                    )
                    .map_err(draw_err)?;
            }
        }
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

/// Validation loss colours: each set's, in order, then the ranking scores' (red, as before
/// runs had several sets).
const VALID_COLOURS: [RGBColor; 4] = [MAGENTA, CYAN, RGBColor(255, 140, 0), RED];
/// BLEU colours, likewise (green for the ranking scores).
const BLEU_COLOURS: [RGBColor; 4] = [MAGENTA, CYAN, RGBColor(255, 140, 0), GREEN];

/// `(label, [(step, loss, bleu)])` per line to draw: with several sets each set's by name,
/// and always last the ranking scores (`mean` or the set's name; "" with one set). Sets
/// beyond three are left out of the figure (their scores are in `valid.jsonl`).
type Series = Vec<(String, Vec<(f64, f64, Option<f64>)>)>;

fn valid_series(valid: &[ValidRecord]) -> Series {
    let mut names: Vec<String> = Vec::new();
    for r in valid.iter().filter(|r| r.sets.len() > 1) {
        for s in &r.sets {
            if !names.contains(&s.name) && names.len() < VALID_COLOURS.len() - 1 {
                names.push(s.name.clone());
            }
        }
    }
    let mut series: Series = names
        .iter()
        .map(|name| {
            let points = valid
                .iter()
                .filter_map(|r| r.sets.iter().find(|s| &s.name == name).map(|s| (r, s)))
                .map(|(r, s)| (r.step as f64, s.loss, s.bleu))
                .collect();
            (name.clone(), points)
        })
        .collect();
    let ranking_name = valid
        .iter()
        .rev()
        .find_map(|r| r.ranked_on.clone())
        .map(|n| format!("({n})"))
        .unwrap_or_default();
    series.push((
        ranking_name,
        valid
            .iter()
            .map(|r| (r.step as f64, r.loss, r.bleu))
            .collect(),
    ));
    series
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
