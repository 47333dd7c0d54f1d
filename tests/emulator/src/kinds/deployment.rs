//! Deployment (apps/v1): a workload kind (the `workload` module) with a rollout strategy, and the
//! status a Deployment controller reports ([`status`], counted from its ReplicaSets by the
//! `workloads` module).

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::super::apply::fragment::*;
use super::common::*;
use super::workload::{self, WIDE};
use super::{Kind, Proto::*};

pub const KIND: Kind = Kind {
    kind: "Deployment",
    plural: "deployments",
    short_names: &["deploy"],
    decode: roundtrip::<k8s_openapi::api::apps::v1::Deployment>,
    defaults,
    columns: &[
        ("Name", "string", 0),
        ("Ready", "string", 0),
        ("Up-to-date", "integer", 0),
        ("Available", "integer", 0),
        ("Age", "string", 0),
        WIDE[0],
        WIDE[1],
        WIDE[2],
    ],
    cells,
    merge: Some(merge),
    protobuf: &[
        (
            "Deployment",
            &[
                (1, "metadata", Msg("ObjectMeta")),
                (2, "spec", Msg("DeploymentSpec")),
            ],
        ),
        (
            "DeploymentSpec",
            &[
                (1, "replicas", Int),
                (2, "selector", Msg("LabelSelector")),
                (3, "template", Msg("PodTemplateSpec")),
                (4, "strategy", Msg("DeploymentStrategy")),
                (5, "minReadySeconds", Int),
                (6, "revisionHistoryLimit", Int),
                (7, "paused", Bool),
                (9, "progressDeadlineSeconds", Int),
            ],
        ),
        ("DeploymentStrategy", &[(1, "type", Str)]),
    ],
    ..workload::BASE
};

fn defaults(obj: &mut Value) {
    let spec = obj_mut(obj, "spec");
    default(spec, "replicas", json!(1));
    default(spec, "revisionHistoryLimit", json!(10));
    default(spec, "progressDeadlineSeconds", json!(600));
    let strategy = obj_mut(spec, "strategy");
    default(strategy, "type", json!("RollingUpdate"));
    if strategy["type"] == "RollingUpdate" {
        let ru = obj_mut(strategy, "rollingUpdate");
        default(ru, "maxUnavailable", json!("25%"));
        default(ru, "maxSurge", json!("25%"));
    }
    let template = obj_mut(spec, "template");
    default_pod_spec(obj_mut(template, "spec"));
    if obj.get("status").is_none() {
        obj["status"] = json!({});
    }
}

/// The cells of one row of `kubectl get`.
fn cells(o: &Value) -> Vec<Value> {
    let st = &o["status"];
    let mut cells = vec![
        o["metadata"]["name"].clone(),
        json!(format!(
            "{}/{}",
            st["readyReplicas"].as_i64().unwrap_or(0),
            o["spec"]["replicas"].as_i64().unwrap_or(0)
        )),
        json!(st["updatedReplicas"].as_i64().unwrap_or(0)),
        json!(st["availableReplicas"].as_i64().unwrap_or(0)),
        age(&o["metadata"]["creationTimestamp"]),
    ];
    cells.extend(workload::wide_cells(o));
    cells
}

/// The merge schema (list types, merge keys, patch strategies) of the Go type.
fn merge() -> Value {
    workload::merge(json!({
        "strategy": present(json!({"type": "object", "x-kubernetes-patch-strategy": "retainKeys"})),
    }))
}

/// What a Deployment's ReplicaSets report, summed: what its status is counted from.
pub struct Counts {
    /// Pods of every ReplicaSet (their `status.replicas`).
    pub replicas: i64,
    /// Pods of the new ReplicaSet.
    pub updated: i64,
    pub ready: i64,
    pub available: i64,
    /// The ReplicaSets' `spec.replicas`, summed.
    pub wanted: i64,
    /// A ReplicaSet's `ReplicaFailure` condition (the new one's first), if any has one.
    pub failure: Option<Value>,
}

/// `maxSurge` or `maxUnavailable` of `total`: an integer, or a percentage rounded up (surge) or
/// down (unavailable), as the Deployment controller resolves them.
pub fn resolve(v: &Value, total: i64, round_up: bool) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
            Some(p) if round_up => (p * total + 99) / 100,
            Some(p) => p * total / 100,
            None => s.parse().unwrap_or(0),
        },
        _ => 0,
    }
}

