//! Secret (v1): `Opaque` by default; `stringData` is written into `data`.

use serde_json::{Value, json};

use super::super::apply::fragment::*;
use super::common::*;
use super::{Kind, Proto::*};

pub const KIND: Kind = Kind {
    kind: "Secret",
    plural: "secrets",
    decode: roundtrip::<k8s_openapi::api::core::v1::Secret>,
    defaults,
    field_selectors: &["type"],
    columns: &[
        ("Name", "string", 0),
        ("Type", "string", 0),
        ("Data", "integer", 0),
        ("Age", "string", 0),
    ],
    cells,
    merge: Some(merge),
    protobuf: &[(
        "Secret",
        &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "data", BytesMap),
            (3, "type", Str),
            (4, "stringData", StrMap),
            (5, "immutable", Bool),
        ],
    )],
    ..Kind::BASE
};

fn defaults(obj: &mut Value) {
    if obj["type"].as_str().is_none_or(str::is_empty) {
        obj["type"] = json!("Opaque");
    }
    if let Some(Value::Object(string_data)) =
        obj.as_object_mut().and_then(|o| o.remove("stringData"))
    {
        use base64::Engine;
        let data = obj_mut(obj, "data");
        for (k, v) in string_data {
            let s = v.as_str().unwrap_or_default();
            data[k] = json!(base64::engine::general_purpose::STANDARD.encode(s));
        }
    }
}

/// The cells of one row of `kubectl get`.
fn cells(o: &Value) -> Vec<Value> {
    let name = o["metadata"]["name"].clone();
    let created = &o["metadata"]["creationTimestamp"];
    vec![
        name,
        o["type"].clone(),
        json!(o["data"].as_object().map_or(0, |m| m.len())),
        age(created),
    ]
}

/// The merge schema (list types, merge keys, patch strategies) of the Go type.
fn merge() -> Value {
    object(json!({"data": string_map(), "stringData": string_map()}))
}
