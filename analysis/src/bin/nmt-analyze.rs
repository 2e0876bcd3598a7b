//! `nmt-analyze`: look inside a trained model: gate histograms, per-token gates, neurons and
//! gradient flow, as figures (PNG and SVG), CSV and JSON.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use analysis::corpus::{batches, Batch, Inputs, Sentence};
use analysis::gradients::GradientFlow;
use analysis::histogram::{GateHistograms, Histogram, SummaryRecord, BINS};
use analysis::neurons::{neuron_trace, Neuron, NeuronSearch, Property};
use analysis::plot::{self, HistogramPanel, Line, LinePanel, Scale, StripRow};
use analysis::record::{self, site_label, trace_batch, GateName, Keep};
use analysis::tokens::{token_gates, TokenGates, TokenRanking};
use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use model::device::DeviceChoice;
use model::gates::GateSite;
use model::translate::{translate, TranslateOptions};
use model::Bundle;
use serde::Serialize;

/// Look inside a trained translation model: how open its LSTM gates are (histograms),
/// which tokens open or close them, what single neurons track, and how gradients flow
/// through the encoder. Every command writes figures (PNG and SVG) and data (CSV, JSON)
/// into --out.
#[derive(Parser, Debug)]
#[command(name = "nmt-analyze", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Gate histograms over a teacher-forced pass (bins of 0.05 on [0, 1]), one figure per
    /// layer and direction with a panel per gate; histograms.csv and summary.json (the
    /// fractions below 0.1, between, and at or above 0.9).
    Gates(GatesArgs),
    /// Per-token mean gate values (coloured strips under each sentence) and, over the
    /// corpus, the tokens ranked by them. Without --tgt, the model's own translations
    /// (beam 5) are the targets.
    Tokens(TokensArgs),
    /// Neuron traces (h, c and gates of one unit, tokens coloured from -1 red to +1 blue)
    /// and a search for the encoder units that follow simple token properties.
    Neurons(NeuronsArgs),
    /// Gradient flow: the mean norm of dL/dh_t of every encoder layer and direction
    /// against the steps before the direction's end, per bundle.
    Gradients(GradientsArgs),
}

#[derive(Args, Debug)]
struct Common {
    /// Model bundle directory.
    #[arg(long, default_value = "checkpoints/multi30k-de-en", env = "NMT_MODEL")]
    model: PathBuf,
    /// Source sentences, one per line (UTF-8), in the bundle's source language.
    #[arg(long)]
    src: PathBuf,
    /// Folder for the figures and data (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: DeviceChoice,
    /// Longer sentences are cut to this many subword tokens.
    #[arg(long, default_value_t = 100)]
    max_tokens: usize,
    /// Sentences per batch of the teacher-forced passes.
    #[arg(long, default_value_t = 64)]
    batch_sentences: usize,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args, Debug)]
struct GatesArgs {
    #[command(flatten)]
    common: Common,
    /// References (targets) parallel to --src, in the bundle's target language.
    #[arg(long)]
    tgt: PathBuf,
    /// Use the first N sentence pairs (the G2-LSTM paper used 10,000 training pairs).
    #[arg(long, default_value_t = 10_000)]
    sentences: usize,
    /// Further bundles, drawn beside --model (same languages), e.g. a baseline and a G2 model.
    #[arg(long, num_args = 1..)]
    compare: Vec<PathBuf>,
}

#[derive(Args, Debug)]
struct TokensArgs {
    #[command(flatten)]
    common: Common,
    /// Targets parallel to --src; without it the model's translations are used.
    #[arg(long)]
    tgt: Option<PathBuf>,
    /// Use the first N sentences.
    #[arg(long, default_value_t = 1000)]
    sentences: usize,
    /// Draw the strips of the first N sentences.
    #[arg(long, default_value_t = 5)]
    plot: usize,
    /// Tokens listed at each end of each ranking.
    #[arg(long, default_value_t = 20)]
    top: usize,
    /// Tokens seen fewer times are left out of the rankings.
    #[arg(long, default_value_t = 5)]
    min_count: u64,
}

