//! Dynamic batching: one OS thread owns the loaded bundles (libtorch tensors
//! stay off the async workers) and turns concurrent requests into batched
//! `translate` calls.
//!
//! Handlers [`Batcher::submit`] a [`Job`] into a bounded queue and await its
//! oneshot answer. The thread takes the oldest job, then gathers more jobs for
//! the same model and decoding options until the batch holds
//! `max_batch_sentences` sentences or `max_batch_tokens` source tokens, or
//! `batch_wait_ms` have passed; jobs that cannot join wait, in order, for the
//! next round. A full queue refuses at once (503), so memory stays bounded.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use analysis::inspect::{Inspection, NeuronRequest};
use model::beam::BeamOptions;
use model::bundle::ComputeDtype;
use model::device::DeviceChoice;
use model::search::MaxLength;
use model::translate::{translate, TranslateOptions, Translation};
use model::Bundle;
use tokio::sync::oneshot;

use crate::config::BatchSettings;
use crate::errors::ApiError;
use crate::metrics::Metrics;
use crate::registry::{ModelInfo, ModelShape, Registry};

/// Decoding options; only jobs with equal options share a beam search call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DecodeOptions {
    pub beam_size: usize,
    pub n_best: usize,
    /// Absolute cap on output tokens; `None`: the model default `1.5·|src| + 10`.
    pub max_length: Option<usize>,
    pub return_attention: bool,
}

/// Why a job got no translation.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JobError {
    /// Its deadline passed while it waited.
    #[error("deadline passed before the job ran")]
    Deadline,
    /// Its text cannot be encoded by the model's vocabulary.
    #[error("text {index}: {message}")]
    BadText { index: usize, message: String },
    /// It asks to see a unit or layer the model does not have.
    #[error("{0}")]
    BadInspection(String),
    /// The model failed (libtorch error or panic); other batches are unaffected.
    #[error("translation failed: {0}")]
    Internal(String),
}

/// What a request wants to see inside the model besides its translations
/// (`return_gates`, `return_neurons`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InspectRequest {
    pub gates: bool,
    pub neurons: Option<NeuronRequest>,
}

/// A job's answer: one translation per text, and as many inspections when asked for.
#[derive(Debug, Default)]
pub struct JobOutput {
    pub translations: Vec<Translation>,
    /// Empty unless the job carried an [`InspectRequest`].
    pub inspections: Vec<Inspection>,
}

/// One request's texts, waiting for the model.
pub struct Job {
    /// Index into the registry.
    pub model: usize,
    pub texts: Vec<String>,
    pub options: DecodeOptions,
    /// Seen after the translation, for this job alone (its batch may hold others).
    pub inspect: Option<InspectRequest>,
    pub deadline: Instant,
    pub reply: oneshot::Sender<Result<JobOutput, JobError>>,
}

/// The handle the HTTP handlers share.
#[derive(Clone)]
pub struct Batcher {
    tx: SyncSender<Job>,
    depth: Arc<AtomicUsize>,
    alive: Arc<AtomicBool>,
    capacity: usize,
    metrics: Arc<Metrics>,
}

/// The batcher thread; join it after every [`Batcher`] is dropped.
pub struct BatcherThread(JoinHandle<()>);

