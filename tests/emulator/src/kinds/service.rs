//! Service (v1): defaults by type, a cluster IP and node ports allocated on create and kept across
//! updates, a DNS-1123 label name (Kubernetes 1.37).

use serde_json::{Value, json};

use super::super::apply::fragment::*;
use super::super::errors::FieldError;
use super::common::*;
use super::{Kind, Proto::*};

pub const KIND: Kind = Kind {
    kind: "Service",
    plural: "services",
    short_names: &["svc"],
    categories: &["all"],
    status: true,
    decode: roundtrip::<k8s_openapi::api::core::v1::Service>,
    defaults,
    // A DNS-1123 label since Kubernetes 1.36 (RelaxedServiceNameValidation, GA in 1.37); before,
    // a DNS-1035 label.
    check_name: check_label,
    validate,
    validate_update,
    allocate: Some(allocate),
    carry_allocated,
    field_selectors: &["spec.clusterIP", "spec.type"],
    columns: &[
        ("Name", "string", 0),
        ("Type", "string", 0),
        ("Cluster-IP", "string", 0),
        ("External-IP", "string", 0),
        ("Port(s)", "string", 0),
        ("Age", "string", 0),
        ("Selector", "string", 1),
    ],
    cells,
    merge: Some(merge),
    protobuf: &[
        (
            "Service",
            &[
                (1, "metadata", Msg("ObjectMeta")),
                (2, "spec", Msg("ServiceSpec")),
            ],
        ),
        (
            "ServiceSpec",
            &[
                (1, "ports", MsgList("ServicePort")),
                (2, "selector", StrMap),
                (3, "clusterIP", Str),
                (4, "type", Str),
                (5, "externalIPs", StrList),
                (7, "sessionAffinity", Str),
                (10, "externalName", Str),
            ],
        ),
        (
            "ServicePort",
            &[
                (1, "name", Str),
                (2, "protocol", Str),
                (3, "port", Int),
                (4, "targetPort", IntOrString),
                (5, "nodePort", Int),
                (6, "appProtocol", Str),
            ],
        ),
    ],
    ..Kind::BASE
};

