//! The built-in kinds' wire decoding, defaulting and validation, as kube-apiserver does them.
//!
//! Defaults matter beyond looks: an operator comparing desired with live objects hot-loops when the
//! emulator defaults differently from a real cluster.

use k8s_openapi::api as k8s;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
use serde_json::{Map, Value, json};

use super::errors::{ApiError, FieldError};
use super::rbac;

fn roundtrip<T: serde::de::DeserializeOwned + serde::Serialize>(
    obj: &Value,
) -> Result<Value, String> {
    let typed: T = serde_json::from_value(obj.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(typed).map_err(|e| e.to_string())
}

/// Decodes a built-in object like the real server decodes into its Go type: wrong types are a 400,
/// unknown fields are dropped and reported (for `fieldValidation`).
pub fn decode(kind: &str, group: &str, obj: &Value) -> Result<(Value, Vec<String>), ApiError> {
    let filled;
    let obj = if group == rbac::GROUP {
        let mut o = obj.clone();
        rbac::fill_required(kind, &mut o);
        filled = o;
        &filled
    } else {
        obj
    };
    let out = match (group, kind) {
        ("", "Namespace") => roundtrip::<k8s::core::v1::Namespace>(obj),
        ("", "ConfigMap") => roundtrip::<k8s::core::v1::ConfigMap>(obj),
        ("", "Secret") => roundtrip::<k8s::core::v1::Secret>(obj),
        ("", "Service") => roundtrip::<k8s::core::v1::Service>(obj),
        ("", "ServiceAccount") => roundtrip::<k8s::core::v1::ServiceAccount>(obj),
        ("", "Event") => roundtrip::<k8s::core::v1::Event>(obj),
        ("events.k8s.io", "Event") => roundtrip::<k8s::events::v1::Event>(obj),
        ("apps", "Deployment") => roundtrip::<k8s::apps::v1::Deployment>(obj),
        ("networking.k8s.io", "Ingress") => roundtrip::<k8s::networking::v1::Ingress>(obj),
        ("policy", "PodDisruptionBudget") => roundtrip::<k8s::policy::v1::PodDisruptionBudget>(obj),
        ("autoscaling", "HorizontalPodAutoscaler") => {
            roundtrip::<k8s::autoscaling::v2::HorizontalPodAutoscaler>(obj)
        }
        ("networking.k8s.io", "IngressClass") => {
            roundtrip::<k8s::networking::v1::IngressClass>(obj)
        }
        ("coordination.k8s.io", "Lease") => roundtrip::<k8s::coordination::v1::Lease>(obj),
        (rbac::GROUP, "Role") => roundtrip::<k8s::rbac::v1::Role>(obj),
        (rbac::GROUP, "ClusterRole") => roundtrip::<k8s::rbac::v1::ClusterRole>(obj),
        (rbac::GROUP, "RoleBinding") => roundtrip::<k8s::rbac::v1::RoleBinding>(obj),
        (rbac::GROUP, "ClusterRoleBinding") => roundtrip::<k8s::rbac::v1::ClusterRoleBinding>(obj),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            roundtrip::<apiext::CustomResourceDefinition>(obj)
        }
        _ => Ok(obj.clone()),
    }
    .map_err(|e| {
        ApiError::bad_request(format!(
            "{kind} in version \"{}\" cannot be handled as a {kind}: {e}",
            obj["apiVersion"]
                .as_str()
                .unwrap_or("v1")
                .rsplit('/')
                .next()
                .unwrap_or("v1")
        ))
    })?;
    let mut unknown = vec![];
    removed_paths(obj, &out, "", &mut unknown);
    let mut out = out;
    convert(group, kind, &mut out);
    Ok((out, unknown))
}

/// Where a kind holds pod templates (`metadata` + `spec`): every one of them gets [`convert_pod_template`].
fn pod_template_paths(group: &str, kind: &str) -> &'static [&'static [&'static str]] {
    match (group, kind) {
        ("apps", "Deployment") => &[&["spec", "template"]],
        _ => &[],
    }
}

/// What kube-apiserver's round trip through its internal version (decode from v1, encode back to v1)
/// does to an object on every write, whatever the verb: deprecated aliases come out in step.
fn convert(group: &str, kind: &str, obj: &mut Value) {
    for path in pod_template_paths(group, kind) {
        let mut template = Some(&mut *obj);
        for key in *path {
            template = template.and_then(|v| v.get_mut(*key));
        }
        if let Some(template) = template.filter(|t| t.is_object()) {
            convert_pod_template(template);
        }
    }
}