impl BatcherThread {
    /// Waits until the thread has answered every queued job and exited.
    pub fn join(self) {
        let _ = self.0.join();
    }
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Device(#[from] model::device::DeviceError),
    #[error("loading model {dir}: {source}")]
    Load {
        dir: PathBuf,
        #[source]
        source: model::ModelError,
    },
    #[error("{0}")]
    Registry(String),
    #[error("could not start the batcher thread: {0}")]
    Thread(String),
}

/// A job taken off the queue, with its source-token count.
struct Taken {
    job: Job,
    tokens: usize,
}

impl Batcher {
    /// Starts the batcher thread, which loads every bundle in `dirs` on
    /// `device` and then serves jobs; returns once loading is done.
    pub fn start(
        settings: &BatchSettings,
        dirs: Vec<PathBuf>,
        device: DeviceChoice,
        metrics: Arc<Metrics>,
    ) -> Result<(Batcher, Registry, BatcherThread), StartError> {
        let (tx, rx) = mpsc::sync_channel::<Job>(settings.queue_capacity);
        let (init_tx, init_rx) = mpsc::channel::<Result<Registry, StartError>>();
        let depth = Arc::new(AtomicUsize::new(0));
        let alive = Arc::new(AtomicBool::new(true));
        let worker = Worker {
            settings: settings.clone(),
            depth: depth.clone(),
            alive: alive.clone(),
            metrics: metrics.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("nmt-batcher".into())
            .spawn(move || {
                // Intra-op threads are per calling thread in libtorch's
                // OpenMP pool, so set them here, where the model runs.
                tch::set_num_threads(worker.settings.torch_threads as i32);
                let loaded = load_all(&dirs, device, worker.settings.compute_dtype);
                let bundles = match loaded {
                    Ok((bundles, registry)) => {
                        let _ = init_tx.send(Ok(registry));
                        bundles
                    }
                    Err(e) => {
                        let _ = init_tx.send(Err(e));
                        worker.alive.store(false, Ordering::SeqCst);
                        return;
                    }
                };
                worker.run(&bundles, rx);
                worker.alive.store(false, Ordering::SeqCst);
            })
            .map_err(|e| StartError::Thread(e.to_string()))?;
        let registry = match init_rx.recv() {
            Ok(r) => r?,
            Err(_) => {
                let _ = thread.join();
                return Err(StartError::Thread(
                    "the batcher thread stopped while loading models".into(),
                ));
            }
        };
        Ok((
            Batcher {
                tx,
                depth,
                alive,
                capacity: settings.queue_capacity,
                metrics,
            },
            registry,
            BatcherThread(thread),
        ))
    }

    /// Queues a job, or refuses at once when the queue is full (503) or the
    /// batcher has stopped.
    pub fn submit(&self, job: Job) -> Result<(), ApiError> {
        let before = self.depth.fetch_add(1, Ordering::SeqCst);
        if before >= self.capacity {
            self.depth.fetch_sub(1, Ordering::SeqCst);
            self.metrics
                .rejected
                .with_label_values(&["queue_full"])
                .inc();
            return Err(ApiError::queue_full(self.capacity, 1));
        }
        self.metrics.queue_depth.set((before + 1) as i64);
        match self.tx.try_send(job) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.depth.fetch_sub(1, Ordering::SeqCst);
                match e {
                    TrySendError::Full(_) => Err(ApiError::queue_full(self.capacity, 1)),
                    TrySendError::Disconnected(_) => Err(ApiError::shutting_down()),
                }
            }
        }
    }

    /// True when a job submitted now would be refused for lack of room: handlers ask
    /// before they read a body, so a full queue costs as little as possible.
    pub fn is_full(&self) -> bool {
        self.depth() >= self.capacity
    }

    /// Jobs accepted and not yet answered.
    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::SeqCst)
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// True while the thread serves jobs.
    pub fn alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }
}

fn load_all(
    dirs: &[PathBuf],
    device: DeviceChoice,
    compute_dtype: ComputeDtype,
) -> Result<(Vec<Bundle>, Registry), StartError> {
    let device = device.resolve()?;
    let mut bundles = Vec::with_capacity(dirs.len());
    let mut infos = Vec::with_capacity(dirs.len());
    for dir in dirs {
        let mut bundle = Bundle::load(dir, device).map_err(|source| StartError::Load {
            dir: dir.clone(),
            source,
        })?;
        bundle.set_compute_dtype(compute_dtype);
        // `dir/.` or `dir/` still names the directory.
        let name = std::fs::canonicalize(dir)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| dir.display().to_string());
        infos.push(ModelInfo {
            name,
            source: bundle.config.src_lang.clone(),
            target: bundle.config.tgt_lang.clone(),
            description: bundle.metadata.description.clone(),
            step: bundle.metadata.step,
            validation: bundle.metadata.validation.clone(),
            dir: dir.clone(),
            shape: ModelShape {
                encoder_layers: bundle.config.model.encoder_layers.max(0) as usize,
                decoder_layers: bundle.config.model.decoder_layers.max(0) as usize,
                bidirectional: bundle.config.model.bidirectional,
                hidden_dim: bundle.config.model.hidden_dim.max(0) as usize,
            },
        });
        bundles.push(bundle);
    }
    let registry = Registry::new(infos).map_err(StartError::Registry)?;
    Ok((bundles, registry))
}

/// State of the batcher thread.
struct Worker {
    settings: BatchSettings,
    depth: Arc<AtomicUsize>,
    alive: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
}

impl Worker {
    fn answer(&self, job: Job, result: Result<JobOutput, JobError>) {
        // The receiver may be gone (deadline hit, client left): nothing to do then.
        let _ = job.reply.send(result);
        let left = self.depth.fetch_sub(1, Ordering::SeqCst).saturating_sub(1);
        self.metrics.queue_depth.set(left as i64);
    }

