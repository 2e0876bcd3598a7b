//! Settings of `nmt-serve`: command-line flags, environment variables (for
//! containers) and an optional TOML file. A flag or variable beats the file,
//! the file beats the built-in default.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use clap::Parser;
use model::bundle::ComputeDtype;
use model::device::DeviceChoice;
use serde::Deserialize;

use crate::ratelimit::RateLimits;

/// Serve lstm-nmt model bundles over HTTP (JSON API, LibreTranslate-compatible
/// API, Prometheus metrics, OpenAPI schema and a web page).
///
/// Every flag can also be set by the environment variable shown, or by the
/// key of the same name (with `_` for `-`) in the `--config` TOML file.
#[derive(Parser, Debug, Default)]
#[command(name = "nmt-serve", version)]
pub struct Cli {
    /// Model bundle directory; repeat (or comma-separate in NMT_MODEL) to serve
    /// several. A model's name is its directory name. A request that names no
    /// model goes to the model of its language pair; with several of one pair,
    /// to the first given here (the others answer when named).
    #[arg(long = "model", env = "NMT_MODEL", value_delimiter = ',')]
    pub models: Vec<PathBuf>,
    /// TOML file with any of these settings.
    #[arg(long, env = "NMT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "NMT_ADDR")]
    pub addr: Option<String>,
    /// Where to compute: auto, cpu, cuda or cuda:N [default: auto].
    #[arg(long, env = "NMT_DEVICE")]
    pub device: Option<DeviceChoice>,
    /// Number type the models compute in: float32, or bfloat16 (faster on CPUs with AMX
    /// or AVX512-BF16 and on recent GPUs; a few outputs change) [default: float32].
    #[arg(long, env = "NMT_COMPUTE_DTYPE", value_enum)]
    pub compute_dtype: Option<ComputeDtype>,
    /// HTTP worker threads (they only parse, queue and answer) [default: 2].
    #[arg(long, env = "NMT_WORKERS")]
    pub workers: Option<usize>,
    /// libtorch intra-op threads for the model [default: all CPU cores].
    #[arg(long, env = "NMT_TORCH_THREADS")]
    pub torch_threads: Option<usize>,
    /// Requests that may wait for the model; when full, new ones get 503 with
    /// Retry-After [default: 256].
    #[arg(long, env = "NMT_QUEUE_CAPACITY")]
    pub queue_capacity: Option<usize>,
    /// Milliseconds a refusal that says "come back later" (503 on a full queue, 429 over a
    /// rate limit) is held before it is answered, so that clients retrying at once cannot
    /// take the CPU from the model; 0 answers at once [default: 500].
    #[arg(long, env = "NMT_REJECT_DELAY_MS")]
    pub reject_delay_ms: Option<u64>,
    /// Requests per minute one client may make to the translate and detect routes (a
    /// client is its API key when the server checks keys, else its IP address); over it:
    /// 429 with Retry-After. 0: no limit [default: 0].
    #[arg(long, env = "NMT_REQ_LIMIT")]
    pub req_limit: Option<u64>,
    /// Characters per minute one client may send to the translate and detect routes
    /// (files: their text); over it: 429 with Retry-After. 0: no limit [default: 0].
    #[arg(long, env = "NMT_CHAR_BUDGET")]
    pub char_budget: Option<u64>,
    /// Most sentences decoded in one batch; 1 turns dynamic batching off [default: 64].
    #[arg(long, env = "NMT_MAX_BATCH_SENTENCES")]
    pub max_batch_sentences: Option<usize>,
    /// Most source tokens (subwords, with EOS) gathered into one batch [default: 4096].
    #[arg(long, env = "NMT_MAX_BATCH_TOKENS")]
    pub max_batch_tokens: Option<usize>,
    /// How long the batcher waits for more requests after the first one, in ms [default: 5].
    #[arg(long, env = "NMT_BATCH_WAIT_MS")]
    pub batch_wait_ms: Option<u64>,
    /// Deadline of one translate request, queueing included, in ms; past it: 504 [default: 30000].
    #[arg(long, env = "NMT_REQUEST_TIMEOUT_MS")]
    pub request_timeout_ms: Option<u64>,
    /// Largest request body in bytes; larger: 413 [default: 1048576].
    #[arg(long, env = "NMT_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Most characters in one text [default: 5000].
    #[arg(long, env = "NMT_MAX_CHARS")]
    pub max_chars: Option<usize>,
    /// Most texts in one request [default: 64].
    #[arg(long, env = "NMT_MAX_TEXTS")]
    pub max_texts: Option<usize>,
    /// Largest beam a request may ask for [default: 10].
    #[arg(long, env = "NMT_MAX_BEAM")]
    pub max_beam: Option<usize>,
    /// Largest n-best list (alternatives + 1) a request may ask for [default: 5].
    #[arg(long, env = "NMT_MAX_N_BEST")]
    pub max_n_best: Option<usize>,
    /// Largest `max_length` (output tokens) a request may ask for [default: 512].
    #[arg(long, env = "NMT_MAX_OUTPUT_TOKENS")]
    pub max_output_tokens: Option<usize>,
    /// Beam size when a request names none [default: 5].
    #[arg(long, env = "NMT_BEAM_SIZE")]
    pub beam_size: Option<usize>,
    /// Longer sources are cut to this many subword tokens (flagged `truncated`) [default: 250].
    #[arg(long, env = "NMT_MAX_SOURCE_TOKENS")]
    pub max_source_tokens: Option<usize>,
    /// Accepted API key; repeat (or comma-separate in NMT_API_KEYS). With none
    /// (and no key file) the translate routes are open.
    #[arg(
        long = "api-key",
        env = "NMT_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_keys: Vec<String>,
    /// File with one accepted API key per line (blank lines and `#` comments ignored).
    #[arg(long, env = "NMT_API_KEY_FILE")]
    pub api_key_file: Option<PathBuf>,
    /// Origin allowed by CORS; repeat, or `*` for any. None: no CORS headers.
    #[arg(long = "cors-origin", env = "NMT_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// Seconds to let in-flight requests finish after SIGTERM/SIGINT [default: 30].
    #[arg(long, env = "NMT_SHUTDOWN_TIMEOUT_S")]
    pub shutdown_timeout_s: Option<u64>,
    /// Most texts (non-blank lines of a .txt, text nodes of an .html) in one file
    /// given to /translate_file; each is also held to --max-chars [default: 1000].
    #[arg(long, env = "NMT_MAX_FILE_TEXTS")]
    pub max_file_texts: Option<usize>,
    /// Seconds a translated file stays downloadable [default: 1800].
    #[arg(long, env = "NMT_FILE_TTL_S")]
    pub file_ttl_s: Option<u64>,
    /// Most translated files held (in memory) for download; when full, the
    /// oldest is dropped [default: 100].
    #[arg(long, env = "NMT_MAX_STORED_FILES")]
    pub max_stored_files: Option<usize>,
    /// Turn /translate_file and /download_file off (403 and 404). In the
    /// variable, 0, false, no, off or empty mean on; anything else off.
    #[arg(
        long,
        env = "NMT_DISABLE_FILES_TRANSLATION",
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    pub disable_files_translation: bool,
}

