//! The pods of the DemoWebs' Deployments, as diagnosis reads them: a label-selected watch, each
//! pod read straight from the watch's JSON into a [`PodSummary`] (owner, phase, the scheduler's
//! verdict, container states and messages; no spec, no managed fields), kept in an index by site
//! so a reconcile finds its pods without scanning every pod. A change that can change a diagnosis
//! reconciles the pod's DemoWeb, found from the pod's `app.kubernetes.io/instance` label.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use demoweb_crd::DemoWeb;
use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde::Deserialize;

use crate::vocabulary::{LABEL_INSTANCE, managed_selector};

/// The label the ReplicaSet controller puts on its pods: the pod template's hash, which is also
/// the suffix of the ReplicaSet's name.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// A stored message is cut to its last this many bytes: the kubelet keeps up to 4 KiB of a
/// termination message, and the cause is at its end (git-sync logs its error last).
const MESSAGE_TAIL: usize = 2048;

/// What diagnosis reads of a pod.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(from = "WirePod")]
pub struct PodSummary {
    pub metadata: ObjectMeta,
    pub phase: Option<String>,
    /// The scheduler's message while the pod is `PodScheduled=False` (`Unschedulable`).
    pub unschedulable: Option<String>,
    pub ready: bool,
    /// Init containers first, in the pod's order, then the others.
    pub containers: Vec<ContainerSummary>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ContainerSummary {
    pub name: String,
    /// The image, named while a pull fails.
    pub image: Option<String>,
    pub init: bool,
    pub ready: bool,
    pub waiting: Option<Waiting>,
    /// Its state when it has terminated, else its last termination.
    pub terminated: Option<Terminated>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Waiting {
    pub reason: String,
    pub message: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Terminated {
    pub exit_code: i32,
    pub reason: String,
    pub message: String,
}

#[derive(Deserialize)]
struct WirePod {
    #[serde(default)]
    metadata: WireMeta,
    #[serde(default)]
    status: WireStatus,
}

#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct WireMeta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    deletion_timestamp: Option<Time>,
    labels: Option<BTreeMap<String, String>>,
    owner_references: Option<Vec<OwnerReference>>,
}

#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct WireStatus {
    phase: Option<String>,
    conditions: Vec<WireCondition>,
    init_container_statuses: Vec<WireContainer>,
    container_statuses: Vec<WireContainer>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct WireCondition {
    #[serde(rename = "type")]
    type_: String,
    status: String,
    reason: Option<String>,
    message: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct WireContainer {
    name: String,
    image: Option<String>,
    ready: bool,
    state: WireState,
    last_state: WireState,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct WireState {
    waiting: Option<WireReason>,
    terminated: Option<WireTerminated>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct WireReason {
    reason: Option<String>,
    message: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct WireTerminated {
    exit_code: i32,
    reason: Option<String>,
    message: Option<String>,
}

/// The last `MESSAGE_TAIL` bytes of `message`, cut at a character boundary.
fn tail(message: Option<String>) -> String {
    let message = message.unwrap_or_default();
    if message.len() <= MESSAGE_TAIL {
        return message;
    }
    let mut start = message.len() - MESSAGE_TAIL;
    while !message.is_char_boundary(start) {
        start += 1;
    }
    message[start..].to_owned()
}

impl From<WireTerminated> for Terminated {
    fn from(t: WireTerminated) -> Self {
        Terminated {
            exit_code: t.exit_code,
            reason: t.reason.unwrap_or_default(),
            message: tail(t.message),
        }
    }
}

fn container(c: WireContainer, init: bool) -> ContainerSummary {
    let pulling = c
        .state
        .waiting
        .as_ref()
        .is_some_and(|w| w.reason.as_deref().is_some_and(|r| r.contains("Image")));
    ContainerSummary {
        name: c.name,
        image: c.image.filter(|_| pulling),
        init,
        ready: c.ready,
        waiting: c.state.waiting.map(|w| Waiting {
            reason: w.reason.unwrap_or_default(),
            message: tail(w.message),
        }),
        terminated: c
            .state
            .terminated
            .or(c.last_state.terminated)
            .map(Into::into),
    }
}

impl From<WirePod> for PodSummary {
    fn from(w: WirePod) -> Self {
        let s = w.status;
        let condition = |t: &str| s.conditions.iter().find(|c| c.type_ == t);
        let unschedulable = condition("PodScheduled")
            .filter(|c| c.status == "False")
            .map(|c| c.message.clone().or(c.reason.clone()).unwrap_or_default());
        let ready = condition("Ready").is_some_and(|c| c.status == "True");
        let containers = s
            .init_container_statuses
            .into_iter()
            .map(|c| container(c, true))
            .chain(
                s.container_statuses
                    .into_iter()
                    .map(|c| container(c, false)),
            )
            .collect();
        PodSummary {
            metadata: ObjectMeta {
                name: w.metadata.name,
                namespace: w.metadata.namespace,
                uid: w.metadata.uid,
                resource_version: w.metadata.resource_version,
                deletion_timestamp: w.metadata.deletion_timestamp,
                labels: w.metadata.labels,
                owner_references: w.metadata.owner_references,
                ..ObjectMeta::default()
            },
            phase: s.phase,
            unschedulable,
            ready,
            containers,
        }
    }
}

crate::stored::resource_as!(PodSummary, Pod);

impl PodSummary {
    /// The DemoWeb whose pod this is, by its instance label.
    pub fn site(&self) -> Option<ObjectRef<DemoWeb>> {
        let name = self.metadata.labels.as_ref()?.get(LABEL_INSTANCE)?;
        Some(ObjectRef::new(name).within(self.metadata.namespace.as_deref()?))
    }

    /// Whether the ReplicaSet that controls this pod is one of `deployment`'s: its name is the
    /// Deployment's and the pod's template hash.
    pub fn is_of_deployment(&self, deployment: &str) -> bool {
        let Some(hash) = self
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(POD_TEMPLATE_HASH))
        else {
            return false;
        };
        let replica_set = format!("{deployment}-{hash}");
        self.metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.controller == Some(true) && o.kind == "ReplicaSet" && o.name == replica_set)
    }

    /// What can make a cause of this pod, hashed; `None` when nothing can (a pod that is being
    /// created, starting, running or ready). Readiness itself reaches the DemoWeb through its
    /// Deployment's status, so a healthy rollout's pods reconcile nothing; a change of anything
    /// else (the resourceVersion, a condition's time, the phase) neither.
    fn signal(&self) -> Option<u64> {
        let causes: Vec<_> = self
            .containers
            .iter()
            .filter_map(|c| {
                let waiting = c
                    .waiting
                    .as_ref()
                    .filter(|w| !STARTING_REASONS.contains(&w.reason.as_str()));
                let failed = c.terminated.as_ref().filter(|t| t.exit_code != 0);
                (waiting.is_some() || failed.is_some()).then_some((&c.name, waiting, failed))
            })
            .collect();
        if causes.is_empty() && self.unschedulable.is_none() {
            return None;
        }
        let mut hasher = std::hash::DefaultHasher::new();
        (&self.unschedulable, causes).hash(&mut hasher);
        Some(hasher.finish())
    }
}

/// The waiting reasons of a container that is starting as it should.
const STARTING_REASONS: [&str; 2] = ["ContainerCreating", "PodInitializing"];

type SiteKey = (String, String);

/// Pods by site (namespace, DemoWeb name), then by pod name; filled from the watch with a
/// reflector's semantics (a re-list replaces everything at its end).
#[derive(Clone, Default)]
pub struct PodIndex {
    inner: Arc<Mutex<IndexState>>,
}

#[derive(Default)]
struct IndexState {
    pods: Pods,
    /// A re-list in progress: it replaces `pods` when it is done.
    relist: Option<Pods>,
    listed: bool,
}

#[derive(Default)]
struct Pods {
    sites: HashMap<SiteKey, BTreeMap<String, Arc<PodSummary>>>,
    /// Each pod's site, by (namespace, pod name): a pod whose labels change moves.
    site_of: HashMap<(String, String), SiteKey>,
}

impl Pods {
    fn remove(&mut self, namespace: &str, name: &str) {
        let Some(site) = self
            .site_of
            .remove(&(namespace.to_owned(), name.to_owned()))
        else {
            return;
        };
        if let Some(pods) = self.sites.get_mut(&site) {
            pods.remove(name);
            if pods.is_empty() {
                self.sites.remove(&site);
            }
        }
    }

    fn insert(&mut self, pod: &PodSummary) {
        let (Some(ns), Some(name)) = (&pod.metadata.namespace, &pod.metadata.name) else {
            return;
        };
        self.remove(ns, name);
        let Some(site) = pod.site() else {
            return;
        };
        let site = (site.namespace.unwrap_or_default(), site.name);
        self.site_of
            .insert((ns.clone(), name.clone()), site.clone());
        self.sites
            .entry(site)
            .or_default()
            .insert(name.clone(), Arc::new(pod.clone()));
    }
}

impl PodIndex {
    fn lock(&self) -> std::sync::MutexGuard<'_, IndexState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn apply(&self, event: &watcher::Event<PodSummary>) {
        let mut state = self.lock();
        match event {
            watcher::Event::Init => state.relist = Some(Pods::default()),
            watcher::Event::InitApply(pod) => {
                if let Some(relist) = state.relist.as_mut() {
                    relist.insert(pod);
                }
            }
            watcher::Event::InitDone => {
                if let Some(relist) = state.relist.take() {
                    state.pods = relist;
                }
                state.listed = true;
            }
            watcher::Event::Apply(pod) => state.pods.insert(pod),
            watcher::Event::Delete(pod) => {
                if let (Some(ns), Some(name)) = (&pod.metadata.namespace, &pod.metadata.name) {
                    state.pods.remove(ns, name);
                }
            }
        }
    }

    /// The pods of a site, by name.
    pub fn pods(&self, namespace: &str, site: &str) -> Vec<Arc<PodSummary>> {
        self.lock()
            .pods
            .sites
            .get(&(namespace.to_owned(), site.to_owned()))
            .map(|pods| pods.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether the watch has listed the pods once.
    pub fn listed(&self) -> bool {
        self.lock().listed
    }
}

/// The watch of the operator's pods (the labels every child and pod carries), feeding `index`;
/// the stream yields each pod whose diagnosis-relevant state changed (its DemoWeb is
/// [`PodSummary::site`]).
pub fn pod_watch(
    client: &Client,
    namespace: Option<&str>,
    index: PodIndex,
) -> impl Stream<Item = Result<PodSummary, watcher::Error>> + Send + 'static {
    let api: Api<PodSummary> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let config = watcher::Config::default().labels(&managed_selector());
    let seen: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let warned = Arc::new(std::sync::atomic::AtomicBool::new(false));
    watcher(api, config)
        .default_backoff()
        .inspect_ok(move |event| index.apply(event))
        .try_filter_map(move |event| {
            let seen = seen.clone();
            async move {
                let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                let pod = match event {
                    watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => {
                        let uid = pod.metadata.uid.clone().unwrap_or_default();
                        let was = match pod.signal() {
                            Some(signal) => seen.insert(uid, signal),
                            None => seen.remove(&uid),
                        };
                        if was == pod.signal() {
                            return Ok(None);
                        }
                        pod
                    }
                    watcher::Event::Delete(pod) => {
                        // A pod that showed a cause takes it away; others change nothing.
                        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
                        if seen.remove(uid).is_none() {
                            return Ok(None);
                        }
                        pod
                    }
                    watcher::Event::Init | watcher::Event::InitDone => return Ok(None),
                };
                Ok(Some(pod))
            }
        })
        // Pods that cannot be watched (no RBAC for them, an API without them) cost the sites
        // their diagnosis, not the controller its other triggers: said once, then retried quietly.
        .filter_map(move |item| {
            let item = match item {
                Ok(pod) => Some(Ok(pod)),
                Err(error) => {
                    if !warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
                        tracing::warn!(%error, "cannot watch the sites' pods; status will not name their causes");
                    } else {
                        tracing::debug!(%error, "cannot watch the sites' pods");
                    }
                    None
                }
            };
            std::future::ready(item)
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn pod_json(name: &str, status: serde_json::Value) -> serde_json::Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": "default",
                "uid": format!("uid-{name}"),
                "labels": {
                    "app.kubernetes.io/instance": "demoweb1",
                    "pod-template-hash": "abc123",
                },
                "ownerReferences": [{
                    "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "demoweb1-abc123",
                    "uid": "rs", "controller": true,
                }],
                "managedFields": [{"manager": "kubelet"}],
            },
            "spec": {"containers": [{"name": "web", "image": "nginx"}]},
            "status": status,
        })
    }

    #[test]
    fn only_what_can_make_a_cause_reconciles() {
        let pod = |status: serde_json::Value| -> PodSummary {
            serde_json::from_value(pod_json("demoweb1-abc123-zzzzz", status)).unwrap()
        };
        let starting = pod(json!({"phase": "Pending", "containerStatuses": [
            {"name": "web", "ready": false, "restartCount": 0, "image": "nginx",
             "state": {"waiting": {"reason": "ContainerCreating"}}}]}));
        let ready = pod(
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "web", "ready": true, "restartCount": 0, "image": "nginx",
             "state": {"running": {}}}]}),
        );
        assert_eq!(starting.signal(), None);
        assert_eq!(
            ready.signal(),
            None,
            "readiness comes through the Deployment"
        );
        let pulling = |message: &str| {
            pod(json!({"phase": "Pending", "containerStatuses": [
                {"name": "web", "ready": false, "restartCount": 0, "image": "nginx",
                 "state": {"waiting": {"reason": "ImagePullBackOff", "message": message}}}]}))
        };
        assert!(pulling("back-off").signal().is_some());
        assert_ne!(pulling("back-off").signal(), pulling("other").signal());
        let unschedulable = pod(json!({"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes"}]}));
        assert!(unschedulable.signal().is_some());
    }

    #[test]
    fn a_stored_pod_keeps_what_diagnosis_reads() {
        let long = "x".repeat(5000) + "the end";
        let pod: PodSummary = serde_json::from_value(pod_json(
            "demoweb1-abc123-zzzzz",
            json!({
                "phase": "Pending",
                "conditions": [
                    {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                     "message": "0/3 nodes are available: 3 Insufficient cpu."},
                    {"type": "Ready", "status": "False"},
                ],
                "initContainerStatuses": [{
                    "name": "git-clone", "ready": false, "restartCount": 3, "image": "g",
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}},
                    "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "message": long}},
                }],
                "containerStatuses": [{
                    "name": "web", "ready": false, "restartCount": 0, "image": "nginx",
                    "state": {"waiting": {"reason": "PodInitializing"}},
                }],
            }),
        ))
        .unwrap();
        assert_eq!(pod.metadata.managed_fields, None);
        assert_eq!(pod.phase.as_deref(), Some("Pending"));
        assert_eq!(
            pod.unschedulable.as_deref(),
            Some("0/3 nodes are available: 3 Insufficient cpu.")
        );
        assert!(!pod.ready);
        let clone = &pod.containers[0];
        assert!(clone.init);
        assert_eq!(clone.waiting.as_ref().unwrap().reason, "CrashLoopBackOff");
        let last = clone.terminated.as_ref().unwrap();
        assert_eq!(last.exit_code, 1);
        assert!(last.message.len() <= MESSAGE_TAIL && last.message.ends_with("the end"));
        assert!(!pod.containers[1].init);
        assert!(pod.is_of_deployment("demoweb1"));
        assert!(!pod.is_of_deployment("demoweb"));
        assert_eq!(
            pod.site(),
            Some(ObjectRef::new("demoweb1").within("default"))
        );
    }

    #[test]
    fn the_index_follows_the_watch() {
        let pod = |name: &str, ready: bool| -> PodSummary {
            let conditions =
                json!([{"type": "Ready", "status": if ready { "True" } else { "False" }}]);
            serde_json::from_value(pod_json(name, json!({ "conditions": conditions }))).unwrap()
        };
        let index = PodIndex::default();
        index.apply(&watcher::Event::Init);
        index.apply(&watcher::Event::InitApply(pod("b", true)));
        index.apply(&watcher::Event::InitApply(pod("a", false)));
        assert!(
            index.pods("default", "demoweb1").is_empty(),
            "not listed yet"
        );
        index.apply(&watcher::Event::InitDone);
        let names = |index: &PodIndex| -> Vec<String> {
            index
                .pods("default", "demoweb1")
                .iter()
                .map(|p| p.metadata.name.clone().unwrap())
                .collect()
        };
        assert_eq!(names(&index), ["a", "b"]);
        index.apply(&watcher::Event::Apply(pod("a", true)));
        assert!(index.pods("default", "demoweb1")[0].ready);
        index.apply(&watcher::Event::Delete(pod("b", true)));
        assert_eq!(names(&index), ["a"]);
        index.apply(&watcher::Event::Init);
        index.apply(&watcher::Event::InitApply(pod("c", true)));
        index.apply(&watcher::Event::InitDone);
        assert_eq!(names(&index), ["c"], "a re-list replaces what was there");
        assert!(index.pods("other", "demoweb1").is_empty());
    }
}