/// The v1 ↔ internal PodTemplateSpec and PodSpec conversions:
/// - `serviceAccount` is the deprecated alias of `serviceAccountName`. Decoding takes
///   `serviceAccountName`, or `serviceAccount` when the name is empty (the name wins when both are
///   set); encoding writes the one value back to both. So omitting `serviceAccountName` from a
///   write (or nulling it in a patch) while the stored `serviceAccount` still names an account
///   keeps that account, and an empty value drops both (Go's `omitempty`).
/// - The alpha/beta init-container annotations are dropped from the template's annotations.
fn convert_pod_template(template: &mut Value) {
    const INIT_CONTAINER_ANNOTATIONS: [&str; 4] = [
        "pod.beta.kubernetes.io/init-containers",
        "pod.alpha.kubernetes.io/init-containers",
        "pod.beta.kubernetes.io/init-container-statuses",
        "pod.alpha.kubernetes.io/init-container-statuses",
    ];
    if let Some(annotations) = template
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        for key in INIT_CONTAINER_ANNOTATIONS {
            annotations.remove(key);
        }
    }
    let Some(spec) = template.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let non_empty = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let account =
        non_empty(spec.get("serviceAccountName")).or_else(|| non_empty(spec.get("serviceAccount")));
    match account {
        Some(account) => {
            spec.insert("serviceAccountName".into(), json!(account));
            spec.insert("serviceAccount".into(), json!(account));
        }
        None => {
            spec.remove("serviceAccountName");
            spec.remove("serviceAccount");
        }
    }
}

/// Paths present (non-null) in `before` but missing from `after`: the unknown fields a decode dropped.
pub fn removed_paths(before: &Value, after: &Value, prefix: &str, out: &mut Vec<String>) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            for (k, v) in b {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match a.get(k) {
                    None if !v.is_null() => out.push(path),
                    None => {}
                    Some(av) => removed_paths(v, av, &path, out),
                }
            }
        }
        (Value::Array(b), Value::Array(a)) => {
            for (i, (bv, av)) in b.iter().zip(a).enumerate() {
                removed_paths(bv, av, &format!("{prefix}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn obj_mut<'a>(v: &'a mut Value, key: &str) -> &'a mut Value {
    if !v[key].is_object() {
        v[key] = json!({});
    }
    &mut v[key]
}

fn default(v: &mut Value, key: &str, value: Value) {
    if let Some(o) = v.as_object_mut() {
        o.entry(key.to_string()).or_insert(value);
    }
}

fn each<'a>(v: &'a mut Value, key: &str) -> impl Iterator<Item = &'a mut Value> {
    v.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
}

/// Fills in defaults the way kube-apiserver's defaulting functions do, for create and update.
pub fn apply_defaults(group: &str, kind: &str, obj: &mut Value) {
    match (group, kind) {
        ("apps", "Deployment") => default_deployment(obj),
        ("", "Service") => default_service(obj),
        ("", "Secret") => default_secret(obj),
        ("", "Namespace") => {
            let name = obj["metadata"]["name"].clone();
            obj_mut(obj_mut(obj, "metadata"), "labels")["kubernetes.io/metadata.name"] = name;
            default(obj_mut(obj, "spec"), "finalizers", json!(["kubernetes"]));
            default(obj_mut(obj, "status"), "phase", json!("Active"));
        }
        ("networking.k8s.io", "Ingress") => {
            default(obj_mut(obj, "status"), "loadBalancer", json!({}));
        }
        ("policy", "PodDisruptionBudget") => {
            // The status counters are not omitempty in the Go type: a new budget shows zeros.
            let st = obj_mut(obj, "status");
            for key in [
                "disruptionsAllowed",
                "currentHealthy",
                "desiredHealthy",
                "expectedPods",
            ] {
                default(st, key, json!(0));
            }
        }
        ("autoscaling", "HorizontalPodAutoscaler") => default_autoscaler(obj),
        (rbac::GROUP, _) => rbac::apply_defaults(kind, obj),
        _ => {}
    }
}

/// autoscaling/v2 defaulting: one replica at least, CPU at 80% when no metric is named, and the
/// documented scale-up/scale-down rules for whatever part of `behavior` is given.
fn default_autoscaler(obj: &mut Value) {
    let spec = obj_mut(obj, "spec");
    default(spec, "minReplicas", json!(1));
    if spec["metrics"].as_array().is_none_or(Vec::is_empty) {
        spec["metrics"] = json!([{"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": 80}}}]);
    }
    if let Some(behavior) = spec.get_mut("behavior").filter(|b| b.is_object()) {
        let up = obj_mut(behavior, "scaleUp");
        default(up, "stabilizationWindowSeconds", json!(0));
        default(up, "selectPolicy", json!("Max"));
        default(
            up,
            "policies",
            json!([{"type": "Pods", "value": 4, "periodSeconds": 15},
                   {"type": "Percent", "value": 100, "periodSeconds": 15}]),
        );
        let down = obj_mut(behavior, "scaleDown");
        default(down, "stabilizationWindowSeconds", json!(300));
        default(down, "selectPolicy", json!("Max"));
        default(
            down,
            "policies",
            json!([{"type": "Percent", "value": 100, "periodSeconds": 15}]),
        );
    }
    // desiredReplicas is not omitempty in the Go type.
    default(obj_mut(obj, "status"), "desiredReplicas", json!(0));
}