/// `(maxSurge, maxUnavailable)` of the Deployment's strategy; both zero is read as one
/// unavailable, and Recreate may take every pod down.
pub fn surge_and_unavailable(d: &Value) -> (i64, i64) {
    let desired = d["spec"]["replicas"].as_i64().unwrap_or(1);
    let strategy = &d["spec"]["strategy"];
    if strategy["type"] == "Recreate" {
        return (0, desired);
    }
    let ru = &strategy["rollingUpdate"];
    let surge = resolve(&ru["maxSurge"], desired, true);
    let unavailable = resolve(&ru["maxUnavailable"], desired, false);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

/// The status the Deployment controller writes (its `calculateStatus` and `syncRolloutStatus`),
/// counted from its ReplicaSets.
pub fn status(d: &Value, c: &Counts, now: &str) -> Value {
    let desired = d["spec"]["replicas"].as_i64().unwrap_or(1);
    let rs = format!(
        "{}-{}",
        d["metadata"]["name"].as_str().unwrap_or_default(),
        template_hash(d)
    );
    let mut s = json!({"observedGeneration": d["metadata"]["generation"]});
    let unavailable = (c.wanted - c.available).max(0);
    for (k, n) in [
        ("replicas", c.replicas),
        ("updatedReplicas", c.updated),
        ("readyReplicas", c.ready),
        ("availableReplicas", c.available),
        ("unavailableReplicas", unavailable),
    ] {
        if n > 0 {
            s[k] = json!(n);
        }
    }
    if let Some(n) = d["status"]["collisionCount"].as_i64() {
        s["collisionCount"] = json!(n);
    }
    let (_, max_unavailable) = surge_and_unavailable(d);
    let available = c.available >= desired - max_unavailable;
    let complete = c.updated == desired && c.replicas == desired && c.available == desired;
    let avail = if available {
        condition(
            d,
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.".into(),
            now,
        )
    } else {
        condition(
            d,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".into(),
            now,
        )
    };
    let old = &d["status"];
    let count = |k: &str| old[k].as_i64().unwrap_or(0);
    // Progress: more new pods, fewer old ones, more ready or available.
    let progress = c.updated > count("updatedReplicas")
        || c.replicas - c.updated < count("replicas") - count("updatedReplicas")
        || c.ready > count("readyReplicas")
        || c.available > count("availableReplicas");
    // A Progressing condition about another ReplicaSet is about the rollout before this one.
    let quoted = format!("\"{rs}\"");
    let prev = old_condition(d, "Progressing")
        .filter(|p| p["message"].as_str().is_some_and(|m| m.contains(&quoted)));
    let progressing = if complete {
        condition(
            d,
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            format!("ReplicaSet {quoted} has successfully progressed."),
            now,
        )
    } else if progress {
        // Progress moves the update time on, and with it the deadline.
        let mut c = condition(
            d,
            "Progressing",
            "True",
            "ReplicaSetUpdated",
            format!("ReplicaSet {quoted} is progressing."),
            now,
        );
        c["lastUpdateTime"] = json!(now);
        c
    } else if let Some(prev) = prev {
        if d["spec"]["paused"] == true || !timed_out(d, prev, now) {
            prev.clone()
        } else {
            condition(
                d,
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                format!("ReplicaSet {quoted} has timed out progressing."),
                now,
            )
        }
    } else {
        // A new ReplicaSet and nothing of it yet: the deadline counts from here.
        let mut c = condition(
            d,
            "Progressing",
            "True",
            "NewReplicaSetCreated",
            format!("Created new replica set {quoted}"),
            now,
        );
        c["lastUpdateTime"] = json!(now);
        c
    };
    let mut conditions = vec![avail, progressing];
    if let Some(f) = &c.failure {
        conditions.push(json!({"type": "ReplicaFailure", "status": f["status"],
            "lastUpdateTime": f["lastTransitionTime"], "lastTransitionTime": f["lastTransitionTime"],
            "reason": f["reason"], "message": f["message"]}));
    }
    s["conditions"] = json!(conditions);
    s
}

fn old_condition<'a>(d: &'a Value, ty: &str) -> Option<&'a Value> {
    d["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == ty)
}

fn seconds(t: &Value) -> Option<i64> {
    t.as_str()?
        .parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_second())
}

/// The Deployment controller's `DeploymentTimedOut`: no progress since the `Progressing`
/// condition's last update for longer than `spec.progressDeadlineSeconds`.
fn timed_out(d: &Value, progressing: &Value, now: &str) -> bool {
    let Some(deadline) = d["spec"]["progressDeadlineSeconds"].as_i64() else {
        return false;
    };
    match progressing["reason"].as_str() {
        Some("NewReplicaSetAvailable") => false,
        Some("ProgressDeadlineExceeded") => true,
        _ => seconds(&progressing["lastUpdateTime"])
            .zip(seconds(&json!(now)))
            .is_some_and(|(from, now)| from + deadline < now),
    }
}

/// How long until a rollout that is still progressing passes its deadline, if it has one: when
/// the Deployment controller looks again (its `requeueStuckDeployment`).
pub fn until_deadline(d: &Value, now: &str) -> Option<std::time::Duration> {
    let deadline = d["spec"]["progressDeadlineSeconds"].as_i64()?;
    let c = old_condition(d, "Progressing")?;
    if c["status"] != "True"
        || c["reason"] == "NewReplicaSetAvailable"
        || d["spec"]["paused"] == true
    {
        return None;
    }
    let left = seconds(&c["lastUpdateTime"])? + deadline + 1 - seconds(&json!(now))?;
    Some(std::time::Duration::from_secs(left.max(0).unsigned_abs()))
}

/// The ReplicaSet name suffix a Deployment controller would derive from the pod template (the
/// `pod-template-hash` label of its ReplicaSet and pods).
pub fn template_hash(d: &Value) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let digest = Sha256::digest(d["spec"]["template"].to_string().as_bytes());
    digest
        .iter()
        .take(10)
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

fn condition(
    old: &Value,
    ty: &str,
    status: &str,
    reason: &str,
    message: String,
    now: &str,
) -> Value {
    let prev = old["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == ty);
    let same = |k: &str, v: &str| prev.is_some_and(|p| p[k] == v);
    let transition = if same("status", status) {
        prev.map(|p| p["lastTransitionTime"].clone())
            .unwrap_or(json!(now))
    } else {
        json!(now)
    };
    let update = if same("status", status)
        && same("reason", reason)
        && prev.is_some_and(|p| p["message"] == message)
    {
        prev.map(|p| p["lastUpdateTime"].clone())
            .unwrap_or(json!(now))
    } else {
        json!(now)
    };
    json!({"type": ty, "status": status, "lastUpdateTime": update, "lastTransitionTime": transition, "reason": reason, "message": message})
}
