//! Node (v1): cluster-scoped, with a status subresource. The emulator starts with the three nodes
//! the real control plane's kwok manages (`scheduler::NODES`), as kwok's node stages leave them:
//! Ready, with an internal address and kwok's capacity; `kubectl get nodes` and informers over
//! nodes (ingress controllers list them) see them.

use serde_json::{Value, json};

use super::super::apply::fragment::*;
use super::Kind;
use super::common::*;

pub const KIND: Kind = Kind {
    kind: "Node",
    plural: "nodes",
    namespaced: false,
    short_names: &["no"],
    status: true,
    decode: roundtrip::<k8s_openapi::api::core::v1::Node>,
    field_selectors: &["spec.unschedulable"],
    columns: &[
        ("Name", "string", 0),
        ("Status", "string", 0),
        ("Roles", "string", 0),
        ("Age", "string", 0),
        ("Version", "string", 0),
        ("Internal-IP", "string", 1),
    ],
    cells,
    merge: Some(merge),
    ..Kind::BASE
};

/// A node as kwok's node stages leave it: its labels and kwok's annotation, Ready, its address,
/// and kwok's capacity (1k CPUs, 1Ti of memory, 1M pods).
pub fn kwok_node(name: &str, zone: &str, ip: &str, now: &str) -> Value {
    let capacity = json!({"cpu": "1k", "memory": "1Ti", "pods": "1M"});
    let condition = |ty: &str, status: &str, reason: &str| {
        json!({"type": ty, "status": status, "reason": reason, "message": reason,
            "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "topology.kubernetes.io/zone": zone,
                "type": "kwok",
            },
        },
        "spec": {},
        "status": {
            "addresses": [{"type": "InternalIP", "address": ip}],
            "allocatable": capacity,
            "capacity": capacity,
            "conditions": [
                condition("Ready", "True", "KubeletReady"),
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID"),
                condition("NetworkUnavailable", "False", "RouteCreated"),
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": "",
                "containerRuntimeVersion": "",
                "kernelVersion": "",
                "kubeProxyVersion": "",
                "kubeletVersion": "fake",
                "machineID": "",
                "operatingSystem": "linux",
                "osImage": "",
                "systemUUID": "",
            },
            "phase": "Running",
        },
    })
}

/// The cells of one row of `kubectl get`.
fn cells(o: &Value) -> Vec<Value> {
    let conditions = o["status"]["conditions"].as_array();
    let ready = conditions
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready");
    let mut status = match ready {
        Some(c) if c["status"] == "True" => "Ready".to_string(),
        Some(_) => "NotReady".to_string(),
        None => "Unknown".to_string(),
    };
    if o["spec"]["unschedulable"] == true {
        status.push_str(",SchedulingDisabled");
    }
    let mut roles: Vec<&str> = o["metadata"]["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, _)| k.strip_prefix("node-role.kubernetes.io/"))
        .filter(|r| !r.is_empty())
        .collect();
    roles.sort_unstable();
    let internal = o["status"]["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["type"] == "InternalIP")
        .map_or(String::new(), |a| s(&a["address"]));
    vec![
        o["metadata"]["name"].clone(),
        json!(status),
        or_none(roles.join(",")),
        age(&o["metadata"]["creationTimestamp"]),
        o["status"]["nodeInfo"]["kubeletVersion"].clone(),
        or_none(internal),
    ]
}

/// The merge schema (list types, merge keys, patch strategies) of the Go type.
fn merge() -> Value {
    spec_status(
        object(json!({"podCIDRs": atomic_list(), "taints": atomic_list()})),
        object(json!({
            "conditions": conditions(),
            "addresses": keyed_list(&["type"], "type", "merge", object(json!({}))),
            "images": atomic_list(),
            "volumesInUse": atomic_list(),
            "volumesAttached": atomic_list(),
        })),
    )
}
