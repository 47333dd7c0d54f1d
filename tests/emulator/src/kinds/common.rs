//! What the built-in kinds share: the Go types' JSON round trip, defaulting helpers, the pod
//! template (defaults, conversion, validation), name and label checks, label selectors, and the
//! cells of `kubectl get` rows.

use std::fmt::Write;

use serde_json::{Value, json};

use super::super::errors::FieldError;

/// Decodes JSON into the Go type `T` and back, as the server's decoder does.
pub fn roundtrip<T: serde::de::DeserializeOwned + serde::Serialize>(
    obj: &Value,
) -> Result<Value, String> {
    let typed = T::deserialize(obj).map_err(|e| e.to_string())?;
    serde_json::to_value(typed).map_err(|e| e.to_string())
}

/// The v1 ↔ internal PodTemplateSpec and PodSpec conversions:
/// - `serviceAccount` is the deprecated alias of `serviceAccountName`. Decoding takes
///   `serviceAccountName`, or `serviceAccount` when the name is empty (the name wins when both are
///   set); encoding writes the one value back to both. So omitting `serviceAccountName` from a
///   write (or nulling it in a patch) while the stored `serviceAccount` still names an account
///   keeps that account, and an empty value drops both (Go's `omitempty`).
/// - The alpha/beta init-container annotations are dropped from the template's annotations.
pub fn convert_pod_template(template: &mut Value) {
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
    removed_below(before, after, &mut prefix.to_owned(), out);
}

/// [`removed_paths`] with the path so far in one buffer: most objects lose nothing, and a
/// string per field visited would cost more than the walk.
fn removed_below(before: &Value, after: &Value, path: &mut String, out: &mut Vec<String>) {
    let len = path.len();
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            for (k, v) in b {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                match a.get(k) {
                    None if !v.is_null() => out.push(path.clone()),
                    None => {}
                    Some(av) => removed_below(v, av, path, out),
                }
                path.truncate(len);
            }
        }
        (Value::Array(b), Value::Array(a)) => {
            for (i, (bv, av)) in b.iter().zip(a).enumerate() {
                // Writing to a String cannot fail.
                let _ = write!(path, "[{i}]");
                removed_below(bv, av, path, out);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

pub fn obj_mut<'a>(v: &'a mut Value, key: &str) -> &'a mut Value {
    if !v[key].is_object() {
        v[key] = json!({});
    }
    &mut v[key]
}

pub fn default(v: &mut Value, key: &str, value: Value) {
    if let Some(o) = v.as_object_mut() {
        o.entry(key.to_string()).or_insert(value);
    }
}

pub fn each<'a>(v: &'a mut Value, key: &str) -> impl Iterator<Item = &'a mut Value> {
    v.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
}

pub fn default_pod_spec(spec: &mut Value) {
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

pub fn default_container(c: &mut Value) {
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

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

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
    if is_label(s) {
        return None;
    }
    // As apimachinery's IsDNS1123Label: a valid subdomain can only have failed on its dots.
    Some(if s.split('.').all(is_label) {
        "must not contain dots".into()
    } else {
        LABEL_MSG.to_string()
    })
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

pub fn validate_containers(spec: &Value, path: &str, errs: &mut Vec<FieldError>) {
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

/// The AGE cell of a timestamp.
pub fn age(ts: &Value) -> Value {
    let Some(t) = ts.as_str().and_then(|s| s.parse::<jiff::Timestamp>().ok()) else {
        return json!("<unknown>");
    };
    json!(human_duration(
        jiff::Timestamp::now().as_second() - t.as_second()
    ))
}

/// A cell's text: strings as they are, null as empty.
pub fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `<none>` for an empty cell.
/// A label map as kubectl prints a selector: `k=v,k=v`.
pub fn labels_text(m: &Value) -> String {
    m.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", s(v)))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

pub fn or_none(v: String) -> Value {
    json!(if v.is_empty() {
        "<none>".to_string()
    } else {
        v
    })
}
