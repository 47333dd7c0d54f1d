//! HorizontalPodAutoscaler (autoscaling/v2); its controller is in `controllers`.

use serde_json::{Value, json};

use super::super::apply::fragment::*;
use super::super::errors::{FieldError, FieldErrorKind};
use super::common::*;
use super::{Column, Kind};

pub const KIND: Kind = Kind {
    group: "autoscaling",
    version: "v2",
    kind: "HorizontalPodAutoscaler",
    plural: "horizontalpodautoscalers",
    short_names: &["hpa"],
    categories: &["all"],
    status: true,
    // kube-apiserver's HorizontalPodAutoscaler strategy does not track generation.
    generation: false,
    decode: roundtrip::<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler>,
    defaults,
    validate,
    columns: COLUMNS,
    cells,
    merge: Some(merge),
    ..Kind::BASE
};

/// The columns of `kubectl get hpa`, for both versions.
pub(super) const COLUMNS: &[Column] = &[
    ("Name", "string", 0),
    ("Reference", "string", 0),
    ("Targets", "string", 0),
    ("MinPods", "string", 0),
    ("MaxPods", "integer", 0),
    ("Replicas", "integer", 0),
    ("Age", "string", 0),
];

/// autoscaling/v2 defaulting: one replica at least, CPU at 80% when no metric is named, and the
/// documented scale-up/scale-down rules for whatever part of `behavior` is given.
pub(super) fn defaults(obj: &mut Value) {
    let spec = obj_mut(obj, "spec");
    default(spec, "minReplicas", json!(1));
    if spec["metrics"].as_array().is_none_or(Vec::is_empty) {
        spec["metrics"] = json!([{"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": 80}}}]);
    }
    if let Some(behavior) = spec.get_mut("behavior").filter(|b| b.is_object()) {
        let up = obj_mut(behavior, "scaleUp");
        default(up, "stabilizationWindowSeconds", json!(0));
        default(up, "selectPolicy", json!("Max"));
        default(
            up,
            "policies",
            json!([{"type": "Pods", "value": 4, "periodSeconds": 15},
                   {"type": "Percent", "value": 100, "periodSeconds": 15}]),
        );
        let down = obj_mut(behavior, "scaleDown");
        default(down, "stabilizationWindowSeconds", json!(300));
        default(down, "selectPolicy", json!("Max"));
        default(
            down,
            "policies",
            json!([{"type": "Percent", "value": 100, "periodSeconds": 15}]),
        );
    }
    // desiredReplicas is not omitempty in the Go type.
    default(obj_mut(obj, "status"), "desiredReplicas", json!(0));
}

pub(super) fn validate(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = &obj["spec"];
    let target = &spec["scaleTargetRef"];
    if target["kind"].as_str().is_none_or(str::is_empty) {
        errs.push(FieldError::required("spec.scaleTargetRef.kind", ""));
    }
    if target["name"].as_str().is_none_or(str::is_empty) {
        errs.push(FieldError::required("spec.scaleTargetRef.name", ""));
    }
    let min = spec["minReplicas"].as_i64().unwrap_or(1);
    if min < 1 {
        errs.push(FieldError::invalid(
            "spec.minReplicas",
            json!(min),
            "must be greater than or equal to 1",
        ));
    }
    let max = spec["maxReplicas"].as_i64().unwrap_or(0);
    if max < 1 {
        errs.push(FieldError::invalid(
            "spec.maxReplicas",
            json!(max),
            "must be greater than 0",
        ));
    } else if max < min {
        errs.push(FieldError::invalid(
            "spec.maxReplicas",
            json!(max),
            "must be greater than or equal to `minReplicas`",
        ));
    }
    for (i, m) in spec["metrics"].as_array().into_iter().flatten().enumerate() {
        let p = format!("spec.metrics[{i}]");
        match m["type"].as_str() {
            Some("Resource") => {
                let r = &m["resource"];
                if r["name"].as_str().is_none_or(str::is_empty) {
                    errs.push(FieldError::required(format!("{p}.resource.name"), ""));
                }
                let t = &r["target"];
                match t["type"].as_str() {
                    Some("Utilization") => match t["averageUtilization"].as_i64() {
                        Some(u) if u <= 0 => errs.push(FieldError::invalid(
                            format!("{p}.resource.target.averageUtilization"),
                            json!(u),
                            "must be greater than 0",
                        )),
                        Some(_) => {}
                        None => errs.push(FieldError::required(
                            format!("{p}.resource.target.averageUtilization"),
                            "",
                        )),
                    },
                    Some("AverageValue") => {}
                    _ => errs.push(FieldError::required(
                        format!("{p}.resource.target.type"),
                        "",
                    )),
                }
            }
            Some("Object" | "Pods" | "External" | "ContainerResource") => {}
            None | Some("") => errs.push(FieldError::required(format!("{p}.type"), "")),
            Some(other) => errs.push(FieldError {
                field: format!("{p}.type"),
                kind: FieldErrorKind::Unsupported(
                    json!(other),
                    vec![
                        "ContainerResource".into(),
                        "External".into(),
                        "Object".into(),
                        "Pods".into(),
                        "Resource".into(),
                    ],
                ),
            }),
        }
    }
}

