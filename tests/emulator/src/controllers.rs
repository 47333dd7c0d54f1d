//! What kube-controller-manager would do: garbage collection by owner references, namespace
//! termination, Deployment status as if the pods became ready, and the bounds of
//! HorizontalPodAutoscalers.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::apply::{Manager, Operation};
use super::engines;
use super::ops::{self, DeleteOpts, Propagation, WriteOpts};
use super::resources::ResourceInfo;
use super::store::Store;

fn meta<'a>(o: &'a Value, k: &str) -> &'a str {
    o["metadata"][k].as_str().unwrap_or_default()
}

fn info_for(st: &Store, key: &str) -> Option<ResourceInfo> {
    st.resources
        .iter()
        .find(|r| r.storage_key() == key && r.group != "events.k8s.io")
        .cloned()
}

/// Runs every controller until nothing changes. Returns whether anything was written.
pub fn reconcile(st: &mut Store, deployments_ready: bool) -> bool {
    let mut any = false;
    for _ in 0..100 {
        let changed = garbage_collect(st)
            | terminate_namespaces(st)
            | deployment_status(st, deployments_ready)
            | autoscale(st);
        if !changed {
            break;
        }
        any = true;
    }
    any
}

enum Action {
    Delete(ResourceInfo, String, String, Option<Propagation>),
    SetOwners(ResourceInfo, String, String, Vec<Value>),
    RemoveFinalizer(ResourceInfo, String, String, &'static str),
}

fn garbage_collect(st: &mut Store) -> bool {
    let all = st.all_refs();
    // uid → (object, storage key) of everything that exists.
    let by_uid: HashMap<&str, (&Value, &str)> = all
        .iter()
        .map(|(k, o)| (meta(o, "uid"), (*o, *k)))
        .collect();
    let mut actions = vec![];
    // Owners whose dependents still block them (foreground) or still point at them (orphan).
    let mut blocking: HashSet<String> = HashSet::new();
    let mut referenced: HashSet<String> = HashSet::new();
    for (key, o) in &all {
        let Some(refs) = o["metadata"]["ownerReferences"]
            .as_array()
            .filter(|r| !r.is_empty())
        else {
            continue;
        };
        let Some(info) = info_for(st, key) else {
            continue;
        };
        let ns = meta(o, "namespace").to_string();
        let name = meta(o, "name").to_string();
        let deleting = o["metadata"]["deletionTimestamp"].is_string();
        let mut live_refs = vec![];
        let mut absent = 0;
        let mut foreground_owner = false;
        let mut orphaned = false;
        for r in refs {
            let uid = r["uid"].as_str().unwrap_or_default();
            let owner = by_uid.get(uid).filter(|(owner, okey)| {
                let Some(oinfo) = st.find_kind(
                    r["apiVersion"].as_str().unwrap_or_default(),
                    r["kind"].as_str().unwrap_or_default(),
                ) else {
                    return false;
                };
                // A namespaced dependent's owner must live in its namespace; cluster-scoped owners anywhere.
                oinfo.storage_key() == *okey
                    && meta(owner, "name") == r["name"].as_str().unwrap_or_default()
                    && (!oinfo.namespaced || meta(owner, "namespace") == ns)
            });
            match owner {
                None => absent += 1,
                Some((owner, _)) => {
                    let fins = ops::finalizers(owner);
                    let owner_deleting = owner["metadata"]["deletionTimestamp"].is_string();
                    if owner_deleting && fins.iter().any(|f| f == "orphan") {
                        orphaned = true;
                        referenced.insert(uid.to_string());
                        continue;
                    }
                    if owner_deleting && fins.iter().any(|f| f == "foregroundDeletion") {
                        foreground_owner = true;
                        if r["blockOwnerDeletion"] == true {
                            blocking.insert(uid.to_string());
                        }
                    }
                    live_refs.push(r.clone());
                }
            }
        }
        if orphaned {
            actions.push(Action::SetOwners(info, ns, name, live_refs));
            continue;
        }
        if deleting {
            continue;
        }
        if live_refs.is_empty()
            || (foreground_owner
                && live_refs.iter().all(|r| {
                    by_uid
                        .get(r["uid"].as_str().unwrap_or_default())
                        .is_some_and(|(o, _)| {
                            ops::finalizers(o).iter().any(|f| f == "foregroundDeletion")
                        })
                }))
        {
            let policy = if foreground_owner {
                Some(Propagation::Foreground)
            } else {
                None
            };
            actions.push(Action::Delete(info, ns, name, policy));
        } else if absent > 0 {
            actions.push(Action::SetOwners(info, ns, name, live_refs));
        }
    }
    for (key, o) in &all {
        if !o["metadata"]["deletionTimestamp"].is_string() {
            continue;
        }
        if !ops::finalizers(o)
            .iter()
            .any(|f| f == "orphan" || f == "foregroundDeletion")
        {
            continue;
        }
        let uid = meta(o, "uid");
        let fins = ops::finalizers(o);
        let Some(info) = info_for(st, key) else {
            continue;
        };
        let (ns, name) = (
            meta(o, "namespace").to_string(),
            meta(o, "name").to_string(),
        );
        if fins.iter().any(|f| f == "orphan") && !referenced.contains(uid) {
            actions.push(Action::RemoveFinalizer(
                info.clone(),
                ns.clone(),
                name.clone(),
                "orphan",
            ));
        }
        if fins.iter().any(|f| f == "foregroundDeletion") && !blocking.contains(uid) {
            actions.push(Action::RemoveFinalizer(
                info,
                ns,
                name,
                "foregroundDeletion",
            ));
        }
    }
    let changed = !actions.is_empty();
    for a in actions {
        match a {
            Action::Delete(info, ns, name, propagation) => {
                let _ = ops::delete(
                    st,
                    &info,
                    &ns,
                    &name,
                    &DeleteOpts {
                        propagation,
                        ..Default::default()
                    },
                );
            }
            Action::SetOwners(info, ns, name, refs) => {
                if let Some(mut o) = st.get(&info.storage_key(), &ns, &name).cloned() {
                    if refs.is_empty() {
                        o["metadata"]
                            .as_object_mut()
                            .map(|m| m.remove("ownerReferences"));
                    } else {
                        o["metadata"]["ownerReferences"] = json!(refs);
                    }
                    let _ = ops::update(
                        st,
                        &info,
                        &ns,
                        &name,
                        o,
                        &WriteOpts::internal("kube-controller-manager"),
                        false,
                    );
                }
            }
            Action::RemoveFinalizer(info, ns, name, f) => {
                ops::remove_finalizer(st, &info, &ns, &name, f)
            }
        }
    }
    changed
}

fn terminate_namespaces(st: &mut Store) -> bool {
    let mut changed = false;
    let terminating = st
        .all_refs()
        .iter()
        .any(|(k, o)| *k == "/namespaces" && o["metadata"]["deletionTimestamp"].is_string());
    if !terminating {
        return false;
    }
    for ns in st.list("/namespaces", None) {
        if !ns["metadata"]["deletionTimestamp"].is_string() {
            continue;
        }
        let name = meta(&ns, "name").to_string();
        let mut remaining = 0;
        for (key, o) in st.all() {
            if meta(&o, "namespace") != name {
                continue;
            }
            remaining += 1;
            if o["metadata"]["deletionTimestamp"].is_string() {
                continue;
            }
            if let Some(info) = info_for(st, &key) {
                let _ = ops::delete(st, &info, &name, meta(&o, "name"), &DeleteOpts::default());
                changed = true;
            }
        }
        if remaining == 0 && ops::finalizers(&ns).is_empty() {
            st.remove("/namespaces", "", &name);
            changed = true;
        }
    }
    changed
}

/// The ReplicaSet name suffix a Deployment controller would derive from the pod template.
fn template_hash(d: &Value) -> String {
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

/// The status a Deployment controller reports once its pods are (or are not) ready.
pub fn desired_deployment_status(d: &Value, ready: bool, now: &str) -> Value {
    let replicas = d["spec"]["replicas"].as_i64().unwrap_or(1);
    let rs = format!("{}-{}", meta(d, "name"), template_hash(d));
    let mut s = json!({"observedGeneration": d["metadata"]["generation"]});
    if replicas > 0 {
        s["replicas"] = json!(replicas);
        s["updatedReplicas"] = json!(replicas);
    }
    let available = ready || replicas == 0;
    if ready && replicas > 0 {
        s["readyReplicas"] = json!(replicas);
        s["availableReplicas"] = json!(replicas);
    } else if replicas > 0 {
        s["unavailableReplicas"] = json!(replicas);
    }
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
    let progressing = if available {
        condition(
            d,
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            format!("ReplicaSet \"{rs}\" has successfully progressed."),
            now,
        )
    } else {
        condition(
            d,
            "Progressing",
            "True",
            "ReplicaSetUpdated",
            format!("ReplicaSet \"{rs}\" is progressing."),
            now,
        )
    };
    s["conditions"] = json!([avail, progressing]);
    s
}

fn deployment_status(st: &mut Store, ready: bool) -> bool {
    let Some(info) = info_for(st, "apps/deployments") else {
        return false;
    };
    let now = ops::now();
    let mut changed = false;
    // Cheap check first (observed this generation, readiness as the switch says); clone only the rest.
    let todo: Vec<Value> = st
        .iter_key("apps/deployments")
        .filter(|d| {
            let s = &d["status"];
            let replicas = d["spec"]["replicas"].as_i64().unwrap_or(1);
            let ready_now = if replicas == 0 {
                s["readyReplicas"].is_null()
            } else {
                s["readyReplicas"].as_i64() == Some(replicas)
            };
            !(s["observedGeneration"] == d["metadata"]["generation"]
                && ready_now == (ready || replicas == 0)
                && s["conditions"].is_array())
        })
        .cloned()
        .collect();
    for d in todo {
        if d["metadata"]["deletionTimestamp"].is_string() {
            continue;
        }
        let status = desired_deployment_status(&d, ready, &now);
        if status == d["status"] {
            continue;
        }
        let mut o = d.clone();
        o["status"] = status;
        let opts = WriteOpts {
            subresource: Some("status".into()),
            ..WriteOpts::internal("kube-controller-manager")
        };
        let av = info.api_version();
        let m = Manager {
            name: "kube-controller-manager",
            operation: Operation::Update,
            subresource: Some("status"),
            api_version: &av,
            time: &now,
        };
        let o = engines::track_update(Some(&d), o, &m, &ops::merge_schema(&info));
        if ops::update(
            st,
            &info,
            meta(&d, "namespace"),
            meta(&d, "name"),
            o,
            &opts,
            true,
        )
        .is_ok()
        {
            changed = true;
        }
    }
    changed
}

const CONTROLLER_MANAGER: &str = "kube-controller-manager";

/// The HorizontalPodAutoscaler controller without a metrics server (none is emulated): like
/// kube-controller-manager's, it brings a Deployment below `minReplicas` or above `maxReplicas`
/// into range through the scale subresource (leaving a Deployment scaled to zero alone), and
/// reports the counts in the autoscaler's status. Metric-driven scaling is not emulated.
fn autoscale(st: &mut Store) -> bool {
    let (Some(hpa_info), Some(dep_info)) = (
        info_for(st, "autoscaling/horizontalpodautoscalers"),
        info_for(st, "apps/deployments"),
    ) else {
        return false;
    };
    let hpas: Vec<Value> = st
        .iter_key(&hpa_info.storage_key())
        .filter(|h| {
            let t = &h["spec"]["scaleTargetRef"];
            !h["metadata"]["deletionTimestamp"].is_string()
                && t["kind"] == "Deployment"
                && matches!(t["apiVersion"].as_str(), None | Some("apps/v1"))
        })
        .cloned()
        .collect();
    let now = ops::now();
    let mut changed = false;
    for h in hpas {
        let ns = meta(&h, "namespace");
        let target = h["spec"]["scaleTargetRef"]["name"]
            .as_str()
            .unwrap_or_default();
        let Some(d) = st.get(&dep_info.storage_key(), ns, target).cloned() else {
            continue;
        };
        let current = d["spec"]["replicas"].as_i64().unwrap_or(1);
        let min = h["spec"]["minReplicas"].as_i64().unwrap_or(1);
        let max = h["spec"]["maxReplicas"].as_i64().unwrap_or(min).max(min);
        let desired = if current == 0 {
            0
        } else {
            current.clamp(min, max)
        };
        let mut status = h["status"].clone();
        if desired != current {
            let scale = ops::scale_with_owners(&dep_info, &d);
            let mut next = scale.clone();
            next["spec"]["replicas"] = json!(desired);
            let m = Manager {
                name: CONTROLLER_MANAGER,
                operation: Operation::Update,
                subresource: Some("scale"),
                api_version: "autoscaling/v1",
                time: &now,
            };
            let new_scale = engines::track_update(Some(&scale), next, &m, &ops::scale_schema());
            let opts = WriteOpts {
                subresource: Some("scale".into()),
                ..WriteOpts::internal(CONTROLLER_MANAGER)
            };
            if ops::store_scale(st, &dep_info, ns, target, &d, &new_scale, &opts).is_ok() {
                changed = true;
                status["lastScaleTime"] = json!(now);
            }
        }
        match d["status"]["replicas"].as_i64().filter(|n| *n != 0) {
            Some(n) => status["currentReplicas"] = json!(n),
            None => {
                status.as_object_mut().map(|s| s.remove("currentReplicas"));
            }
        }
        status["desiredReplicas"] = json!(desired);
        if status == h["status"] {
            continue;
        }
        let mut o = h.clone();
        o["status"] = status;
        let opts = WriteOpts {
            subresource: Some("status".into()),
            ..WriteOpts::internal(CONTROLLER_MANAGER)
        };
        let av = hpa_info.api_version();
        let m = Manager {
            name: CONTROLLER_MANAGER,
            operation: Operation::Update,
            subresource: Some("status"),
            api_version: &av,
            time: &now,
        };
        let o = engines::track_update(Some(&h), o, &m, &ops::merge_schema(&hpa_info));
        if ops::update(st, &hpa_info, ns, meta(&h, "name"), o, &opts, true).is_ok() {
            changed = true;
        }
    }
    changed
}