/// The `--config` TOML file: the same settings as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub models: Vec<PathBuf>,
    pub addr: Option<String>,
    pub device: Option<String>,
    pub compute_dtype: Option<String>,
    pub workers: Option<usize>,
    pub torch_threads: Option<usize>,
    pub queue_capacity: Option<usize>,
    pub reject_delay_ms: Option<u64>,
    pub req_limit: Option<u64>,
    pub char_budget: Option<u64>,
    pub max_batch_sentences: Option<usize>,
    pub max_batch_tokens: Option<usize>,
    pub batch_wait_ms: Option<u64>,
    pub request_timeout_ms: Option<u64>,
    pub max_body_bytes: Option<usize>,
    pub max_chars: Option<usize>,
    pub max_texts: Option<usize>,
    pub max_beam: Option<usize>,
    pub max_n_best: Option<usize>,
    pub max_output_tokens: Option<usize>,
    pub beam_size: Option<usize>,
    pub max_source_tokens: Option<usize>,
    #[serde(default)]
    pub api_keys: Vec<String>,
    pub api_key_file: Option<PathBuf>,
    #[serde(default)]
    pub cors_origins: Vec<String>,
    pub shutdown_timeout_s: Option<u64>,
    pub max_file_texts: Option<usize>,
    pub file_ttl_s: Option<u64>,
    pub max_stored_files: Option<usize>,
    pub disable_files_translation: Option<bool>,
}