/// The cells of one row of `kubectl get`.
pub(super) fn cells(o: &Value) -> Vec<Value> {
    let name = o["metadata"]["name"].clone();
    let created = &o["metadata"]["creationTimestamp"];
    let st = &o["status"];
    let spec = &o["spec"];
    let target = &spec["scaleTargetRef"];
    vec![
        name,
        json!(format!("{}/{}", s(&target["kind"]), s(&target["name"]))),
        json!(autoscaler_targets(spec, st)),
        json!(
            spec["minReplicas"]
                .as_i64()
                .map_or("<unset>".to_string(), |n| n.to_string())
        ),
        json!(spec["maxReplicas"].as_i64().unwrap_or(0)),
        json!(st["currentReplicas"].as_i64().unwrap_or(0)),
        age(created),
    ]
}

/// The Targets column of an autoscaler: `cpu: <current>/<target>` per metric, as kubectl prints
/// resource metrics; `<unknown>` until the controller measured something.
fn autoscaler_targets(spec: &Value, st: &Value) -> String {
    let metrics = spec["metrics"].as_array().cloned().unwrap_or_default();
    if metrics.is_empty() {
        return "<none>".into();
    }
    let current = st["currentMetrics"].as_array().cloned().unwrap_or_default();
    metrics
        .iter()
        .enumerate()
        .map(|(i, m)| match m["type"].as_str() {
            Some("Resource") => {
                let r = &m["resource"];
                let now = &current
                    .get(i)
                    .map_or(Value::Null, |c| c["resource"]["current"].clone());
                let (have, want) = match r["target"]["type"].as_str() {
                    Some("Utilization") => (
                        now["averageUtilization"]
                            .as_i64()
                            .map_or("<unknown>".to_string(), |u| format!("{u}%")),
                        format!(
                            "{}%",
                            r["target"]["averageUtilization"].as_i64().unwrap_or(0)
                        ),
                    ),
                    _ => (
                        now["averageValue"]
                            .as_str()
                            .map_or("<unknown>".to_string(), str::to_owned),
                        s(&r["target"]["averageValue"]),
                    ),
                };
                format!("{}: {have}/{want}", s(&r["name"]))
            }
            _ => "<unknown>/<unknown>".to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The merge schema (list types, merge keys, patch strategies) of the Go type.
/// autoscaling/v2: metrics, policies and current metrics are `+listType=atomic`.
fn merge() -> Value {
    spec_status(
        object(json!({
            "scaleTargetRef": present(object(json!({}))),
            "metrics": atomic_list(),
            "behavior": object(json!({
                "scaleUp": object(json!({"policies": atomic_list()})),
                "scaleDown": object(json!({"policies": atomic_list()})),
            })),
        })),
        object(json!({"currentMetrics": atomic_list(), "conditions": conditions()})),
    )
}
