//! In-memory storage: objects by resource, one global resourceVersion, and the bounded event history
//! that watches resume from.
//!
//! Besides the objects it keeps the indexes kube-apiserver and kube-controller-manager keep, so no
//! request and no controller step costs time proportional to everything stored: objects by UID,
//! dependents by owner UID (the garbage collector's graph), the Service IPs and node ports in use,
//! and the changes the in-process controllers have not looked at yet.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::resources::{self, ResourceInfo};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

/// A change to one object, as recorded in the history and broadcast to watches.
#[derive(Debug)]
pub struct Change {
    pub rv: u64,
    pub key: String,
    pub kind: EventType,
    /// Shared with the store (and the next change's `old`), so the history costs one copy per
    /// version, not two.
    pub object: Arc<Value>,
    /// The object before the change, so a selector watch can tell "left the selection" from "changed".
    pub old: Option<Arc<Value>>,
    /// Watch event lines already serialised, by (apiVersion, event type): watchers of the same
    /// resource and version share one serialisation.
    lines: Mutex<Vec<(String, &'static str, bytes::Bytes)>>,
}

impl Change {
    fn new(
        rv: u64,
        key: &str,
        kind: EventType,
        object: Arc<Value>,
        old: Option<Arc<Value>>,
    ) -> Self {
        Change {
            rv,
            key: key.to_string(),
            kind,
            object,
            old,
            lines: Mutex::default(),
        }
    }

    /// The watch event line for this change as `api_version` presents it, serialised once.
    pub fn line(
        &self,
        api_version: &str,
        event: &'static str,
        render: impl FnOnce() -> bytes::Bytes,
    ) -> bytes::Bytes {
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, _, b)) = lines
            .iter()
            .find(|(av, ev, _)| av == api_version && *ev == event)
        {
            return b.clone();
        }
        let b = render();
        lines.push((api_version.to_string(), event, b.clone()));
        b
    }
}

/// Where an object is stored: storage key, namespace ("" when cluster-scoped) and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    pub key: String,
    pub ns: String,
    pub name: String,
}

/// A list result kept so `continue` tokens page through one consistent snapshot.
pub struct Snapshot {
    pub rv: u64,
    pub items: Vec<Arc<Value>>,
}

pub struct Store {
    rv: u64,
    pub resources: Vec<ResourceInfo>,
    objects: HashMap<String, BTreeMap<(String, String), Arc<Value>>>,
    history: VecDeque<Arc<Change>>,
    window: usize,
    /// Watches from a version older than this get 410 Gone.
    pub compacted: u64,
    pub tx: broadcast::Sender<Arc<Change>>,
    pub snapshots: BTreeMap<u64, Snapshot>,
    next_snapshot: u64,
    next_cluster_ip: u32,
    next_pod_ip: u32,
    pub next_node_port: u32,
    /// metadata.uid → where the object is.
    by_uid: HashMap<String, ObjectRef>,
    /// Owner UID → the objects whose ownerReferences name it.
    dependents: HashMap<String, BTreeSet<ObjectRef>>,
    /// Cluster IPs and node ports of the stored Services, with how many Services use each.
    cluster_ips: HashMap<String, usize>,
    node_ports: HashMap<i64, usize>,
    /// Changes the in-process controllers have not looked at yet.
    pending: Vec<Arc<Change>>,
    /// Objects the controllers asked to look at again later (their work queues' `AddAfter`),
    /// by when, and when each is due.
    timers: BTreeMap<Instant, BTreeSet<ObjectRef>>,
    due_at: HashMap<ObjectRef, Instant>,
}

/// Snapshots kept for `continue`; older tokens get 410 like an etcd compaction.
const SNAPSHOTS_KEPT: usize = 64;

impl Store {
    pub fn new(window: usize) -> Self {
        // Watchers that fall this far behind are closed and resume from the history.
        let (tx, _) = broadcast::channel(1 << 16);
        Store {
            rv: 1,
            resources: resources::builtins(),
            objects: HashMap::new(),
            history: VecDeque::new(),
            window: window.max(1),
            compacted: 0,
            tx,
            snapshots: BTreeMap::new(),
            next_snapshot: 1,
            next_cluster_ip: 10,
            next_pod_ip: 2,
            next_node_port: 30000,
            by_uid: HashMap::new(),
            dependents: HashMap::new(),
            cluster_ips: HashMap::new(),
            node_ports: HashMap::new(),
            pending: Vec::new(),
            timers: BTreeMap::new(),
            due_at: HashMap::new(),
        }
    }

    pub fn current_rv(&self) -> u64 {
        self.rv
    }

