//! ResourceQuota for pods, as kube-apiserver's ResourceQuota admission plugin and
//! kube-controller-manager's ResourceQuota controller keep it: a pod is created only if every
//! quota of its namespace has room for it (403 Forbidden `exceeded quota: ...` otherwise, or
//! `failed quota: ...: must specify ...` when a quota counts CPU or memory its containers leave
//! unset), and each quota's `status` carries its `hard` limits and what the namespace's pods use.
//!
//! Counted: `pods` and `count/pods`, `requests.cpu` (or `cpu`), `requests.memory` (or `memory`),
//! `limits.cpu`, `limits.memory`. Not emulated: scopes, scope selectors, other object counts,
//! extended resources. Usage is counted from the stored pods at admission (kube-apiserver adds
//! the pod to `status.used` instead; the controller recounts either way).

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::errors::ApiError;
use super::ops::{self, WriteOpts};
use super::resources::ResourceInfo;
use super::scheduler::{container_amount, pod_amount};
use super::schema::library::parse_quantity;
use super::store::Store;
use super::workloads::PODS;

pub const QUOTAS: &str = "/resourcequotas";

/// The resources whose quota asks every container to state its own request or limit.
const CONSTRAINED: [&str; 6] = [
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
];

/// `(requests or limits, resource)` a quota resource name counts, for the compute resources.
fn compute(name: &str) -> Option<(&'static str, &'static str)> {
    match name {
        "cpu" | "requests.cpu" => Some(("requests", "cpu")),
        "memory" | "requests.memory" => Some(("requests", "memory")),
        "limits.cpu" => Some(("limits", "cpu")),
        "limits.memory" => Some(("limits", "memory")),
        _ => None,
    }
}

/// What one pod uses of a quota resource (millicores for CPU, bytes, or a count), if counted.
fn usage(pod: &Value, name: &str) -> Option<i128> {
    match name {
        "pods" | "count/pods" => Some(1),
        _ => compute(name).map(|(which, resource)| pod_amount(&pod["spec"], which, resource)),
    }
}

/// A quantity in the units [`usage`] counts in.
fn amount(name: &str, q: &str) -> i128 {
    let nano = parse_quantity(q).unwrap_or(0);
    let unit: i128 = if compute(name).is_some_and(|(_, r)| r == "cpu") {
        1_000_000
    } else {
        1_000_000_000
    };
    nano.div_euclid(unit) + i128::from(nano.rem_euclid(unit) != 0)
}

/// An amount as a quantity: millicores as `100m` or whole CPUs, bytes with the largest binary
/// suffix that divides them.
fn quantity(name: &str, n: i128) -> String {
    if compute(name).is_some_and(|(_, r)| r == "cpu") {
        return if n % 1000 == 0 {
            (n / 1000).to_string()
        } else {
            format!("{n}m")
        };
    }
    if compute(name).is_some() && n != 0 {
        for (suffix, shift) in [
            ("Ei", 60),
            ("Pi", 50),
            ("Ti", 40),
            ("Gi", 30),
            ("Mi", 20),
            ("Ki", 10),
        ] {
            if n % (1i128 << shift) == 0 {
                return format!("{}{suffix}", n >> shift);
            }
        }
    }
    n.to_string()
}

/// Pods that count against a quota: not finished, not being deleted.
fn counted(st: &Store, ns: &str) -> Vec<Value> {
    st.iter(PODS, Some(ns))
        .filter(|p| {
            !p["metadata"]["deletionTimestamp"].is_string()
                && !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
        })
        .cloned()
        .collect()
}

fn forbidden(name: &str, why: String) -> ApiError {
    ApiError::new(
        403,
        "Forbidden",
        format!("pods \"{name}\" is forbidden: {why}"),
    )
    .with_details(json!({"name": name, "kind": "pods"}))
}

/// The admission check for a new pod named `name` in `ns`.
pub fn admit(st: &Store, ns: &str, name: &str, pod: &Value) -> Result<(), ApiError> {
    let quotas: Vec<&Value> = st.iter(QUOTAS, Some(ns)).collect();
    if quotas.is_empty() {
        return Ok(());
    }
    let pods = counted(st, ns);
    for q in quotas {
        let quota = q["metadata"]["name"].as_str().unwrap_or_default();
        let hard = q["spec"]["hard"].as_object().cloned().unwrap_or_default();
        let known = q["status"]["hard"].as_object();
        let unknown: Vec<&str> = hard
            .keys()
            .filter(|k| known.is_none_or(|h| !h.contains_key(*k)))
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            return Err(forbidden(
                name,
                format!(
                    "status unknown for quota: {quota}, resources: {}",
                    unknown.join(",")
                ),
            ));
        }
        constraints(pod, &hard)
            .map_err(|why| forbidden(name, format!("failed quota: {quota}: {why}")))?;
        // Each resource the pod would take past the quota: (name, requested, used, limited).
        let mut over: Vec<[String; 4]> = vec![];
        for (k, limit) in &hard {
            let Some(want) = usage(pod, k) else {
                continue;
            };
            let used: i128 = pods.iter().filter_map(|p| usage(p, k)).sum();
            let limit = limit.as_str().unwrap_or("0");
            if used + want > amount(k, limit) {
                over.push([
                    k.clone(),
                    quantity(k, want),
                    quantity(k, used),
                    limit.to_owned(),
                ]);
            }
        }
        if !over.is_empty() {
            let list = |i: usize| {
                over.iter()
                    .map(|o| format!("{}={}", o[0], o[i]))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            return Err(forbidden(
                name,
                format!(
                    "exceeded quota: {quota}, requested: {}, used: {}, limited: {}",
                    list(1),
                    list(2),
                    list(3),
                ),
            ));
        }
    }
    Ok(())
}

