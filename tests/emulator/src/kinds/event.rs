//! Event, in its two versions over one store: core v1 (the storage form) and events.k8s.io/v1
//! (converted on the way in and out, see [`event_to_core`]).

use serde_json::{Value, json};

use super::super::apply::fragment::*;
use super::common::*;
use super::{Kind, Storage};

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
    storage: Some(Storage {
        key: "/events",
        to_stored: event_to_core,
        from_stored: event_from_core,
    }),
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

/// The same field of an Event in events.k8s.io/v1 and in core/v1.
type Pair = (&'static str, &'static str);

/// Every field an Event has in both versions.
const FIELDS: [Pair; 14] = [
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reason", "reason"),
    ("type", "type"),
    ("action", "action"),
    ("related", "related"),
    ("series", "series"),
    ("eventTime", "eventTime"),
    ("reportingController", "reportingComponent"),
    ("reportingInstance", "reportingInstance"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

/// `e`'s metadata and the set fields of [`FIELDS`], each renamed by `rename`.
fn convert(e: &Value, api_version: &str, rename: fn(Pair) -> Pair) -> Value {
    let mut out =
        json!({"apiVersion": api_version, "kind": "Event", "metadata": e["metadata"].clone()});
    for (from, to) in FIELDS.map(rename) {
        if let Some(v) = e.get(from).filter(|v| !v.is_null()) {
            out[to] = v.clone();
        }
    }
    out
}

/// events.k8s.io/v1 → core/v1 Event, the shared storage form.
fn event_to_core(e: &Value) -> Value {
    let mut out = convert(e, "v1", |pair| pair);
    if out.get("involvedObject").is_none() {
        out["involvedObject"] = json!({});
    }
    out
}

/// core/v1 → events.k8s.io/v1 Event.
fn event_from_core(e: &Value) -> Value {
    let mut out = convert(e, "events.k8s.io/v1", |(events, core)| (core, events));
    if out.get("eventTime").is_none() {
        out["eventTime"] = Value::Null;
    }
    out
}