    /// Source tokens of a job as the model will see them, or the first text it cannot encode.
    fn count_tokens(&self, bundle: &Bundle, job: &Job) -> Result<usize, JobError> {
        let mut total = 0;
        for (index, text) in job.texts.iter().enumerate() {
            if text.trim().is_empty() {
                continue;
            }
            let ids = bundle
                .src_vocab
                .encode(text)
                .map_err(|e| JobError::BadText {
                    index,
                    message: e.to_string(),
                })?;
            total += ids.len().min(self.settings.max_source_tokens) + 1;
        }
        Ok(total)
    }

    /// Takes a job into play: answers it at once when expired or unencodable.
    fn admit(&self, bundles: &[Bundle], job: Job) -> Option<Taken> {
        if job.reply.is_closed() || Instant::now() >= job.deadline {
            self.answer(job, Err(JobError::Deadline));
            return None;
        }
        let Some(bundle) = bundles.get(job.model) else {
            self.answer(job, Err(JobError::Internal("no such model".into())));
            return None;
        };
        if let Some(neurons) = job.inspect.as_ref().and_then(|i| i.neurons.as_ref()) {
            if let Err(e) = neurons.site(bundle) {
                self.answer(job, Err(JobError::BadInspection(e.to_string())));
                return None;
            }
        }
        match self.count_tokens(bundle, &job) {
            Ok(tokens) => Some(Taken { job, tokens }),
            Err(e) => {
                self.answer(job, Err(e));
                None
            }
        }
    }

    fn run(&self, bundles: &[Bundle], rx: mpsc::Receiver<Job>) {
        let mut pending: VecDeque<Taken> = VecDeque::new();
        let wait = Duration::from_millis(self.settings.batch_wait_ms);
        loop {
            let first = match pending.pop_front() {
                Some(t) => t,
                None => match rx.recv() {
                    Ok(job) => match self.admit(bundles, job) {
                        Some(t) => t,
                        None => continue,
                    },
                    // Every sender is gone and nothing is pending: shut down.
                    Err(_) => break,
                },
            };
            let key = (first.job.model, first.job.options);
            let mut sentences = first.job.texts.len();
            let mut tokens = first.tokens;
            let mut batch = vec![first];
            let full = |s: usize, t: usize| {
                s >= self.settings.max_batch_sentences || t >= self.settings.max_batch_tokens
            };
            let fits = |s: usize, t: usize, taken: &Taken| {
                s + taken.job.texts.len() <= self.settings.max_batch_sentences
                    && t + taken.tokens <= self.settings.max_batch_tokens
            };
            // Jobs that waited through earlier rounds come first.
            let mut i = 0;
            let mut stop = false;
            while i < pending.len() && !full(sentences, tokens) {
                let t = &pending[i];
                if (t.job.model, t.job.options) == key {
                    if fits(sentences, tokens, t) {
                        if let Some(t) = pending.remove(i) {
                            sentences += t.job.texts.len();
                            tokens += t.tokens;
                            batch.push(t);
                        }
                        continue;
                    }
                    stop = true;
                    break;
                }
                i += 1;
            }
            let until = Instant::now() + wait;
            while !stop && !full(sentences, tokens) {
                let now = Instant::now();
                let next = if now < until {
                    match rx.recv_timeout(until - now) {
                        Ok(job) => job,
                        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                    }
                } else {
                    // Past the wait, still take whatever is already queued.
                    match rx.try_recv() {
                        Ok(job) => job,
                        Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                    }
                };
                let Some(t) = self.admit(bundles, next) else {
                    continue;
                };
                if (t.job.model, t.job.options) == key && fits(sentences, tokens, &t) {
                    sentences += t.job.texts.len();
                    tokens += t.tokens;
                    batch.push(t);
                } else {
                    let same = (t.job.model, t.job.options) == key;
                    pending.push_back(t);
                    if same {
                        break;
                    }
                }
            }
            self.run_batch(&bundles[key.0], key.1, batch);
        }
    }

