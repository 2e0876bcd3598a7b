//! The real network (`model::Seq2Seq`) as a [`TrainableModel`], saving `model::bundle` bundles.

use std::path::{Path, PathBuf};

use tch::{nn, Device, Tensor};

use model::bundle::{self, BundleConfig, BundleContents, BundleMetadata, WeightsDtype};
use model::search::{self, MaxLength};
use model::{ModelConfig, Seq2Seq};

use crate::split_step::{teacher_forced_loss, SplitStep};
use crate::trainable::{BundleInfo, DeviceBatch, DynError, TrainableModel};
use model::loss::LossOutput;

/// A `Seq2Seq` with its variables and what its bundles hold besides weights.
pub struct NmtModel {
    vars: nn::VarStore,
    net: Seq2Seq,
    config: BundleConfig,
    /// Vocabulary files copied into every bundle: (name in the bundle, file).
    vocab_files: Vec<(String, PathBuf)>,
    /// Recorded in `metadata.json`.
    data_fingerprint: Option<String>,
    /// Recorded in `metadata.json`: the training data and domain, in words.
    description: Option<String>,
    /// Recorded in `metadata.json` as `parent`: the bundle a fine-tuning run started from.
    parent: Option<crate::init_from::Parent>,
    /// Replicas for the training step's worker threads, made at the first step (their
    /// weights are views of `vars`, so loading weights in place keeps them current).
    parallel: std::sync::Mutex<Option<SplitStep>>,
}

impl NmtModel {
    /// A randomly initialised network on `device` (initialisation draws from libtorch's
    /// generator: seed it first for a reproducible start).
    pub fn new(
        model: ModelConfig,
        (src_lang, tgt_lang): (&str, &str),
        vocab_files: Vec<(String, PathBuf)>,
        data_fingerprint: Option<String>,
        device: Device,
    ) -> Result<Self, model::ModelError> {
        let vars = nn::VarStore::new(device);
        let net = Seq2Seq::new(&vars.root(), &model)?;
        let (src_vocab, tgt_vocab) = match vocab_files.as_slice() {
            [joint] => (joint.0.clone(), joint.0.clone()),
            [src, tgt, ..] => (src.0.clone(), tgt.0.clone()),
            [] => (String::new(), String::new()),
        };
        let config = BundleConfig {
            format_version: bundle::FORMAT_VERSION,
            src_lang: src_lang.into(),
            tgt_lang: tgt_lang.into(),
            src_vocab,
            tgt_vocab,
            model,
        };
        Ok(Self {
            vars,
            net,
            config,
            vocab_files,
            data_fingerprint,
            description: None,
            parent: None,
            parallel: std::sync::Mutex::new(None),
        })
    }

    /// Records `description` (the training data and its domain) in every bundle.
    pub fn with_description(mut self, description: Option<String>) -> Self {
        self.description = description;
        self
    }

    /// Records `parent` (the bundle a fine-tuning run started from) in every bundle.
    pub fn with_parent(mut self, parent: Option<crate::init_from::Parent>) -> Self {
        self.parent = parent;
        self
    }

    /// The network.
    pub fn net(&self) -> &Seq2Seq {
        &self.net
    }

    /// Number of trainable parameters.
    pub fn num_parameters(&self) -> i64 {
        self.vars
            .trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum()
    }
}

impl TrainableModel for NmtModel {
    fn var_store(&self) -> &nn::VarStore {
        &self.vars
    }

    fn forward(
        &self,
        src: &Tensor,
        src_lengths: &Tensor,
        tgt_in: &Tensor,
        train: bool,
    ) -> Result<Tensor, DynError> {
        self.net.check_source(src, src_lengths)?;
        Ok(self
            .net
            .forward(src, src_lengths, tgt_in, &self.net.context(train)))
    }

    /// The output projection fused with the loss: the `[N, vocab]` logits are never kept
    /// for autograd (`model::loss::projected_label_smoothed_nll`).
    fn gold_loss(
        &self,
        batch: &DeviceBatch,
        train: bool,
        epsilon: f64,
    ) -> Result<LossOutput, DynError> {
        Ok(teacher_forced_loss(&self.net, batch, epsilon, train)?)
    }

    /// On a CPU, one worker thread per intra-op thread, each on a slice of the rows
    /// (`crate::split_step`); on a GPU, one.
    fn backward_gold_loss(
        &self,
        batch: &DeviceBatch,
        epsilon: f64,
        scale: f64,
        seed: u64,
    ) -> Result<LossOutput, DynError> {
        let workers = if self.vars.device() == Device::Cpu {
            tch::get_num_threads().max(1) as usize
        } else {
            1
        };
        let mut parallel = self
            .parallel
            .lock()
            .map_err(|_| "a training worker panicked earlier")?;
        if parallel.as_ref().is_none_or(|p| p.workers() != workers) {
            *parallel = Some(SplitStep::new(&self.vars, &self.config.model, workers)?);
        }
        let parallel = parallel.as_ref().expect("set just above");
        Ok(parallel.backward(&self.net, &self.vars, batch, epsilon, scale, seed)?)
    }

    fn greedy(
        &self,
        src: &Tensor,
        src_lengths: &Tensor,
        a: f64,
        b: i64,
    ) -> Result<Vec<Vec<i64>>, DynError> {
        self.net.check_source(src, src_lengths)?;
        let hyps = search::greedy(&self.net, src, src_lengths, MaxLength { a, b }, false)?;
        Ok(hyps
            .into_iter()
            .map(|h| h.tokens.into_iter().map(i64::from).collect())
            .collect())
    }

    fn save_bundle(&self, dir: &Path, info: &BundleInfo) -> Result<(), DynError> {
        let mut metadata = BundleMetadata {
            format_version: bundle::FORMAT_VERSION,
            step: info.step,
            epoch: info.epoch,
            validation: info.validation.clone(),
            data_fingerprint: self.data_fingerprint.clone(),
            description: self.description.clone(),
            ..Default::default()
        };
        if let Some(parent) = &self.parent {
            metadata
                .extra
                .insert("parent".into(), serde_json::to_value(parent)?);
        }
        // The checkpoint writer makes the whole checkpoint atomic, so the plain writer suffices.
        bundle::write_bundle_files(
            dir,
            &BundleContents {
                config: &self.config,
                metadata: &metadata,
                vars: &self.vars,
                vocab_files: &self.vocab_files,
                dtype: WeightsDtype::Float32,
            },
        )?;
        Ok(())
    }

    fn load_weights(&mut self, dir: &Path) -> Result<(), DynError> {
        bundle::load_weights(&mut self.vars, &dir.join(bundle::WEIGHTS_FILE))?;
        Ok(())
    }
}
