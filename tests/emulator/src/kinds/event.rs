//! Event, in its two versions over one store: core v1 (the storage form) and events.k8s.io/v1
//! (converted on the way in and out, see [`super::event_to_core`]).

use serde_json::{Value, json};

use super::super::apply::fragment::*;
use super::Kind;
use super::common::*;

pub const CORE: Kind = Kind {
    kind: "Event",
    plural: "events",
    short_names: &["ev"],
    decode: roundtrip::<k8s_openapi::api::core::v1::Event>,
    field_selectors: SELECTABLE,
    columns: &[
        ("Last Seen", "string", 0),
        ("Type", "string", 0),
        ("Reason", "string", 0),
        ("Object", "string", 0),
        ("Message", "string", 0),
    ],
    cells,
    merge: Some(merge_core),
    ..Kind::BASE
};

pub const EVENTS_V1: Kind = Kind {
    group: "events.k8s.io",
    kind: "Event",
    plural: "events",
    short_names: &["ev"],
    decode: roundtrip::<k8s_openapi::api::events::v1::Event>,
    field_selectors: SELECTABLE,
    merge: Some(merge_events_v1),
    ..Kind::BASE
};

/// Field selectors of core Events (kube-apiserver's `EventToSelectableFields`), for both versions.
const SELECTABLE: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];

/// The cells of one row of `kubectl get`.
fn cells(o: &Value) -> Vec<Value> {
    let created = &o["metadata"]["creationTimestamp"];
    let last = [&o["lastTimestamp"], &o["eventTime"], created]
        .into_iter()
        .find(|v| v.is_string())
        .cloned();
    let io = &o["involvedObject"];
    vec![
        age(&last.unwrap_or(Value::Null)),
        o["type"].clone(),
        o["reason"].clone(),
        json!(format!(
            "{}/{}",
            s(&io["kind"]).to_lowercase(),
            s(&io["name"])
        )),
        o["message"].clone(),
    ]
}

/// The merge schema (list types, merge keys, patch strategies) of the Go type.
fn merge_core() -> Value {
    object(json!({
        "involvedObject": present(object(json!({}))),
        "source": present(object(json!({}))),
    }))
}

/// The merge schema (list types, merge keys, patch strategies) of the Go type.
fn merge_events_v1() -> Value {
    object(json!({
        "regarding": present(object(json!({}))),
        "deprecatedSource": present(object(json!({}))),
    }))
}
