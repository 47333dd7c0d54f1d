//! The EndpointSlice controller of kube-controller-manager: every Service with a selector gets
//! the slices (`discovery.k8s.io/v1`) of the pods it selects, as Ingress controllers and kube-proxy
//! read them.
//!
//! Per Service, slices labelled `kubernetes.io/service-name` and
//! `endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io` (the Service's own
//! labels too), owned by the Service (so the garbage collector removes them with it), named
//! `<service>-<5 characters>`. A slice holds the endpoints whose ports resolve alike (a named
//! `targetPort` is looked up in each pod's container ports), at most 100: a pod with an IP on a
//! node that exists, `ready` when its Ready condition is True and it is not being deleted,
//! `serving` when Ready, `terminating` when being deleted, with its node, zone and a reference to
//! it. A Service that selects no pod has one slice without ports or endpoints. Slices are
//! updated in place (a slice no longer needed is reused before a new one is made), and a
//! managed slice someone else changed or deleted is put back. A Service without a selector gets
//! nothing from the controller (its slices are its owner's to write), nor does an ExternalName one.
//!
//! Not emulated: dual-stack Services (the pods have IPv4 addresses only), topology hints,
//! `trafficDistribution`, and the `endpoints.kubernetes.io/last-change-trigger-time` annotation.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::ops::{self, DeleteOpts, WriteOpts};
use super::resources::ResourceInfo;
use super::store::{Change, EventType, Store};
use super::workloads::{PODS, pod_ready};

pub const SERVICES: &str = "/services";
pub const SLICES: &str = "discovery.k8s.io/endpointslices";
const NODES: &str = "/nodes";

pub const SERVICE_NAME: &str = "kubernetes.io/service-name";
const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
const CONTROLLER: &str = "endpointslice-controller.k8s.io";
const HEADLESS: &str = "service.kubernetes.io/headless";
const ZONE: &str = "topology.kubernetes.io/zone";
/// kube-controller-manager's `--max-endpoints-per-slice` default.
const MAX_ENDPOINTS_PER_SLICE: usize = 100;
const CONTROLLER_MANAGER: &str = "kube-controller-manager";

fn meta<'a>(o: &'a Value, k: &str) -> &'a str {
    o["metadata"][k].as_str().unwrap_or_default()
}

fn is_deleting(o: &Value) -> bool {
    o["metadata"]["deletionTimestamp"].is_string()
}

/// A Service's selector, when it has one (an empty map selects nothing and counts as none).
fn selector(svc: &Value) -> Option<&Map<String, Value>> {
    svc["spec"]["selector"]
        .as_object()
        .filter(|m| !m.is_empty())
}

fn selects(sel: &Map<String, Value>, pod: &Value) -> bool {
    let labels = &pod["metadata"]["labels"];
    sel.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The Services a change asks this controller to look at: a Service that changed; the Services
/// of the namespace that select a pod that changed, before or after; the Service of a managed
/// slice someone changed.
pub fn interest(st: &Store, c: &Change, out: &mut BTreeSet<(String, String)>) {
    let o = &c.object;
    let ns = meta(o, "namespace");
    match c.key.as_str() {
        SERVICES if c.kind != EventType::Deleted => {
            out.insert((ns.to_owned(), meta(o, "name").to_owned()));
        }
        PODS => {
            let versions: Vec<&Value> = std::iter::once(&**o).chain(c.old.as_deref()).collect();
            out.extend(
                st.iter(SERVICES, Some(ns))
                    .filter(|svc| {
                        selector(svc).is_some_and(|sel| versions.iter().any(|p| selects(sel, p)))
                    })
                    .map(|svc| (ns.to_owned(), meta(svc, "name").to_owned())),
            );
        }
        SLICES => {
            let labels = &o["metadata"]["labels"];
            if labels[MANAGED_BY] == CONTROLLER
                && let Some(svc) = labels[SERVICE_NAME].as_str()
            {
                out.insert((ns.to_owned(), svc.to_owned()));
            }
        }
        _ => {}
    }
}

fn info(st: &Store, key: &str) -> Option<ResourceInfo> {
    st.resources
        .iter()
        .find(|r| r.storage_key() == key && r.storage().is_none())
        .cloned()
}

/// One round of the controller over the Services to look at. Returns whether anything was
/// written.
pub fn sync(st: &mut Store, services: &BTreeSet<(String, String)>) -> bool {
    if services.is_empty() {
        return false;
    }
    let Some(slice_info) = info(st, SLICES) else {
        return false;
    };
    let mut changed = false;
    for (ns, name) in services {
        changed |= sync_service(st, &slice_info, ns, name);
    }
    changed
}

/// The port of a pod a Service port reaches: its `targetPort` number, or the container port of
/// that name and protocol (None when the pod has none).
fn target_port(pod: &Value, port: &Value) -> Option<i64> {
    match &port["targetPort"] {
        Value::Number(n) => n.as_i64(),
        Value::String(name) => {
            let protocol = port["protocol"].as_str().unwrap_or("TCP");
            pod["spec"]["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|c| c["ports"].as_array().into_iter().flatten())
                .find(|p| {
                    p["name"] == name.as_str()
                        && p["protocol"].as_str().unwrap_or("TCP") == protocol
                })
                .and_then(|p| p["containerPort"].as_i64())
        }
        _ => port["port"].as_i64(),
    }
}

/// The slice ports of a Service's ports as they resolve in one pod.
fn endpoint_ports(svc: &Value, pod: &Value) -> Vec<Value> {
    svc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let number = target_port(pod, p)?;
            let mut port = json!({
                "name": p["name"].as_str().unwrap_or_default(),
                "port": number,
                "protocol": p["protocol"].as_str().unwrap_or("TCP"),
            });
            if let Some(app) = p["appProtocol"].as_str() {
                port["appProtocol"] = json!(app);
            }
            Some(port)
        })
        .collect()
}

