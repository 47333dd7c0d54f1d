//! EndpointSlice (discovery.k8s.io/v1): an address type (required, immutable), endpoints of one to
//! a hundred addresses of that type, named ports with a protocol (defaulted to TCP, the name to
//! ""), as kube-apiserver validates them (Kubernetes 1.37). The slices of Services with a selector
//! are the EndpointSlice controller's (`endpointslices.rs`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::{Value, json};

use super::super::apply::fragment::*;
use super::super::errors::{FieldError, FieldErrorKind};
use super::Kind;
use super::common::*;

pub const KIND: Kind = Kind {
    group: "discovery.k8s.io",
    kind: "EndpointSlice",
    plural: "endpointslices",
    decode: roundtrip::<k8s_openapi::api::discovery::v1::EndpointSlice>,
    defaults,
    validate,
    validate_update,
    columns: &[
        ("Name", "string", 0),
        ("AddressType", "string", 0),
        ("Ports", "string", 0),
        ("Endpoints", "string", 0),
        ("Age", "string", 0),
    ],
    cells,
    merge: Some(merge),
    ..Kind::BASE
};

const ADDRESS_TYPES: [&str; 3] = ["FQDN", "IPv4", "IPv6"];
const PROTOCOLS: [&str; 3] = ["SCTP", "TCP", "UDP"];
const MAX_ENDPOINTS: usize = 1000;
const MAX_ADDRESSES: usize = 100;
const MAX_PORTS: usize = 100;

fn defaults(obj: &mut Value) {
    for p in each(obj, "ports") {
        default(p, "name", json!(""));
        default(p, "protocol", json!("TCP"));
    }
}

fn too_many(field: String, n: usize, max: usize) -> FieldError {
    FieldError {
        field,
        kind: FieldErrorKind::TooMany(n, max),
    }
}

fn validate(obj: &Value, errs: &mut Vec<FieldError>) {
    let address_type = obj["addressType"].as_str().unwrap_or_default();
    match address_type {
        "" => errs.push(FieldError::required("addressType", "")),
        t if !ADDRESS_TYPES.contains(&t) => errs.push(FieldError {
            field: "addressType".into(),
            kind: FieldErrorKind::Unsupported(
                json!(t),
                ADDRESS_TYPES.iter().map(|s| s.to_string()).collect(),
            ),
        }),
        _ => {}
    }
    validate_endpoints(obj, address_type, errs);
    validate_ports(obj, errs);
}

fn validate_endpoints(obj: &Value, address_type: &str, errs: &mut Vec<FieldError>) {
    let endpoints = obj["endpoints"].as_array().map_or(&[][..], Vec::as_slice);
    if endpoints.len() > MAX_ENDPOINTS {
        errs.push(too_many("endpoints".into(), endpoints.len(), MAX_ENDPOINTS));
        return;
    }
    for (i, e) in endpoints.iter().enumerate() {
        let path = format!("endpoints[{i}].addresses");
        let addresses = e["addresses"].as_array().map_or(&[][..], Vec::as_slice);
        if addresses.is_empty() {
            // kube-apiserver 1.37 (declarative validation) says no more than this.
            errs.push(FieldError::required(&path, ""));
        } else if addresses.len() > MAX_ADDRESSES {
            errs.push(too_many(path.clone(), addresses.len(), MAX_ADDRESSES));
        }
        for (j, a) in addresses.iter().enumerate() {
            let a = a.as_str().unwrap_or_default();
            if let Some(msg) = check_address(address_type, a) {
                errs.push(FieldError::invalid(format!("{path}[{j}]"), json!(a), msg));
            }
        }
        if let Some(h) = e["hostname"].as_str()
            && let Some(msg) = check_label(h)
        {
            errs.push(FieldError::invalid(
                format!("endpoints[{i}].hostname"),
                json!(h),
                msg,
            ));
        }
    }
}

/// Why an address is not one of `address_type`, or None when it is; other types are not checked,
/// as kube-apiserver leaves them.
fn check_address(address_type: &str, a: &str) -> Option<String> {
    let ip = match address_type {
        "IPv4" => match a.parse::<Ipv4Addr>() {
            Ok(ip) => IpAddr::V4(ip),
            Err(_) => return Some("must be a valid IPv4 address".into()),
        },
        "IPv6" => match a.parse::<Ipv6Addr>() {
            Ok(ip) => IpAddr::V6(ip),
            Err(_) => return Some("must be a valid IPv6 address".into()),
        },
        "FQDN" => return check_fqdn(a),
        _ => return None,
    };
    special_ip(ip).map(str::to_owned)
}

