//! Lease (coordination.k8s.io/v1), as leader election uses it.

use serde_json::{Value, json};

use super::super::apply::fragment::*;
use super::Kind;
use super::common::*;

pub const KIND: Kind = Kind {
    group: "coordination.k8s.io",
    kind: "Lease",
    plural: "leases",
    decode: roundtrip::<k8s_openapi::api::coordination::v1::Lease>,
    columns: &[
        ("Name", "string", 0),
        ("Holder", "string", 0),
        ("Age", "string", 0),
    ],
    cells,
    merge: Some(merge),
    ..Kind::BASE
};

/// The cells of one row of `kubectl get`.
fn cells(o: &Value) -> Vec<Value> {
    let name = o["metadata"]["name"].clone();
    let created = &o["metadata"]["creationTimestamp"];
    let spec = &o["spec"];
    vec![name, or_none(s(&spec["holderIdentity"])), age(created)]
}

/// The merge schema (list types, merge keys, patch strategies) of the Go type.
fn merge() -> Value {
    object(json!({"spec": present(object(json!({})))}))
}
