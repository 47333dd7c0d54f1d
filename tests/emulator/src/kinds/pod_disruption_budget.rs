//! PodDisruptionBudget (policy/v1): one bound of a count or a percentage, zero status counters.

use serde_json::{Value, json};

use super::super::apply::fragment::*;
use super::super::errors::{FieldError, FieldErrorKind};
use super::common::*;
use super::{Kind, Proto::*};

pub const KIND: Kind = Kind {
    group: "policy",
    kind: "PodDisruptionBudget",
    plural: "poddisruptionbudgets",
    short_names: &["pdb"],
    status: true,
    generation: true,
    decode: roundtrip::<k8s_openapi::api::policy::v1::PodDisruptionBudget>,
    defaults,
    validate,
    columns: &[
        ("Name", "string", 0),
        ("Min Available", "string", 0),
        ("Max Unavailable", "string", 0),
        ("Allowed Disruptions", "integer", 0),
        ("Age", "string", 0),
    ],
    cells,
    merge: Some(merge),
    protobuf: &[
        (
            "PodDisruptionBudget",
            &[
                (1, "metadata", Msg("ObjectMeta")),
                (2, "spec", Msg("PodDisruptionBudgetSpec")),
            ],
        ),
        (
            "PodDisruptionBudgetSpec",
            &[
                (1, "minAvailable", IntOrStringPtr),
                (2, "selector", Msg("LabelSelector")),
                (3, "maxUnavailable", IntOrStringPtr),
                (4, "unhealthyPodEvictionPolicy", Str),
            ],
        ),
    ],
    ..Kind::BASE
};

fn defaults(obj: &mut Value) {
    // The status counters are not omitempty in the Go type: a new budget shows zeros.
    let st = obj_mut(obj, "status");
    for key in [
        "disruptionsAllowed",
        "currentHealthy",
        "desiredHealthy",
        "expectedPods",
    ] {
        default(st, key, json!(0));
    }
}

/// A PodDisruptionBudget's bound: a non-negative count or a percentage of at most 100%.
fn validate_int_or_percent(v: &Value, field: &str, errs: &mut Vec<FieldError>) {
    match v {
        Value::Number(n) if n.as_i64().is_some_and(|n| n < 0) => errs.push(FieldError::invalid(
            field,
            v.clone(),
            "must be greater than or equal to 0",
        )),
        Value::String(s) => match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
            Some(p) if p > 100 => errs.push(FieldError::invalid(
                field,
                v.clone(),
                "must not be greater than 100%",
            )),
            Some(p) if p < 0 => errs.push(FieldError::invalid(
                field,
                v.clone(),
                "must be greater than or equal to 0",
            )),
            Some(_) => {}
            None => errs.push(FieldError::invalid(
                field,
                v.clone(),
                "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
            )),
        },
        _ => {}
    }
}

fn validate(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = &obj["spec"];
    let min = spec.get("minAvailable").filter(|v| !v.is_null());
    let max = spec.get("maxUnavailable").filter(|v| !v.is_null());
    if min.is_some() && max.is_some() {
        errs.push(FieldError::invalid(
            "spec",
            json!(spec),
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    if let Some(v) = min {
        validate_int_or_percent(v, "spec.minAvailable", errs);
    }
    if let Some(v) = max {
        validate_int_or_percent(v, "spec.maxUnavailable", errs);
    }
    if let Some(p) = spec["unhealthyPodEvictionPolicy"].as_str()
        && !matches!(p, "IfHealthyBudget" | "AlwaysAllow")
    {
        errs.push(FieldError {
            field: "spec.unhealthyPodEvictionPolicy".into(),
            kind: FieldErrorKind::Unsupported(
                json!(p),
                vec!["AlwaysAllow".into(), "IfHealthyBudget".into()],
            ),
        });
    }
}

/// The cells of one row of `kubectl get`.
fn cells(o: &Value) -> Vec<Value> {
    let name = o["metadata"]["name"].clone();
    let created = &o["metadata"]["creationTimestamp"];
    let st = &o["status"];
    let spec = &o["spec"];
    let bound = |v: &Value| match v {
        Value::Null => json!("N/A"),
        Value::String(s) => json!(s),
        other => json!(other.to_string()),
    };
    vec![
        name,
        bound(&spec["minAvailable"]),
        bound(&spec["maxUnavailable"]),
        json!(st["disruptionsAllowed"].as_i64().unwrap_or(0)),
        age(created),
    ]
}

/// The merge schema (list types, merge keys, patch strategies) of the Go type.
/// policy/v1: the selector is an atomic LabelSelector (`patchStrategy=replace`).
fn merge() -> Value {
    spec_status(
        object(json!({"selector": atomic_map()})),
        object(json!({"conditions": conditions(), "disruptedPods": string_map()})),
    )
}