/// The addresses no endpoint may have (apivalidation.ValidateNonSpecialIP).
fn special_ip(ip: IpAddr) -> Option<&'static str> {
    let link_local_multicast = match ip {
        IpAddr::V4(v4) => v4.octets()[..3] == [224, 0, 0],
        IpAddr::V6(v6) => v6.segments()[0] == 0xff02,
    };
    let link_local = match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
    };
    if ip.is_unspecified() {
        Some("may not be unspecified (0.0.0.0)")
    } else if ip.is_loopback() {
        Some("may not be in the loopback range (127.0.0.0/8, ::1/128)")
    } else if link_local {
        Some("may not be in the link-local range (169.254.0.0/16, fe80::/10)")
    } else if link_local_multicast {
        Some("may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)")
    } else {
        None
    }
}

/// A fully qualified domain name: at least two DNS labels, a DNS-1123 subdomain.
fn check_fqdn(a: &str) -> Option<String> {
    if a.split('.').count() < 2 {
        return Some("should be a domain with at least two segments separated by dots".into());
    }
    check_subdomain(a)
}

fn validate_ports(obj: &Value, errs: &mut Vec<FieldError>) {
    let ports = obj["ports"].as_array().map_or(&[][..], Vec::as_slice);
    if ports.len() > MAX_PORTS {
        errs.push(too_many("ports".into(), ports.len(), MAX_PORTS));
        return;
    }
    let mut names: Vec<&str> = vec![];
    for (i, p) in ports.iter().enumerate() {
        let name = p["name"].as_str().unwrap_or_default();
        if !name.is_empty()
            && let Some(msg) = check_label(name)
        {
            errs.push(FieldError::invalid(
                format!("ports[{i}].name"),
                json!(name),
                msg,
            ));
        }
        if names.contains(&name) {
            errs.push(FieldError {
                field: format!("ports[{i}].name"),
                kind: FieldErrorKind::Duplicate(json!(name)),
            });
        } else {
            names.push(name);
        }
        match p["protocol"].as_str() {
            None => errs.push(FieldError::required(format!("ports[{i}].protocol"), "")),
            Some(proto) if !PROTOCOLS.contains(&proto) => errs.push(FieldError {
                field: format!("ports[{i}].protocol"),
                kind: FieldErrorKind::Unsupported(
                    json!(proto),
                    PROTOCOLS.iter().map(|s| s.to_string()).collect(),
                ),
            }),
            Some(_) => {}
        }
        if let Some(n) = p["port"].as_i64()
            && !(1..=65535).contains(&n)
        {
            errs.push(FieldError::invalid(
                format!("ports[{i}].port"),
                json!(n),
                "must be between 1 and 65535, inclusive",
            ));
        }
    }
}

fn validate_update(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    if old["addressType"] != new["addressType"] {
        // kube-apiserver 1.37 checks this rule declaratively (`+k8s:immutable`), whose error
        // carries no value: `addressType: Invalid value: null: field is immutable`.
        errs.push(FieldError::invalid(
            "addressType",
            Value::Null,
            "field is immutable",
        ));
    }
}

/// The cells of one row of `kubectl get`: at most three ports and three addresses, then how
/// many more, `<unset>` for none.
fn cells(o: &Value) -> Vec<Value> {
    let ports: Vec<String> = o["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| match (p["port"].as_i64(), p["name"].as_str()) {
            (Some(n), _) => n.to_string(),
            (None, Some(name)) => name.to_string(),
            (None, None) => "*".into(),
        })
        .collect();
    let addresses: Vec<String> = o["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| e["addresses"].as_array().into_iter().flatten())
        .map(s)
        .collect();
    vec![
        o["metadata"]["name"].clone(),
        o["addressType"].clone(),
        json!(at_most_three(&ports)),
        json!(at_most_three(&addresses)),
        age(&o["metadata"]["creationTimestamp"]),
    ]
}

fn at_most_three(items: &[String]) -> String {
    match items.len() {
        0 => "<unset>".into(),
        n if n > 3 => format!("{} + {} more...", items[..3].join(","), n - 3),
        _ => items.join(","),
    }
}

/// The merge schema (list types, merge keys, patch strategies) of the Go type: both lists are
/// atomic, endpoints' addresses a set.
fn merge() -> Value {
    object(json!({
        "endpoints": atomic_list(),
        "ports": atomic_list(),
    }))
}
