//! The OpenAPI document of every route: generated from the handlers'
//! `#[utoipa::path]` attributes and the DTO types ([`ApiDoc`]), then completed at start-up
//! with what the handlers enforce at run time ([`document`]): the configured limits, the
//! served models and languages, and the rules between fields (`text` or `texts`, `n_best`
//! at most `beam_size`, a language pair some model serves). A request the document allows
//! is accepted, and one it forbids is refused with a 4xx; `serving/tests/schemathesis.rs`
//! fuzzes the running server against it to hold the two together.

use serde_json::{json, Map, Value};
use utoipa::OpenApi;

use crate::api;
use crate::config::Settings;
use crate::registry::{ModelInfo, Registry};

/// The derived part of `GET /openapi.json`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "nmt-serve",
        description = "lstm-nmt translation service: JSON API, LibreTranslate-compatible API, operations routes. Errors are always `{\"error\", \"code\"}`. Limits, models and languages in the request schemas are this server's own settings."
    ),
    paths(
        api::v1::translate,
        api::v1::models,
        api::libre::translate,
        api::libre::detect,
        api::libre::languages,
        api::libre::frontend_settings,
        api::files::translate_file,
        api::files::download_file,
        api::ops::health,
        api::ops::ready,
        api::ops::metrics,
        api::ops::openapi,
        api::ops::index,
    ),
    tags(
        (name = "translate", description = "JSON translation API"),
        (name = "libretranslate", description = "LibreTranslate-compatible API"),
        (name = "operations", description = "Health, readiness, metrics, schema, web page")
    )
)]
pub struct ApiDoc;

/// Replaces property `name` of an object schema by `schema`, keeping its description.
fn set_property(object: &mut Value, name: &str, schema: Value) {
    let slot = &mut object["properties"][name];
    let description = slot.get("description").cloned();
    *slot = schema;
    if let (Some(d), Some(map)) = (description, slot.as_object_mut()) {
        map.entry("description").or_insert(d);
    }
}

/// `values` as a JSON-Schema `enum` of strings, each once, in order, plus `null` when `nullable`.
fn string_enum<'a>(values: impl IntoIterator<Item = &'a str>, nullable: bool) -> Value {
    let mut out: Vec<Value> = Vec::new();
    for v in values {
        if !out.iter().any(|o| o == v) {
            out.push(Value::from(v));
        }
    }
    if nullable {
        out.push(Value::Null);
        json!({"type": ["string", "null"], "enum": out})
    } else {
        json!({"type": "string", "enum": out})
    }
}

/// What `return_neurons` may ask of model `m`: a layer, direction and units it has.
fn neurons_for(m: &ModelInfo) -> Value {
    let units = json!({
        "type": "array",
        "items": {"type": "integer", "minimum": 0, "maximum": m.shape.hidden_dim.saturating_sub(1)},
        "maxItems": analysis::inspect::MAX_NEURONS,
    });
    let side = |name: &str, layers: usize, directions: &[&str]| {
        json!({
            "properties": {
                "side": {"const": name},
                "layer": {"type": "integer", "minimum": 0, "maximum": layers.saturating_sub(1)},
                "direction": string_enum(directions.iter().copied(), false),
                "neurons": units,
            }
        })
    };
    let encoder_directions: &[&str] = if m.shape.bidirectional {
        &["forward", "backward"]
    } else {
        &["forward"]
    };
    json!({
        "anyOf": [
            {"type": "null"},
            {
                "type": "object",
                "oneOf": [
                    side("encoder", m.shape.encoder_layers, encoder_directions),
                    side("decoder", m.shape.decoder_layers, &["forward"]),
                ],
                // Some units: listed ones, or the most active ones.
                "anyOf": [
                    {"required": ["neurons"], "properties": {"neurons": {"minItems": 1}}},
                    {"required": ["top"], "properties": {"top": {"type": "integer"}}},
                ],
            }
        ]
    })
}

/// The request schemas of `/v1/translate`: limits, the models, `text` xor `texts`,
/// `n_best` at most the beam.
fn translate_request(schema: &mut Value, settings: &Settings, registry: &Registry, text: &Value) {
    let limits = &settings.limits;
    let mut one = text.clone();
    one["type"] = json!(["string", "null"]);
    set_property(schema, "text", one);
    set_property(
        schema,
        "texts",
        json!({"type": ["array", "null"], "items": text, "minItems": 1, "maxItems": limits.max_texts}),
    );
    let models = &registry.models;
    set_property(
        schema,
        "model",
        string_enum(models.iter().map(|m| m.name.as_str()), true),
    );
    // `auto` and "" leave the source (or target) open.
    let open = ["auto", ""];
    set_property(
        schema,
        "source",
        string_enum(models.iter().map(|m| m.source.as_str()).chain(open), true),
    );
    set_property(
        schema,
        "target",
        string_enum(models.iter().map(|m| m.target.as_str()).chain(open), true),
    );
    let bounded = |max: usize| json!({"type": ["integer", "null"], "minimum": 1, "maximum": max});
    set_property(schema, "beam_size", bounded(limits.max_beam));
    set_property(schema, "n_best", bounded(limits.max_n_best));
    set_property(schema, "max_length", bounded(limits.max_output_tokens));
    // n_best <= beam_size (the server's default beam when none is given): some k lies
    // between them.
    let beam_at_least_n_best: Vec<Value> = (1..=limits.max_n_best)
        .map(|k| {
            if k <= settings.default_beam {
                json!({"properties": {"n_best": {"maximum": k}, "beam_size": {"minimum": k}}})
            } else {
                json!({
                    "required": ["beam_size"],
                    "properties": {"n_best": {"maximum": k}, "beam_size": {"type": "integer", "minimum": k}}
                })
            }
        })
        .collect();
    // Exactly one model must match: by name, or by the languages given (and the units
    // asked for must exist in it).
    let one_model: Vec<Value> = models
        .iter()
        .map(|m| {
            json!({"properties": {
                "model": {"enum": [m.name, null]},
                "source": {"enum": [m.source, "auto", "", null]},
                "target": {"enum": [m.target, "auto", "", null]},
                "return_neurons": neurons_for(m),
            }})
        })
        .collect();
    schema["additionalProperties"] = json!(false);
    schema["allOf"] = json!([
        {"oneOf": [
            {"required": ["text"], "properties": {"text": {"type": "string"}}},
            {"required": ["texts"], "properties": {"texts": {"type": "array"}}},
        ]},
        {"anyOf": beam_at_least_n_best},
        {"oneOf": one_model},
    ]);
}