/// The endpoint of a pod, when it is one: it has an IP, has not finished, and is on a node that
/// exists.
fn endpoint(st: &Store, svc: &Value, pod: &Value) -> Option<Value> {
    let ip = pod["status"]["podIP"]
        .as_str()
        .filter(|ip| !ip.is_empty())?;
    if matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    ) {
        return None;
    }
    let node_name = pod["spec"]["nodeName"].as_str().unwrap_or_default();
    let node = st.get(NODES, "", node_name)?;
    let publish = svc["spec"]["publishNotReadyAddresses"] == true;
    let terminating = is_deleting(pod);
    let serving = publish || pod_ready(pod);
    let mut e = json!({
        "addresses": [ip],
        "conditions": {
            "ready": serving && (publish || !terminating),
            "serving": serving,
            "terminating": terminating,
        },
        "nodeName": node_name,
        "targetRef": {
            "kind": "Pod",
            "namespace": meta(pod, "namespace"),
            "name": meta(pod, "name"),
            "uid": meta(pod, "uid"),
        },
    });
    if let Some(zone) = node["metadata"]["labels"][ZONE].as_str() {
        e["zone"] = json!(zone);
    }
    if let Some(host) = pod["spec"]["hostname"].as_str().filter(|h| !h.is_empty())
        && pod["spec"]["subdomain"] == meta(svc, "name")
    {
        e["hostname"] = json!(host);
    }
    Some(e)
}

