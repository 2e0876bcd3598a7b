//! Printing scores the way sacreBLEU and multi-bleu.perl print them.

use std::fmt;
use std::str::FromStr;

use serde_json::{json, Map, Value};

use crate::bleu::BleuScore;
use crate::chrf::ChrfScore;
use crate::error::EvalError;

/// How a score is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// `BLEU = 34.45 68.3/42.5/28.6/19.6 (BP = 1.000 ratio = 1.012 hyp_len = 65 ref_len = 64) nrefs:1|...`:
    /// the score comes first, the signature last.
    #[default]
    Text,
    /// sacreBLEU 2.x's own text line: `BLEU|nrefs:1|...|version:2.6.0 = 34.45 68.3/...`.
    Sacrebleu,
    /// sacreBLEU's JSON object (score rounded to the width), plus the exact score
    /// and, for BLEU, its statistics.
    Json,
    /// multi-bleu.perl / fairseq: `BLEU = 34.45, 68.3/42.5/28.6/19.6 (BP=1.000, ratio=1.012, hyp_len=65, ref_len=64)`.
    /// BLEU only.
    MultiBleu,
}

impl OutputFormat {
    /// Every format, as `--format` names them.
    pub const NAMES: [&'static str; 4] = ["text", "sacrebleu", "json", "multi-bleu"];

    /// The `--format` name.
    pub fn name(self) -> &'static str {
        match self {
            OutputFormat::Text => "text",
            OutputFormat::Sacrebleu => "sacrebleu",
            OutputFormat::Json => "json",
            OutputFormat::MultiBleu => "multi-bleu",
        }
    }
}

impl FromStr for OutputFormat {
    type Err = EvalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(OutputFormat::Text),
            "sacrebleu" => Ok(OutputFormat::Sacrebleu),
            "json" => Ok(OutputFormat::Json),
            "multi-bleu" => Ok(OutputFormat::MultiBleu),
            other => Err(EvalError::InvalidOption {
                name: "format",
                message: format!(
                    "unknown format {other:?}; known: {}",
                    Self::NAMES.join(", ")
                ),
            }),
        }
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How to render: format, decimals of the score, and whether to print the score alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// Output format.
    pub format: OutputFormat,
    /// Decimals of the main score (sacreBLEU's `--width`).
    pub width: usize,
    /// Print only the score (sacreBLEU's `-b`); ignored for JSON.
    pub score_only: bool,
    /// One compact JSON object per line instead of a pretty one (for per-sentence output).
    pub json_lines: bool,
}

impl Default for Style {
    fn default() -> Self {
        Style {
            format: OutputFormat::Text,
            width: 2,
            score_only: false,
            json_lines: false,
        }
    }
}

/// sacreBLEU's "verbose" BLEU part: `68.3/42.5/28.6/19.6 (BP = 1.000 ratio = 1.012 hyp_len = 65 ref_len = 64)`.
pub fn bleu_verbose(s: &BleuScore) -> String {
    format!(
        "{} (BP = {:.3} ratio = {:.3} hyp_len = {} ref_len = {})",
        precisions_str(s),
        s.bp,
        s.ratio,
        s.sys_len,
        s.ref_len
    )
}

fn precisions_str(s: &BleuScore) -> String {
    s.precisions
        .iter()
        .map(|p| format!("{p:.1}"))
        .collect::<Vec<_>>()
        .join("/")
}

fn signature_json(obj: &mut Map<String, Value>, fields: Vec<(&'static str, String)>) {
    for (k, v) in fields {
        obj.insert(k.to_owned(), Value::String(v));
    }
}

/// Parses a rounded score back the way sacreBLEU's JSON does (`float(f"{x:.2f}")`).
fn rounded(score: f64, width: usize) -> Value {
    format!("{score:.width$}")
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

fn render_json(obj: Map<String, Value>, style: Style) -> String {
    let v = Value::Object(obj);
    if style.json_lines {
        v.to_string()
    } else {
        // Serializing a Value built from strings and finite numbers cannot fail.
        serde_json::to_string_pretty(&v).unwrap_or_else(|_| v.to_string())
    }
}

/// Renders a BLEU score.
pub fn format_bleu(s: &BleuScore, style: Style) -> String {
    let w = style.width;
    let score = format!("{:.w$}", s.score);
    if style.score_only && style.format != OutputFormat::Json {
        return score;
    }
    match style.format {
        OutputFormat::Text => format!("BLEU = {score} {} {}", bleu_verbose(s), s.signature),
        OutputFormat::Sacrebleu => format!("BLEU|{} = {score} {}", s.signature, bleu_verbose(s)),
        OutputFormat::MultiBleu => format!(
            "BLEU = {score}, {} (BP={:.3}, ratio={:.3}, hyp_len={}, ref_len={})",
            precisions_str(s),
            s.bp,
            s.ratio,
            s.sys_len,
            s.ref_len
        ),
        OutputFormat::Json => {
            let mut obj = Map::new();
            obj.insert("name".into(), json!("BLEU"));
            obj.insert("score".into(), rounded(s.score, w));
            obj.insert("signature".into(), json!(s.signature.to_string()));
            obj.insert("verbose_score".into(), json!(bleu_verbose(s)));
            signature_json(&mut obj, s.signature.fields());
            obj.insert("score_exact".into(), json!(s.score));
            obj.insert("precisions".into(), json!(s.precisions));
            obj.insert("counts".into(), json!(s.counts));
            obj.insert("totals".into(), json!(s.totals));
            obj.insert("bp".into(), json!(s.bp));
            obj.insert("ratio".into(), json!(s.ratio));
            obj.insert("hyp_len".into(), json!(s.sys_len));
            obj.insert("ref_len".into(), json!(s.ref_len));
            render_json(obj, style)
        }
    }
}

/// Rejects formats that have no chrF form (multi-bleu).
pub fn check_chrf_format(format: OutputFormat) -> Result<(), EvalError> {
    if format == OutputFormat::MultiBleu {
        return Err(EvalError::InvalidOption {
            name: "format",
            message: "multi-bleu is a BLEU format; use text, sacrebleu or json for chrF".to_owned(),
        });
    }
    Ok(())
}

/// Renders a chrF score; [`OutputFormat::MultiBleu`] has no chrF form and is an error.
pub fn format_chrf(s: &ChrfScore, style: Style) -> Result<String, EvalError> {
    let w = style.width;
    let score = format!("{:.w$}", s.score);
    check_chrf_format(style.format)?;
    if style.score_only && style.format != OutputFormat::Json {
        return Ok(score);
    }
    Ok(match style.format {
        OutputFormat::Text => format!("{} = {score} {}", s.name, s.signature),
        OutputFormat::Sacrebleu => format!("{}|{} = {score}", s.name, s.signature),
        OutputFormat::Json | OutputFormat::MultiBleu => {
            let mut obj = Map::new();
            obj.insert("name".into(), json!(s.name));
            obj.insert("score".into(), rounded(s.score, w));
            obj.insert("signature".into(), json!(s.signature.to_string()));
            signature_json(&mut obj, s.signature.fields());
            obj.insert("score_exact".into(), json!(s.score));
            render_json(obj, style)
        }
    })
}
