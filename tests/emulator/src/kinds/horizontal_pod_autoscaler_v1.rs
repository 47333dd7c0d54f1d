//! HorizontalPodAutoscaler (autoscaling/v1), stored as autoscaling/v2 objects like kube-apiserver
//! stores it: `targetCPUUtilizationPercentage` is the v2 CPU `Utilization` metric, and what v1
//! cannot say (other metrics, current metrics, conditions, behavior) travels in the
//! `autoscaling.alpha.kubernetes.io/*` annotations, so a v1 round trip keeps it.

use serde_json::{Map, Value, json};

use super::super::apply::fragment::*;
use super::common::roundtrip;
use super::horizontal_pod_autoscaler as v2;
use super::{Kind, Proto::*, Storage};

pub const KIND: Kind = Kind {
    group: "autoscaling",
    version: "v1",
    kind: "HorizontalPodAutoscaler",
    plural: "horizontalpodautoscalers",
    short_names: &["hpa"],
    categories: &["all"],
    status: true,
    decode: roundtrip::<k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler>,
    // Defaults and validation run on the stored (v2) form, after conversion.
    defaults: v2::defaults,
    validate: v2::validate,
    columns: v2::COLUMNS,
    cells,
    merge: Some(merge),
    protobuf: &[
        (
            "HorizontalPodAutoscaler",
            &[
                (1, "metadata", Msg("ObjectMeta")),
                (2, "spec", Msg("HorizontalPodAutoscalerSpec")),
            ],
        ),
        (
            "HorizontalPodAutoscalerSpec",
            &[
                (1, "scaleTargetRef", Msg("CrossVersionObjectReference")),
                (2, "minReplicas", Int),
                (3, "maxReplicas", Int),
                (4, "targetCPUUtilizationPercentage", Int),
            ],
        ),
        (
            "CrossVersionObjectReference",
            &[(1, "kind", Str), (2, "name", Str), (3, "apiVersion", Str)],
        ),
    ],
    storage: Some(Storage {
        key: "autoscaling/horizontalpodautoscalers",
        to_stored: to_v2,
        from_stored: from_v2,
    }),
    ..Kind::BASE
};

const OTHER_METRICS: &str = "autoscaling.alpha.kubernetes.io/metrics";
const CURRENT_METRICS: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
const CONDITIONS: &str = "autoscaling.alpha.kubernetes.io/conditions";
const BEHAVIOR: &str = "autoscaling.alpha.kubernetes.io/behavior";

/// Whether a v2 metric is the CPU utilization target v1 has a field for.
fn is_cpu_utilization(m: &Value) -> bool {
    m["type"] == "Resource"
        && m["resource"]["name"] == "cpu"
        && m["resource"]["target"]["type"] == "Utilization"
}

/// Copies the fields both versions share, where set.
fn copy(from: &Value, to: &mut Map<String, Value>, keys: &[&str]) {
    for k in keys {
        if let Some(v) = from.get(*k).filter(|v| !v.is_null()) {
            to.insert((*k).to_string(), v.clone());
        }
    }
}

/// autoscaling/v1 → autoscaling/v2, the stored form.
fn to_v2(v1: &Value) -> Value {
    let mut meta = v1["metadata"].clone();
    let annotations = meta
        .get_mut("annotations")
        .and_then(Value::as_object_mut)
        .map(|a| {
            let mut taken = Map::new();
            for k in [OTHER_METRICS, CURRENT_METRICS, CONDITIONS, BEHAVIOR] {
                if let Some(v) = a.remove(k) {
                    taken.insert(k.to_string(), v);
                }
            }
            taken
        })
        .unwrap_or_default();
    if meta["annotations"].as_object().is_some_and(Map::is_empty) {
        meta.as_object_mut().map(|m| m.remove("annotations"));
    }
    let decoded = |k: &str| {
        annotations
            .get(k)
            .and_then(Value::as_str)
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
    };
    let mut spec = Map::new();
    copy(
        &v1["spec"],
        &mut spec,
        &["scaleTargetRef", "minReplicas", "maxReplicas"],
    );
    let mut metrics = vec![];
    if let Some(target) = v1["spec"]["targetCPUUtilizationPercentage"].as_i64() {
        metrics.push(json!({"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": target}}}));
    }
    metrics.extend(
        decoded(OTHER_METRICS)
            .and_then(|m| m.as_array().cloned())
            .unwrap_or_default(),
    );
    if !metrics.is_empty() {
        spec.insert("metrics".into(), json!(metrics));
    }
    if let Some(b) = decoded(BEHAVIOR) {
        spec.insert("behavior".into(), b);
    }
    let mut out = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": meta, "spec": spec});
    if let Some(st) = v1.get("status").filter(|s| s.is_object()) {
        let mut status = Map::new();
        copy(
            st,
            &mut status,
            &[
                "observedGeneration",
                "lastScaleTime",
                "currentReplicas",
                "desiredReplicas",
            ],
        );
        match decoded(CURRENT_METRICS) {
            Some(current) => {
                status.insert("currentMetrics".into(), current);
            }
            None => {
                if let Some(cpu) = st["currentCPUUtilizationPercentage"].as_i64() {
                    status.insert(
                        "currentMetrics".into(),
                        json!([{"type": "Resource", "resource": {"name": "cpu",
                            "current": {"averageUtilization": cpu}}}]),
                    );
                }
            }
        }
        if let Some(c) = decoded(CONDITIONS) {
            status.insert("conditions".into(), c);
        }
        out["status"] = Value::Object(status);
    }
    out
}

