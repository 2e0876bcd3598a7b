//! Request and response bodies of every route; the OpenAPI schema is
//! generated from these types.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use analysis::inspect::{
    Direction, GateView, LayerGates, NeuronRequest, NeuronValues, NeuronView, Side,
};

pub use crate::detect::DetectedLanguage;
use crate::registry::ModelInfo;

/// `POST /v1/translate` request. Give `text` or `texts`, not both.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TranslateRequest {
    /// One text to translate.
    #[schema(example = "Ein Mann fährt Fahrrad.")]
    pub text: Option<String>,
    /// Several texts, translated independently and answered in order.
    pub texts: Option<Vec<String>>,
    /// Source language code; with `target`, chooses the model.
    #[schema(example = "de")]
    pub source: Option<String>,
    /// Target language code.
    #[schema(example = "en")]
    pub target: Option<String>,
    /// Model name (bundle directory name); overrides the language choice.
    pub model: Option<String>,
    /// Beam size (1 = greedy-like); default from the server, at most `--max-beam`.
    #[schema(minimum = 1)]
    pub beam_size: Option<usize>,
    /// Hypotheses per text (the best plus `n_best - 1` alternatives); at most `beam_size`.
    #[schema(minimum = 1)]
    pub n_best: Option<usize>,
    /// Most output tokens per text; default `1.5 × source tokens + 10`.
    #[schema(minimum = 1)]
    pub max_length: Option<usize>,
    /// Include log-probability scores.
    #[serde(default)]
    pub return_scores: bool,
    /// Include attention weights with the source and target pieces.
    #[serde(default)]
    pub return_attention: bool,
    /// Include, per translation, each layer's mean input/forget/output gate (a GRU's
    /// reset/update gate) per token, for the encoder over the source pieces and the decoder
    /// over the pieces it reads (`<s>`, then the translation).
    #[serde(default)]
    pub return_gates: bool,
    /// Include chosen units' `h` values per token of one layer (at most 64 listed and 64
    /// most active).
    pub return_neurons: Option<NeuronRequest>,
}

/// Another hypothesis of the n-best list.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlternativeOut {
    pub text: String,
    /// The score the n-best list is sorted by (with `return_scores`): see `TranslationOut`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// Log-probability under the model (with `return_scores`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_prob: Option<f64>,
}

/// The translation of one text.
#[derive(Debug, Serialize, ToSchema)]
pub struct TranslationOut {
    pub text: String,
    /// The score the n-best list is sorted by (with `return_scores`): the log-probability
    /// divided by the GNMT length penalty `((5 + length) / 6)^0.6` (length in tokens, end of
    /// sentence included), so longer outputs are not ranked down for their length alone;
    /// with `beam_size` 1 the log-probability itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// Log-probability of the output under the model (with `return_scores`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_prob: Option<f64>,
    /// The rest of the n-best list, best first (when `n_best` > 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alternatives: Option<Vec<AlternativeOut>>,
    /// The source was cut to the server's `--max-source-tokens`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// Source subword pieces, final `</s>` included (with `return_attention`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_tokens: Option<Vec<String>>,
    /// Target subword pieces (with `return_attention`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_tokens: Option<Vec<String>>,
    /// `[target_tokens][source_tokens]` attention weights (with `return_attention`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attention: Option<Vec<Vec<f32>>>,
    /// Mean gate values per token and layer (with `return_gates`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gates: Option<GateView>,
    /// The units asked for by `return_neurons`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub neurons: Option<NeuronView>,
}

/// `POST /v1/translate` answer: one translation per input text, in order.
#[derive(Debug, Serialize, ToSchema)]
pub struct TranslateResponse {
    pub translations: Vec<TranslationOut>,
    /// Name of the model used.
    pub model: String,
    /// Server-side time of the request (queueing included), in milliseconds.
    pub timing_ms: f64,
}

/// `GET /v1/models` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelsResponse {
    pub models: Vec<ModelInfo>,
}

/// One string or a list of strings.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// LibreTranslate `POST /translate` request (JSON, or form-urlencoded with the same fields).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct LibreRequest {
    /// Text, or list of texts, to translate.
    pub q: Option<OneOrMany>,
    /// Source language code, or `auto`: each text's language is detected among
    /// the sources of the models that translate into `target`, and `target` itself
    /// (a text already in it comes back unchanged).
    #[schema(example = "de")]
    pub source: Option<String>,
    /// Target language code.
    #[schema(example = "en")]
    pub target: Option<String>,
    /// `text` (default) or `html`: translates the text between tags, keeps the tags.
    #[schema(example = "text")]
    pub format: Option<String>,
    /// Number of alternative translations to add.
    pub alternatives: Option<usize>,
    /// API key, when the server requires one.
    pub api_key: Option<String>,
}

