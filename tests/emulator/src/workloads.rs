//! What kube-controller-manager, kube-scheduler and a kubelet (kwok, on the real control plane)
//! do for Deployments: the Deployment controller keeps a ReplicaSet per pod template and rolls
//! from old to new within `maxSurge`/`maxUnavailable`; the ReplicaSet controller creates and
//! deletes pods; the scheduler binds each pod to a node it fits; the kubelet starts it (ready, or
//! still initialising while [`super::EmulatorHandle::set_deployments_ready`] holds pods back);
//! ReplicaSet and Deployment status are counted from the pods.
//!
//! The kubelet reports a pod once when it starts, and again only when the readiness switch
//! flips: a pod status written by anyone else (a test, as a kubelet whose containers fail would
//! write it) is the pod's status from then on, as kwok leaves a pod alone once its stages are done.
//!
//! The scheduler's choice and verdicts are the `scheduler` module's; a pod the ResourceQuota
//! admission (the `quota` module) refuses leaves its ReplicaSet (and so its Deployment) with a
//! `ReplicaFailure` condition; a rollout that makes no progress for `progressDeadlineSeconds`
//! is `Progressing=False` (`ProgressDeadlineExceeded`).
//!
//! Not emulated: adoption of orphaned pods, graceful deletion (a deleted pod goes at once, as
//! if its containers stopped at once), `minReadySeconds`, proportional scaling in the middle of a
//! rollout, and the Deployment's revision annotation.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Value, json};

use super::kinds;
use super::ops::{self, DeleteOpts, WriteOpts};
use super::resources::ResourceInfo;
use super::scheduler;
use super::store::{ObjectRef, Store};

pub const DEPLOYMENTS: &str = "apps/deployments";
pub const REPLICA_SETS: &str = "apps/replicasets";
pub const PODS: &str = "/pods";

const CONTROLLER_MANAGER: &str = "kube-controller-manager";
const SCHEDULER: &str = "kube-scheduler";
const KUBELET: &str = "kubelet";

const TEMPLATE_HASH: &str = "pod-template-hash";
const REVISION: &str = "deployment.kubernetes.io/revision";

/// (namespace, name) of objects one kind of controller looks at.
pub type Names = BTreeSet<(String, String)>;

/// ReplicaSets whose pods could not be created: the reason (`FailedCreate`) and the API's error.
type Failures = BTreeMap<(String, String), (&'static str, String)>;

/// How soon the ReplicaSet controller tries again after a failed create (its work queue backs
/// off from milliseconds; a quota or admission that said no may have changed by then).
const CREATE_RETRY: Duration = Duration::from_secs(1);

fn meta<'a>(o: &'a Value, k: &str) -> &'a str {
    o["metadata"][k].as_str().unwrap_or_default()
}

fn is_deleting(o: &Value) -> bool {
    o["metadata"]["deletionTimestamp"].is_string()
}

/// The name of the object's controller of this kind, from its controller owner reference.
pub fn controller_of<'a>(o: &'a Value, kind: &str) -> Option<&'a str> {
    o["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"] == true && r["kind"] == kind)
        .and_then(|r| r["name"].as_str())
}

fn controlled_by<'a>(st: &'a Store, key: &'a str, owner: &'a Value) -> Vec<&'a Value> {
    let uid = meta(owner, "uid");
    st.dependents_of(uid)
        .into_iter()
        .filter(|r| r.key == key)
        .filter_map(|r| st.get(&r.key, &r.ns, &r.name))
        .filter(|o| {
            o["metadata"]["ownerReferences"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|r| r["controller"] == true && r["uid"] == uid)
        })
        .collect()
}