    /// Forget all history so far: a watch from any earlier version is too old.
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted = self.rv;
    }

    pub fn history_since(&self, rv: u64) -> Vec<Arc<Change>> {
        self.history.iter().filter(|c| c.rv > rv).cloned().collect()
    }

    pub fn get(&self, key: &str, ns: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(key)?
            .get(&(ns.to_string(), name.to_string()))
            .map(|o| &**o)
    }

    /// The stored object itself, shared: a snapshot that later writes do not change, without a copy.
    pub fn get_shared(&self, key: &str, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.objects
            .get(key)?
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    }

    /// Every object of a resource, in a namespace or all namespaces, in name order.
    pub fn list(&self, key: &str, ns: Option<&str>) -> Vec<Value> {
        self.iter(key, ns).cloned().collect()
    }

    /// The objects of a resource, in a namespace (a range of the ordered map) or all namespaces,
    /// borrowed, in name order.
    pub fn iter<'a>(
        &'a self,
        key: &str,
        ns: Option<&'a str>,
    ) -> Box<dyn Iterator<Item = &'a Value> + 'a> {
        Box::new(self.iter_shared(key, ns).map(|o| &**o))
    }

    /// [`Store::iter`], as shared pointers a list snapshot can keep without copying.
    pub fn iter_shared<'a>(
        &'a self,
        key: &str,
        ns: Option<&'a str>,
    ) -> Box<dyn Iterator<Item = &'a Arc<Value>> + 'a> {
        let Some(m) = self.objects.get(key) else {
            return Box::new(std::iter::empty());
        };
        match ns {
            None => Box::new(m.values()),
            Some(ns) => Box::new(
                m.range((ns.to_string(), String::new())..)
                    .take_while(move |((n, _), _)| n == ns)
                    .map(|(_, v)| v),
            ),
        }
    }

    /// The objects of one resource, borrowed.
    pub fn iter_key<'a>(&'a self, key: &str) -> impl Iterator<Item = &'a Value> + 'a {
        self.iter(key, None)
    }

    /// Where every object of one namespace is, across all resources.
    pub fn in_namespace(&self, ns: &str) -> Vec<ObjectRef> {
        self.objects
            .keys()
            .flat_map(|key| {
                self.iter(key, Some(ns)).map(move |o| ObjectRef {
                    key: key.clone(),
                    ns: ns.to_string(),
                    name: o["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                })
            })
            .collect()
    }

    /// Whether any object lives in the namespace.
    pub fn namespace_has_objects(&self, ns: &str) -> bool {
        self.objects
            .keys()
            .any(|key| self.iter(key, Some(ns)).next().is_some())
    }

    /// The object with this UID.
    pub fn by_uid(&self, uid: &str) -> Option<(&ObjectRef, &Value)> {
        let r = self.by_uid.get(uid)?;
        Some((r, self.get(&r.key, &r.ns, &r.name)?))
    }

    /// The objects whose ownerReferences name this UID.
    pub fn dependents_of(&self, uid: &str) -> Vec<ObjectRef> {
        self.dependents
            .get(uid)
            .map(|d| d.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Takes the changes the controllers have not seen yet.
    pub fn take_pending(&mut self) -> Vec<Arc<Change>> {
        std::mem::take(&mut self.pending)
    }

    /// Has the controllers look at the object again `after` from now, as a work queue's
    /// `AddAfter` does: an object already due sooner keeps its time.
    pub fn requeue_after(&mut self, r: ObjectRef, after: Duration) {
        let at = Instant::now() + after;
        match self.due_at.get(&r) {
            Some(sooner) if *sooner <= at => return,
            Some(later) => {
                if let Some(set) = self.timers.get_mut(later) {
                    set.remove(&r);
                    if set.is_empty() {
                        self.timers.remove(later);
                    }
                }
            }
            None => {}
        }
        self.due_at.insert(r.clone(), at);
        self.timers.entry(at).or_default().insert(r);
    }

    /// When the next requeued object is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.timers.keys().next().copied()
    }

    /// Takes the requeued objects that are due.
    pub fn take_due(&mut self) -> BTreeSet<ObjectRef> {
        let later = self
            .timers
            .split_off(&(Instant::now() + Duration::from_millis(1)));
        let due: BTreeSet<ObjectRef> = std::mem::replace(&mut self.timers, later)
            .into_values()
            .flatten()
            .collect();
        for r in &due {
            self.due_at.remove(r);
        }
        due
    }

    pub fn drop_resource(&mut self, key: &str) -> Vec<Value> {
        let gone: Vec<Value> = self
            .objects
            .remove(key)
            .map(|m| m.into_values().map(Arc::unwrap_or_clone).collect())
            .unwrap_or_default();
        for o in &gone {
            let r = object_ref(key, o);
            self.unindex(&r, o);
        }
        gone
    }

    fn index(&mut self, r: &ObjectRef, o: &Value) {
        let uid = o["metadata"]["uid"].as_str().unwrap_or_default();
        if !uid.is_empty() {
            self.by_uid.insert(uid.to_string(), r.clone());
        }
        for owner in owner_uids(o) {
            self.dependents
                .entry(owner.to_string())
                .or_default()
                .insert(r.clone());
        }
        if r.key == "/services" {
            for ip in service_ips(o) {
                *self.cluster_ips.entry(ip.to_string()).or_default() += 1;
            }
            for p in node_ports(o) {
                *self.node_ports.entry(p).or_default() += 1;
            }
        }
    }

    fn unindex(&mut self, r: &ObjectRef, o: &Value) {
        let uid = o["metadata"]["uid"].as_str().unwrap_or_default();
        if self.by_uid.get(uid).is_some_and(|at| at == r) {
            self.by_uid.remove(uid);
        }
        for owner in owner_uids(o) {
            if let Some(set) = self.dependents.get_mut(owner) {
                set.remove(r);
                if set.is_empty() {
                    self.dependents.remove(owner);
                }
            }
        }
        if r.key == "/services" {
            for ip in service_ips(o) {
                release(&mut self.cluster_ips, ip.to_string());
            }
            for p in node_ports(o) {
                release(&mut self.node_ports, p);
            }
        }
    }

    fn record(&mut self, change: Change) {
        let change = Arc::new(change);
        self.history.push_back(change.clone());
        while self.history.len() > self.window {
            if let Some(c) = self.history.pop_front() {
                self.compacted = c.rv;
            }
        }
        self.pending.push(change.clone());
        let _ = self.tx.send(change);
    }

    /// Stores an object (create or update), stamping a new resourceVersion; returns what was
    /// stored, shared with the store (no copy).
    pub fn put(&mut self, key: &str, mut obj: Value) -> Arc<Value> {
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let r = ObjectRef {
            key: key.to_string(),
            ns: ns.clone(),
            name: name.clone(),
        };
        let stored = Arc::new(obj);
        let old = self
            .objects
            .entry(key.to_string())
            .or_default()
            .insert((ns, name), stored.clone());
        if let Some(old) = &old {
            self.unindex(&r, old);
        }
        self.index(&r, &stored);
        let kind = if old.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.record(Change::new(self.rv, key, kind, stored.clone(), old));
        stored
    }

    /// Removes an object for good; the DELETED event carries its last state at a new version.
    pub fn remove(&mut self, key: &str, ns: &str, name: &str) -> Option<Value> {
        let removed = self
            .objects
            .get_mut(key)?
            .remove(&(ns.to_string(), name.to_string()))?;
        self.unindex(&object_ref(key, &removed), &removed);
        let mut obj = Arc::unwrap_or_clone(removed);
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let obj = Arc::new(obj);
        self.record(Change::new(
            self.rv,
            key,
            EventType::Deleted,
            obj.clone(),
            None,
        ));
        Some(Arc::unwrap_or_clone(obj))
    }

    pub fn save_snapshot(&mut self, snap: Snapshot) -> u64 {
        let id = self.next_snapshot;
        self.next_snapshot += 1;
        self.snapshots.insert(id, snap);
        while self.snapshots.len() > SNAPSHOTS_KEPT {
            self.snapshots.pop_first();
        }
        id
    }

    /// The next free address from the Service CIDR 10.96.0.0/12.
    pub fn allocate_cluster_ip(&mut self) -> String {
        loop {
            let n = self.next_cluster_ip;
            self.next_cluster_ip = if n >= (1 << 20) - 2 { 10 } else { n + 1 };
            let ip = format!("10.{}.{}.{}", 96 + (n >> 16), (n >> 8) & 0xff, n & 0xff);
            if !self.cluster_ips.contains_key(&ip) {
                return ip;
            }
        }
    }

    /// The next pod address from the pod CIDR 10.244.0.0/16 (addresses are reused after 65,000
    /// pods, as a node's range would be).
    pub fn allocate_pod_ip(&mut self) -> String {
        let n = self.next_pod_ip;
        self.next_pod_ip = if n >= (1 << 16) - 2 { 2 } else { n + 1 };
        format!("10.244.{}.{}", n >> 8, n & 0xff)
    }

    /// Whether a stored Service uses this node port.
    pub fn node_port_used(&self, port: i64) -> bool {
        self.node_ports.contains_key(&port)
    }

    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceInfo> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
    }

    /// The preferred (first served) resource for a group and kind, as the garbage collector resolves owners.
    pub fn find_kind(&self, api_version: &str, kind: &str) -> Option<&ResourceInfo> {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        self.resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.kind == kind)
            .or_else(|| {
                self.resources
                    .iter()
                    .find(|r| r.group == group && r.kind == kind)
            })
    }
}

fn object_ref(key: &str, o: &Value) -> ObjectRef {
    let m = &o["metadata"];
    ObjectRef {
        key: key.to_string(),
        ns: m["namespace"].as_str().unwrap_or_default().to_string(),
        name: m["name"].as_str().unwrap_or_default().to_string(),
    }
}

fn owner_uids(o: &Value) -> impl Iterator<Item = &str> {
    o["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["uid"].as_str())
        .filter(|u| !u.is_empty())
}

fn service_ips(o: &Value) -> impl Iterator<Item = &str> {
    o["spec"]["clusterIP"]
        .as_str()
        .into_iter()
        .filter(|ip| !ip.is_empty() && *ip != "None")
}

fn node_ports(o: &Value) -> impl Iterator<Item = i64> + '_ {
    o["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["nodePort"].as_i64())
}

fn release<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, usize>, k: K) {
    if let Some(n) = counts.get_mut(&k) {
        *n -= 1;
        if *n == 0 {
            counts.remove(&k);
        }
    }
}