#[derive(Args, Debug)]
struct NeuronsArgs {
    #[command(flatten)]
    common: Common,
    /// Search over the first N sentences.
    #[arg(long, default_value_t = 1000)]
    sentences: usize,
    /// Also draw these units, as SITE:INDEX (e.g. encoder-l1-fwd:17, decoder-l0:3).
    #[arg(long = "neuron")]
    neurons: Vec<String>,
    /// Units reported per property.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// The K most frequent source tokens become properties too.
    #[arg(long, default_value_t = 5)]
    frequent: usize,
    /// Sentences drawn per unit.
    #[arg(long, default_value_t = 3)]
    plot_sentences: usize,
}

#[derive(Args, Debug)]
struct GradientsArgs {
    #[command(flatten)]
    common: Common,
    /// References parallel to --src.
    #[arg(long)]
    tgt: PathBuf,
    /// Use the first N sentence pairs.
    #[arg(long, default_value_t = 500)]
    sentences: usize,
    /// Further bundles, drawn beside --model (e.g. LSTM, GRU and G2 side by side).
    #[arg(long, num_args = 1..)]
    compare: Vec<PathBuf>,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Gates(a) => gates(a),
        Command::Tokens(a) => tokens(a),
        Command::Neurons(a) => neurons(a),
        Command::Gradients(a) => gradients(a),
    }
}

fn load(dir: &Path, device: tch::Device) -> Result<Bundle> {
    Bundle::load(dir, device).with_context(|| {
        format!(
            "cannot load model bundle {} (pass --model DIR)",
            dir.display()
        )
    })
}

/// A bundle's name in figures and tables: its folder's name.
fn bundle_name(dir: &Path) -> String {
    dir.canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| dir.display().to_string())
}

fn progress(quiet: bool, len: usize, what: &str) -> Result<ProgressBar> {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(len as u64)
    };
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} [{{elapsed_precise}}] {{bar:40}} {{pos}}/{{len}} {what} ({{per_sec}}, eta {{eta}})"
        ))
        // A constant: an error here is a bug, shown rather than hidden behind a default.
        .context("the progress bar's template")?,
    );
    Ok(bar)
}

fn create_out(out: &Path) -> Result<()> {
    fs::create_dir_all(out)
        .with_context(|| format!("cannot create output folder {}", out.display()))
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).context("serialising results")?;
    fs::write(path, text + "\n").with_context(|| format!("cannot write {}", path.display()))
}

fn load_inputs(
    bundle: &Bundle,
    c: &Common,
    tgt: Option<&Path>,
    limit: usize,
) -> Result<Vec<Sentence>> {
    let inputs = Inputs {
        src: c.src.clone(),
        tgt: tgt.map(Path::to_path_buf),
        limit: Some(limit),
        max_tokens: c.max_tokens,
    };
    let (sentences, skipped) = inputs.load(bundle)?;
    if skipped > 0 {
        eprintln!("note: {skipped} empty source line(s) skipped");
    }
    Ok(sentences)
}

fn make_batches(bundle: &Bundle, c: &Common, sentences: &[Sentence]) -> Vec<Batch> {
    batches(
        sentences,
        c.batch_sentences,
        c.batch_sentences * 2 * c.max_tokens.min(64),
        bundle.vars.device(),
    )
}

/// Refuses a --compare bundle that translates another language pair.
fn check_same_languages(first: &Bundle, other: &Bundle) -> Result<()> {
    let (a, b) = (&first.config, &other.config);
    if (a.src_lang.as_str(), a.tgt_lang.as_str()) != (b.src_lang.as_str(), b.tgt_lang.as_str()) {
        bail!(
            "{} translates {}→{} but {} translates {}→{}: compared bundles must share their languages",
            other.dir.display(),
            b.src_lang,
            b.tgt_lang,
            first.dir.display(),
            a.src_lang,
            a.tgt_lang
        );
    }
    Ok(())
}

