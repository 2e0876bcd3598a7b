//! `return_gates` and `return_neurons` on `POST /v1/translate`: the gate strips and unit
//! values match the translation's tokens and what the encoder computes, and requests for
//! layers or units the model lacks are 400s with JSON errors.

mod common;

use common::{de_en_server, post_json, SENTENCES};
use serde_json::{json, Value};
use tch::{Device, Tensor};

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
fn gates_and_neurons_follow_the_translation() {
    let (_dir, m, s) = de_en_server("m-de-en", 31, &[]);
    let texts = [SENTENCES[0], SENTENCES[4]];
    let reply = post_json(
        &s.url("/v1/translate"),
        &json!({"texts": texts, "return_attention": true, "return_gates": true,
                "return_neurons": {"side": "encoder", "layer": 1, "direction": "backward", "neurons": [3, 0], "top": 2}}),
    )
    .json();
    let b = model::Bundle::load(&m, Device::Cpu).unwrap();
    let hidden = b.model.config().hidden_dim as usize;
    for (i, t) in reply["translations"].as_array().unwrap().iter().enumerate() {
        let gates = &t["gates"];
        // The encoder's tokens are the translation's source pieces; the decoder's are the
        // pieces it reads: <s>, then the translation (without the final </s>).
        assert_eq!(gates["source_tokens"], t["source_tokens"], "{t}");
        let target: Vec<Value> = t["target_tokens"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| *p != "</s>")
            .cloned()
            .collect();
        let mut read = vec![json!("<s>")];
        read.extend(target);
        assert_eq!(gates["target_tokens"], Value::Array(read.clone()), "{t}");
        let layers = gates["layers"].as_array().unwrap();
        // 2 encoder layers × 2 directions, 2 decoder layers.
        assert_eq!(layers.len(), 6, "{gates}");
        for l in layers {
            let n = if l["side"] == "encoder" {
                t["source_tokens"].as_array().unwrap().len()
            } else {
                read.len()
            };
            let names: Vec<&String> = l["gates"].as_object().unwrap().keys().collect();
            assert_eq!(names, ["forget", "input", "output"]);
            for (_, values) in l["gates"].as_object().unwrap() {
                let v = floats(values);
                assert_eq!(v.len(), n, "{l}");
                assert!(v.iter().all(|x| (0.0..=1.0).contains(x)), "{l}");
            }
        }
        // The units: the asked ones first, then the two most active others, each equal
        // to the encoder's output (backward half of the top layer) at that unit.
        let neurons = &t["neurons"];
        assert_eq!(neurons["tokens"], t["source_tokens"]);
        let units = neurons["units"].as_array().unwrap();
        let indices: Vec<u64> = units.iter().map(|u| u["index"].as_u64().unwrap()).collect();
        assert_eq!(indices.len(), 4);
        assert_eq!(&indices[..2], [3, 0]);
        assert!(
            units[2]["mean_abs"].as_f64() >= units[3]["mean_abs"].as_f64(),
            "{neurons}"
        );
        let ids: Vec<i64> = t["source_tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| match p.as_str().unwrap() {
                "</s>" => vocab::EOS_ID as i64,
                p => b.src_vocab.piece_to_id(p).unwrap() as i64,
            })
            .collect();
        let _g = tch::no_grad_guard();
        let enc = b.model.encode(
            &Tensor::from_slice(&ids).unsqueeze(0),
            &Tensor::from_slice(&[ids.len() as i64]),
            &b.model.context(false),
        );
        for u in units {
            let index = u["index"].as_i64().unwrap();
            let expected: Vec<f32> =
                Vec::try_from(&enc.outputs.get(0).select(1, hidden as i64 + index)).unwrap();
            let got = floats(&u["h"]);
            assert_eq!(got.len(), expected.len());
            for (g, e) in got.iter().zip(&expected) {
                assert!(
                    (g - *e as f64).abs() < 1e-4,
                    "text {i} unit {index}: {got:?} vs {expected:?}"
                );
            }
            let mean_abs = got.iter().map(|x| x.abs()).sum::<f64>() / got.len() as f64;
            assert!((mean_abs - u["mean_abs"].as_f64().unwrap()).abs() < 1e-4);
        }
    }
    // Without the flags, nothing extra is sent.
    let plain = post_json(&s.url("/v1/translate"), &json!({"text": texts[0]})).json();
    assert!(
        plain["translations"][0].get("gates").is_none()
            && plain["translations"][0].get("neurons").is_none()
    );
}

#[test]
fn units_the_model_lacks_are_client_errors() {
    let (_dir, _, s) = de_en_server("m-de-en", 31, &[]);
    let url = s.url("/v1/translate");
    for (neurons, code, says) in [
        (
            json!({"side": "encoder", "layer": 2, "top": 1}),
            "invalid_neurons",
            "2 layers",
        ),
        (
            json!({"side": "decoder", "layer": 0, "direction": "backward", "top": 1}),
            "invalid_neurons",
            "no backward",
        ),
        (
            json!({"side": "encoder", "layer": 0, "neurons": [16]}),
            "invalid_neurons",
            "16 units",
        ),
        (
            json!({"side": "encoder", "layer": 0, "top": 65}),
            "invalid_neurons",
            "at most 64",
        ),
        (
            json!({"side": "encoder", "layer": 0}),
            "invalid_neurons",
            "ask for some units",
        ),
        (
            json!({"side": "encoder", "layer": 0, "neurons": [1], "top": 0}),
            "invalid_neurons",
            "at least 1",
        ),
        (
            json!({"side": "middle", "layer": 0, "top": 1}),
            "invalid_field",
            "middle",
        ),
        (
            json!({"side": "encoder", "layer": 0, "top": 1, "colour": "red"}),
            "invalid_field",
            "colour",
        ),
    ] {
        let reply = post_json(
            &url,
            &json!({"text": SENTENCES[1], "return_neurons": neurons}),
        );
        let message = reply.assert_error(400, code);
        assert!(message.contains(says), "{neurons}: {message}");
    }
    // The server still answers.
    let ok = post_json(&url, &json!({"text": SENTENCES[1], "return_gates": true}));
    assert_eq!(ok.status, 200);
}