/// Request limits, checked before anything is queued.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_chars: usize,
    pub max_texts: usize,
    pub max_beam: usize,
    pub max_n_best: usize,
    pub max_output_tokens: usize,
    /// Texts in one file of /translate_file.
    pub max_file_texts: usize,
}

/// File translation (`/translate_file`, `/download_file`).
#[derive(Clone, Debug)]
pub struct FileSettings {
    pub enabled: bool,
    /// Seconds a translated file is kept.
    pub ttl_s: u64,
    /// Most translated files kept.
    pub max_stored: usize,
}

/// Dynamic batching.
#[derive(Clone, Debug)]
pub struct BatchSettings {
    pub queue_capacity: usize,
    pub max_batch_sentences: usize,
    pub max_batch_tokens: usize,
    pub batch_wait_ms: u64,
    pub torch_threads: usize,
    pub max_source_tokens: usize,
    /// What the models compute in.
    pub compute_dtype: ComputeDtype,
}

/// Everything, resolved.
#[derive(Clone, Debug)]
pub struct Settings {
    pub models: Vec<PathBuf>,
    pub addr: String,
    pub device: DeviceChoice,
    pub workers: usize,
    pub request_timeout_ms: u64,
    pub default_beam: usize,
    pub limits: Limits,
    pub batch: BatchSettings,
    pub api_keys: Vec<String>,
    pub cors_origins: Vec<String>,
    pub shutdown_timeout_s: u64,
    pub files: FileSettings,
    /// Per-client limits (`--req-limit`, `--char-budget`).
    pub rate: RateLimits,
    /// How long a 503 (queue full) or 429 is held before it is answered.
    pub reject_delay_ms: u64,
}

/// A setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

fn read_file_config(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
        path: path.into(),
        message: e.to_string(),
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::File {
        path: path.into(),
        message: e.to_string(),
    })
}

fn read_key_file(path: &Path) -> Result<Vec<String>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
        path: path.into(),
        message: e.to_string(),
    })?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect())
}