    /// A teacher-forced pass over each text and its translation, recording what `inspect`
    /// asks for. Like translation, a failure costs this job only.
    fn inspect(
        &self,
        bundle: &Bundle,
        texts: &[String],
        translations: Vec<Translation>,
        inspect: &InspectRequest,
    ) -> Result<JobOutput, JobError> {
        // The pieces the search saw and chose (the job ran with attention on, which keeps
        // them); an empty text has none and is looked at as `<unk> </s>`.
        let pairs: Vec<(Vec<String>, Vec<String>)> = translations
            .iter()
            .map(|t| (t.source_tokens.clone(), t.target_tokens.clone()))
            .collect();
        debug_assert_eq!(pairs.len(), texts.len());
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            analysis::inspect::inspect(bundle, &pairs, inspect.gates, inspect.neurons.as_ref())
        }));
        match outcome {
            Ok(Ok(inspections)) => Ok(JobOutput {
                translations,
                inspections,
            }),
            Ok(Err(analysis::AnalysisError::NoSuchUnit(message))) => {
                Err(JobError::BadInspection(message))
            }
            Ok(Err(e)) => Err(JobError::Internal(e.to_string())),
            Err(_) => Err(JobError::Internal("the gate recording panicked".into())),
        }
    }

    fn run_batch(&self, bundle: &Bundle, options: DecodeOptions, batch: Vec<Taken>) {
        let now = Instant::now();
        let mut jobs = Vec::with_capacity(batch.len());
        let mut source_tokens = 0;
        for t in batch {
            if t.job.reply.is_closed() || now >= t.job.deadline {
                self.answer(t.job, Err(JobError::Deadline));
            } else {
                source_tokens += t.tokens;
                jobs.push(t.job);
            }
        }
        if jobs.is_empty() {
            return;
        }
        let texts: Vec<String> = jobs.iter().flat_map(|j| j.texts.iter().cloned()).collect();
        let opts = TranslateOptions {
            beam: BeamOptions {
                beam_size: options.beam_size,
                n_best: options.n_best,
                max_length: match options.max_length {
                    Some(n) => MaxLength {
                        a: 0.0,
                        b: n as i64,
                    },
                    None => MaxLength::default(),
                },
                ..BeamOptions::default()
            },
            max_tokens: self.settings.max_batch_tokens,
            max_sentences: self.settings.max_batch_sentences,
            max_source_tokens: self.settings.max_source_tokens,
            return_attention: options.return_attention,
            // The gathered requests are one batch (up to the token budget above), run with
            // every torch thread of this batcher.
            workers: 1,
            // Paragraphs go to the model sentence by sentence, their spacing and line
            // breaks kept (not with attention, whose matrix is one text's).
            split_sentences: true,
        };
        let started = Instant::now();
        // A libtorch failure must cost this batch only, never the thread.
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            translate(bundle, &texts, &opts, |_| {})
        }));
        let seconds = started.elapsed().as_secs_f64();
        let result = match outcome {
            Ok(Ok(v)) if v.len() == texts.len() => Ok(v),
            Ok(Ok(v)) => Err(JobError::Internal(format!(
                "the model returned {} translations for {} texts",
                v.len(),
                texts.len()
            ))),
            Ok(Err(e)) => Err(JobError::Internal(e.to_string())),
            Err(panic) => Err(JobError::Internal(
                panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "the model panicked".into()),
            )),
        };
        self.metrics.batch_sentences.observe(texts.len() as f64);
        self.metrics.batch_requests.observe(jobs.len() as f64);
        self.metrics.batch_seconds.observe(seconds);
        match result {
            Ok(translations) => {
                let target_tokens: usize = translations
                    .iter()
                    .map(|t| {
                        bundle
                            .tgt_vocab
                            .encode(&t.text)
                            .map(|ids| ids.len())
                            .unwrap_or(0)
                    })
                    .sum();
                self.metrics.sentences.inc_by(texts.len() as u64);
                self.metrics.source_tokens.inc_by(source_tokens as u64);
                self.metrics.target_tokens.inc_by(target_tokens as u64);
                if seconds > 0.0 {
                    self.metrics
                        .tokens_per_second
                        .set(target_tokens as f64 / seconds);
                }
                let mut rest = translations.into_iter();
                for job in jobs {
                    let mine: Vec<Translation> = rest.by_ref().take(job.texts.len()).collect();
                    let output = match &job.inspect {
                        None => Ok(JobOutput {
                            translations: mine,
                            inspections: Vec::new(),
                        }),
                        Some(inspect) => self.inspect(bundle, &job.texts, mine, inspect),
                    };
                    self.answer(job, output);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "batch failed");
                for job in jobs {
                    self.answer(job, Err(e.clone()));
                }
            }
        }
    }
}
