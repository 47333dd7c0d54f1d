//! Ingress (networking.k8s.io/v1): a path type on every path, an empty load balancer status.

use serde_json::{Value, json};

use super::super::apply::fragment::*;
use super::super::errors::{FieldError, FieldErrorKind};
use super::common::*;
use super::{Kind, Proto::*};

pub const KIND: Kind = Kind {
    group: "networking.k8s.io",
    kind: "Ingress",
    plural: "ingresses",
    short_names: &["ing"],
    status: true,
    generation: true,
    decode: roundtrip::<k8s_openapi::api::networking::v1::Ingress>,
    defaults,
    validate,
    columns: &[
        ("Name", "string", 0),
        ("Class", "string", 0),
        ("Hosts", "string", 0),
        ("Address", "string", 0),
        ("Ports", "string", 0),
        ("Age", "string", 0),
    ],
    cells,
    merge: Some(merge),
    protobuf: &[
        (
            "Ingress",
            &[
                (1, "metadata", Msg("ObjectMeta")),
                (2, "spec", Msg("IngressSpec")),
            ],
        ),
        (
            "IngressSpec",
            &[
                (1, "defaultBackend", Msg("IngressBackend")),
                (2, "tls", MsgList("IngressTLS")),
                (3, "rules", MsgList("IngressRule")),
                (4, "ingressClassName", Str),
            ],
        ),
        (
            "IngressTLS",
            &[(1, "hosts", StrList), (2, "secretName", Str)],
        ),
        (
            "IngressRule",
            &[(1, "host", Str), (2, "", Inline("IngressRuleValue"))],
        ),
        (
            "IngressRuleValue",
            &[(1, "http", Msg("HTTPIngressRuleValue"))],
        ),
        (
            "HTTPIngressRuleValue",
            &[(1, "paths", MsgList("HTTPIngressPath"))],
        ),
        (
            "HTTPIngressPath",
            &[
                (1, "path", Str),
                (2, "backend", Msg("IngressBackend")),
                (3, "pathType", Str),
            ],
        ),
        (
            "IngressBackend",
            &[(4, "service", Msg("IngressServiceBackend"))],
        ),
        (
            "IngressServiceBackend",
            &[(1, "name", Str), (2, "port", Msg("ServiceBackendPort"))],
        ),
        (
            "ServiceBackendPort",
            &[(1, "name", Str), (2, "number", Int)],
        ),
    ],
    ..Kind::BASE
};

fn defaults(obj: &mut Value) {
    default(obj_mut(obj, "status"), "loadBalancer", json!({}));
}

fn validate(obj: &Value, errs: &mut Vec<FieldError>) {
    for (i, r) in obj["spec"]["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        for (j, p) in r["http"]["paths"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let field = format!("spec.rules[{i}].http.paths[{j}].pathType");
            match p["pathType"].as_str() {
                None | Some("") => {
                    errs.push(FieldError::required(field, "pathType must be specified"))
                }
                Some("Exact" | "Prefix" | "ImplementationSpecific") => {}
                Some(other) => errs.push(FieldError {
                    field,
                    kind: FieldErrorKind::Unsupported(
                        json!(other),
                        vec![
                            "Exact".into(),
                            "ImplementationSpecific".into(),
                            "Prefix".into(),
                        ],
                    ),
                }),
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
    let hosts: Vec<String> = spec["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| s(&r["host"]))
        .filter(|h| !h.is_empty())
        .collect();
    let addr: Vec<String> = st["loadBalancer"]["ingress"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            if i["ip"].is_string() {
                s(&i["ip"])
            } else {
                s(&i["hostname"])
            }
        })
        .collect();
    let ports = if spec["tls"].as_array().is_some_and(|a| !a.is_empty()) {
        "80, 443"
    } else {
        "80"
    };
    vec![
        name,
        or_none(s(&spec["ingressClassName"])),
        json!(if hosts.is_empty() {
            "*".to_string()
        } else {
            hosts.join(",")
        }),
        json!(addr.join(",")),
        json!(ports),
        age(created),
    ]
}

/// The merge schema (list types, merge keys, patch strategies) of the Go type.
fn merge() -> Value {
    spec_status(
        object(json!({"rules": atomic_list(), "tls": atomic_list()})),
        object(json!({"loadBalancer": present(object(json!({"ingress": atomic_list()})))})),
    )
}