pub(crate) fn pod_ready(p: &Value) -> bool {
    p["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

fn replicas(o: &Value) -> i64 {
    o["spec"]["replicas"].as_i64().unwrap_or(1)
}

fn status_count(o: &Value, k: &str) -> i64 {
    o["status"][k].as_i64().unwrap_or(0)
}

/// Writes `new` over the stored object as `manager` would, through `subresource`.
fn write(
    st: &mut Store,
    info: &ResourceInfo,
    new: Value,
    manager: &str,
    subresource: Option<&str>,
) -> bool {
    let (ns, name) = (
        meta(&new, "namespace").to_owned(),
        meta(&new, "name").to_owned(),
    );
    let opts = WriteOpts {
        subresource: subresource.map(str::to_owned),
        ..WriteOpts::internal(manager)
    };
    ops::update(st, info, &ns, &name, new, &opts, false).is_ok()
}

/// The registered resource of a storage key.
fn info(st: &Store, key: &str) -> Option<ResourceInfo> {
    st.resources
        .iter()
        .find(|r| r.storage_key() == key && r.storage().is_none())
        .cloned()
}

/// One round of the workload controllers over what changed: Deployments, then their ReplicaSets,
/// then the pods, then the status of each, so that a new Deployment's ReplicaSet, pods and
/// status are written in one round. Returns whether anything was written.
pub fn sync(
    st: &mut Store,
    ready: bool,
    deployments: &Names,
    replica_sets: &Names,
    pods: &Names,
    all_pods: bool,
) -> bool {
    let (Some(d_info), Some(rs_info), Some(pod_info)) = (
        info(st, DEPLOYMENTS),
        info(st, REPLICA_SETS),
        info(st, PODS),
    ) else {
        return false;
    };
    let mut changed = false;
    let mut deployments = deployments.clone();
    let mut replica_sets = replica_sets.clone();
    let mut pods = pods.clone();
    if all_pods {
        pods.extend(
            st.iter_key(PODS)
                .map(|p| (meta(p, "namespace").to_owned(), meta(p, "name").to_owned())),
        );
    }
    // Owners of what changed.
    for (ns, name) in &pods {
        if let Some(rs) = st
            .get(PODS, ns, name)
            .and_then(|p| controller_of(p, "ReplicaSet"))
        {
            replica_sets.insert((ns.clone(), rs.to_owned()));
        }
    }
    for (ns, name) in &replica_sets {
        if let Some(d) = st
            .get(REPLICA_SETS, ns, name)
            .and_then(|rs| controller_of(rs, "Deployment"))
        {
            deployments.insert((ns.clone(), d.to_owned()));
        }
    }
    for (ns, name) in &deployments {
        changed |= sync_deployment(st, &rs_info, ns, name, &mut replica_sets);
    }
    // Why a ReplicaSet could not create (or delete) its pods this round.
    let mut failures: Failures = BTreeMap::new();
    for (ns, name) in &replica_sets {
        changed |= sync_replica_set(st, &pod_info, ns, name, &mut pods, &mut failures);
    }
    for (ns, name) in &pods {
        changed |= run_pod(st, &pod_info, ready, ns, name);
    }
    for (ns, name) in &replica_sets {
        let failure = failures.get(&(ns.clone(), name.clone()));
        changed |= replica_set_status(st, &rs_info, ns, name, failure);
    }
    for (ns, name) in &deployments {
        changed |= deployment_status(st, &d_info, ns, name);
    }
    changed
}

/// The Deployment controller's sync: the new ReplicaSet exists, and the ReplicaSets' replicas
/// move towards the template's within the strategy's bounds.
fn sync_deployment(
    st: &mut Store,
    rs_info: &ResourceInfo,
    ns: &str,
    name: &str,
    touched: &mut Names,
) -> bool {
    let Some(d) = st.get_shared(DEPLOYMENTS, ns, name) else {
        return false;
    };
    if is_deleting(&d) {
        return false;
    }
    let hash = kinds::deployment::template_hash(&d);
    let desired = replicas(&d);
    let owned: Vec<Value> = controlled_by(st, REPLICA_SETS, &d)
        .into_iter()
        .filter(|rs| !is_deleting(rs))
        .cloned()
        .collect();
    let new_rs = owned
        .iter()
        .find(|rs| rs["metadata"]["labels"][TEMPLATE_HASH] == hash.as_str());
    let mut olds: Vec<&Value> = owned
        .iter()
        .filter(|rs| rs["metadata"]["labels"][TEMPLATE_HASH] != hash.as_str())
        .collect();
    olds.sort_by_key(|rs| {
        (
            meta(rs, "creationTimestamp").to_owned(),
            meta(rs, "name").to_owned(),
        )
    });
    let old_total: i64 = olds.iter().map(|rs| replicas(rs)).sum();
    let recreate = d["spec"]["strategy"]["type"] == "Recreate";
    let (surge, unavailable) = kinds::deployment::surge_and_unavailable(&d);
    let paused = d["spec"]["paused"] == true;
    // How many replicas the new ReplicaSet may have now.
    let current_new = new_rs.map_or(0, replicas);
    let target_new = if paused {
        current_new
    } else if old_total == 0 {
        desired
    } else if recreate {
        let old_pods: usize = olds
            .iter()
            .map(|rs| controlled_by(st, PODS, rs).len())
            .sum();
        if old_pods == 0 { desired } else { 0 }
    } else if current_new > desired {
        desired
    } else {
        let room = (desired + surge - old_total - current_new).max(0);
        (current_new + room).min(desired)
    };
    let mut changed = false;
    match new_rs {
        None => {
            let revision = owned
                .iter()
                .filter_map(|rs| {
                    rs["metadata"]["annotations"][REVISION]
                        .as_str()?
                        .parse::<i64>()
                        .ok()
                })
                .max()
                .unwrap_or(0)
                + 1;
            changed |= create_replica_set(st, rs_info, &d, &hash, target_new, revision, touched);
        }
        Some(rs) if replicas(rs) != target_new => {
            let mut rs = rs.clone();
            rs["spec"]["replicas"] = json!(target_new);
            touched.insert((ns.to_owned(), meta(&rs, "name").to_owned()));
            changed |= write(st, rs_info, rs, CONTROLLER_MANAGER, None);
        }
        Some(_) => {}
    }
    if paused || olds.is_empty() {
        return changed;
    }
    // Scale old ReplicaSets down as far as availability allows: unavailable replicas first.
    let new_unavailable = new_rs.map_or(target_new, |rs| {
        (target_new - status_count(rs, "availableReplicas")).max(0)
    });
    let all = old_total + target_new;
    let min_available = desired - unavailable;
    let mut budget = if recreate {
        old_total
    } else {
        (all - min_available - new_unavailable).max(0)
    };
    let mut scaled: Vec<(Value, i64)> = vec![];
    for unhealthy_first in [true, false] {
        for rs in &olds {
            let at = scaled
                .iter()
                .find(|(s, _)| meta(s, "name") == meta(rs, "name"))
                .map_or(replicas(rs), |(_, n)| *n);
            let unhealthy = (at - status_count(rs, "availableReplicas")).max(0);
            let down = if unhealthy_first {
                unhealthy.min(at)
            } else {
                at
            }
            .min(budget);
            if down == 0 {
                continue;
            }
            budget -= down;
            match scaled
                .iter_mut()
                .find(|(s, _)| meta(s, "name") == meta(rs, "name"))
            {
                Some(entry) => entry.1 = at - down,
                None => scaled.push(((*rs).clone(), at - down)),
            }
        }
    }
    for (mut rs, n) in scaled {
        rs["spec"]["replicas"] = json!(n);
        touched.insert((ns.to_owned(), meta(&rs, "name").to_owned()));
        changed |= write(st, rs_info, rs, CONTROLLER_MANAGER, None);
    }
    changed |= clean_up_history(st, &d, &olds);
    changed
}

/// Old ReplicaSets scaled to zero beyond `revisionHistoryLimit`, oldest first, are deleted.
fn clean_up_history(st: &mut Store, d: &Value, olds: &[&Value]) -> bool {
    let limit = d["spec"]["revisionHistoryLimit"]
        .as_i64()
        .unwrap_or(10)
        .max(0) as usize;
    let idle: Vec<String> = olds
        .iter()
        .filter(|rs| replicas(rs) == 0 && status_count(rs, "replicas") == 0)
        .map(|rs| meta(rs, "name").to_owned())
        .collect();
    if idle.len() <= limit {
        return false;
    }
    let Some(rs_info) = info(st, REPLICA_SETS) else {
        return false;
    };
    let ns = meta(d, "namespace").to_owned();
    for name in &idle[..idle.len() - limit] {
        let _ = ops::delete(st, &rs_info, &ns, name, &DeleteOpts::default());
    }
    true
}

fn create_replica_set(
    st: &mut Store,
    rs_info: &ResourceInfo,
    d: &Value,
    hash: &str,
    replicas: i64,
    revision: i64,
    touched: &mut Names,
) -> bool {
    let ns = meta(d, "namespace");
    let name = format!("{}-{hash}", meta(d, "name"));
    let mut template = d["spec"]["template"].clone();
    template["metadata"]["labels"][TEMPLATE_HASH] = json!(hash);
    let mut selector = d["spec"]["selector"].clone();
    selector["matchLabels"][TEMPLATE_HASH] = json!(hash);
    let mut labels = template["metadata"]["labels"].clone();
    labels[TEMPLATE_HASH] = json!(hash);
    let rs = json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": labels,
            "annotations": {
                "deployment.kubernetes.io/desired-replicas": replicas_text(d),
                "deployment.kubernetes.io/max-replicas": max_replicas_text(d),
                REVISION: revision.to_string(),
            },
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "Deployment", "name": meta(d, "name"),
                "uid": meta(d, "uid"), "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "spec": {
            "replicas": replicas,
            "minReadySeconds": d["spec"]["minReadySeconds"].as_i64().unwrap_or(0),
            "selector": selector,
            "template": template,
        },
    });
    let created = ops::create(
        st,
        rs_info,
        ns,
        rs,
        &WriteOpts::internal(CONTROLLER_MANAGER),
        false,
    )
    .is_ok();
    if created {
        touched.insert((ns.to_owned(), name));
    }
    created
}