/// autoscaling/v2 (stored) → autoscaling/v1.
fn from_v2(v2: &Value) -> Value {
    let mut meta = v2["metadata"].clone();
    let mut keep = Map::new();
    let spec2 = &v2["spec"];
    let metrics = spec2["metrics"].as_array().cloned().unwrap_or_default();
    let cpu = metrics.iter().find(|m| is_cpu_utilization(m));
    let others: Vec<&Value> = metrics.iter().filter(|m| !is_cpu_utilization(m)).collect();
    if !others.is_empty() {
        keep.insert(OTHER_METRICS.into(), json!(json!(others).to_string()));
    }
    if let Some(b) = spec2.get("behavior").filter(|b| b.is_object()) {
        keep.insert(BEHAVIOR.into(), json!(b.to_string()));
    }
    let st2 = &v2["status"];
    if let Some(c) = st2["currentMetrics"].as_array().filter(|c| !c.is_empty()) {
        keep.insert(CURRENT_METRICS.into(), json!(json!(c).to_string()));
    }
    if let Some(c) = st2["conditions"].as_array().filter(|c| !c.is_empty()) {
        keep.insert(CONDITIONS.into(), json!(json!(c).to_string()));
    }
    if !keep.is_empty() {
        let annotations = super::common::obj_mut(&mut meta, "annotations");
        if let Some(a) = annotations.as_object_mut() {
            a.extend(keep);
        }
    }
    let mut spec = Map::new();
    copy(
        spec2,
        &mut spec,
        &["scaleTargetRef", "minReplicas", "maxReplicas"],
    );
    if let Some(target) = cpu.and_then(|m| m["resource"]["target"]["averageUtilization"].as_i64()) {
        spec.insert("targetCPUUtilizationPercentage".into(), json!(target));
    }
    let mut out = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
        "metadata": meta, "spec": spec});
    if st2.is_object() {
        let mut status = Map::new();
        copy(
            st2,
            &mut status,
            &[
                "observedGeneration",
                "lastScaleTime",
                "currentReplicas",
                "desiredReplicas",
            ],
        );
        let current = st2["currentMetrics"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["type"] == "Resource" && m["resource"]["name"] == "cpu");
        if let Some(u) =
            current.and_then(|m| m["resource"]["current"]["averageUtilization"].as_i64())
        {
            status.insert("currentCPUUtilizationPercentage".into(), json!(u));
        }
        out["status"] = Value::Object(status);
    }
    out
}

/// The row of `kubectl get`, as for the stored form.
fn cells(o: &Value) -> Vec<Value> {
    v2::cells(&to_v2(o))
}

/// autoscaling/v1 has no lists; `scaleTargetRef` is a required struct.
fn merge() -> Value {
    object(json!({
        "spec": present(object(json!({"scaleTargetRef": present(object(json!({})))}))),
        "status": present(object(json!({}))),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2_convert_both_ways_without_loss() {
        let v2 = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "annotations": {"a": "b"}},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 1, "maxReplicas": 3,
                "metrics": [
                    {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}},
                    {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "1Gi"}}}]},
            "status": {"currentReplicas": 2, "desiredReplicas": 2,
                "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 40}}}]}});
        let v1 = from_v2(&v2);
        assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 50);
        assert_eq!(v1["status"]["currentCPUUtilizationPercentage"], 40);
        assert!(
            v1["metadata"]["annotations"][OTHER_METRICS]
                .as_str()
                .unwrap()
                .contains("memory")
        );
        assert_eq!(v1["metadata"]["annotations"]["a"], "b");
        assert_eq!(to_v2(&v1), v2);
    }
}
