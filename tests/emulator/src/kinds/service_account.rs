//! ServiceAccount (v1).

use serde_json::{Value, json};

use super::super::apply::fragment::*;
use super::common::*;
use super::{Kind, Proto::*};

pub const KIND: Kind = Kind {
    kind: "ServiceAccount",
    plural: "serviceaccounts",
    short_names: &["sa"],
    decode: roundtrip::<k8s_openapi::api::core::v1::ServiceAccount>,
    columns: &[
        ("Name", "string", 0),
        ("Secrets", "integer", 0),
        ("Age", "string", 0),
    ],
    cells,
    merge: Some(merge),
    protobuf: &[
        (
            "ServiceAccount",
            &[
                (1, "metadata", Msg("ObjectMeta")),
                (2, "secrets", MsgList("ObjectReference")),
                (3, "imagePullSecrets", MsgList("LocalObjectReference")),
                (4, "automountServiceAccountToken", Bool),
            ],
        ),
        (
            "ObjectReference",
            &[
                (1, "kind", Str),
                (2, "namespace", Str),
                (3, "name", Str),
                (4, "uid", Str),
            ],
        ),
        ("LocalObjectReference", &[(1, "name", Str)]),
    ],
    ..Kind::BASE
};

/// The cells of one row of `kubectl get`.
fn cells(o: &Value) -> Vec<Value> {
    let name = o["metadata"]["name"].clone();
    let created = &o["metadata"]["creationTimestamp"];
    vec![
        name,
        json!(o["secrets"].as_array().map_or(0, |a| a.len())),
        age(created),
    ]
}

/// The merge schema (list types, merge keys, patch strategies) of the Go type.
fn merge() -> Value {
    object(json!({
        "secrets": by_name(json!({"type": "object"})),
        "imagePullSecrets": atomic_list(),
    }))
}