/// A quota of CPU or memory needs each container to say how much it requests (or limits).
fn constraints(pod: &Value, hard: &Map<String, Value>) -> Result<(), String> {
    let required: BTreeSet<&str> = hard
        .keys()
        .map(String::as_str)
        .filter(|k| CONSTRAINED.contains(k))
        .collect();
    let mut missing: Vec<(&str, Vec<&str>)> = vec![];
    let spec = &pod["spec"];
    for c in ["containers", "initContainers"]
        .iter()
        .flat_map(|k| spec[*k].as_array().into_iter().flatten())
    {
        for r in &required {
            let (which, resource) = compute(r).unwrap_or_default();
            if container_amount(c, which, resource).is_none() {
                let container = c["name"].as_str().unwrap_or_default();
                match missing.iter_mut().find(|(m, _)| m == r) {
                    Some((_, names)) => names.push(container),
                    None => missing.push((r, vec![container])),
                }
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    missing.sort();
    let parts: Vec<String> = missing
        .into_iter()
        .map(|(r, mut names)| {
            names.sort_unstable();
            names.dedup();
            format!("{r} for: {}", names.join(","))
        })
        .collect();
    Err(format!("must specify {}", parts.join("; ")))
}

/// The quota controller: the status of each quota of these namespaces, recounted from the pods.
pub fn sync(st: &mut Store, namespaces: &BTreeSet<String>) -> bool {
    let Some(info) = st
        .resources
        .iter()
        .find(|r| r.storage_key() == QUOTAS && r.storage().is_none())
        .cloned()
    else {
        return false;
    };
    let mut changed = false;
    for ns in namespaces {
        let quotas: Vec<Value> = st.iter(QUOTAS, Some(ns)).cloned().collect();
        if quotas.is_empty() {
            continue;
        }
        let pods = counted(st, ns);
        for q in quotas {
            changed |= write_status(st, &info, &pods, q);
        }
    }
    changed
}

fn write_status(st: &mut Store, info: &ResourceInfo, pods: &[Value], q: Value) -> bool {
    let hard = q["spec"]["hard"].as_object().cloned().unwrap_or_default();
    let used: Map<String, Value> = hard
        .keys()
        .filter_map(|k| {
            let total: i128 = pods.iter().map(|p| usage(p, k)).sum::<Option<i128>>()?;
            Some((k.clone(), json!(quantity(k, total))))
        })
        .collect();
    let status = json!({"hard": hard, "used": used});
    if q["status"] == status || q["metadata"]["deletionTimestamp"].is_string() {
        return false;
    }
    let (ns, name) = (
        q["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        q["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    );
    let mut o = q;
    o["status"] = status;
    let opts = WriteOpts {
        subresource: Some("status".into()),
        ..WriteOpts::internal("kube-controller-manager")
    };
    ops::update(st, info, &ns, &name, o, &opts, false).is_ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn amounts_read_and_print_as_kube_apiserver_prints_them() {
        assert_eq!(amount("requests.cpu", "1.5"), 1500);
        assert_eq!(amount("cpu", "100m"), 100);
        assert_eq!(quantity("cpu", 100), "100m");
        assert_eq!(quantity("requests.cpu", 3000), "3");
        assert_eq!(amount("requests.memory", "100Mi"), 100 << 20);
        assert_eq!(quantity("requests.memory", 50 << 20), "50Mi");
        assert_eq!(quantity("limits.memory", 1000), "1000");
        assert_eq!(quantity("pods", 2), "2");
    }

    #[test]
    fn a_pod_uses_its_containers_together_and_its_init_containers_one_at_a_time() {
        let c =
            |name: &str, cpu: &str| json!({"name": name, "resources": {"requests": {"cpu": cpu}}});
        let mut sidecar = c("proxy", "100m");
        sidecar["restartPolicy"] = json!("Always");
        let pod = json!({"spec": {
            "initContainers": [c("setup", "2"), sidecar],
            "containers": [c("a", "300m"), {"name": "b", "resources": {"limits": {"cpu": "200m"}}}],
        }});
        assert_eq!(usage(&pod, "requests.cpu"), Some(2000));
        assert_eq!(usage(&pod, "limits.cpu"), Some(200));
        assert_eq!(usage(&pod, "pods"), Some(1));
        assert_eq!(usage(&pod, "services"), None);
        let hard = json!({"requests.memory": "1Gi", "pods": "3"});
        assert_eq!(
            constraints(&pod, hard.as_object().unwrap()),
            Err("must specify requests.memory for: a,b,proxy,setup".into())
        );
    }
}
