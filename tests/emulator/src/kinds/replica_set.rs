//! ReplicaSet (apps/v1): pod template defaults and conversion, an immutable selector, a scale
//! subresource. The Deployment controller makes them and the ReplicaSet controller keeps their
//! pods and status (the `controllers` module).

use serde_json::{Map, Value, json};

use super::super::apply::fragment::*;
use super::super::errors::FieldError;
use super::common::*;
use super::{Kind, Proto::*};

pub const KIND: Kind = Kind {
    group: "apps",
    kind: "ReplicaSet",
    plural: "replicasets",
    short_names: &["rs"],
    categories: &["all"],
    status: true,
    generation: true,
    scale: true,
    decode: roundtrip::<k8s_openapi::api::apps::v1::ReplicaSet>,
    convert,
    defaults,
    validate,
    validate_update,
    columns: &[
        ("Name", "string", 0),
        ("Desired", "integer", 0),
        ("Current", "integer", 0),
        ("Ready", "integer", 0),
        ("Age", "string", 0),
        ("Containers", "string", 1),
        ("Images", "string", 1),
        ("Selector", "string", 1),
    ],
    cells,
    merge: Some(merge),
    protobuf: &[(
        "ReplicaSet",
        &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "spec", Msg("ReplicaSetSpec")),
        ],
    )],
    ..Kind::BASE
};

fn convert(obj: &mut Value) {
    if let Some(template) = obj.pointer_mut("/spec/template").filter(|t| t.is_object()) {
        convert_pod_template(template);
    }
}

fn defaults(obj: &mut Value) {
    let spec = obj_mut(obj, "spec");
    default(spec, "replicas", json!(1));
    default(spec, "minReadySeconds", json!(0));
    default_pod_spec(obj_mut(obj_mut(spec, "template"), "spec"));
    if obj.get("status").is_none() {
        obj["status"] = json!({"replicas": 0});
    }
}

fn validate(obj: &Value, errs: &mut Vec<FieldError>) {
    let sel = &obj["spec"]["selector"];
    let labels = &obj["spec"]["template"]["metadata"]["labels"];
    if !sel.is_object() || sel.as_object().is_some_and(Map::is_empty) {
        errs.push(FieldError::required("spec.selector", ""));
    } else if !selector_matches(sel, labels) {
        errs.push(FieldError::invalid(
            "spec.template.metadata.labels",
            labels.clone(),
            "`selector` does not match template `labels`",
        ));
    }
    if obj["spec"]["replicas"].as_i64().is_some_and(|r| r < 0) {
        errs.push(FieldError::invalid(
            "spec.replicas",
            obj["spec"]["replicas"].clone(),
            "must be greater than or equal to 0",
        ));
    }
    validate_containers(&obj["spec"]["template"]["spec"], "spec.template.spec", errs);
}

fn validate_update(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    if old["spec"]["selector"] != new["spec"]["selector"] {
        errs.push(FieldError::invalid(
            "spec.selector",
            new["spec"]["selector"].clone(),
            "field is immutable",
        ));
    }
}

fn cells(o: &Value) -> Vec<Value> {
    let spec = &o["spec"];
    let containers = spec["template"]["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let joined = |k: &str| {
        json!(
            containers
                .iter()
                .map(|c| s(&c[k]))
                .collect::<Vec<_>>()
                .join(",")
        )
    };
    let sel = spec["selector"]["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", s(v)))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    vec![
        o["metadata"]["name"].clone(),
        json!(spec["replicas"].as_i64().unwrap_or(0)),
        json!(o["status"]["replicas"].as_i64().unwrap_or(0)),
        json!(o["status"]["readyReplicas"].as_i64().unwrap_or(0)),
        age(&o["metadata"]["creationTimestamp"]),
        joined("name"),
        joined("image"),
        or_none(sel),
    ]
}

fn merge() -> Value {
    spec_status(
        object(json!({
            "selector": atomic_map(),
            "template": present(object(json!({
                "metadata": present(object_meta()),
                "spec": present(pod_spec()),
            }))),
        })),
        object(json!({"conditions": conditions()})),
    )
}