/// LibreTranslate `POST /detect` request (JSON, or a form with the same fields).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct DetectRequest {
    /// Text whose language to detect (a list is detected as one text).
    #[schema(example = "Ein Mann fährt Fahrrad.")]
    pub q: Option<OneOrMany>,
    /// API key, when the server requires one.
    pub api_key: Option<String>,
}

/// `detectedLanguage` for a single text or for a list.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum DetectedOut {
    One(DetectedLanguage),
    Many(Vec<DetectedLanguage>),
}

/// `alternatives` for a single text or for a list.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum AlternativesOut {
    One(Vec<String>),
    Many(Vec<Vec<String>>),
}

/// Written by hand where the derive would say `oneOf` [strings, lists of strings] and
/// nothing more: an empty list, a single text with no alternative (one already in the
/// target language), would then match both shapes, which `oneOf` forbids. A list's
/// alternatives are never empty (`q` may not be), and the schema says so.
impl utoipa::PartialSchema for AlternativesOut {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
        let strings = || ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::String));
        OneOfBuilder::new()
            .item(strings())
            .item(ArrayBuilder::new().items(strings()).min_items(Some(1)))
            .into()
    }
}

impl utoipa::ToSchema for AlternativesOut {}

/// LibreTranslate `POST /translate` answer: shapes follow `q` (string → string, list → list).
#[derive(Debug, Serialize, ToSchema)]
pub struct LibreResponse {
    #[serde(rename = "translatedText")]
    pub translated_text: OneOrMany,
    /// Present when `alternatives` > 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alternatives: Option<AlternativesOut>,
    /// Present when `source` was `auto`: one per text for a list.
    #[serde(rename = "detectedLanguage", skip_serializing_if = "Option::is_none")]
    pub detected_language: Option<DetectedOut>,
}

/// A language as LibreTranslate's web page shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct FrontendLanguage {
    #[schema(example = "auto")]
    pub code: String,
    #[schema(example = "Auto Detect")]
    pub name: String,
}

/// The languages LibreTranslate's web page starts with.
#[derive(Debug, Serialize, ToSchema)]
pub struct FrontendLanguages {
    pub source: FrontendLanguage,
    pub target: FrontendLanguage,
}

/// `GET /frontend/settings` answer: what LibreTranslate's web page reads.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FrontendSettings {
    /// Most characters in one text (`--max-chars`).
    pub char_limit: usize,
    /// Milliseconds the web page waits after typing before it translates.
    pub frontend_timeout: u64,
    /// Whether API keys are in use (`--api-key`, `--api-key-file`).
    pub api_keys: bool,
    /// Whether a request without a key is refused.
    pub key_required: bool,
    /// Whether `/suggest` takes corrections (never: this server has no such route).
    pub suggestions: bool,
    /// Whether `/translate_file` is on (`--disable-files-translation` turns it off).
    pub files_translation: bool,
    /// File extensions `/translate_file` accepts, with the dot.
    #[schema(example = json!([".txt", ".html", ".htm"]))]
    pub supported_files_format: Vec<String>,
    pub language: FrontendLanguages,
}

/// An uploaded file: a multipart part with a file name.
#[derive(Debug)]
pub struct Upload {
    /// The name the client gave (its extension tells the format).
    pub filename: String,
    pub data: actix_web::web::Bytes,
}

/// LibreTranslate `POST /translate_file` request (multipart/form-data).
#[derive(Debug, Default, ToSchema)]
pub struct TranslateFileForm {
    /// The file: `.txt` (each non-blank line is translated) or `.html`/`.htm`
    /// (text nodes translated, markup kept), UTF-8.
    #[schema(value_type = String, format = Binary)]
    pub file: Option<Upload>,
    /// Source language code, or `auto` (detected from the whole file; a file already in
    /// the target language comes back unchanged).
    #[schema(example = "de")]
    pub source: Option<String>,
    /// Target language code.
    #[schema(example = "en")]
    pub target: Option<String>,
    /// API key, when the server requires one.
    pub api_key: Option<String>,
}

/// LibreTranslate `POST /translate_file` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct TranslateFileResponse {
    /// Where to download the translated file (`GET /download_file/<name>`).
    #[serde(rename = "translatedFileUrl")]
    #[schema(
        example = "http://127.0.0.1:8080/download_file/0123456789abcdef0123456789abcdef.letter.txt"
    )]
    pub translated_file_url: String,
}

/// `GET /health` and `GET /ready` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusResponse {
    /// `ok`, `ready`, `saturated`, `loading` or `stopped`.
    pub status: String,
    /// Requests waiting for or in the model (`/ready` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_depth: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_capacity: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub models: Option<usize>,
}