impl Settings {
    /// Merges flags/environment (`cli`) over the `--config` file over the defaults.
    pub fn resolve(cli: Cli) -> Result<Self, ConfigError> {
        let file = match &cli.config {
            Some(path) => read_file_config(path)?,
            None => FileConfig::default(),
        };
        let models = if cli.models.is_empty() {
            file.models
        } else {
            cli.models
        };
        if models.is_empty() {
            return Err(ConfigError::Invalid(
                "no model: pass --model DIR (or set NMT_MODEL, or `models` in --config)".into(),
            ));
        }
        let device = match (cli.device, file.device) {
            (Some(d), _) => d,
            (None, Some(s)) => DeviceChoice::from_str(&s)
                .map_err(|e| ConfigError::Invalid(format!("config key device: {e}")))?,
            (None, None) => DeviceChoice::Auto,
        };
        let compute_dtype = match (cli.compute_dtype, file.compute_dtype) {
            (Some(d), _) => d,
            (None, Some(s)) => ComputeDtype::from_str(&s)
                .map_err(|e| ConfigError::Invalid(format!("config key compute_dtype: {e}")))?,
            (None, None) => ComputeDtype::Float32,
        };
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let mut api_keys = if cli.api_keys.is_empty() {
            file.api_keys
        } else {
            cli.api_keys
        };
        if let Some(path) = cli.api_key_file.or(file.api_key_file) {
            api_keys.extend(read_key_file(&path)?);
        }
        api_keys.retain(|k| !k.trim().is_empty());
        let cors_origins = if cli.cors_origins.is_empty() {
            file.cors_origins
        } else {
            cli.cors_origins
        };
        let pick = |a: Option<usize>, b: Option<usize>, d: usize| a.or(b).unwrap_or(d);
        let per_minute = |a: Option<u64>, b: Option<u64>| a.or(b).filter(|&n| n > 0);
        let settings = Settings {
            models,
            addr: cli
                .addr
                .or(file.addr)
                .unwrap_or_else(|| "127.0.0.1:8080".into()),
            device,
            workers: pick(cli.workers, file.workers, 2),
            request_timeout_ms: cli
                .request_timeout_ms
                .or(file.request_timeout_ms)
                .unwrap_or(30_000),
            default_beam: pick(cli.beam_size, file.beam_size, 5),
            limits: Limits {
                max_body_bytes: pick(cli.max_body_bytes, file.max_body_bytes, 1 << 20),
                max_chars: pick(cli.max_chars, file.max_chars, 5000),
                max_texts: pick(cli.max_texts, file.max_texts, 64),
                max_beam: pick(cli.max_beam, file.max_beam, 10),
                max_n_best: pick(cli.max_n_best, file.max_n_best, 5),
                max_output_tokens: pick(cli.max_output_tokens, file.max_output_tokens, 512),
                max_file_texts: pick(cli.max_file_texts, file.max_file_texts, 1000),
            },
            batch: BatchSettings {
                queue_capacity: pick(cli.queue_capacity, file.queue_capacity, 256),
                max_batch_sentences: pick(cli.max_batch_sentences, file.max_batch_sentences, 64),
                max_batch_tokens: pick(cli.max_batch_tokens, file.max_batch_tokens, 4096),
                batch_wait_ms: cli.batch_wait_ms.or(file.batch_wait_ms).unwrap_or(5),
                torch_threads: pick(cli.torch_threads, file.torch_threads, cores),
                max_source_tokens: pick(cli.max_source_tokens, file.max_source_tokens, 250),
                compute_dtype,
            },
            api_keys,
            cors_origins,
            shutdown_timeout_s: cli
                .shutdown_timeout_s
                .or(file.shutdown_timeout_s)
                .unwrap_or(30),
            files: FileSettings {
                // A flag can only turn files off; the file may turn them off too.
                enabled: !(cli.disable_files_translation
                    || file.disable_files_translation.unwrap_or(false)),
                ttl_s: cli.file_ttl_s.or(file.file_ttl_s).unwrap_or(1800),
                max_stored: pick(cli.max_stored_files, file.max_stored_files, 100),
            },
            rate: RateLimits {
                requests_per_minute: per_minute(cli.req_limit, file.req_limit),
                chars_per_minute: per_minute(cli.char_budget, file.char_budget),
            },
            reject_delay_ms: cli.reject_delay_ms.or(file.reject_delay_ms).unwrap_or(500),
        };
        settings.check()?;
        Ok(settings)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let positive = [
            ("workers", self.workers),
            ("torch-threads", self.batch.torch_threads),
            ("queue-capacity", self.batch.queue_capacity),
            ("max-batch-sentences", self.batch.max_batch_sentences),
            ("max-batch-tokens", self.batch.max_batch_tokens),
            ("max-body-bytes", self.limits.max_body_bytes),
            ("max-chars", self.limits.max_chars),
            ("max-texts", self.limits.max_texts),
            ("max-beam", self.limits.max_beam),
            ("max-n-best", self.limits.max_n_best),
            ("max-output-tokens", self.limits.max_output_tokens),
            ("beam-size", self.default_beam),
            ("max-source-tokens", self.batch.max_source_tokens),
            ("max-file-texts", self.limits.max_file_texts),
            ("max-stored-files", self.files.max_stored),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(ConfigError::Invalid(format!("--{name} must be at least 1")));
            }
        }
        if self.files.ttl_s == 0 {
            return Err(ConfigError::Invalid(
                "--file-ttl-s must be at least 1".into(),
            ));
        }
        if self.request_timeout_ms == 0 {
            return Err(ConfigError::Invalid(
                "--request-timeout-ms must be at least 1".into(),
            ));
        }
        if self.limits.max_n_best > self.limits.max_beam {
            return Err(ConfigError::Invalid(format!(
                "--max-n-best {} is above --max-beam {}",
                self.limits.max_n_best, self.limits.max_beam
            )));
        }
        if self.default_beam > self.limits.max_beam {
            return Err(ConfigError::Invalid(format!(
                "--beam-size {} is above --max-beam {}",
                self.default_beam, self.limits.max_beam
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serve.toml");
        std::fs::write(
            &path,
            "models = [\"a\"]\naddr = \"0.0.0.0:9\"\nmax_beam = 9\ndevice = \"cpu\"\n",
        )
        .unwrap();
        let cli = Cli::try_parse_from([
            "nmt-serve",
            "--config",
            path.to_str().unwrap(),
            "--max-beam",
            "7",
        ])
        .unwrap();
        let s = Settings::resolve(cli).unwrap();
        assert_eq!(s.models, vec![PathBuf::from("a")]);
        assert_eq!(s.addr, "0.0.0.0:9");
        assert_eq!(s.limits.max_beam, 7);
        assert_eq!(s.device, DeviceChoice::Cpu);
        assert_eq!(s.limits.max_chars, 5000);
        assert_eq!(s.batch.compute_dtype, ComputeDtype::Float32);
        assert!(s.files.enabled);
        assert_eq!(
            (s.limits.max_file_texts, s.files.ttl_s, s.files.max_stored),
            (1000, 1800, 100)
        );
    }

    #[test]
    fn file_settings_come_from_flags_or_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serve.toml");
        std::fs::write(
            &path,
            "models = [\"a\"]\ndisable_files_translation = true\nfile_ttl_s = 60\nmax_stored_files = 3\n",
        )
        .unwrap();
        let file = ["nmt-serve", "--config", path.to_str().unwrap()];
        let s = Settings::resolve(Cli::try_parse_from(file).unwrap()).unwrap();
        assert!(!s.files.enabled);
        assert_eq!((s.files.ttl_s, s.files.max_stored), (60, 3));
        let flags = [&file[..], &["--max-file-texts", "7", "--file-ttl-s", "5"]].concat();
        let s = Settings::resolve(Cli::try_parse_from(flags).unwrap()).unwrap();
        assert_eq!((s.limits.max_file_texts, s.files.ttl_s), (7, 5));
        let zero = ["nmt-serve", "--model", "m", "--file-ttl-s", "0"];
        let err = Settings::resolve(Cli::try_parse_from(zero).unwrap()).unwrap_err();
        assert!(err.to_string().contains("--file-ttl-s"), "{err}");
        let off = ["nmt-serve", "--model", "m", "--disable-files-translation"];
        assert!(
            !Settings::resolve(Cli::try_parse_from(off).unwrap())
                .unwrap()
                .files
                .enabled
        );
    }

    #[test]
    fn compute_dtype_comes_from_the_file_or_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serve.toml");
        std::fs::write(&path, "models = [\"a\"]\ncompute_dtype = \"bf16\"\n").unwrap();
        let file = ["nmt-serve", "--config", path.to_str().unwrap()];
        let s = Settings::resolve(Cli::try_parse_from(file).unwrap()).unwrap();
        assert_eq!(s.batch.compute_dtype, ComputeDtype::Bfloat16);
        let flag = [&file[..], &["--compute-dtype", "float32"]].concat();
        let s = Settings::resolve(Cli::try_parse_from(flag).unwrap()).unwrap();
        assert_eq!(s.batch.compute_dtype, ComputeDtype::Float32);
        std::fs::write(&path, "models = [\"a\"]\ncompute_dtype = \"fp8\"\n").unwrap();
        let err = Settings::resolve(Cli::try_parse_from(file).unwrap()).unwrap_err();
        assert!(err.to_string().contains("compute_dtype"), "{err}");
        assert!(Cli::try_parse_from(["nmt-serve", "--compute-dtype", "fp8"]).is_err());
    }

    #[test]
    fn bad_settings_are_named() {
        let cli = Cli::try_parse_from(["nmt-serve"]).unwrap();
        let err = Settings::resolve(Cli {
            models: vec![],
            ..cli
        })
        .unwrap_err();
        assert!(err.to_string().contains("--model"), "{err}");
        let cli =
            Cli::try_parse_from(["nmt-serve", "--model", "m", "--queue-capacity", "0"]).unwrap();
        let err = Settings::resolve(cli).unwrap_err();
        assert!(err.to_string().contains("--queue-capacity"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "modles = []\n").unwrap();
        let cli = Cli::try_parse_from(["nmt-serve", "--config", path.to_str().unwrap()]).unwrap();
        let err = Settings::resolve(cli).unwrap_err();
        assert!(
            err.to_string().contains("bad.toml") && err.to_string().contains("modles"),
            "{err}"
        );
    }
}
