//! curves.svg: drawn from the run logs, one line per series.

use training::log::{JsonLog, TrainRecord, ValidRecord, TRAIN_LOG, VALID_LOG};
use training::plot::{curves_svg, write_run_curves, CURVES_FILE};

fn train_record(step: u64, loss: f64) -> TrainRecord {
    TrainRecord {
        step,
        epoch: 1,
        loss,
        nll_loss: loss * 0.8,
        ppl: loss.exp(),
        lr: 1e-3,
        grad_norm: 1.0,
        tokens_per_sec: 1000.0,
        elapsed_secs: step as f64,
    }
}

fn valid_record(step: u64, loss: f64, bleu: Option<f64>, best: bool) -> ValidRecord {
    ValidRecord {
        step,
        epoch: 1,
        loss,
        nll_loss: loss * 0.8,
        ppl: loss.exp(),
        bleu,
        lr: 1e-3,
        elapsed_secs: step as f64,
        tokens_per_sec: 1000.0,
        best,
        sets: Vec::new(),
        ranked_on: None,
    }
}

/// `stroke="#RRGGBB"` polylines in the document, by colour.
fn polylines_with(svg: &str, colour: &str) -> usize {
    svg.match_indices("<polyline")
        .filter(|(at, _)| {
            let end = svg[*at..].find('>').map_or(svg.len(), |e| at + e);
            svg[*at..end].contains(colour)
        })
        .count()
}

#[test]
fn the_curves_show_training_loss_validation_loss_and_bleu() {
    let train: Vec<_> = (1..=20)
        .map(|i| train_record(i * 50, 8.0 / i as f64))
        .collect();
    let valid = vec![
        valid_record(500, 3.0, Some(20.0), true),
        valid_record(1000, 2.5, Some(30.0), true),
    ];
    let svg = curves_svg(&train, &valid).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
    assert!(svg.contains("loss per target token") && svg.contains("validation BLEU"));
    // Each loss series is its line plus its legend sample; BLEU has no legend.
    assert_eq!(polylines_with(&svg, "#0000FF"), 2, "training loss");
    assert_eq!(polylines_with(&svg, "#FF0000"), 2, "validation loss");
    assert_eq!(polylines_with(&svg, "#00FF00"), 1, "BLEU");
    // An empty run draws empty axes rather than failing.
    let empty = curves_svg(&[], &[]).unwrap();
    assert!(empty.contains("<svg"));
}

#[test]
fn the_run_directory_gets_curves_from_its_logs() {
    let dir = tempfile::tempdir().unwrap();
    let mut train = JsonLog::open(&dir.path().join(TRAIN_LOG)).unwrap();
    train.write(&train_record(100, 5.0)).unwrap();
    train.write(&train_record(200, 4.0)).unwrap();
    let mut valid = JsonLog::open(&dir.path().join(VALID_LOG)).unwrap();
    valid.write(&valid_record(200, 4.5, None, true)).unwrap();
    write_run_curves(dir.path()).unwrap();
    let svg = std::fs::read_to_string(dir.path().join(CURVES_FILE)).unwrap();
    assert_eq!(polylines_with(&svg, "#0000FF"), 2);
    assert_eq!(polylines_with(&svg, "#00FF00"), 0, "no BLEU was logged");
    // A broken log is an error naming the file, not a panic.
    std::fs::write(dir.path().join(VALID_LOG), "{not json\n").unwrap();
    let err = write_run_curves(dir.path()).unwrap_err().to_string();
    assert!(err.contains(VALID_LOG), "{err}");
}

#[test]
fn several_validation_sets_get_a_line_each_beside_the_ranking_scores() {
    use training::log::SetScores;
    let set = |name: &str, loss: f64, bleu: f64| SetScores {
        name: name.into(),
        loss,
        nll_loss: loss * 0.8,
        ppl: (loss * 0.8).exp(),
        bleu: Some(bleu),
    };
    let valid: Vec<ValidRecord> = [(500, 20.0), (1000, 30.0)]
        .into_iter()
        .map(|(step, b)| {
            let sets = vec![set("tatoeba", 3.0, b), set("multi30k", 2.0, b + 10.0)];
            let mean = SetScores::mean(&sets);
            ValidRecord {
                sets,
                ranked_on: Some("mean".into()),
                ..valid_record(step, mean.loss, mean.bleu, true)
            }
        })
        .collect();
    let svg = curves_svg(&[train_record(100, 5.0)], &valid).unwrap();
    // Sets in the order of the log (magenta, cyan), then the mean in red / green. Each loss
    // line has a legend sample; BLEU lines have none.
    assert_eq!(
        polylines_with(&svg, "#FF00FF"),
        3,
        "first set: loss, legend, BLEU"
    );
    assert_eq!(
        polylines_with(&svg, "#00FFFF"),
        3,
        "second set: loss, legend, BLEU"
    );
    assert_eq!(
        polylines_with(&svg, "#FF0000"),
        2,
        "the mean's loss and legend"
    );
    assert_eq!(polylines_with(&svg, "#00FF00"), 1, "the mean's BLEU");
    assert!(svg.contains("validation tatoeba") && svg.contains("validation (mean)"));
}
