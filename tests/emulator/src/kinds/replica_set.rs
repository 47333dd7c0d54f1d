//! ReplicaSet (apps/v1): a workload kind (the `workload` module). The Deployment controller makes
//! them and the ReplicaSet controller keeps their pods and status (the `workloads` module).

use serde_json::{Value, json};

use super::common::*;
use super::workload::{self, WIDE};
use super::{Kind, Proto::*};

pub const KIND: Kind = Kind {
    kind: "ReplicaSet",
    plural: "replicasets",
    short_names: &["rs"],
    decode: roundtrip::<k8s_openapi::api::apps::v1::ReplicaSet>,
    defaults,
    columns: &[
        ("Name", "string", 0),
        ("Desired", "integer", 0),
        ("Current", "integer", 0),
        ("Ready", "integer", 0),
        ("Age", "string", 0),
        WIDE[0],
        WIDE[1],
        WIDE[2],
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
    ..workload::BASE
};

fn defaults(obj: &mut Value) {
    let spec = obj_mut(obj, "spec");
    default(spec, "replicas", json!(1));
    default(spec, "minReadySeconds", json!(0));
    default_pod_spec(obj_mut(obj_mut(spec, "template"), "spec"));
    if obj.get("status").is_none() {
        obj["status"] = json!({"replicas": 0});
    }
}

fn cells(o: &Value) -> Vec<Value> {
    let mut cells = vec![
        o["metadata"]["name"].clone(),
        json!(o["spec"]["replicas"].as_i64().unwrap_or(0)),
        json!(o["status"]["replicas"].as_i64().unwrap_or(0)),
        json!(o["status"]["readyReplicas"].as_i64().unwrap_or(0)),
        age(&o["metadata"]["creationTimestamp"]),
    ];
    cells.extend(workload::wide_cells(o));
    cells
}

fn merge() -> Value {
    workload::merge(json!({}))
}