/// Runs `pass` over the batches of `--model` and then of each `--compare` bundle (same
/// languages), with a progress bar per bundle: `pass(index, bundle, batch)`. Returns each
/// bundle's name in figures and tables (its folder's name, or its path where two folders
/// share a name, as `runs/a/best/model` and `runs/b/best/model` do).
fn each_bundle(
    c: &Common,
    compare: &[PathBuf],
    tgt: &Path,
    limit: usize,
    mut pass: impl FnMut(usize, &Bundle, &Batch) -> Result<()>,
) -> Result<Vec<String>> {
    let dirs: Vec<&PathBuf> = std::iter::once(&c.model).chain(compare).collect();
    let short: Vec<String> = dirs.iter().map(|d| bundle_name(d)).collect();
    let names: Vec<String> = dirs
        .iter()
        .zip(&short)
        .map(|(d, n)| {
            if short.iter().filter(|m| *m == n).count() > 1 {
                d.display().to_string()
            } else {
                n.clone()
            }
        })
        .collect();
    let device = c.device.resolve()?;
    let first = load(&c.model, device)?;
    for (index, (dir, name)) in dirs.iter().zip(&names).enumerate() {
        let other = if index == 0 {
            None
        } else {
            Some(load(dir, device)?)
        };
        let bundle = other.as_ref().unwrap_or(&first);
        check_same_languages(&first, bundle)?;
        let sentences = load_inputs(bundle, c, Some(tgt), limit)?;
        let bar = progress(c.quiet, sentences.len(), &format!("pairs ({name})"))?;
        for batch in &make_batches(bundle, c, &sentences) {
            pass(index, bundle, batch)?;
            bar.inc(batch.rows.len() as u64);
        }
        bar.finish_and_clear();
        eprintln!("{name}: {} sentence pairs", sentences.len());
    }
    Ok(names)
}

/// [`each_bundle`] with one accumulator per bundle, made by `new` at the bundle's first batch
/// and given each of its batches by `add`. Per bundle, in order: its name, whether its
/// encoder is bidirectional, and its accumulator.
fn accumulate_per_bundle<T>(
    c: &Common,
    compare: &[PathBuf],
    tgt: &Path,
    limit: usize,
    new: impl Fn() -> T,
    mut add: impl FnMut(&mut T, &Bundle, &Batch) -> Result<()>,
) -> Result<Vec<(String, bool, T)>> {
    let mut per_bundle: Vec<(bool, T)> = Vec::new();
    let names = each_bundle(c, compare, tgt, limit, |index, bundle, batch| {
        // Every bundle has a batch (inputs without a sentence are an error), so bundle
        // `index` first shows up right after bundle `index - 1`.
        if per_bundle.len() == index {
            per_bundle.push((bundle.model.config().bidirectional, new()));
        }
        add(&mut per_bundle[index].1, bundle, batch)
    })?;
    Ok(names
        .into_iter()
        .zip(per_bundle)
        .map(|(name, (bidirectional, acc))| (name, bidirectional, acc))
        .collect())
}

