//! What the workload kinds (Deployment, ReplicaSet) share: a pod template converted and defaulted
//! on every write, a selector that must match the template's labels and never changes, replicas
//! of at least zero, a scale subresource, and the `-o wide` columns (containers, images,
//! selector).

use serde_json::{Map, Value, json};

use super::super::apply::fragment::*;
use super::super::errors::FieldError;
use super::common::*;
use super::{Column, Kind};

/// An apps/v1 workload kind; each kind names itself, its columns and its defaults.
pub const BASE: Kind = Kind {
    group: "apps",
    categories: &["all"],
    status: true,
    generation: true,
    scale: true,
    convert,
    validate,
    validate_update,
    ..Kind::BASE
};

/// The columns `kubectl get -o wide` adds.
pub const WIDE: [Column; 3] = [
    ("Containers", "string", 1),
    ("Images", "string", 1),
    ("Selector", "string", 1),
];

/// The pod template goes through the v1 ↔ internal PodTemplateSpec conversion on every write.
fn convert(obj: &mut Value) {
    if let Some(template) = obj.pointer_mut("/spec/template").filter(|t| t.is_object()) {
        convert_pod_template(template);
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

/// The cells of the [`WIDE`] columns.
pub fn wide_cells(o: &Value) -> [Value; 3] {
    let containers = o["spec"]["template"]["spec"]["containers"]
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
    [
        joined("name"),
        joined("image"),
        or_none(labels_text(&o["spec"]["selector"]["matchLabels"])),
    ]
}

/// The merge schema of the Go type: selector and template, with `spec` fields of the kind's own.
pub fn merge(own: Value) -> Value {
    let mut spec = json!({
        "selector": atomic_map(),
        "template": present(object(json!({
            "metadata": present(object_meta()),
            "spec": present(pod_spec()),
        }))),
    });
    if let (Some(spec), Some(own)) = (spec.as_object_mut(), own.as_object()) {
        spec.extend(own.clone());
    }
    spec_status(object(spec), object(json!({"conditions": conditions()})))
}
