//! Namespace (v1): cluster-scoped; named like a DNS label; labelled with its name; `Active`.

use serde_json::{Value, json};

use super::super::apply::fragment::*;
use super::common::*;
use super::{Kind, Proto::*};

pub const KIND: Kind = Kind {
    kind: "Namespace",
    plural: "namespaces",
    namespaced: false,
    short_names: &["ns"],
    status: true,
    // kube-apiserver serves no deletecollection for namespaces.
    verbs: &[
        "create", "delete", "get", "list", "patch", "update", "watch",
    ],
    decode: roundtrip::<k8s_openapi::api::core::v1::Namespace>,
    defaults,
    check_name: check_label,
    field_selectors: &["status.phase"],
    columns: &[
        ("Name", "string", 0),
        ("Status", "string", 0),
        ("Age", "string", 0),
    ],
    cells,
    merge: Some(merge),
    protobuf: &[
        (
            "Namespace",
            &[
                (1, "metadata", Msg("ObjectMeta")),
                (2, "spec", Msg("NamespaceSpec")),
            ],
        ),
        ("NamespaceSpec", &[(1, "finalizers", StrList)]),
    ],
    ..Kind::BASE
};

fn defaults(obj: &mut Value) {
    let name = obj["metadata"]["name"].clone();
    obj_mut(obj_mut(obj, "metadata"), "labels")["kubernetes.io/metadata.name"] = name;
    default(obj_mut(obj, "spec"), "finalizers", json!(["kubernetes"]));
    default(obj_mut(obj, "status"), "phase", json!("Active"));
}

/// The cells of one row of `kubectl get`.
fn cells(o: &Value) -> Vec<Value> {
    let name = o["metadata"]["name"].clone();
    let created = &o["metadata"]["creationTimestamp"];
    let st = &o["status"];
    vec![name, st["phase"].clone(), age(created)]
}

/// The merge schema (list types, merge keys, patch strategies) of the Go type.
fn merge() -> Value {
    spec_status(
        object(json!({"finalizers": atomic_list()})),
        object(json!({"conditions": conditions()})),
    )
}
