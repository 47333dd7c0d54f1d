//! What kube-scheduler decides for a pod, over simulated nodes like the real control plane's kwok
//! nodes (three, one a zone, each with what kwok gives a node): the node selector must match the
//! node's labels, and the pod's requests must fit in what the node has left (pods, CPU, memory).
//! A pod that fits no node gets the scheduler's verdict: `PodScheduled=False`, reason
//! `Unschedulable`, and a message that counts the nodes by why they do not fit.
//!
//! Not emulated: node affinity beyond `nodeSelector`, taints, host ports, topology spread,
//! priorities and preemption (no pod is ever a victim), pod overhead.

use serde_json::Value;

use super::schema::library::parse_quantity;
use super::store::Store;
use super::workloads::PODS;

/// A simulated node: name, zone, address.
pub struct Node {
    pub name: &'static str,
    pub zone: &'static str,
    pub ip: &'static str,
}

/// The nodes, as the real control plane's kwok nodes are named and placed.
pub const NODES: [Node; 3] = [
    Node {
        name: "kwok-node-0",
        zone: "zone-a",
        ip: "10.0.0.10",
    },
    Node {
        name: "kwok-node-1",
        zone: "zone-b",
        ip: "10.0.0.11",
    },
    Node {
        name: "kwok-node-2",
        zone: "zone-c",
        ip: "10.0.0.12",
    },
];

/// What each node can hold (kwok's node defaults: 1k CPUs, 1Ti, 1M pods): pods, CPU in
/// millicores, memory in bytes.
const ALLOCATABLE_PODS: i128 = 1_000_000;
const ALLOCATABLE_CPU_MILLI: i128 = 1_000_000;
const ALLOCATABLE_MEMORY: i128 = 1 << 40;

impl Node {
    fn label(&self, key: &str) -> Option<&str> {
        match key {
            "kubernetes.io/hostname" => Some(self.name),
            "kubernetes.io/os" => Some("linux"),
            "kubernetes.io/arch" => Some("amd64"),
            "topology.kubernetes.io/zone" => Some(self.zone),
            "type" => Some("kwok"),
            _ => None,
        }
    }
}

/// The node a pod was bound to, if it is one of the simulated ones.
pub fn node(name: &str) -> Option<&'static Node> {
    NODES.iter().find(|n| n.name == name)
}

/// One container's `requests` (or `limits`) of `resource` in millicores (CPU) or units (bytes,
/// counts); a limit without a request counts as the request, as kube-apiserver defaults it.
pub fn container_amount(c: &Value, which: &str, resource: &str) -> Option<i128> {
    let r = &c["resources"];
    let q = r[which][resource].as_str().or_else(|| {
        (which == "requests")
            .then(|| r["limits"][resource].as_str())
            .flatten()
    })?;
    let nano = parse_quantity(q).ok()?;
    let unit: i128 = if resource == "cpu" {
        1_000_000
    } else {
        1_000_000_000
    };
    Some(nano.div_euclid(unit) + i128::from(nano.rem_euclid(unit) != 0))
}

/// What a pod's containers need of `resource` (`requests` or `limits`): containers run together,
/// init containers one at a time (sidecars stay running), as the scheduler and the quota sum them.
pub fn pod_amount(spec: &Value, which: &str, resource: &str) -> i128 {
    let of = |c: &Value| container_amount(c, which, resource).unwrap_or(0);
    let mut sidecars = 0;
    let mut init_peak = 0;
    for c in spec["initContainers"].as_array().into_iter().flatten() {
        if c["restartPolicy"] == "Always" {
            sidecars += of(c);
        } else {
            init_peak = init_peak.max(sidecars + of(c));
        }
    }
    let running: i128 = spec["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(of)
        .sum();
    (running + sidecars).max(init_peak)
}

/// What a pod asks of a node: (CPU in millicores, memory in bytes).
fn requests(spec: &Value) -> (i128, i128) {
    (
        pod_amount(spec, "requests", "cpu"),
        pod_amount(spec, "requests", "memory"),
    )
}

/// Why one node does not take the pod (the scheduler's filter reasons), empty when it does, and
/// whether preemption could help: not for a node selector that does not match, nor for a request
/// larger than the node; for a lack of room, only by evicting pods of lower priority.
fn misfits(st: &Store, node: &Node, pod: &Value, want: (i128, i128)) -> (Vec<&'static str>, bool) {
    let selector = pod["spec"]["nodeSelector"].as_object();
    if selector
        .into_iter()
        .flatten()
        .any(|(k, v)| node.label(k) != v.as_str())
    {
        return (
            vec!["node(s) didn't match Pod's node affinity/selector"],
            false,
        );
    }
    let (mut pods, mut cpu, mut memory) = (0, 0, 0);
    for p in st.iter_key(PODS).filter(|p| {
        p["spec"]["nodeName"] == node.name
            && !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
    }) {
        let (c, m) = requests(&p["spec"]);
        pods += 1;
        cpu += c;
        memory += m;
    }
    let mut why = vec![];
    let mut resolvable = true;
    for (used, want, allocatable, reason) in [
        (pods, 1, ALLOCATABLE_PODS, "Too many pods"),
        (cpu, want.0, ALLOCATABLE_CPU_MILLI, "Insufficient cpu"),
        (memory, want.1, ALLOCATABLE_MEMORY, "Insufficient memory"),
    ] {
        if used + want > allocatable {
            why.push(reason);
            // More than the node has at all: no pod's eviction would make room.
            resolvable &= want <= allocatable;
        }
    }
    (why, resolvable)
}

/// The node for the pod (the feasible one with the fewest pods, spreading them over the
/// zones), or the scheduler's message of why none fits.
pub fn place(st: &Store, pod: &Value) -> Result<&'static str, String> {
    let want = requests(&pod["spec"]);
    let mut reasons: Vec<(&str, usize)> = vec![];
    let mut preemption: Vec<(&str, usize)> = vec![];
    let mut feasible: Vec<(usize, &'static str)> = vec![];
    let count = |list: &mut Vec<(&'static str, usize)>, reason: &'static str| match list
        .iter_mut()
        .find(|(r, _)| *r == reason)
    {
        Some(entry) => entry.1 += 1,
        None => list.push((reason, 1)),
    };
    for node in &NODES {
        let (why, resolvable) = misfits(st, node, pod, want);
        if why.is_empty() {
            let load = st
                .iter_key(PODS)
                .filter(|p| p["spec"]["nodeName"] == node.name)
                .count();
            feasible.push((load, node.name));
            continue;
        }
        for reason in why {
            count(&mut reasons, reason);
        }
        count(
            &mut preemption,
            if resolvable {
                "No preemption victims found for incoming pod"
            } else {
                "Preemption is not helpful for scheduling"
            },
        );
    }
    if let Some((_, name)) = feasible.into_iter().min() {
        return Ok(name);
    }
    let histogram = |list: &[(&str, usize)]| {
        let mut parts: Vec<String> = list.iter().map(|(r, n)| format!("{n} {r}")).collect();
        parts.sort();
        parts.join(", ")
    };
    let n = NODES.len();
    Err(format!(
        "0/{n} nodes are available: {}. preemption: 0/{n} nodes are available: {}.",
        histogram(&reasons),
        histogram(&preemption)
    ))
}
