//! TensorBoard event files in `RUN/tensorboard/` (`training.tensorboard`, `nmt-train
//! --tensorboard`), readable by `tensorboard --logdir RUN`: the training scalars of every
//! log step and every validation metric, per validation set, as fairseq's
//! `--tensorboard-logdir` and OpenNMT-py's `-tensorboard` write them.
//!
//! The format is TensorFlow's: a file of TFRecord records (length, masked CRC32C of the
//! length, the bytes, masked CRC32C of the bytes), each an `Event` protobuf (TensorFlow's
//! `event.proto`, the few fields a scalar needs, encoded with prost). A file starts with the
//! `brain.Event:2` version event. A resumed run writes a new file that starts with a
//! `SessionLog START` event at the step after its checkpoint, so TensorBoard drops the
//! scalars the interrupted run logged past the checkpoint, as `train.jsonl` does.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::log::{TrainRecord, ValidRecord};

/// The folder of the event files inside a run directory.
pub const TENSORBOARD_DIR: &str = "tensorboard";

/// `tensorflow.Event`: the fields a scalar log uses.
#[derive(Clone, PartialEq, prost::Message)]
struct Event {
    #[prost(double, tag = "1")]
    wall_time: f64,
    #[prost(int64, tag = "2")]
    step: i64,
    #[prost(oneof = "EventWhat", tags = "3, 5, 7")]
    what: Option<EventWhat>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum EventWhat {
    #[prost(string, tag = "3")]
    FileVersion(String),
    #[prost(message, tag = "5")]
    Summary(Summary),
    // Tag 6 is the deprecated `log_message`.
    #[prost(message, tag = "7")]
    SessionLog(SessionLog),
}

/// `tensorflow.Summary`.
#[derive(Clone, PartialEq, prost::Message)]
struct Summary {
    #[prost(message, repeated, tag = "1")]
    value: Vec<SummaryValue>,
}

/// `tensorflow.Summary.Value` with a `simple_value`.
#[derive(Clone, PartialEq, prost::Message)]
struct SummaryValue {
    #[prost(string, tag = "1")]
    tag: String,
    /// In `event.proto` `simple_value` is a member of the `value` oneof: a oneof member is
    /// written even when 0 (a plain proto3 float of 0 would be left out, and TensorBoard
    /// would drop the scalar: a BLEU of 0 early in a run).
    #[prost(oneof = "SummaryKind", tags = "2")]
    value: Option<SummaryKind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum SummaryKind {
    #[prost(float, tag = "2")]
    SimpleValue(f32),
}

/// `tensorflow.SessionLog`: only its status (`START` = 1).
#[derive(Clone, PartialEq, prost::Message)]
struct SessionLog {
    #[prost(int32, tag = "1")]
    status: i32,
}

const SESSION_START: i32 = 1;

/// Errors writing event files.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct TensorBoardError {
    path: String,
    source: std::io::Error,
}

/// An event file being written; every `write_*` call is flushed.
pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl EventWriter {
    /// Opens a new event file in `RUN/tensorboard/` (created if missing). `resumed_at`:
    /// the step of the checkpoint a resumed run continues from.
    pub fn create(run_dir: &Path, resumed_at: Option<u64>) -> Result<Self, TensorBoardError> {
        let dir = run_dir.join(TENSORBOARD_DIR);
        let err = |path: &Path| {
            let path = path.display().to_string();
            move |source| TensorBoardError { path, source }
        };
        fs::create_dir_all(&dir).map_err(err(&dir))?;
        // TensorBoard reads the files of a folder in name order: seconds first, then the
        // step the file starts at, so a resumed run's file sorts after the earlier ones.
        let secs = now().floor() as u64;
        let start = resumed_at.unwrap_or(0);
        let path = dir.join(format!(
            "events.out.tfevents.{secs:010}.nmt-train.step-{start:010}"
        ));
        let file = File::create(&path).map_err(err(&path))?;
        let mut writer = EventWriter {
            path,
            out: BufWriter::new(file),
        };
        writer.event(0, EventWhat::FileVersion("brain.Event:2".into()))?;
        if let Some(step) = resumed_at {
            writer.event(
                step as i64 + 1,
                EventWhat::SessionLog(SessionLog {
                    status: SESSION_START,
                }),
            )?;
        }
        writer.flush()?;
        Ok(writer)
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Scalars (`tag`, value) at `step`, one event each; non-finite values are skipped.
    pub fn scalars(&mut self, step: u64, values: &[(String, f64)]) -> Result<(), TensorBoardError> {
        for (tag, value) in values.iter().filter(|(_, v)| v.is_finite()) {
            let summary = Summary {
                value: vec![SummaryValue {
                    tag: tag.clone(),
                    value: Some(SummaryKind::SimpleValue(*value as f32)),
                }],
            };
            self.event(step as i64, EventWhat::Summary(summary))?;
        }
        self.flush()
    }

    /// A training log record: `train/loss`, `train/nll_loss`, `train/ppl`, `train/lr`,
    /// `train/grad_norm`, `train/tokens_per_sec`.
    pub fn write_train(&mut self, rec: &TrainRecord) -> Result<(), TensorBoardError> {
        let values = [
            ("loss", rec.loss),
            ("nll_loss", rec.nll_loss),
            ("ppl", rec.ppl),
            ("lr", rec.lr),
            ("grad_norm", rec.grad_norm),
            ("tokens_per_sec", rec.tokens_per_sec),
        ]
        .map(|(k, v)| (format!("train/{k}"), v));
        self.scalars(rec.step, &values)
    }

    /// A validation: the ranking scores as `valid/loss`, `valid/nll_loss`, `valid/ppl`,
    /// `valid/bleu`, and with several sets each set's as `valid/NAME/loss` and so on.
    pub fn write_valid(&mut self, rec: &ValidRecord) -> Result<(), TensorBoardError> {
        let mut values = Vec::new();
        let mut push = |prefix: &str, loss: f64, nll: f64, ppl: f64, bleu: Option<f64>| {
            values.push((format!("{prefix}/loss"), loss));
            values.push((format!("{prefix}/nll_loss"), nll));
            values.push((format!("{prefix}/ppl"), ppl));
            if let Some(b) = bleu {
                values.push((format!("{prefix}/bleu"), b));
            }
        };
        push("valid", rec.loss, rec.nll_loss, rec.ppl, rec.bleu);
        if rec.sets.len() > 1 {
            for s in &rec.sets {
                push(
                    &format!("valid/{}", s.name),
                    s.loss,
                    s.nll_loss,
                    s.ppl,
                    s.bleu,
                );
            }
        }
        self.scalars(rec.step, &values)
    }

    fn event(&mut self, step: i64, what: EventWhat) -> Result<(), TensorBoardError> {
        use prost::Message;
        let event = Event {
            wall_time: now(),
            step,
            what: Some(what),
        };
        let record = tfrecord(&event.encode_to_vec());
        self.out
            .write_all(&record)
            .map_err(|source| TensorBoardError {
                path: self.path.display().to_string(),
                source,
            })
    }

    fn flush(&mut self) -> Result<(), TensorBoardError> {
        self.out.flush().map_err(|source| TensorBoardError {
            path: self.path.display().to_string(),
            source,
        })
    }
}

/// Seconds since the Unix epoch.
fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// TFRecord's CRC: CRC32C, rotated right by 15 bits, plus a constant.
fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// One TFRecord: `u64` length, masked CRC of it, the data, masked CRC of the data (all
/// little-endian).
fn tfrecord(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
    out
}
