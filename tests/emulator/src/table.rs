//! `meta.k8s.io/v1` Table rendering for `kubectl get`: CRD printer columns and the built-in kinds' columns.

use jsonpath_rust::JsonPath;
use serde_json::{Value, json};

use super::resources::ResourceInfo;

/// What a Table row carries besides its cells (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

struct Col {
    name: String,
    ty: String,
    format: String,
    description: String,
    priority: i64,
}

fn col(name: &str, ty: &str, priority: i64, description: &str) -> Col {
    Col {
        name: name.into(),
        ty: ty.into(),
        format: if name == "Name" {
            "name".into()
        } else {
            String::new()
        },
        description: description.into(),
        priority,
    }
}

const NAME_DESC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const AGE_DESC: &str =
    "CreationTimestamp is a timestamp representing the server time when this object was created.";

/// Kubernetes' short human duration (`5s`, `3m10s`, `2d4h`), as in the AGE column.
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    if secs < 0 {
        return "0s".into();
    }
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        let s = secs % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let d = (hours / 24) % 365;
        return if d == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{d}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

fn age(ts: &Value) -> Value {
    let Some(t) = ts.as_str().and_then(|s| s.parse::<jiff::Timestamp>().ok()) else {
        return json!("<unknown>");
    };
    json!(human_duration(
        jiff::Timestamp::now().as_second() - t.as_second()
    ))
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn or_none(v: String) -> Value {
    json!(if v.is_empty() {
        "<none>".to_string()
    } else {
        v
    })
}

fn columns(info: &ResourceInfo) -> Vec<Col> {
    if let Some(crd) = &info.crd {
        let mut cols = vec![col("Name", "string", 0, NAME_DESC)];
        if crd.printer_columns.is_empty() {
            cols.push(col("Age", "date", 0, AGE_DESC));
        }
        for c in &crd.printer_columns {
            cols.push(Col {
                name: s(&c["name"]),
                ty: s(&c["type"]),
                format: s(&c["format"]),
                description: s(&c["description"]),
                priority: c["priority"].as_i64().unwrap_or(0),
            });
        }
        return cols;
    }
    let names: &[(&str, &str, i64)] = match (info.group.as_str(), info.kind.as_str()) {
        ("apps", "Deployment") => &[
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        ("", "Service") => &[
            ("Name", "string", 0),
            ("Type", "string", 0),
            ("Cluster-IP", "string", 0),
            ("External-IP", "string", 0),
            ("Port(s)", "string", 0),
            ("Age", "string", 0),
            ("Selector", "string", 1),
        ],
        ("", "ConfigMap") => &[
            ("Name", "string", 0),
            ("Data", "integer", 0),
            ("Age", "string", 0),
        ],
        ("", "Secret") => &[
            ("Name", "string", 0),
            ("Type", "string", 0),
            ("Data", "integer", 0),
            ("Age", "string", 0),
        ],
        ("", "Namespace") => &[
            ("Name", "string", 0),
            ("Status", "string", 0),
            ("Age", "string", 0),
        ],
        ("", "ServiceAccount") => &[
            ("Name", "string", 0),
            ("Secrets", "integer", 0),
            ("Age", "string", 0),
        ],
        ("networking.k8s.io", "Ingress") => &[
            ("Name", "string", 0),
            ("Class", "string", 0),
            ("Hosts", "string", 0),
            ("Address", "string", 0),
            ("Ports", "string", 0),
            ("Age", "string", 0),
        ],
        ("coordination.k8s.io", "Lease") => &[
            ("Name", "string", 0),
            ("Holder", "string", 0),
            ("Age", "string", 0),
        ],
        ("policy", "PodDisruptionBudget") => &[
            ("Name", "string", 0),
            ("Min Available", "string", 0),
            ("Max Unavailable", "string", 0),
            ("Allowed Disruptions", "integer", 0),
            ("Age", "string", 0),
        ],
        ("autoscaling", "HorizontalPodAutoscaler") => &[
            ("Name", "string", 0),
            ("Reference", "string", 0),
            ("Targets", "string", 0),
            ("MinPods", "string", 0),
            ("MaxPods", "integer", 0),
            ("Replicas", "integer", 0),
            ("Age", "string", 0),
        ],
        ("", "Event") => &[
            ("Last Seen", "string", 0),
            ("Type", "string", 0),
            ("Reason", "string", 0),
            ("Object", "string", 0),
            ("Message", "string", 0),
        ],
        ("apiextensions.k8s.io", _) => &[("Name", "string", 0), ("Created At", "date", 0)],
        _ => &[("Name", "string", 0), ("Age", "string", 0)],
    };
    names
        .iter()
        .map(|(n, t, p)| {
            col(
                n,
                t,
                *p,
                if *n == "Name" {
                    NAME_DESC
                } else if *n == "Age" {
                    AGE_DESC
                } else {
                    ""
                },
            )
        })
        .collect()
}

fn builtin_cells(info: &ResourceInfo, o: &Value) -> Vec<Value> {
    let name = o["metadata"]["name"].clone();
    let created = &o["metadata"]["creationTimestamp"];
    let st = &o["status"];
    let spec = &o["spec"];
    match (info.group.as_str(), info.kind.as_str()) {
        ("apps", "Deployment") => {
            let containers = spec["template"]["spec"]["containers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let sel = spec["selector"]["matchLabels"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", s(v)))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    st["readyReplicas"].as_i64().unwrap_or(0),
                    spec["replicas"].as_i64().unwrap_or(0)
                )),
                json!(st["updatedReplicas"].as_i64().unwrap_or(0)),
                json!(st["availableReplicas"].as_i64().unwrap_or(0)),
                age(created),
                json!(
                    containers
                        .iter()
                        .map(|c| s(&c["name"]))
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                json!(
                    containers
                        .iter()
                        .map(|c| s(&c["image"]))
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                or_none(sel),
            ]
        }
        ("", "Service") => {
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
            let sel = spec["selector"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", s(v)))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
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
        ("", "ConfigMap") => {
            let n = o["data"].as_object().map_or(0, |m| m.len())
                + o["binaryData"].as_object().map_or(0, |m| m.len());
            vec![name, json!(n), age(created)]
        }
        ("", "Secret") => vec![
            name,
            o["type"].clone(),
            json!(o["data"].as_object().map_or(0, |m| m.len())),
            age(created),
        ],
        ("", "Namespace") => vec![name, st["phase"].clone(), age(created)],
        ("", "ServiceAccount") => vec![
            name,
            json!(o["secrets"].as_array().map_or(0, |a| a.len())),
            age(created),
        ],
        ("networking.k8s.io", "Ingress") => {
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
        ("coordination.k8s.io", "Lease") => {
            vec![name, or_none(s(&spec["holderIdentity"])), age(created)]
        }
        ("policy", "PodDisruptionBudget") => {
            let bound = |v: &Value| match v {
                Value::Null => json!("N/A"),
                Value::String(s) => json!(s),
                other => json!(other.to_string()),
            };
            vec![
                name,
                bound(&spec["minAvailable"]),
                bound(&spec["maxUnavailable"]),
                json!(st["disruptionsAllowed"].as_i64().unwrap_or(0)),
                age(created),
            ]
        }
        ("autoscaling", "HorizontalPodAutoscaler") => {
            let target = &spec["scaleTargetRef"];
            vec![
                name,
                json!(format!("{}/{}", s(&target["kind"]), s(&target["name"]))),
                json!(autoscaler_targets(spec, st)),
                json!(
                    spec["minReplicas"]
                        .as_i64()
                        .map_or("<unset>".to_string(), |n| n.to_string())
                ),
                json!(spec["maxReplicas"].as_i64().unwrap_or(0)),
                json!(st["currentReplicas"].as_i64().unwrap_or(0)),
                age(created),
            ]
        }
        ("", "Event") => {
            let last = [&o["lastTimestamp"], &o["eventTime"], created]
                .into_iter()
                .find(|v| v.is_string())
                .cloned();
            let io = &o["involvedObject"];
            vec![
                age(&last.unwrap_or(Value::Null)),
                o["type"].clone(),
                o["reason"].clone(),
                json!(format!(
                    "{}/{}",
                    s(&io["kind"]).to_lowercase(),
                    s(&io["name"])
                )),
                o["message"].clone(),
            ]
        }
        ("apiextensions.k8s.io", _) => vec![name, created.clone()],
        _ => vec![name, age(created)],
    }
}

/// The Targets column of an autoscaler: `cpu: <current>/<target>` per metric, as kubectl prints
/// resource metrics; `<unknown>` until the controller measured something.
fn autoscaler_targets(spec: &Value, st: &Value) -> String {
    let metrics = spec["metrics"].as_array().cloned().unwrap_or_default();
    if metrics.is_empty() {
        return "<none>".into();
    }
    let current = st["currentMetrics"].as_array().cloned().unwrap_or_default();
    metrics
        .iter()
        .enumerate()
        .map(|(i, m)| match m["type"].as_str() {
            Some("Resource") => {
                let r = &m["resource"];
                let now = &current
                    .get(i)
                    .map_or(Value::Null, |c| c["resource"]["current"].clone());
                let (have, want) = match r["target"]["type"].as_str() {
                    Some("Utilization") => (
                        now["averageUtilization"]
                            .as_i64()
                            .map_or("<unknown>".to_string(), |u| format!("{u}%")),
                        format!(
                            "{}%",
                            r["target"]["averageUtilization"].as_i64().unwrap_or(0)
                        ),
                    ),
                    _ => (
                        now["averageValue"]
                            .as_str()
                            .map_or("<unknown>".to_string(), str::to_owned),
                        s(&r["target"]["averageValue"]),
                    ),
                };
                format!("{}: {have}/{want}", s(&r["name"]))
            }
            _ => "<unknown>/<unknown>".to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn cell_for(ty: &str, v: &Value) -> Value {
    match ty {
        "integer" => v
            .as_i64()
            .map(Value::from)
            .or_else(|| v.as_f64().map(|f| json!(f as i64)))
            .unwrap_or(Value::Null),
        "number" => v.as_f64().map(Value::from).unwrap_or(Value::Null),
        "boolean" => v.as_bool().map(Value::from).unwrap_or(Value::Null),
        "date" => age(v),
        _ => match v {
            Value::String(s) => json!(s),
            other => json!(other.to_string()),
        },
    }
}

fn crd_cells(info: &ResourceInfo, o: &Value) -> Vec<Value> {
    let crd = info.crd.as_ref().expect("crd");
    let mut cells = vec![o["metadata"]["name"].clone()];
    if crd.printer_columns.is_empty() {
        cells.push(age(&o["metadata"]["creationTimestamp"]));
    }
    for c in &crd.printer_columns {
        let path = s(&c["jsonPath"]);
        let path = if path.starts_with('$') {
            path
        } else {
            format!("${path}")
        };
        let found = o
            .query(&path)
            .ok()
            .and_then(|r| r.first().map(|v| (*v).clone()));
        cells.push(match found {
            None | Some(Value::Null) => Value::Null,
            Some(v) => cell_for(c["type"].as_str().unwrap_or("string"), &v),
        });
    }
    cells
}

fn row(info: &ResourceInfo, o: &Value, include: IncludeObject) -> Value {
    let cells = if info.crd.is_some() {
        crd_cells(info, o)
    } else {
        builtin_cells(info, o)
    };
    let mut r = json!({"cells": cells});
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => r["object"] = partial_metadata(o),
        IncludeObject::Object => r["object"] = o.clone(),
    }
    r
}

pub fn partial_metadata(o: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"].clone()})
}

/// A Table of `objects`; `with_columns` false leaves out the column definitions (later watch events).
pub fn render(
    info: &ResourceInfo,
    objects: &[Value],
    include: IncludeObject,
    list_meta: Value,
    with_columns: bool,
) -> Value {
    let cols: Vec<Value> = if with_columns {
        columns(info)
            .into_iter()
            .map(|c| {
                json!({"name": c.name, "type": c.ty, "format": c.format, "description": c.description, "priority": c.priority})
            })
            .collect()
    } else {
        vec![]
    };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": cols,
        "rows": objects.iter().map(|o| row(info, o, include)).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_kubectl() {
        for (secs, want) in [
            (0, "0s"),
            (59, "59s"),
            (119, "119s"),
            (120, "2m"),
            (190, "3m10s"),
            (600, "10m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 600, "3h10m"),
            (10 * 3600, "10h"),
            (50 * 3600, "2d2h"),
            (30 * 86400, "30d"),
            (-5, "<invalid>"),
        ] {
            assert_eq!(human_duration(secs), want, "{secs}");
        }
    }
}