fn gates(a: GatesArgs) -> Result<()> {
    let c = &a.common;
    create_out(&c.out)?;
    let recorders = accumulate_per_bundle(
        c,
        &a.compare,
        &a.tgt,
        a.sentences,
        GateHistograms::new,
        |recorder, bundle, batch| {
            record::teacher_forced(&bundle.model, batch, recorder);
            Ok(())
        },
    )?;
    let mut models = Vec::new();
    for (name, bidirectional, recorder) in recorders {
        models.push((name, bidirectional, recorder.finish()?));
    }

    // histograms.csv and summary.json
    let csv_path = c.out.join("histograms.csv");
    let mut csv = csv::Writer::from_path(&csv_path)
        .with_context(|| format!("cannot write {}", csv_path.display()))?;
    csv.write_record([
        "model",
        "site",
        "side",
        "layer",
        "direction",
        "gate",
        "bin_low",
        "bin_high",
        "count",
        "fraction",
    ])?;
    let mut summary = Vec::new();
    let mut all_sites: BTreeMap<GateSite, String> = BTreeMap::new();
    for (name, bidirectional, counts) in &models {
        for (&(site, gate), h) in counts {
            all_sites.insert(site, site_label(site, *bidirectional));
            summary.push(SummaryRecord::new(name, site, gate, h));
            for (bin, (&n, f)) in h.bins.iter().zip(h.fractions()).enumerate() {
                csv.write_record([
                    name.clone(),
                    site_label(site, *bidirectional),
                    record::side_name(site.side).to_string(),
                    site.layer.to_string(),
                    site.direction.to_string(),
                    gate.name().to_string(),
                    format!("{:.2}", bin as f64 / BINS as f64),
                    format!("{:.2}", (bin + 1) as f64 / BINS as f64),
                    n.to_string(),
                    format!("{f:.6}"),
                ])?;
            }
        }
    }
    csv.flush()
        .with_context(|| format!("cannot write {}", csv_path.display()))?;
    write_json(&c.out.join("summary.json"), &summary)?;

    // One figure per site, a panel per gate, the models side by side.
    let mut written = Vec::new();
    for (site, label) in &all_sites {
        let gate_names: Vec<GateName> = {
            let mut g: Vec<GateName> = models
                .iter()
                .flat_map(|(_, _, counts)| {
                    counts.keys().filter(|(s, _)| s == site).map(|(_, g)| *g)
                })
                .collect();
            g.sort();
            g.dedup();
            g
        };
        let panels: Vec<HistogramPanel> = gate_names
            .iter()
            .map(|&gate| HistogramPanel {
                title: format!("{} gate", gate.name()),
                series: models
                    .iter()
                    .filter_map(|(name, _, counts)| {
                        counts
                            .get(&(*site, gate))
                            .map(|h: &Histogram| (name.clone(), h.fractions()))
                    })
                    .collect(),
            })
            .collect();
        written.extend(plot::histograms(
            &c.out.join(format!("gates-{label}")),
            &format!("gate values, {label}"),
            &panels,
        )?);
    }
    print_summary(&summary);
    eprintln!(
        "wrote {} figures, histograms.csv and summary.json to {}",
        written.len(),
        c.out.display()
    );
    Ok(())
}

fn print_summary(summary: &[SummaryRecord]) {
    println!(
        "{:<24} {:<8} {:>5} {:>3} {:<7} {:>10} {:>7} {:>7} {:>7}",
        "model", "side", "layer", "dir", "gate", "values", "<0.1", "mid", ">=0.9"
    );
    for r in summary {
        println!(
            "{:<24} {:<8} {:>5} {:>3} {:<7} {:>10} {:>6.1}% {:>6.1}% {:>6.1}%",
            r.model,
            r.side,
            r.layer,
            r.direction,
            r.gate.name(),
            r.count,
            100.0 * r.low,
            100.0 * r.mid,
            100.0 * r.high
        );
    }
}

