//! What kube-controller-manager would do: garbage collection by owner references, namespace
//! termination, the workload controllers (Deployments, ReplicaSets and their pods, in
//! `workloads`), the EndpointSlices of Services (`endpointslices`), and the bounds of
//! HorizontalPodAutoscalers.
//!
//! Like kube-controller-manager's controllers, these are driven by the changes the store records
//! (its informers' events), not by scans: each round looks only at the objects that changed and at
//! their owners and dependents, found through the store's indexes.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::{Value, json};

use super::apply::{Manager, Operation};
use super::endpointslices;
use super::engines;
use super::ops::{self, DeleteOpts, Propagation, WriteOpts};
use super::quota;
use super::resources::ResourceInfo;
use super::store::{Change, EventType, ObjectRef, Store};
use super::workloads;

fn meta<'a>(o: &'a Value, k: &str) -> &'a str {
    o["metadata"][k].as_str().unwrap_or_default()
}

fn info_for(st: &Store, key: &str) -> Option<ResourceInfo> {
    st.resources
        .iter()
        .find(|r| r.storage_key() == key && r.storage().is_none())
        .cloned()
}

fn is_deleting(o: &Value) -> bool {
    o["metadata"]["deletionTimestamp"].is_string()
}

fn owner_uids(o: &Value) -> impl Iterator<Item = &str> {
    o["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["uid"].as_str())
}

/// How many rounds one call runs at most; what is left stays pending for the next call.
const ROUNDS: usize = 1000;

/// Runs every controller on the changes recorded since the last call, and on the changes their own
/// writes make, until nothing is left. `all_pods` has the kubelet look at every pod (the pods'
/// readiness switched). Returns whether anything was written.
pub fn reconcile(st: &mut Store, pods_ready: bool, all_pods: bool) -> bool {
    let mut any = false;
    let mut all_pods = all_pods;
    let mut due = st.take_due();
    for _ in 0..ROUNDS {
        let changes = st.take_pending();
        if changes.is_empty() && !all_pods && due.is_empty() {
            break;
        }
        let mut work = Work::default();
        for c in &changes {
            work.add(st, c);
        }
        for r in std::mem::take(&mut due) {
            work.requeued(st, r);
        }
        let changed = garbage_collect(st, &work)
            | terminate_namespaces(st, &work)
            | workloads::sync(
                st,
                pods_ready,
                &work.deployments,
                &work.replica_sets,
                &work.pods,
                std::mem::take(&mut all_pods),
            )
            | endpointslices::sync(st, &work.services)
            | autoscale(st, &work.autoscalers)
            | quota::sync(st, &work.quota_namespaces);
        any |= changed;
    }
    any
}

/// What one round of changes asks the controllers to look at.
#[derive(Default)]
struct Work {
    /// Objects whose owner references need checking (they changed, or an owner did).
    dependents: BTreeSet<ObjectRef>,
    /// UIDs of objects being deleted whose orphan/foregroundDeletion finalizer may be done.
    owners: BTreeSet<String>,
    /// Terminating namespaces whose every object must go (the namespace itself changed).
    namespaces_all: BTreeSet<String>,
    /// Objects that changed in a terminating namespace.
    in_terminating: BTreeSet<ObjectRef>,
    /// Terminating namespaces that may have become empty.
    namespaces_check: BTreeSet<String>,
    /// Deployments, ReplicaSets and pods the workload controllers look at.
    deployments: workloads::Names,
    replica_sets: workloads::Names,
    pods: workloads::Names,
    /// Services whose EndpointSlices may be out of date.
    services: BTreeSet<(String, String)>,
    /// HorizontalPodAutoscalers that changed or whose target Deployment did.
    autoscalers: BTreeSet<(String, String)>,
    /// Namespaces whose pods or quotas changed: their quotas' usage is recounted.
    quota_namespaces: BTreeSet<String>,
}

impl Work {
    /// An object a controller asked to look at again (a progress deadline, a failed create).
    fn requeued(&mut self, st: &Store, r: ObjectRef) {
        if let Some(o) = st.get(&r.key, &r.ns, &r.name)
            && let Some((key, name)) = workloads::interest(&r, o, false)
        {
            self.workload(key, name);
        }
    }

    fn workload(&mut self, key: &str, name: (String, String)) {
        match key {
            workloads::DEPLOYMENTS => self.deployments.insert(name),
            workloads::REPLICA_SETS => self.replica_sets.insert(name),
            _ => self.pods.insert(name),
        };
    }

    fn add(&mut self, st: &Store, c: &Arc<Change>) {
        let o = &c.object;
        let r = ObjectRef {
            key: c.key.clone(),
            ns: meta(o, "namespace").to_string(),
            name: meta(o, "name").to_string(),
        };
        let gone = c.kind == EventType::Deleted;
        // The garbage collector: the object as a dependent, as an owner, and its owners.
        if !gone {
            self.dependents.insert(r.clone());
        }
        let uid = meta(o, "uid");
        if gone || is_deleting(o) {
            self.dependents.extend(st.dependents_of(uid));
        }
        if !gone && is_deleting(o) {
            self.owners.insert(uid.to_string());
        }
        for owner in owner_uids(o).chain(c.old.iter().flat_map(|old| owner_uids(old))) {
            self.owners.insert(owner.to_string());
        }
        // The namespace controller.
        if c.key == "/namespaces" {
            if !gone && is_deleting(o) {
                self.namespaces_all.insert(r.name.clone());
                self.namespaces_check.insert(r.name.clone());
            }
        } else if !r.ns.is_empty() && st.get("/namespaces", "", &r.ns).is_some_and(is_deleting) {
            self.namespaces_check.insert(r.ns.clone());
            if !gone {
                self.in_terminating.insert(r.clone());
            }
        }
        // The HorizontalPodAutoscaler controller: autoscalers of the namespace that target it.
        if c.key == HPA_KEY && !gone {
            self.autoscalers.insert((r.ns.clone(), r.name.clone()));
        }
        if c.key == "apps/deployments" {
            self.autoscalers.extend(
                st.iter(HPA_KEY, Some(&r.ns))
                    .filter(|h| h["spec"]["scaleTargetRef"]["name"] == r.name.as_str())
                    .map(|h| (r.ns.clone(), meta(h, "name").to_string())),
            );
        }
        // The EndpointSlice controller.
        endpointslices::interest(st, c, &mut self.services);
        // The ResourceQuota controller.
        if c.key == workloads::PODS || c.key == quota::QUOTAS {
            self.quota_namespaces.insert(r.ns.clone());
        }
        // The Deployment and ReplicaSet controllers, the scheduler and the kubelet.
        if let Some((key, name)) = workloads::interest(&r, o, gone) {
            self.workload(key, name);
        }
    }
}

enum Action {
    Delete(ResourceInfo, String, String, Option<Propagation>),
    SetOwners(ResourceInfo, String, String, Vec<Value>),
    RemoveFinalizer(ResourceInfo, String, String, &'static str),
}

/// The owner a reference names, when it exists as referenced: the same UID, kind and name, and for
/// a namespaced owner the dependent's namespace (cluster-scoped owners may be anywhere).
fn resolve_owner<'a>(st: &'a Store, r: &Value, dependent_ns: &str) -> Option<&'a Value> {
    let (at, owner) = st.by_uid(r["uid"].as_str().unwrap_or_default())?;
    let oinfo = st.find_kind(
        r["apiVersion"].as_str().unwrap_or_default(),
        r["kind"].as_str().unwrap_or_default(),
    )?;
    (oinfo.storage_key() == at.key
        && meta(owner, "name") == r["name"].as_str().unwrap_or_default()
        && (!oinfo.namespaced || meta(owner, "namespace") == dependent_ns))
        .then_some(owner)
}

