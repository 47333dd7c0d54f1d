//! In-memory storage: objects by resource, one global resourceVersion, and the bounded event history
//! that watches resume from.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

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
    pub object: Value,
    /// The object before the change, so a selector watch can tell "left the selection" from "changed".
    pub old: Option<Value>,
}

/// A list result kept so `continue` tokens page through one consistent snapshot.
pub struct Snapshot {
    pub rv: u64,
    pub items: Vec<Value>,
}

pub struct Store {
    rv: u64,
    pub resources: Vec<ResourceInfo>,
    objects: HashMap<String, BTreeMap<(String, String), Value>>,
    history: VecDeque<Arc<Change>>,
    window: usize,
    /// Watches from a version older than this get 410 Gone.
    pub compacted: u64,
    pub tx: broadcast::Sender<Arc<Change>>,
    pub snapshots: BTreeMap<u64, Snapshot>,
    next_snapshot: u64,
    next_cluster_ip: u32,
    pub next_node_port: u32,
}

/// Snapshots kept for `continue`; older tokens get 410 like an etcd compaction.
const SNAPSHOTS_KEPT: usize = 64;

impl Store {
    pub fn new(window: usize) -> Self {
        let (tx, _) = broadcast::channel(4096);
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
            next_node_port: 30000,
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
    }

    /// Every object of a resource, in a namespace or all namespaces, in name order.
    pub fn list(&self, key: &str, ns: Option<&str>) -> Vec<Value> {
        let Some(m) = self.objects.get(key) else {
            return vec![];
        };
        m.iter()
            .filter(|((n, _), _)| ns.is_none_or(|ns| ns == n))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// (storage key, object) for every stored object.
    pub fn all(&self) -> Vec<(String, Value)> {
        self.objects
            .iter()
            .flat_map(|(k, m)| m.values().map(move |v| (k.clone(), v.clone())))
            .collect()
    }

    /// The objects of one resource, borrowed.
    pub fn iter_key<'a>(&'a self, key: &str) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects.get(key).into_iter().flat_map(|m| m.values())
    }

    /// (storage key, object) for every stored object, borrowed.
    pub fn all_refs(&self) -> Vec<(&str, &Value)> {
        self.objects
            .iter()
            .flat_map(|(k, m)| m.values().map(move |v| (k.as_str(), v)))
            .collect()
    }

    pub fn drop_resource(&mut self, key: &str) -> Vec<Value> {
        self.objects
            .remove(key)
            .map(|m| m.into_values().collect())
            .unwrap_or_default()
    }

    fn record(&mut self, change: Change) {
        let change = Arc::new(change);
        self.history.push_back(change.clone());
        while self.history.len() > self.window {
            if let Some(c) = self.history.pop_front() {
                self.compacted = c.rv;
            }
        }
        let _ = self.tx.send(change);
    }

    /// Stores an object (create or update), stamping a new resourceVersion; returns what was stored.
    pub fn put(&mut self, key: &str, mut obj: Value) -> Value {
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
        let old = self
            .objects
            .entry(key.to_string())
            .or_default()
            .insert((ns, name), obj.clone());
        let kind = if old.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.record(Change {
            rv: self.rv,
            key: key.to_string(),
            kind,
            object: obj.clone(),
            old,
        });
        obj
    }

    /// Removes an object for good; the DELETED event carries its last state at a new version.
    pub fn remove(&mut self, key: &str, ns: &str, name: &str) -> Option<Value> {
        let mut obj = self
            .objects
            .get_mut(key)?
            .remove(&(ns.to_string(), name.to_string()))?;
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.record(Change {
            rv: self.rv,
            key: key.to_string(),
            kind: EventType::Deleted,
            object: obj.clone(),
            old: None,
        });
        Some(obj)
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
        let used: std::collections::HashSet<String> = self
            .list("/services", None)
            .iter()
            .filter_map(|s| s["spec"]["clusterIP"].as_str().map(String::from))
            .collect();
        loop {
            let n = self.next_cluster_ip;
            self.next_cluster_ip = if n >= (1 << 20) - 2 { 10 } else { n + 1 };
            let ip = format!("10.{}.{}.{}", 96 + (n >> 16), (n >> 8) & 0xff, n & 0xff);
            if !used.contains(&ip) {
                return ip;
            }
        }
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