/// The labels of a Service's slices: the Service's own, its name, the controller's, and whether
/// it is headless.
fn slice_labels(svc: &Value) -> Value {
    let mut labels = svc["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    labels.remove(HEADLESS);
    labels.insert(SERVICE_NAME.into(), json!(meta(svc, "name")));
    labels.insert(MANAGED_BY.into(), json!(CONTROLLER));
    if svc["spec"]["clusterIP"] == "None" {
        labels.insert(HEADLESS.into(), json!(""));
    }
    Value::Object(labels)
}

/// The slices a Service should have, as (ports, endpoints): one per set of resolved ports, at
/// most [`MAX_ENDPOINTS_PER_SLICE`] endpoints each; one without either when no pod is selected.
fn desired(st: &Store, svc: &Value, sel: &Map<String, Value>) -> Vec<(Option<Value>, Vec<Value>)> {
    let ns = meta(svc, "namespace");
    let mut groups: Vec<(Value, Vec<Value>)> = vec![];
    for pod in st.iter(PODS, Some(ns)).filter(|p| selects(sel, p)) {
        let Some(e) = endpoint(st, svc, pod) else {
            continue;
        };
        let ports = json!(endpoint_ports(svc, pod));
        match groups.iter_mut().find(|(p, _)| *p == ports) {
            Some((_, endpoints)) => endpoints.push(e),
            None => groups.push((ports, vec![e])),
        }
    }
    let mut out: Vec<(Option<Value>, Vec<Value>)> = groups
        .into_iter()
        .flat_map(|(ports, endpoints)| {
            endpoints
                .chunks(MAX_ENDPOINTS_PER_SLICE)
                .map(|c| (Some(ports.clone()), c.to_vec()))
                .collect::<Vec<_>>()
        })
        .collect();
    if out.is_empty() {
        out.push((None, vec![]));
    }
    out
}

fn owned_by(slice: &Value, svc: &Value) -> bool {
    slice["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|r| r["uid"] == meta(svc, "uid") && r["controller"] == true)
}

/// The slice's content as the controller writes it, to compare with what is stored.
fn content(slice: &Value) -> (Value, Value, Value, Value) {
    (
        slice["metadata"]["labels"].clone(),
        slice["addressType"].clone(),
        slice["ports"].clone(),
        slice["endpoints"].clone(),
    )
}

fn sync_service(st: &mut Store, slice_info: &ResourceInfo, ns: &str, name: &str) -> bool {
    let Some(svc) = st.get_shared(SERVICES, ns, name) else {
        return false;
    };
    if is_deleting(&svc) || svc["spec"]["type"] == "ExternalName" {
        return false;
    }
    let Some(sel) = selector(&svc) else {
        return false;
    };
    let labels = slice_labels(&svc);
    let mut wanted: Vec<Value> = desired(st, &svc, sel)
        .into_iter()
        .map(|(ports, endpoints)| {
            let mut slice = json!({
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "namespace": ns,
                    "labels": labels,
                    "ownerReferences": [{
                        "apiVersion": "v1", "kind": "Service", "name": name,
                        "uid": meta(&svc, "uid"), "controller": true, "blockOwnerDeletion": true,
                    }],
                },
                "addressType": "IPv4",
                "endpoints": endpoints,
            });
            if let Some(ports) = ports {
                slice["ports"] = ports;
            }
            slice
        })
        .collect();
    // The slices this controller keeps for the Service; one it does not own, or that is being
    // deleted, is not reused.
    let existing: Vec<Value> = st
        .iter(SLICES, Some(ns))
        .filter(|sl| {
            let l = &sl["metadata"]["labels"];
            l[SERVICE_NAME] == name && l[MANAGED_BY] == CONTROLLER && !is_deleting(sl)
        })
        .cloned()
        .collect();
    let (mut reusable, foreign): (Vec<Value>, Vec<Value>) = existing
        .into_iter()
        .partition(|sl| owned_by(sl, &svc) && sl["addressType"] == "IPv4");
    let mut changed = false;
    // A slice that already holds what one desired slice does stays as it is.
    wanted.retain(
        |w| match reusable.iter().position(|sl| content(sl) == content(w)) {
            Some(i) => {
                reusable.remove(i);
                false
            }
            None => true,
        },
    );
    // Then slices with the same ports are updated, then any other left over.
    let mut updates = vec![];
    for w in &wanted {
        let at = reusable
            .iter()
            .position(|sl| sl["ports"] == w["ports"])
            .or_else(|| (!reusable.is_empty()).then_some(0));
        updates.push(at.map(|i| reusable.remove(i)));
    }
    for (w, old) in wanted.into_iter().zip(updates) {
        match old {
            Some(old) => {
                let mut next = old.clone();
                next["metadata"]["labels"] = w["metadata"]["labels"].clone();
                next["metadata"]["ownerReferences"] = w["metadata"]["ownerReferences"].clone();
                next["endpoints"] = w["endpoints"].clone();
                match w.get("ports") {
                    Some(p) => next["ports"] = p.clone(),
                    None => {
                        next.as_object_mut().map(|o| o.remove("ports"));
                    }
                }
                let opts = WriteOpts::internal(CONTROLLER_MANAGER);
                changed |=
                    ops::update(st, slice_info, ns, meta(&old, "name"), next, &opts, false).is_ok();
            }
            None => {
                let mut w = w;
                w["metadata"]["generateName"] = json!(format!("{name}-"));
                let opts = WriteOpts::internal(CONTROLLER_MANAGER);
                changed |= ops::create(st, slice_info, ns, w, &opts, false).is_ok();
            }
        }
    }
    for sl in reusable.iter().chain(&foreign) {
        let _ = ops::delete(st, slice_info, ns, meta(sl, "name"), &DeleteOpts::default());
        changed = true;
    }
    changed
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{endpoint_ports, slice_labels};

    #[test]
    fn ports_resolve_by_number_or_by_the_containers_port_name_and_protocol() {
        let svc = json!({"spec": {"ports": [
            {"name": "web", "port": 80, "protocol": "TCP", "targetPort": "http"},
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": "http"},
            {"name": "metrics", "port": 9090, "protocol": "TCP", "targetPort": 9100,
                "appProtocol": "http"},
        ]}});
        let pod = json!({"spec": {"containers": [
            {"name": "c", "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]},
        ]}});
        // The UDP port finds no UDP container port named http: the pod has no such port.
        assert_eq!(
            endpoint_ports(&svc, &pod),
            vec![
                json!({"name": "web", "port": 8080, "protocol": "TCP"}),
                json!({"name": "metrics", "port": 9100, "protocol": "TCP", "appProtocol": "http"}),
            ]
        );
    }

    #[test]
    fn slices_carry_the_services_labels_and_the_controllers() {
        let svc = json!({"metadata": {"name": "web", "labels": {"team": "a"}},
            "spec": {"clusterIP": "None"}});
        assert_eq!(
            slice_labels(&svc),
            json!({
                "team": "a",
                "kubernetes.io/service-name": "web",
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                "service.kubernetes.io/headless": "",
            })
        );
    }
}