fn has_finalizer(o: &Value, f: &str) -> bool {
    ops::finalizers(o).iter().any(|x| x == f)
}

/// What the garbage collector does to one dependent: delete it when its owners are gone (or all
/// are being deleted in the foreground), drop the references to absent or orphaning owners.
fn check_dependent(st: &Store, r: &ObjectRef) -> Option<Action> {
    let o = st.get(&r.key, &r.ns, &r.name)?;
    let refs = o["metadata"]["ownerReferences"]
        .as_array()
        .filter(|r| !r.is_empty())?;
    let info = info_for(st, &r.key)?;
    let ns = r.ns.clone();
    let name = r.name.clone();
    let mut live_refs = vec![];
    let mut absent = 0;
    let mut foreground_owner = false;
    let mut orphaned = false;
    for owner_ref in refs {
        match resolve_owner(st, owner_ref, &ns) {
            None => absent += 1,
            Some(owner) => {
                let owner_deleting = is_deleting(owner);
                if owner_deleting && has_finalizer(owner, "orphan") {
                    orphaned = true;
                    continue;
                }
                if owner_deleting && has_finalizer(owner, "foregroundDeletion") {
                    foreground_owner = true;
                }
                live_refs.push(owner_ref.clone());
            }
        }
    }
    if orphaned {
        return Some(Action::SetOwners(info, ns, name, live_refs));
    }
    if is_deleting(o) {
        return None;
    }
    if live_refs.is_empty()
        || (foreground_owner
            && live_refs.iter().all(|r| {
                st.by_uid(r["uid"].as_str().unwrap_or_default())
                    .is_some_and(|(_, o)| has_finalizer(o, "foregroundDeletion"))
            }))
    {
        let policy = foreground_owner.then_some(Propagation::Foreground);
        Some(Action::Delete(info, ns, name, policy))
    } else if absent > 0 {
        Some(Action::SetOwners(info, ns, name, live_refs))
    } else {
        None
    }
}