fn default_deployment(obj: &mut Value) {
    let spec = obj_mut(obj, "spec");
    default(spec, "replicas", json!(1));
    default(spec, "revisionHistoryLimit", json!(10));
    default(spec, "progressDeadlineSeconds", json!(600));
    let strategy = obj_mut(spec, "strategy");
    default(strategy, "type", json!("RollingUpdate"));
    if strategy["type"] == "RollingUpdate" {
        let ru = obj_mut(strategy, "rollingUpdate");
        default(ru, "maxUnavailable", json!("25%"));
        default(ru, "maxSurge", json!("25%"));
    }
    let template = obj_mut(spec, "template");
    default_pod_spec(obj_mut(template, "spec"));
    if obj.get("status").is_none() {
        obj["status"] = json!({});
    }
}

fn default_pod_spec(spec: &mut Value) {
    default(spec, "restartPolicy", json!("Always"));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "securityContext", json!({}));
    default(spec, "schedulerName", json!("default-scheduler"));
    for key in ["containers", "initContainers"] {
        for c in each(spec, key) {
            default_container(c);
        }
    }
    for v in each(spec, "volumes") {
        for source in ["configMap", "secret", "downwardAPI", "projected"] {
            if let Some(s) = v.get_mut(source).filter(|s| s.is_object()) {
                default(s, "defaultMode", json!(420));
                if source == "projected" {
                    for p in each(s, "sources") {
                        for item in ["downwardAPI"] {
                            if let Some(d) = p.get_mut(item) {
                                for i in each(d, "items") {
                                    default_field_ref(i);
                                }
                            }
                        }
                    }
                }
            }
        }
        if let Some(d) = v.get_mut("downwardAPI") {
            for i in each(d, "items") {
                default_field_ref(i);
            }
        }
        if let Some(h) = v.get_mut("hostPath") {
            default(h, "type", json!(""));
        }
    }
}

fn default_field_ref(v: &mut Value) {
    if let Some(f) = v.get_mut("fieldRef").filter(|f| f.is_object()) {
        default(f, "apiVersion", json!("v1"));
    }
}

fn default_probe(p: &mut Value) {
    default(p, "timeoutSeconds", json!(1));
    default(p, "periodSeconds", json!(10));
    default(p, "successThreshold", json!(1));
    default(p, "failureThreshold", json!(3));
    if let Some(h) = p.get_mut("httpGet").filter(|h| h.is_object()) {
        default(h, "scheme", json!("HTTP"));
    }
    if let Some(g) = p.get_mut("grpc").filter(|h| h.is_object()) {
        default(g, "service", json!(""));
    }
}

fn default_container(c: &mut Value) {
    default(c, "terminationMessagePath", json!("/dev/termination-log"));
    default(c, "terminationMessagePolicy", json!("File"));
    default(c, "resources", json!({}));
    let image = c["image"].as_str().unwrap_or_default();
    // The tag is whatever follows the last ':' after the last '/', ignoring a digest.
    let no_digest = image.split('@').next().unwrap_or_default();
    let last = no_digest.rsplit('/').next().unwrap_or_default();
    let tag = last.split_once(':').map(|(_, t)| t);
    let always = !image.contains('@') && (tag.is_none() || tag == Some("latest"));
    default(
        c,
        "imagePullPolicy",
        json!(if always { "Always" } else { "IfNotPresent" }),
    );
    for p in each(c, "ports") {
        default(p, "protocol", json!("TCP"));
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).filter(|p| p.is_object()) {
            default_probe(p);
        }
    }
    for e in each(c, "env") {
        if let Some(vf) = e.get_mut("valueFrom") {
            default_field_ref(vf);
        }
    }
}