fn replicas_text(d: &Value) -> String {
    replicas(d).to_string()
}

fn max_replicas_text(d: &Value) -> String {
    (replicas(d) + kinds::deployment::surge_and_unavailable(d).0).to_string()
}

/// The ReplicaSet controller's sync: as many live pods as `spec.replicas`, made from the
/// template; surplus pods go unscheduled first, then pending, then not ready, then newest.
fn sync_replica_set(
    st: &mut Store,
    pod_info: &ResourceInfo,
    ns: &str,
    name: &str,
    new_pods: &mut Names,
    failures: &mut Failures,
) -> bool {
    let Some(rs) = st.get_shared(REPLICA_SETS, ns, name) else {
        return false;
    };
    if is_deleting(&rs) {
        return false;
    }
    let mut live: Vec<Value> = controlled_by(st, PODS, &rs)
        .into_iter()
        .filter(|p| {
            !is_deleting(p)
                && !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
        })
        .cloned()
        .collect();
    let want = replicas(&rs);
    let have = live.len() as i64;
    let mut changed = false;
    if have < want {
        for _ in have..want {
            match create_pod(st, pod_info, &rs) {
                Ok(pod) => {
                    new_pods.insert((ns.to_owned(), pod));
                    changed = true;
                }
                // The rest of the batch is skipped, and the ReplicaSet tried again later.
                Err(e) => {
                    failures.insert((ns.to_owned(), name.to_owned()), ("FailedCreate", e));
                    st.requeue_after(
                        ObjectRef {
                            key: REPLICA_SETS.into(),
                            ns: ns.into(),
                            name: name.into(),
                        },
                        CREATE_RETRY,
                    );
                    break;
                }
            }
        }
    } else if have > want {
        live.sort_by_key(|p| {
            (
                !p["spec"]["nodeName"].as_str().is_none_or(str::is_empty),
                p["status"]["phase"] != "Pending",
                pod_ready(p),
                std::cmp::Reverse(meta(p, "creationTimestamp").to_owned()),
            )
        });
        for p in live.iter().take((have - want) as usize) {
            let _ = ops::delete(st, pod_info, ns, meta(p, "name"), &DeleteOpts::default());
            changed = true;
        }
    }
    changed
}