/// Whether an owner being deleted may drop its `orphan` / `foregroundDeletion` finalizer: no
/// dependent still references it (orphan), no dependent blocks it (foreground).
fn check_owner(st: &Store, uid: &str, actions: &mut Vec<Action>) {
    let Some((at, o)) = st.by_uid(uid) else {
        return;
    };
    if !is_deleting(o) {
        return;
    }
    let orphan = has_finalizer(o, "orphan");
    let foreground = has_finalizer(o, "foregroundDeletion");
    if !orphan && !foreground {
        return;
    }
    let Some(info) = info_for(st, &at.key) else {
        return;
    };
    let (mut referenced, mut blocking) = (false, false);
    for d in st.dependents_of(uid) {
        let Some(dep) = st.get(&d.key, &d.ns, &d.name) else {
            continue;
        };
        for r in dep["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if r["uid"] != uid || resolve_owner(st, r, &d.ns).is_none() {
                continue;
            }
            if orphan {
                referenced = true;
            } else if r["blockOwnerDeletion"] == true {
                blocking = true;
            }
        }
    }
    let (ns, name) = (at.ns.clone(), at.name.clone());
    if orphan && !referenced {
        actions.push(Action::RemoveFinalizer(
            info.clone(),
            ns.clone(),
            name.clone(),
            "orphan",
        ));
    }
    if foreground && !blocking {
        actions.push(Action::RemoveFinalizer(
            info,
            ns,
            name,
            "foregroundDeletion",
        ));
    }
}

fn garbage_collect(st: &mut Store, work: &Work) -> bool {
    let mut actions: Vec<Action> = work
        .dependents
        .iter()
        .filter_map(|r| check_dependent(st, r))
        .collect();
    for uid in &work.owners {
        check_owner(st, uid, &mut actions);
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

/// The namespace controller: every object of a terminating namespace is deleted; the namespace goes
/// once it is empty and has no finalizers.
fn terminate_namespaces(st: &mut Store, work: &Work) -> bool {
    let mut changed = false;
    let mut infos: HashMap<String, Option<ResourceInfo>> = HashMap::new();
    let mut targets: Vec<ObjectRef> = work
        .namespaces_all
        .iter()
        .flat_map(|ns| st.in_namespace(ns))
        .collect();
    targets.extend(
        work.in_terminating
            .iter()
            .filter(|r| !work.namespaces_all.contains(&r.ns))
            .cloned(),
    );
    for r in targets {
        if st.get(&r.key, &r.ns, &r.name).is_none_or(is_deleting) {
            continue;
        }
        let info = infos
            .entry(r.key.clone())
            .or_insert_with(|| info_for(st, &r.key))
            .clone();
        if let Some(info) = info {
            let _ = ops::delete(st, &info, &r.ns, &r.name, &DeleteOpts::default());
            changed = true;
        }
    }
    for ns in &work.namespaces_check {
        let Some(n) = st.get("/namespaces", "", ns) else {
            continue;
        };
        if is_deleting(n) && ops::finalizers(n).is_empty() && !st.namespace_has_objects(ns) {
            st.remove("/namespaces", "", ns);
            changed = true;
        }
    }
    changed
}

const CONTROLLER_MANAGER: &str = "kube-controller-manager";

const HPA_KEY: &str = "autoscaling/horizontalpodautoscalers";

/// The HorizontalPodAutoscaler controller without a metrics server (none is emulated): like
/// kube-controller-manager's, it brings a Deployment below `minReplicas` or above `maxReplicas`
/// into range through the scale subresource (leaving a Deployment scaled to zero alone), and
/// reports the counts in the autoscaler's status. Metric-driven scaling is not emulated.
fn autoscale(st: &mut Store, which: &BTreeSet<(String, String)>) -> bool {
    if which.is_empty() {
        return false;
    }
    let (Some(hpa_info), Some(dep_info)) =
        (info_for(st, HPA_KEY), info_for(st, "apps/deployments"))
    else {
        return false;
    };
    let hpas: Vec<Value> = which
        .iter()
        .filter_map(|(ns, name)| st.get(HPA_KEY, ns, name))
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