fn default_service(obj: &mut Value) {
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

fn default_secret(obj: &mut Value) {
    if obj["type"].as_str().is_none_or(str::is_empty) {
        obj["type"] = json!("Opaque");
    }
    if let Some(Value::Object(string_data)) =
        obj.as_object_mut().and_then(|o| o.remove("stringData"))
    {
        use base64::Engine;
        let data = obj_mut(obj, "data");
        for (k, v) in string_data {
            let s = v.as_str().unwrap_or_default();
            data[k] = json!(base64::engine::general_purpose::STANDARD.encode(s));
        }
    }
}

/// Fields the server allocates and keeps across updates that leave them empty (Service clusterIP, nodePorts).
pub fn carry_allocated(group: &str, kind: &str, old: &Value, new: &mut Value) {
    if (group, kind) != ("", "Service") {
        return;
    }
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
pub fn allocate_service(
    obj: &mut Value,
    ip: &mut dyn FnMut() -> String,
    node_port: &mut dyn FnMut() -> u32,
) {
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

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// The message for an invalid DNS-1123 subdomain, or None when valid.
pub fn check_subdomain(s: &str) -> Option<String> {
    if s.len() > 253 {
        return Some("must be no more than 253 characters".into());
    }
    (!s.split('.').all(is_label)).then(|| SUBDOMAIN_MSG.to_string())
}

pub fn check_label(s: &str) -> Option<String> {
    if s.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    (!is_label(s)).then(|| LABEL_MSG.to_string())
}

pub fn check_dns1035(s: &str) -> Option<String> {
    if s.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    (!(is_label(s) && s.as_bytes()[0].is_ascii_lowercase())).then(|| DNS1035_MSG.to_string())
}

const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

fn is_qualified_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// Label keys (optional DNS-subdomain prefix + name) and values, as ObjectMeta validation checks them.
pub fn check_labels(labels: &Value, field: &str) -> Vec<FieldError> {
    let mut errs = vec![];
    for (k, v) in labels.as_object().into_iter().flatten() {
        let (prefix, name) = match k.rsplit_once('/') {
            Some((p, n)) => (Some(p), n),
            None => (None, k.as_str()),
        };
        if name.len() > 63 {
            errs.push(FieldError::invalid(
                field,
                json!(k),
                "name part must be no more than 63 characters",
            ));
        } else if !is_qualified_part(name) {
            errs.push(FieldError::invalid(field, json!(k), QUALIFIED_NAME_MSG));
        }
        if let Some(p) = prefix
            && let Some(m) = check_subdomain(p)
        {
            errs.push(FieldError::invalid(
                field,
                json!(k),
                format!("prefix part {m}"),
            ));
        }
        match v.as_str() {
            None => errs.push(FieldError::invalid(
                format!("{field}.{k}"),
                v.clone(),
                "must be a string",
            )),
            Some(s) if s.len() > 63 => errs.push(FieldError::invalid(
                field,
                json!(s),
                "must be no more than 63 characters",
            )),
            Some(s) if !s.is_empty() && !is_qualified_part(s) => {
                errs.push(FieldError::invalid(field, json!(s), LABEL_VALUE_MSG))
            }
            Some(_) => {}
        }
    }
    errs
}

/// How each kind's `metadata.name` is validated.
pub fn check_name(group: &str, kind: &str, name: &str) -> Option<String> {
    match (group, kind) {
        ("", "Service") => check_dns1035(name),
        ("", "Namespace") => check_label(name),
        (rbac::GROUP, _) => rbac::check_name(name),
        _ => check_subdomain(name),
    }
}

fn go_map(m: &Value) -> String {
    let entries: Vec<String> = m
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| format!("\"{k}\":\"{}\"", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    format!("map[string]string{{{}}}", entries.join(", "))
}

fn validate_containers(spec: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let containers = spec["containers"].as_array().cloned().unwrap_or_default();
    if containers.is_empty() {
        errs.push(FieldError::required(format!("{path}.containers"), ""));
    }
    for key in ["containers", "initContainers"] {
        for (i, c) in spec[key].as_array().into_iter().flatten().enumerate() {
            let p = format!("{path}.{key}[{i}]");
            match c["name"].as_str() {
                None | Some("") => errs.push(FieldError::required(format!("{p}.name"), "")),
                Some(n) => {
                    if let Some(m) = check_label(n) {
                        errs.push(FieldError::invalid(format!("{p}.name"), json!(n), m));
                    }
                }
            }
            if c["image"].as_str().is_none_or(str::is_empty) {
                errs.push(FieldError::required(format!("{p}.image"), ""));
            }
        }
    }
}

/// A PodDisruptionBudget's bound: a non-negative count or a percentage of at most 100%.
fn validate_int_or_percent(v: &Value, field: &str, errs: &mut Vec<FieldError>) {
    match v {
        Value::Number(n) if n.as_i64().is_some_and(|n| n < 0) => errs.push(FieldError::invalid(
            field,
            v.clone(),
            "must be greater than or equal to 0",
        )),
        Value::String(s) => match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
            Some(p) if p > 100 => errs.push(FieldError::invalid(
                field,
                v.clone(),
                "must not be greater than 100%",
            )),
            Some(p) if p < 0 => errs.push(FieldError::invalid(
                field,
                v.clone(),
                "must be greater than or equal to 0",
            )),
            Some(_) => {}
            None => errs.push(FieldError::invalid(
                field,
                v.clone(),
                "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
            )),
        },
        _ => {}
    }
}

fn validate_disruption_budget(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = &obj["spec"];
    let min = spec.get("minAvailable").filter(|v| !v.is_null());
    let max = spec.get("maxUnavailable").filter(|v| !v.is_null());
    if min.is_some() && max.is_some() {
        errs.push(FieldError::invalid(
            "spec",
            json!(spec),
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    if let Some(v) = min {
        validate_int_or_percent(v, "spec.minAvailable", errs);
    }
    if let Some(v) = max {
        validate_int_or_percent(v, "spec.maxUnavailable", errs);
    }
    if let Some(p) = spec["unhealthyPodEvictionPolicy"].as_str()
        && !matches!(p, "IfHealthyBudget" | "AlwaysAllow")
    {
        errs.push(FieldError {
            field: "spec.unhealthyPodEvictionPolicy".into(),
            kind: super::errors::FieldErrorKind::Unsupported(
                json!(p),
                vec!["AlwaysAllow".into(), "IfHealthyBudget".into()],
            ),
        });
    }
}

fn validate_autoscaler(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = &obj["spec"];
    let target = &spec["scaleTargetRef"];
    if target["kind"].as_str().is_none_or(str::is_empty) {
        errs.push(FieldError::required("spec.scaleTargetRef.kind", ""));
    }
    if target["name"].as_str().is_none_or(str::is_empty) {
        errs.push(FieldError::required("spec.scaleTargetRef.name", ""));
    }
    let min = spec["minReplicas"].as_i64().unwrap_or(1);
    if min < 1 {
        errs.push(FieldError::invalid(
            "spec.minReplicas",
            json!(min),
            "must be greater than or equal to 1",
        ));
    }
    let max = spec["maxReplicas"].as_i64().unwrap_or(0);
    if max < 1 {
        errs.push(FieldError::invalid(
            "spec.maxReplicas",
            json!(max),
            "must be greater than 0",
        ));
    } else if max < min {
        errs.push(FieldError::invalid(
            "spec.maxReplicas",
            json!(max),
            "must be greater than or equal to `minReplicas`",
        ));
    }
    for (i, m) in spec["metrics"].as_array().into_iter().flatten().enumerate() {
        let p = format!("spec.metrics[{i}]");
        match m["type"].as_str() {
            Some("Resource") => {
                let r = &m["resource"];
                if r["name"].as_str().is_none_or(str::is_empty) {
                    errs.push(FieldError::required(format!("{p}.resource.name"), ""));
                }
                let t = &r["target"];
                match t["type"].as_str() {
                    Some("Utilization") => match t["averageUtilization"].as_i64() {
                        Some(u) if u <= 0 => errs.push(FieldError::invalid(
                            format!("{p}.resource.target.averageUtilization"),
                            json!(u),
                            "must be greater than 0",
                        )),
                        Some(_) => {}
                        None => errs.push(FieldError::required(
                            format!("{p}.resource.target.averageUtilization"),
                            "",
                        )),
                    },
                    Some("AverageValue") => {}
                    _ => errs.push(FieldError::required(
                        format!("{p}.resource.target.type"),
                        "",
                    )),
                }
            }
            Some("Object" | "Pods" | "External" | "ContainerResource") => {}
            None | Some("") => errs.push(FieldError::required(format!("{p}.type"), "")),
            Some(other) => errs.push(FieldError {
                field: format!("{p}.type"),
                kind: super::errors::FieldErrorKind::Unsupported(
                    json!(other),
                    vec![
                        "ContainerResource".into(),
                        "External".into(),
                        "Object".into(),
                        "Pods".into(),
                        "Resource".into(),
                    ],
                ),
            }),
        }
    }
}

/// The validation that matters for the objects users and the operator write.
pub fn validate(group: &str, kind: &str, obj: &Value) -> Vec<FieldError> {
    let mut errs = vec![];
    match (group, kind) {
        ("apps", "Deployment") => {
            let sel = &obj["spec"]["selector"];
            let labels = &obj["spec"]["template"]["metadata"]["labels"];
            if !sel.is_object() || sel.as_object().is_some_and(Map::is_empty) {
                errs.push(FieldError::required("spec.selector", ""));
            } else if !selector_matches(sel, labels) {
                errs.push(FieldError {
                    field: "spec.template.metadata.labels".into(),
                    kind: super::errors::FieldErrorKind::InvalidRaw(
                        go_map(labels),
                        "`selector` does not match template `labels`".into(),
                    ),
                });
            }
            if obj["spec"]["replicas"].as_i64().is_some_and(|r| r < 0) {
                errs.push(FieldError::invalid(
                    "spec.replicas",
                    obj["spec"]["replicas"].clone(),
                    "must be greater than or equal to 0",
                ));
            }
            validate_containers(
                &obj["spec"]["template"]["spec"],
                "spec.template.spec",
                &mut errs,
            );
        }
        ("", "Service") => {
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
        ("networking.k8s.io", "Ingress") => {
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
                            kind: super::errors::FieldErrorKind::Unsupported(
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
        ("policy", "PodDisruptionBudget") => validate_disruption_budget(obj, &mut errs),
        ("autoscaling", "HorizontalPodAutoscaler") => validate_autoscaler(obj, &mut errs),
        (rbac::GROUP, _) => errs.extend(rbac::validate(kind, obj)),
        ("coordination.k8s.io", "Lease") | ("", "ConfigMap") | ("", "Secret") => {}
        _ => {}
    }
    errs
}

fn go_label_selector(sel: &Value) -> String {
    let exprs: Vec<String> = sel["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let values: Vec<String> = e["values"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| format!("\"{}\"", v.as_str().unwrap_or_default()))
                .collect();
            format!(
                "v1.LabelSelectorRequirement{{Key:\"{}\", Operator:\"{}\", Values:[]string{{{}}}}}",
                e["key"].as_str().unwrap_or_default(),
                e["operator"].as_str().unwrap_or_default(),
                values.join(", ")
            )
        })
        .collect();
    let exprs = if exprs.is_empty() {
        "[]v1.LabelSelectorRequirement(nil)".to_string()
    } else {
        format!("[]v1.LabelSelectorRequirement{{{}}}", exprs.join(", "))
    };
    let labels = if sel["matchLabels"].is_object() {
        go_map(&sel["matchLabels"])
    } else {
        "map[string]string(nil)".into()
    };
    format!("v1.LabelSelector{{MatchLabels:{labels}, MatchExpressions:{exprs}}}")
}

/// Fields kube-apiserver refuses to change once set.
pub fn validate_update(group: &str, kind: &str, old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errs = vec![];
    match (group, kind) {
        ("apps", "Deployment") if old["spec"]["selector"] != new["spec"]["selector"] => {
            errs.push(FieldError {
                field: "spec.selector".into(),
                kind: super::errors::FieldErrorKind::InvalidRaw(
                    go_label_selector(&new["spec"]["selector"]),
                    "field is immutable".into(),
                ),
            });
        }
        ("", "Service") => {
            let (o, n) = (&old["spec"]["clusterIP"], &new["spec"]["clusterIP"]);
            if o.is_string() && o != "" && n != o {
                let ips: Vec<String> = new["spec"]["clusterIPs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|v| format!("\"{}\"", v.as_str().unwrap_or_default()))
                    .collect();
                errs.push(FieldError {
                    field: "spec.clusterIPs[0]".into(),
                    kind: super::errors::FieldErrorKind::InvalidRaw(
                        format!("[]string{{{}}}", ips.join(", ")),
                        "may not change once set".into(),
                    ),
                });
            }
        }
        (rbac::GROUP, _) => errs.extend(rbac::validate_update(kind, old, new)),
        _ => {}
    }
    errs
}

/// Whether a LabelSelector object (matchLabels / matchExpressions) selects these labels.
pub fn selector_matches(sel: &Value, labels: &Value) -> bool {
    let get = |k: &str| labels.get(k).and_then(Value::as_str);
    let ml = sel["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| get(k) == v.as_str());
    let me = sel["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|e| {
            let key = e["key"].as_str().unwrap_or_default();
            let values: Vec<&str> = e["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            match e["operator"].as_str() {
                Some("In") => get(key).is_some_and(|v| values.contains(&v)),
                Some("NotIn") => get(key).is_none_or(|v| !values.contains(&v)),
                Some("Exists") => get(key).is_some(),
                Some("DoesNotExist") => get(key).is_none(),
                _ => false,
            }
        });
    ml && me
}

/// events.k8s.io/v1 → core/v1 Event, the shared storage form.
pub fn event_to_core(e: &Value) -> Value {
    let mut out = json!({"apiVersion": "v1", "kind": "Event", "metadata": e["metadata"].clone()});
    let map = [
        ("regarding", "involvedObject"),
        ("note", "message"),
        ("reason", "reason"),
        ("type", "type"),
        ("action", "action"),
        ("related", "related"),
        ("series", "series"),
        ("eventTime", "eventTime"),
        ("reportingController", "reportingComponent"),
        ("reportingInstance", "reportingInstance"),
        ("deprecatedSource", "source"),
        ("deprecatedFirstTimestamp", "firstTimestamp"),
        ("deprecatedLastTimestamp", "lastTimestamp"),
        ("deprecatedCount", "count"),
    ];
    for (from, to) in map {
        if let Some(v) = e.get(from).filter(|v| !v.is_null()) {
            out[to] = v.clone();
        }
    }
    if out.get("involvedObject").is_none() {
        out["involvedObject"] = json!({});
    }
    out
}

/// core/v1 → events.k8s.io/v1 Event.
pub fn event_from_core(e: &Value) -> Value {
    let mut out = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": e["metadata"].clone()});
    let map = [
        ("involvedObject", "regarding"),
        ("message", "note"),
        ("reason", "reason"),
        ("type", "type"),
        ("action", "action"),
        ("related", "related"),
        ("series", "series"),
        ("eventTime", "eventTime"),
        ("reportingComponent", "reportingController"),
        ("reportingInstance", "reportingInstance"),
        ("source", "deprecatedSource"),
        ("firstTimestamp", "deprecatedFirstTimestamp"),
        ("lastTimestamp", "deprecatedLastTimestamp"),
        ("count", "deprecatedCount"),
    ];
    for (from, to) in map {
        if let Some(v) = e.get(from).filter(|v| !v.is_null()) {
            out[to] = v.clone();
        }
    }
    if out.get("eventTime").is_none() {
        out["eventTime"] = Value::Null;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_defaults_match_a_real_cluster() {
        let mut d = json!({"spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}],
                "readinessProbe": {"httpGet": {"path": "/", "port": 80}}}],
                "volumes": [{"name": "c", "configMap": {"name": "x"}}, {"name": "e", "emptyDir": {}}]}}}});
        apply_defaults("apps", "Deployment", &mut d);
        let s = &d["spec"];
        assert_eq!(s["replicas"], 1);
        assert_eq!(
            s["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
        );
        assert_eq!(s["revisionHistoryLimit"], 10);
        assert_eq!(s["progressDeadlineSeconds"], 600);
        let p = &s["template"]["spec"];
        assert_eq!(p["restartPolicy"], "Always");
        assert_eq!(p["dnsPolicy"], "ClusterFirst");
        assert_eq!(p["schedulerName"], "default-scheduler");
        assert_eq!(p["securityContext"], json!({}));
        assert_eq!(p["terminationGracePeriodSeconds"], 30);
        let c = &p["containers"][0];
        assert_eq!(c["imagePullPolicy"], "IfNotPresent");
        assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(c["terminationMessagePolicy"], "File");
        assert_eq!(c["ports"][0]["protocol"], "TCP");
        assert_eq!(
            c["readinessProbe"],
            json!({"httpGet": {"path": "/", "port": 80, "scheme": "HTTP"}, "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
        );
        assert_eq!(p["volumes"][0]["configMap"]["defaultMode"], 420);
        assert_eq!(p["volumes"][1]["emptyDir"], json!({}));
    }

    #[test]
    fn service_account_alias_is_kept_in_step_like_the_v1_conversion() {
        let deployment = |pod: Value| {
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                "spec": {"template": {"metadata": {"annotations": {"a": "b", "pod.beta.kubernetes.io/init-containers": "[]"}},
                    "spec": pod}}})
        };
        let pod = |pod: Value| {
            let (out, unknown) = decode("Deployment", "apps", &deployment(pod)).unwrap();
            assert!(unknown.is_empty(), "{unknown:?}");
            assert_eq!(
                out["spec"]["template"]["metadata"]["annotations"],
                json!({"a": "b"})
            );
            let spec = &out["spec"]["template"]["spec"];
            (
                spec.get("serviceAccountName").cloned(),
                spec.get("serviceAccount").cloned(),
            )
        };
        let both = |name: &str| (Some(json!(name)), Some(json!(name)));
        let c = json!([{"name": "c", "image": "i"}]);
        assert_eq!(
            pod(json!({"containers": c, "serviceAccountName": "a"})),
            both("a")
        );
        assert_eq!(
            pod(json!({"containers": c, "serviceAccount": "old"})),
            both("old")
        );
        assert_eq!(
            pod(json!({"containers": c, "serviceAccountName": "a", "serviceAccount": "old"})),
            both("a")
        );
        assert_eq!(
            pod(json!({"containers": c, "serviceAccountName": "", "serviceAccount": "old"})),
            both("old")
        );
        assert_eq!(
            pod(json!({"containers": c, "serviceAccountName": null, "serviceAccount": "old"})),
            both("old")
        );
        assert_eq!(
            pod(json!({"containers": c, "serviceAccountName": "", "serviceAccount": ""})),
            (None, None)
        );
        assert_eq!(pod(json!({"containers": c})), (None, None));
    }

    #[test]
    fn image_pull_policy_follows_the_tag() {
        for (image, want) in [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("nginx:1.27", "IfNotPresent"),
            ("localhost:5000/nginx", "Always"),
            ("localhost:5000/nginx:1", "IfNotPresent"),
            ("nginx@sha256:abc", "IfNotPresent"),
        ] {
            let mut c = json!({"image": image});
            default_container(&mut c);
            assert_eq!(c["imagePullPolicy"], want, "{image}");
        }
    }

    #[test]
    fn service_defaults_and_allocation() {
        let mut s = json!({"spec": {"ports": [{"port": 80}]}});
        apply_defaults("", "Service", &mut s);
        allocate_service(&mut s, &mut || "10.96.0.10".into(), &mut || 30000);
        assert_eq!(
            s["spec"],
            json!({"type": "ClusterIP", "sessionAffinity": "None", "internalTrafficPolicy": "Cluster",
                "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}], "clusterIP": "10.96.0.10",
                "clusterIPs": ["10.96.0.10"], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"})
        );
    }

    #[test]
    fn labels_are_checked_like_object_meta() {
        let errs = check_labels(
            &json!({"ok": "v", "app.kubernetes.io/name": "web", "bad key": "x", "k": "-bad", "long": "a".repeat(64), "Bad_Prefix/x": "y"}),
            "metadata.labels",
        );
        let texts: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(texts.len(), 4, "{texts:?}");
        assert!(texts[0].starts_with("metadata.labels: Invalid value: \"Bad_Prefix/x\": prefix part a lowercase RFC 1123 subdomain"));
        assert!(
            texts[1].starts_with(
                "metadata.labels: Invalid value: \"bad key\": name part must consist of"
            )
        );
        assert!(texts[2].starts_with(
            "metadata.labels: Invalid value: \"-bad\": a valid label must be an empty string"
        ));
        assert_eq!(
            texts[3],
            format!(
                "metadata.labels: Invalid value: \"{}\": must be no more than 63 characters",
                "a".repeat(64)
            )
        );
    }

    #[test]
    fn names_are_checked_per_kind() {
        assert!(check_name("", "Service", "1web").is_some());
        assert!(check_name("apps", "Deployment", "1web").is_none());
        assert!(check_name("apps", "Deployment", "Web").is_some());
        assert!(check_name("", "Namespace", "a.b").is_some());
    }

    #[test]
    fn unknown_fields_are_reported_with_their_path() {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
            "spec": {"foo": 1, "template": {"spec": {"containers": [{"name": "a", "image": "b", "bar": 2}]}}}});
        let (_, unknown) = decode("Deployment", "apps", &d).unwrap();
        assert_eq!(
            unknown,
            vec!["spec.foo", "spec.template.spec.containers[0].bar"]
        );
    }
}