/// `q`: a text or a list of texts, within the limits.
fn q_schema(text: &Value, settings: &Settings) -> Value {
    json!({"oneOf": [
        text,
        {"type": "array", "items": text, "minItems": 1, "maxItems": settings.limits.max_texts},
    ]})
}

/// LibreTranslate's `source` (a served source or `auto`) and `target`, required, and the
/// pair one a model serves.
fn language_pair(schema: &mut Value, registry: &Registry) {
    let models = &registry.models;
    set_property(
        schema,
        "source",
        string_enum(
            models.iter().map(|m| m.source.as_str()).chain(["auto"]),
            false,
        ),
    );
    set_property(
        schema,
        "target",
        string_enum(models.iter().map(|m| m.target.as_str()), false),
    );
    let pairs: Vec<Value> = models
        .iter()
        .map(|m| {
            json!({"properties": {
                "source": {"enum": [m.source, "auto"]},
                "target": {"enum": [m.target]},
            }})
        })
        .collect();
    schema["anyOf"] = json!(pairs);
}

fn require(schema: &mut Value, names: &[&str]) {
    schema["required"] = json!(names);
}

/// `schema` for a form body, where a field is text or absent, never `null`.
fn without_null(schema: &Value) -> Value {
    let mut out = schema.clone();
    if let Some(props) = out.get_mut("properties").and_then(Value::as_object_mut) {
        for prop in props.values_mut() {
            if let Some(types) = prop.get_mut("type").and_then(Value::as_array_mut) {
                types.retain(|t| t != "null");
                if let [one] = types.as_slice() {
                    let one = one.clone();
                    prop["type"] = one;
                }
            }
            if let Some(values) = prop.get_mut("enum").and_then(Value::as_array_mut) {
                values.retain(|v| !v.is_null());
            }
        }
    }
    out
}

/// Points the form encodings of `path`'s request body at `form` (a schema without nulls).
fn form_bodies(doc: &mut Value, path: &str, form: &str) {
    let content = &mut doc["paths"][path]["post"]["requestBody"]["content"];
    for media in ["application/x-www-form-urlencoded", "multipart/form-data"] {
        if content.get(media).is_some() {
            content[media]["schema"] = json!({"$ref": format!("#/components/schemas/{form}")});
        }
    }
}

/// The OpenAPI document this server answers at `GET /openapi.json`.
pub fn document(settings: &Settings, registry: &Registry) -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_else(|_| json!({}));
    let limits = &settings.limits;
    // A text: not blank (some character other than white space), at most --max-chars
    // characters (JSON Schema counts code points, as the server does).
    let text = json!({
        "type": "string",
        "minLength": 1,
        "maxLength": limits.max_chars,
        "pattern": "\\S",
    });
    let schemas = &mut doc["components"]["schemas"];
    if schemas.is_null() {
        *schemas = Value::Object(Map::new());
    }
    translate_request(&mut schemas["TranslateRequest"], settings, registry, &text);

    let libre = &mut schemas["LibreRequest"];
    set_property(libre, "q", q_schema(&text, settings));
    language_pair(libre, registry);
    set_property(
        libre,
        "format",
        json!({"type": ["string", "null"], "enum": ["text", "html", null]}),
    );
    set_property(
        libre,
        "alternatives",
        json!({"type": ["integer", "null"], "minimum": 0, "maximum": limits.max_n_best - 1}),
    );
    require(libre, &["q", "source", "target"]);

    let detect = &mut schemas["DetectRequest"];
    set_property(detect, "q", q_schema(&text, settings));
    require(detect, &["q"]);

    let file = &mut schemas["TranslateFileForm"];
    language_pair(file, registry);
    require(file, &["file", "source", "target"]);

    // In a form every field is text: `null` cannot be sent; and fields have plain names.
    let names = json!({"pattern": crate::api::form::FIELD_NAME_PATTERN});
    let mut libre_form = without_null(&schemas["LibreRequest"]);
    let mut detect_form = without_null(&schemas["DetectRequest"]);
    libre_form["propertyNames"] = names.clone();
    detect_form["propertyNames"] = names.clone();
    schemas["TranslateFileForm"]["propertyNames"] = names;
    schemas["LibreForm"] = libre_form;
    schemas["DetectForm"] = detect_form;
    form_bodies(&mut doc, "/translate", "LibreForm");
    form_bodies(&mut doc, "/detect", "DetectForm");
    // The file part: its name tells the format (`.txt`, `.html`, `.htm`).
    doc["paths"]["/translate_file"]["post"]["requestBody"]["content"]["multipart/form-data"]
        ["encoding"] = json!({
        "file": {
            "contentType": "text/plain, text/html",
            "headers": {"Content-Disposition": {"schema": {
                "type": "string",
                "example": "form-data; name=\"file\"; filename=\"document.txt\"",
            }}},
        }
    });
    doc
}