fn tokens(a: TokensArgs) -> Result<()> {
    let c = &a.common;
    let device = c.device.resolve()?;
    create_out(&c.out)?;
    let bundle = load(&c.model, device)?;
    let bidirectional = bundle.model.config().bidirectional;
    let mut sentences = load_inputs(&bundle, c, a.tgt.as_deref(), a.sentences)?;
    if a.tgt.is_none() {
        // The model's own translations become the targets the decoder is traced on, as the
        // exact pieces the search chose (re-encoding the detokenized text may differ).
        let texts: Vec<String> = sentences
            .iter()
            .map(|s| {
                let ids: Vec<u32> = s.src[..s.src.len() - 1].iter().map(|&i| i as u32).collect();
                bundle.src_vocab.decode(&ids)
            })
            .collect::<std::result::Result<_, _>>()?;
        let bar = progress(c.quiet, texts.len(), "translated")?;
        let options = TranslateOptions {
            return_attention: true,
            ..TranslateOptions::default()
        };
        let translations = translate(&bundle, &texts, &options, |n| bar.inc(n as u64))?;
        bar.finish_and_clear();
        for (s, t) in sentences.iter_mut().zip(&translations) {
            *s =
                analysis::corpus::from_pieces(&bundle, s.line, &t.source_tokens, &t.target_tokens)?;
        }
    }
    let batches = make_batches(&bundle, c, &sentences);
    let bar = progress(c.quiet, sentences.len(), "sentences")?;
    let mut per_sentence: Vec<Option<TokenGates>> = vec![None; sentences.len()];
    let mut ranking = TokenRanking::default();
    let keep = Keep {
        gates: true,
        states: false,
    };
    for batch in &batches {
        let traces = trace_batch(&bundle.model, batch, keep);
        for (row, trace) in traces.iter().enumerate() {
            let i = batch.rows[row];
            let tg = token_gates(&sentences[i], trace, bidirectional)?;
            ranking.add(&tg);
            per_sentence[i] = Some(tg);
        }
        bar.inc(batch.rows.len() as u64);
    }
    bar.finish_and_clear();
    let per_sentence: Vec<TokenGates> = per_sentence.into_iter().flatten().collect();
    write_json(&c.out.join("tokens.json"), &per_sentence)?;
    let rankings = ranking.rankings(a.top, a.min_count, bidirectional);
    write_json(&c.out.join("ranking.json"), &rankings)?;
    let mut figures = 0;
    for tg in per_sentence.iter().take(a.plot) {
        let mut rows = Vec::new();
        for site in &tg.sites {
            let pieces = if site.side == "encoder" {
                &tg.source_tokens
            } else {
                &tg.target_tokens
            };
            for (gate, values) in &site.gates {
                if matches!(
                    gate,
                    GateName::Input | GateName::Forget | GateName::Reset | GateName::Update
                ) {
                    rows.push(StripRow {
                        label: format!("{} {}", site.site, gate.name()),
                        pieces: pieces.clone(),
                        values: values.clone(),
                    });
                }
            }
        }
        plot::strips(
            &c.out.join(format!("tokens-line{}", tg.line)),
            &format!(
                "mean gate value per token, line {} (0 white, 1 dark)",
                tg.line
            ),
            &rows,
            Scale::Unit,
        )?;
        figures += 1;
    }
    // The forget gate of the first decoder layer (the paper's Figure 4 layer), if present.
    for r in rankings
        .iter()
        .filter(|r| r.gate == GateName::Forget && r.site == "decoder-l0")
    {
        let list = |v: &[analysis::tokens::RankedToken]| {
            v.iter()
                .take(10)
                .map(|t| format!("{} ({:.2})", t.token, t.mean))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "decoder-l0 forget gate, lowest (forgets most): {}",
            list(&r.lowest)
        );
        println!(
            "decoder-l0 forget gate, highest (keeps most):  {}",
            list(&r.highest)
        );
    }
    eprintln!(
        "wrote {figures} strip figures, tokens.json ({} sentences) and ranking.json to {}",
        per_sentence.len(),
        c.out.display()
    );
    Ok(())
}

