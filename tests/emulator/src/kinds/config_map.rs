//! ConfigMap (v1).

use serde_json::{Value, json};

use super::super::apply::fragment::*;
use super::common::*;
use super::{Kind, Proto::*};

pub const KIND: Kind = Kind {
    kind: "ConfigMap",
    plural: "configmaps",
    short_names: &["cm"],
    decode: roundtrip::<k8s_openapi::api::core::v1::ConfigMap>,
    columns: &[
        ("Name", "string", 0),
        ("Data", "integer", 0),
        ("Age", "string", 0),
    ],
    cells,
    merge: Some(merge),
    protobuf: &[(
        "ConfigMap",
        &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "data", StrMap),
            (3, "binaryData", BytesMap),
            (4, "immutable", Bool),
        ],
    )],
    ..Kind::BASE
};

/// The cells of one row of `kubectl get`.
fn cells(o: &Value) -> Vec<Value> {
    let name = o["metadata"]["name"].clone();
    let created = &o["metadata"]["creationTimestamp"];
    let n = o["data"].as_object().map_or(0, |m| m.len())
        + o["binaryData"].as_object().map_or(0, |m| m.len());
    vec![name, json!(n), age(created)]
}

/// The merge schema (list types, merge keys, patch strategies) of the Go type.
fn merge() -> Value {
    object(json!({"data": string_map(), "binaryData": string_map()}))
}