/// Creates one pod of the ReplicaSet: its name, or the API's error message.
fn create_pod(st: &mut Store, pod_info: &ResourceInfo, rs: &Value) -> Result<String, String> {
    let ns = meta(rs, "namespace");
    let t = &rs["spec"]["template"];
    let mut metadata = json!({
        "generateName": format!("{}-", meta(rs, "name")),
        "namespace": ns,
        "ownerReferences": [{
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": meta(rs, "name"),
            "uid": meta(rs, "uid"), "controller": true, "blockOwnerDeletion": true,
        }],
    });
    for k in ["labels", "annotations"] {
        if t["metadata"][k].is_object() {
            metadata[k] = t["metadata"][k].clone();
        }
    }
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": t["spec"]});
    let (stored, _) = ops::create(
        st,
        pod_info,
        ns,
        pod,
        &WriteOpts::internal(CONTROLLER_MANAGER),
        false,
    )
    .map_err(|e| e.message)?;
    Ok(meta(&stored, "name").to_owned())
}

/// Whether only the kubelet (and the scheduler, with its verdict) has written this pod's status,
/// or nobody yet.
fn kubelet_owns_status(p: &Value) -> bool {
    p["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["subresource"] == "status")
        .all(|m| m["manager"] == KUBELET || m["manager"] == SCHEDULER)
}

/// How soon the scheduler tries an unschedulable pod again (kube-scheduler retries on cluster
/// events, such as a pod leaving a node, and after a back-off).
const SCHEDULING_RETRY: Duration = Duration::from_secs(1);

/// The scheduler binds an unbound pod to a node it fits, or says why it fits none; the kubelet
/// then reports it started: Running and ready, or Pending with its containers still
/// initialising while pods are held back.
fn run_pod(st: &mut Store, pod_info: &ResourceInfo, ready: bool, ns: &str, name: &str) -> bool {
    let Some(p) = st.get_shared(PODS, ns, name) else {
        return false;
    };
    if is_deleting(&p) {
        return false;
    }
    let mut changed = false;
    let mut p = p;
    if p["spec"]["nodeName"].as_str().is_none_or(str::is_empty) {
        if p["spec"]["schedulerName"] != "default-scheduler" {
            return false;
        }
        let node = match scheduler::place(st, &p) {
            Ok(node) => node,
            Err(message) => {
                st.requeue_after(
                    ObjectRef {
                        key: PODS.into(),
                        ns: ns.into(),
                        name: name.into(),
                    },
                    SCHEDULING_RETRY,
                );
                return unschedulable(st, pod_info, &p, &message);
            }
        };
        let mut bound = (*p).clone();
        bound["spec"]["nodeName"] = json!(node);
        if !write(st, pod_info, bound, SCHEDULER, None) {
            return false;
        }
        changed = true;
        match st.get_shared(PODS, ns, name) {
            Some(now) => p = now,
            None => return changed,
        }
    }
    let Some(node) = p["spec"]["nodeName"].as_str().and_then(scheduler::node) else {
        return changed;
    };
    if !kubelet_owns_status(&p) {
        return changed;
    }
    let phase = if ready { "Running" } else { "Pending" };
    if p["status"]["phase"] == phase
        && pod_ready(&p) == ready
        && p["status"]["startTime"].is_string()
    {
        return changed;
    }
    let ip = st.allocate_pod_ip();
    let mut o = (*p).clone();
    o["status"] = kubelet_status(&p, node.ip, ready, &ip, &ops::now());
    changed | write(st, pod_info, o, KUBELET, Some("status"))
}

/// The scheduler's verdict on a pod that fits no node, written when it changes.
fn unschedulable(st: &mut Store, pod_info: &ResourceInfo, p: &Value, message: &str) -> bool {
    let scheduled = p["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "PodScheduled");
    if scheduled.is_some_and(|c| {
        c["status"] == "False" && c["reason"] == "Unschedulable" && c["message"] == message
    }) {
        return false;
    }
    let mut o = p.clone();
    o["status"]["conditions"] = json!([{
        "type": "PodScheduled", "status": "False", "lastProbeTime": null,
        "lastTransitionTime": ops::now(), "reason": "Unschedulable", "message": message,
    }]);
    write(st, pod_info, o, SCHEDULER, Some("status"))
}

/// What a kubelet reports of a pod whose containers all start (ready), or whose containers are
/// still being created (not ready).
fn kubelet_status(p: &Value, node_ip: &str, ready: bool, ip: &str, now: &str) -> Value {
    let spec = &p["spec"];
    let image = |c: &Value| c["image"].clone();
    let inits = spec["initContainers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let init_statuses: Vec<Value> = inits
        .iter()
        .map(|c| {
            let sidecar = c["restartPolicy"] == "Always";
            let state = if !ready {
                json!({"waiting": {"reason": "PodInitializing"}})
            } else if sidecar {
                json!({"running": {"startedAt": now}})
            } else {
                json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}})
            };
            json!({"name": c["name"], "image": image(c), "imageID": "", "ready": ready,
                "restartCount": 0, "started": ready && sidecar, "state": state})
        })
        .collect();
    let waiting = if inits.is_empty() {
        "ContainerCreating"
    } else {
        "PodInitializing"
    };
    let statuses: Vec<Value> = spec["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let state = if ready {
                json!({"running": {"startedAt": now}})
            } else {
                json!({"waiting": {"reason": waiting}})
            };
            json!({"name": c["name"], "image": image(c), "imageID": "", "ready": ready,
                "restartCount": 0, "started": ready, "state": state})
        })
        .collect();
    let names = |list: &[Value]| {
        list.iter()
            .map(|c| c["name"].as_str().unwrap_or_default())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let cond = |t: &str, ok: bool, why: Option<(&str, String)>| {
        let mut c = json!({"type": t, "status": if ok { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": now});
        if let Some((reason, message)) = why.filter(|_| !ok) {
            c["reason"] = json!(reason);
            c["message"] = json!(message);
        }
        c
    };
    let containers = spec["containers"].as_array().cloned().unwrap_or_default();
    let initialized = ready || inits.is_empty();
    let not_ready = Some((
        "ContainersNotReady",
        format!("containers with unready status: [{}]", names(&containers)),
    ));
    let mut status = json!({
        "phase": if ready { "Running" } else { "Pending" },
        "conditions": [
            cond("PodReadyToStartContainers", true, None),
            cond("Initialized", initialized, Some(("ContainersNotInitialized",
                format!("containers with incomplete status: [{}]", names(&inits))))),
            cond("Ready", ready, not_ready.clone()),
            cond("ContainersReady", ready, not_ready),
            cond("PodScheduled", true, None),
        ],
        "hostIP": node_ip,
        "hostIPs": [{"ip": node_ip}],
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": now,
        "containerStatuses": statuses,
        "qosClass": p["status"]["qosClass"],
    });
    if !init_statuses.is_empty() {
        status["initContainerStatuses"] = json!(init_statuses);
    }
    status
}

/// The ReplicaSet controller's status: the live pods, how many are ready, and a `ReplicaFailure`
/// condition while pods cannot be created (set with the first error, gone after a round
/// without one).
fn replica_set_status(
    st: &mut Store,
    rs_info: &ResourceInfo,
    ns: &str,
    name: &str,
    failure: Option<&(&str, String)>,
) -> bool {
    let Some(rs) = st.get_shared(REPLICA_SETS, ns, name) else {
        return false;
    };
    if is_deleting(&rs) {
        return false;
    }
    let pods: Vec<&Value> = controlled_by(st, PODS, &rs)
        .into_iter()
        .filter(|p| {
            !is_deleting(p)
                && !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
        })
        .collect();
    let ready = pods.iter().filter(|p| pod_ready(p)).count();
    let mut status = json!({"replicas": pods.len()});
    for (k, n) in [
        ("fullyLabeledReplicas", pods.len()),
        ("readyReplicas", ready),
        ("availableReplicas", ready),
    ] {
        if n > 0 {
            status[k] = json!(n);
        }
    }
    status["observedGeneration"] = rs["metadata"]["generation"].clone();
    let failed = rs["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "ReplicaFailure");
    match (failed, failure) {
        (Some(c), Some(_)) => status["conditions"] = json!([c]),
        (None, Some((reason, message))) => {
            status["conditions"] = json!([{"type": "ReplicaFailure", "status": "True",
                "lastTransitionTime": ops::now(), "reason": reason, "message": message}]);
        }
        (_, None) => {}
    }
    if status == rs["status"] {
        return false;
    }
    let mut o = (*rs).clone();
    o["status"] = status;
    write(st, rs_info, o, CONTROLLER_MANAGER, Some("status"))
}

/// The Deployment controller's status, counted from its ReplicaSets.
fn deployment_status(st: &mut Store, d_info: &ResourceInfo, ns: &str, name: &str) -> bool {
    let Some(d) = st.get_shared(DEPLOYMENTS, ns, name) else {
        return false;
    };
    if is_deleting(&d) {
        return false;
    }
    let hash = kinds::deployment::template_hash(&d);
    let owned = controlled_by(st, REPLICA_SETS, &d);
    let sum = |k: &str| owned.iter().map(|rs| status_count(rs, k)).sum::<i64>();
    let new_rs = owned
        .iter()
        .find(|rs| rs["metadata"]["labels"][TEMPLATE_HASH] == hash.as_str());
    let counts = kinds::deployment::Counts {
        replicas: sum("replicas"),
        updated: new_rs.map_or(0, |rs| status_count(rs, "replicas")),
        ready: sum("readyReplicas"),
        available: sum("availableReplicas"),
        wanted: owned.iter().map(|rs| replicas(rs)).sum(),
        failure: new_rs
            .into_iter()
            .chain(owned.iter())
            .filter_map(|rs| rs["status"]["conditions"].as_array())
            .flatten()
            .find(|c| c["type"] == "ReplicaFailure")
            .cloned(),
    };
    let now = ops::now();
    let status = kinds::deployment::status(&d, &counts, &now);
    let mut o = (*d).clone();
    let changed = status != d["status"];
    o["status"] = status;
    if let Some(left) = kinds::deployment::until_deadline(&o, &now) {
        st.requeue_after(
            ObjectRef {
                key: DEPLOYMENTS.into(),
                ns: ns.into(),
                name: name.into(),
            },
            left,
        );
    }
    changed && write(st, d_info, o, CONTROLLER_MANAGER, Some("status"))
}

/// What changed objects ask of these controllers: (Deployments, ReplicaSets, pods).
pub fn interest(r: &ObjectRef, o: &Value, gone: bool) -> Option<(&'static str, (String, String))> {
    let name = (r.ns.clone(), r.name.clone());
    match r.key.as_str() {
        DEPLOYMENTS if !gone => Some((DEPLOYMENTS, name)),
        REPLICA_SETS if !gone => Some((REPLICA_SETS, name)),
        REPLICA_SETS => {
            controller_of(o, "Deployment").map(|d| (DEPLOYMENTS, (r.ns.clone(), d.to_owned())))
        }
        PODS if !gone => Some((PODS, name)),
        PODS => {
            controller_of(o, "ReplicaSet").map(|rs| (REPLICA_SETS, (r.ns.clone(), rs.to_owned())))
        }
        _ => None,
    }
}
