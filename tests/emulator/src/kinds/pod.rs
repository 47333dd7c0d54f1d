//! Pod (v1): pod spec defaults and conversion, the status a new pod starts with (`Pending`), a
//! spec that may not change once created (but for images), a status subresource the kubelet (or a
//! test standing in for it) writes, and kubectl's columns. The ReplicaSet controller creates pods
//! and the kubelet of the emulator reports them (the `controllers` module).

use serde_json::{Value, json};

use super::super::apply::fragment::*;
use super::super::errors::FieldError;
use super::common::*;
use super::{Kind, Proto::*};

pub const KIND: Kind = Kind {
    kind: "Pod",
    plural: "pods",
    short_names: &["po"],
    categories: &["all"],
    status: true,
    decode: roundtrip::<k8s_openapi::api::core::v1::Pod>,
    convert,
    defaults,
    validate,
    validate_update,
    field_selectors: &[
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ],
    columns: &[
        ("Name", "string", 0),
        ("Ready", "string", 0),
        ("Status", "string", 0),
        ("Restarts", "string", 0),
        ("Age", "string", 0),
        ("IP", "string", 1),
        ("Node", "string", 1),
        ("Nominated Node", "string", 1),
        ("Readiness Gates", "string", 1),
    ],
    cells,
    merge: Some(merge),
    protobuf: &[(
        "Pod",
        &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "spec", Msg("PodSpec")),
        ],
    )],
    ..Kind::BASE
};

/// A pod goes through the same v1 ↔ internal conversion as a pod template.
fn convert(obj: &mut Value) {
    convert_pod_template(obj);
}

fn defaults(obj: &mut Value) {
    let spec = obj_mut(obj, "spec");
    default_pod_spec(spec);
    // The ServiceAccount admission plugin: a pod runs as the namespace's `default` account
    // unless it names one.
    if spec["serviceAccountName"]
        .as_str()
        .is_none_or(str::is_empty)
    {
        spec["serviceAccountName"] = json!("default");
        spec["serviceAccount"] = json!("default");
    }
    default(spec, "enableServiceLinks", json!(true));
    default(spec, "priority", json!(0));
    default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
    // The DefaultTolerationSeconds admission plugin.
    if spec.get("tolerations").is_none() {
        spec["tolerations"] = json!([
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        ]);
    }
    // A new pod's status (kube-apiserver's PrepareForCreate); later writes of the status
    // subresource replace it.
    if obj.get("status").is_none_or(|s| s.get("phase").is_none()) {
        let qos = qos_class(&obj["spec"]);
        obj["status"] = json!({"phase": "Pending", "qosClass": qos});
    }
}

/// The pod's quality-of-service class from its containers' requests and limits.
fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .flat_map(|k| spec[*k].as_array().into_iter().flatten())
        .collect();
    let any = containers.iter().any(|c| {
        ["requests", "limits"].iter().any(|k| {
            c["resources"][*k]
                .as_object()
                .is_some_and(|m| !m.is_empty())
        })
    });
    if !any {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        let (req, lim) = (&c["resources"]["requests"], &c["resources"]["limits"]);
        ["cpu", "memory"]
            .iter()
            .all(|r| lim[*r].is_string() && (req[*r].is_null() || req[*r] == lim[*r]))
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn validate(obj: &Value, errs: &mut Vec<FieldError>) {
    validate_containers(&obj["spec"], "spec", errs);
}

/// kube-apiserver's ValidatePodUpdate: of a pod's spec only the containers' images (and a few
/// scheduling fields this emulator does not model) may change.
fn validate_update(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    let without_images = |spec: &Value| {
        let mut spec = spec.clone();
        for key in ["containers", "initContainers"] {
            for c in spec[key].as_array_mut().into_iter().flatten() {
                c.as_object_mut().map(|c| c.remove("image"));
            }
        }
        // Binding a pod (the scheduler's pods/binding) sets nodeName once.
        if old["spec"]["nodeName"].as_str().is_none_or(str::is_empty) {
            spec.as_object_mut().map(|s| s.remove("nodeName"));
        }
        spec
    };
    if without_images(&old["spec"]) != without_images(&new["spec"]) {
        errs.push(FieldError::forbidden(
            "spec",
            "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
        ));
    }
}

/// What `kubectl get pods` prints as STATUS: the reason of the first waiting or failed
/// container, `Init:` while init containers run, else the phase (kubectl's printPod).
fn status_cell(o: &Value) -> String {
    let st = &o["status"];
    if o["metadata"]["deletionTimestamp"].is_string() {
        return "Terminating".into();
    }
    let inits = st["initContainerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let total_init = o["spec"]["initContainers"].as_array().map_or(0, Vec::len);
    for (i, c) in inits.iter().enumerate() {
        let term = &c["state"]["terminated"];
        if term["exitCode"] == 0 && term.is_object() {
            continue;
        }
        if term.is_object() {
            return format!("Init:{}", s(&term["reason"]));
        }
        if let Some(r) = c["state"]["waiting"]["reason"]
            .as_str()
            .filter(|r| *r != "PodInitializing")
        {
            return format!("Init:{r}");
        }
        return format!("Init:{i}/{total_init}");
    }
    for c in st["containerStatuses"].as_array().into_iter().flatten() {
        if let Some(r) = c["state"]["waiting"]["reason"].as_str() {
            return r.into();
        }
        if let Some(r) = c["state"]["terminated"]["reason"].as_str() {
            return r.into();
        }
    }
    st["reason"]
        .as_str()
        .or(st["phase"].as_str())
        .unwrap_or_default()
        .into()
}

fn cells(o: &Value) -> Vec<Value> {
    let st = &o["status"];
    let total = o["spec"]["containers"].as_array().map_or(0, Vec::len);
    let statuses = st["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let ready = statuses.iter().filter(|c| c["ready"] == true).count();
    let restarts: i64 = statuses
        .iter()
        .chain(st["initContainerStatuses"].as_array().into_iter().flatten())
        .filter_map(|c| c["restartCount"].as_i64())
        .sum();
    vec![
        o["metadata"]["name"].clone(),
        json!(format!("{ready}/{total}")),
        json!(status_cell(o)),
        json!(restarts.to_string()),
        age(&o["metadata"]["creationTimestamp"]),
        or_none(s(&st["podIP"])),
        or_none(s(&o["spec"]["nodeName"])),
        or_none(s(&st["nominatedNodeName"])),
        or_none(String::new()),
    ]
}

/// The merge schema (list types, merge keys, patch strategies) of the Go type.
fn merge() -> Value {
    spec_status(
        pod_spec(),
        object(json!({
            "conditions": conditions(),
            "containerStatuses": atomic_list(),
            "initContainerStatuses": atomic_list(),
            "ephemeralContainerStatuses": atomic_list(),
            "podIPs": keyed_list(&["ip"], "ip", "merge", json!({"type": "object"})),
            "hostIPs": atomic_list(),
        })),
    )
}
