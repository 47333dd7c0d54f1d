//! ResourceQuota (v1): `spec.hard` limits, `status.hard`/`status.used` written by the quota
//! controller (the `quota` module, which also holds the admission check).

use serde_json::{Value, json};

use super::super::apply::fragment::*;
use super::Kind;
use super::common::*;

pub const KIND: Kind = Kind {
    kind: "ResourceQuota",
    plural: "resourcequotas",
    short_names: &["quota"],
    status: true,
    decode: roundtrip::<k8s_openapi::api::core::v1::ResourceQuota>,
    columns: &[
        ("Name", "string", 0),
        ("Request", "string", 0),
        ("Limit", "string", 0),
        ("Age", "string", 0),
    ],
    cells,
    merge: Some(merge),
    ..Kind::BASE
};

/// `used/hard` of each counted resource, requests (and counts) apart from limits, as kubectl
/// prints them.
fn cells(o: &Value) -> Vec<Value> {
    let st = &o["status"];
    let mut request = vec![];
    let mut limit = vec![];
    for (k, hard) in st["hard"].as_object().into_iter().flatten() {
        let used = st["used"][k].as_str().unwrap_or("0");
        let cell = format!("{k}: {used}/{}", s(hard));
        if k.starts_with("limits.") {
            limit.push(cell);
        } else {
            request.push(cell);
        }
    }
    vec![
        o["metadata"]["name"].clone(),
        json!(request.join(", ")),
        json!(limit.join(", ")),
        age(&o["metadata"]["creationTimestamp"]),
    ]
}

/// The merge schema (list types, merge keys, patch strategies) of the Go type.
fn merge() -> Value {
    spec_status(
        object(json!({"hard": string_map(), "scopes": atomic_list()})),
        object(json!({"hard": string_map(), "used": string_map()})),
    )
}