fn neurons(a: NeuronsArgs) -> Result<()> {
    let c = &a.common;
    let device = c.device.resolve()?;
    create_out(&c.out)?;
    let bundle = load(&c.model, device)?;
    let bidirectional = bundle.model.config().bidirectional;
    let chosen: Vec<Neuron> = a
        .neurons
        .iter()
        .map(|n| Neuron::parse(n, &bundle.model))
        .collect::<std::result::Result<_, _>>()?;
    let sentences = load_inputs(&bundle, c, None, a.sentences)?;
    let properties = Property::standard_set(&sentences, a.frequent);
    let mut search = NeuronSearch::new(properties);
    let batches = make_batches(&bundle, c, &sentences);
    let keep = Keep {
        gates: true,
        states: true,
    };
    let bar = progress(c.quiet, sentences.len(), "sentences")?;
    // The traces of the sentences to draw, kept whole.
    let mut drawn: BTreeMap<usize, record::SentenceTrace> = BTreeMap::new();
    for batch in &batches {
        let traces = trace_batch(&bundle.model, batch, keep);
        for (row, trace) in traces.into_iter().enumerate() {
            let i = batch.rows[row];
            search.add(&sentences[i], &trace);
            if i < a.plot_sentences {
                drawn.insert(i, trace);
            }
        }
        bar.inc(batch.rows.len() as u64);
    }
    bar.finish_and_clear();
    let results = search.finish(a.top, bidirectional)?;
    write_json(&c.out.join("neurons.json"), &results)?;
    let mut units: Vec<(Neuron, String)> = chosen
        .iter()
        .map(|n| (*n, format!("chosen unit {}", n.label(bidirectional))))
        .collect();
    for r in &results {
        println!("{}:", r.name);
        for s in &r.top {
            println!(
                "  {:<22} {}  r = {:+.3}",
                s.neuron,
                if s.state == analysis::neurons::State::H {
                    "h"
                } else {
                    "c"
                },
                s.r
            );
        }
        if let Some(best) = r.top.first() {
            units.push((
                best.unit,
                format!(
                    "{} (r = {:+.2}, {})",
                    r.name,
                    best.r,
                    if best.state == analysis::neurons::State::H {
                        "h"
                    } else {
                        "c"
                    }
                ),
            ));
        }
    }
    let mut figures = 0;
    for (unit, why) in &units {
        let label = unit.label(bidirectional).replace(':', "-");
        // Tokens coloured by h over the drawn sentences, and each sentence's full trace.
        let mut rows = Vec::new();
        for (&i, trace) in &drawn {
            let t = neuron_trace(*unit, &sentences[i], trace)?;
            for (name, values) in &t.rows {
                rows.push(StripRow {
                    label: format!("line {} {name}", sentences[i].line),
                    pieces: t.pieces.clone(),
                    values: values.clone(),
                });
            }
        }
        plot::strips(
            &c.out.join(format!("neuron-{label}")),
            &format!("unit {}: {why}; -1 red, +1 blue", unit.label(bidirectional)),
            &rows,
            Scale::Signed,
        )?;
        figures += 1;
    }
    eprintln!(
        "searched {} tokens of {} sentences; wrote neurons.json and {figures} figures to {}",
        search.tokens(),
        sentences.len(),
        c.out.display()
    );
    Ok(())
}

fn gradients(a: GradientsArgs) -> Result<()> {
    let c = &a.common;
    create_out(&c.out)?;
    let flows = accumulate_per_bundle(
        c,
        &a.compare,
        &a.tgt,
        a.sentences,
        GradientFlow::default,
        |flow, bundle, batch| Ok(flow.add_batch(&bundle.model, batch)?),
    )?;
    let csv_path = c.out.join("gradients.csv");
    let mut csv = csv::Writer::from_path(&csv_path)
        .with_context(|| format!("cannot write {}", csv_path.display()))?;
    csv.write_record(["model", "site", "distance", "mean_norm", "sentences"])?;
    // Per encoder site, one line per bundle.
    let mut panels: BTreeMap<String, Vec<Line>> = BTreeMap::new();
    for (name, bidirectional, flow) in &flows {
        let mut by_site: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for p in &flow.points(*bidirectional) {
            csv.write_record([
                name.clone(),
                p.site.clone(),
                p.distance.to_string(),
                format!("{:.6e}", p.mean_norm),
                p.sentences.to_string(),
            ])?;
            // Distances that few sentences reach make noisy tails; draw those with 20+.
            if p.sentences >= 20 {
                by_site
                    .entry(p.site.clone())
                    .or_default()
                    .push((p.distance as f64, p.mean_norm));
            }
        }
        for (site, points) in by_site {
            panels.entry(site).or_default().push(Line {
                name: name.clone(),
                points,
            });
        }
    }
    csv.flush()
        .with_context(|| format!("cannot write {}", csv_path.display()))?;
    plot::lines(
        &c.out.join("gradients"),
        "gradient flow: mean ‖∂L/∂h_t‖ of the encoder",
        (
            "steps before the direction's last step",
            "mean gradient norm",
        ),
        &panels
            .into_iter()
            .map(|(title, lines)| LinePanel { title, lines })
            .collect::<Vec<_>>(),
        true,
    )?;
    eprintln!(
        "wrote gradients.csv and gradients.png/svg to {}",
        c.out.display()
    );
    Ok(())
}