fn defaults(obj: &mut Value) {
    let spec = obj_mut(obj, "spec");
    default(spec, "type", json!("ClusterIP"));
    let ty = spec["type"].as_str().unwrap_or("ClusterIP").to_string();
    if ty == "ExternalName" {
        return;
    }
    default(spec, "sessionAffinity", json!("None"));
    default(spec, "internalTrafficPolicy", json!("Cluster"));
    if ty == "NodePort" || ty == "LoadBalancer" {
        default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if ty == "LoadBalancer" {
        default(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    for p in each(spec, "ports") {
        default(p, "protocol", json!("TCP"));
        if p.get("targetPort").is_none_or(Value::is_null)
            && let Some(port) = p.get("port").cloned()
        {
            p["targetPort"] = port;
        }
    }
    if obj.get("status").is_none() {
        obj["status"] = json!({"loadBalancer": {}});
    }
}

fn validate(obj: &Value, errs: &mut Vec<FieldError>) {
    let ty = obj["spec"]["type"].as_str().unwrap_or("ClusterIP");
    let ports = obj["spec"]["ports"].as_array().cloned().unwrap_or_default();
    if ty != "ExternalName" && obj["spec"]["clusterIP"] != "None" && ports.is_empty() {
        errs.push(FieldError::required("spec.ports", ""));
    }
    for (i, p) in ports.iter().enumerate() {
        match p["port"].as_i64() {
            Some(n) if (1..=65535).contains(&n) => {}
            Some(n) => errs.push(FieldError::invalid(
                format!("spec.ports[{i}].port"),
                json!(n),
                "must be between 1 and 65535, inclusive",
            )),
            None => errs.push(FieldError::required(format!("spec.ports[{i}].port"), "")),
        }
        if ports.len() > 1 && p["name"].as_str().is_none_or(str::is_empty) {
            errs.push(FieldError::required(format!("spec.ports[{i}].name"), ""));
        }
    }
}

fn validate_update(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    let (o, n) = (&old["spec"]["clusterIP"], &new["spec"]["clusterIP"]);
    if o.is_string() && o != "" && n != o {
        errs.push(FieldError::invalid(
            "spec.clusterIPs[0]",
            new["spec"]["clusterIPs"].clone(),
            "may not change once set",
        ));
    }
}

/// Fields the server allocates and keeps across updates that leave them empty (Service clusterIP, nodePorts).
fn carry_allocated(old: &Value, new: &mut Value) {
    for key in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
        if new["spec"].get(key).is_none_or(|v| v.is_null() || v == "")
            && let Some(v) = old["spec"].get(key)
            && new["spec"].is_object()
        {
            new["spec"][key] = v.clone();
        }
    }
    let old_ports = old["spec"]["ports"].as_array().cloned().unwrap_or_default();
    for p in each(&mut new["spec"], "ports") {
        if p.get("nodePort").is_none()
            && let Some(op) = old_ports
                .iter()
                .find(|op| op["port"] == p["port"] && op.get("nodePort").is_some())
        {
            p["nodePort"] = op["nodePort"].clone();
        }
    }
}

/// Allocates a Service's cluster IP and node ports when missing; `ip` and `node_port` hand out fresh ones.
fn allocate(obj: &mut Value, ip: &mut dyn FnMut() -> String, node_port: &mut dyn FnMut() -> u32) {
    let spec = obj_mut(obj, "spec");
    let ty = spec["type"].as_str().unwrap_or("ClusterIP").to_string();
    if ty == "ExternalName" {
        return;
    }
    if spec.get("clusterIP").is_none_or(|v| v == "" || v.is_null()) {
        spec["clusterIP"] = json!(ip());
    }
    let cip = spec["clusterIP"].clone();
    default(spec, "clusterIPs", json!([cip]));
    default(spec, "ipFamilies", json!(["IPv4"]));
    default(
        spec,
        "ipFamilyPolicy",
        json!(if cip == "None" {
            "RequireDualStack"
        } else {
            "SingleStack"
        }),
    );
    if cip == "None" {
        spec["ipFamilyPolicy"] = json!(spec["ipFamilyPolicy"].as_str().unwrap_or("SingleStack"));
    }
    if ty == "NodePort" || ty == "LoadBalancer" {
        for p in each(spec, "ports") {
            if p.get("nodePort").is_none_or(Value::is_null) {
                p["nodePort"] = json!(node_port());
            }
        }
    }
}

/// The cells of one row of `kubectl get`.
fn cells(o: &Value) -> Vec<Value> {
    let name = o["metadata"]["name"].clone();
    let created = &o["metadata"]["creationTimestamp"];
    let st = &o["status"];
    let spec = &o["spec"];
    let ports: Vec<String> = spec["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| match p.get("nodePort") {
            Some(np) => format!("{}:{}/{}", s(&p["port"]), s(np), s(&p["protocol"])),
            None => format!("{}/{}", s(&p["port"]), s(&p["protocol"])),
        })
        .collect();
    let ext = st["loadBalancer"]["ingress"]
        .as_array()
        .map(|a| a.iter().map(|i| s(&i["ip"])).collect::<Vec<_>>().join(","))
        .filter(|x| !x.is_empty())
        .unwrap_or_else(|| {
            if spec["type"] == "LoadBalancer" {
                "<pending>".into()
            } else {
                "<none>".into()
            }
        });
    let sel = labels_text(&spec["selector"]);
    vec![
        name,
        spec["type"].clone(),
        or_none(s(&spec["clusterIP"])),
        json!(ext),
        or_none(ports.join(",")),
        age(created),
        or_none(sel),
    ]
}

/// The merge schema (list types, merge keys, patch strategies) of the Go type.
fn merge() -> Value {
    spec_status(
        object(json!({
            "ports": {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["port", "protocol"],
                "x-kubernetes-patch-merge-key": "port",
                "x-kubernetes-patch-strategy": "merge",
                "items": object(json!({"protocol": {"type": "string", "default": "TCP"}})),
            },
            "selector": atomic_map(),
            "clusterIPs": atomic_list(),
            "externalIPs": atomic_list(),
            "ipFamilies": atomic_list(),
            "loadBalancerSourceRanges": atomic_list(),
        })),
        object(json!({
            "loadBalancer": present(object(json!({"ingress": atomic_list()}))),
            "conditions": conditions(),
        })),
    )
}
