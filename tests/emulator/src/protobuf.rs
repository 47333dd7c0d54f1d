//! Decoding of the Kubernetes protobuf wire format for the kinds whose typed clients send it
//! (Helm's release Secrets, `kubectl create configmap|secret|namespace|serviceaccount|deployment|
//! poddisruptionbudget`).
//!
//! Responses stay JSON: those clients accept `application/json` as well.

use base64::Engine;
use serde_json::{Map, Value, json};

/// The envelope every protobuf body starts with.
const MAGIC: &[u8] = b"k8s\0";

#[derive(Clone, Copy)]
enum Ty {
    Str,
    Int,
    Bool,
    Time,
    Msg(&'static str),
    StrMap,
    BytesMap,
    StrList,
    MsgList(&'static str),
    /// An embedded struct whose fields JSON inlines into the parent (IngressRule's value).
    Inline(&'static str),
    IntOrString,
    /// A `*IntOrString`: present means set, so an int 0 is kept (PodDisruptionBudget bounds).
    IntOrStringPtr,
}

/// (field number, JSON name, type) per message, from k8s.io/api's generated.proto.
fn fields(message: &str) -> &'static [(u64, &'static str, Ty)] {
    use Ty::*;
    match message {
        "ObjectMeta" => &[
            (1, "name", Str),
            (2, "generateName", Str),
            (3, "namespace", Str),
            (5, "uid", Str),
            (6, "resourceVersion", Str),
            (7, "generation", Int),
            (8, "creationTimestamp", Time),
            (9, "deletionTimestamp", Time),
            (10, "deletionGracePeriodSeconds", Int),
            (11, "labels", StrMap),
            (12, "annotations", StrMap),
            (13, "ownerReferences", MsgList("OwnerReference")),
            (14, "finalizers", StrList),
        ],
        "OwnerReference" => &[
            (1, "kind", Str),
            (3, "name", Str),
            (4, "uid", Str),
            (5, "apiVersion", Str),
            (6, "controller", Bool),
            (7, "blockOwnerDeletion", Bool),
        ],
        "Secret" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "data", BytesMap),
            (3, "type", Str),
            (4, "stringData", StrMap),
            (5, "immutable", Bool),
        ],
        "ConfigMap" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "data", StrMap),
            (3, "binaryData", BytesMap),
            (4, "immutable", Bool),
        ],
        "Namespace" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "spec", Msg("NamespaceSpec")),
        ],
        "NamespaceSpec" => &[(1, "finalizers", StrList)],
        "ServiceAccount" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "secrets", MsgList("ObjectReference")),
            (3, "imagePullSecrets", MsgList("LocalObjectReference")),
            (4, "automountServiceAccountToken", Bool),
        ],
        "Deployment" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "spec", Msg("DeploymentSpec")),
        ],
        "DeploymentSpec" => &[
            (1, "replicas", Int),
            (2, "selector", Msg("LabelSelector")),
            (3, "template", Msg("PodTemplateSpec")),
            (4, "strategy", Msg("DeploymentStrategy")),
            (5, "minReadySeconds", Int),
            (6, "revisionHistoryLimit", Int),
            (7, "paused", Bool),
            (9, "progressDeadlineSeconds", Int),
        ],
        "DeploymentStrategy" => &[(1, "type", Str)],
        "LabelSelector" => &[
            (1, "matchLabels", StrMap),
            (2, "matchExpressions", MsgList("LabelSelectorRequirement")),
        ],
        "LabelSelectorRequirement" => &[
            (1, "key", Str),
            (2, "operator", Str),
            (3, "values", StrList),
        ],
        // policy/v1, as `kubectl create poddisruptionbudget` sends it.
        "PodDisruptionBudget" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "spec", Msg("PodDisruptionBudgetSpec")),
        ],
        "PodDisruptionBudgetSpec" => &[
            (1, "minAvailable", IntOrStringPtr),
            (2, "selector", Msg("LabelSelector")),
            (3, "maxUnavailable", IntOrStringPtr),
            (4, "unhealthyPodEvictionPolicy", Str),
        ],
        "PodTemplateSpec" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "spec", Msg("PodSpec")),
        ],
        "PodSpec" => &[
            (2, "containers", MsgList("Container")),
            (3, "restartPolicy", Str),
            (4, "terminationGracePeriodSeconds", Int),
            (6, "dnsPolicy", Str),
            (8, "serviceAccountName", Str),
            (19, "schedulerName", Str),
        ],
        "Container" => &[
            (1, "name", Str),
            (2, "image", Str),
            (3, "command", StrList),
            (4, "args", StrList),
            (5, "workingDir", Str),
            (6, "ports", MsgList("ContainerPort")),
            (7, "env", MsgList("EnvVar")),
            (8, "resources", Msg("Empty")),
            (13, "terminationMessagePath", Str),
            (14, "imagePullPolicy", Str),
        ],
        "ContainerPort" => &[
            (1, "name", Str),
            (2, "hostPort", Int),
            (3, "containerPort", Int),
            (4, "protocol", Str),
        ],
        "EnvVar" => &[(1, "name", Str), (2, "value", Str)],
        "Service" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "spec", Msg("ServiceSpec")),
        ],
        "ServiceSpec" => &[
            (1, "ports", MsgList("ServicePort")),
            (2, "selector", StrMap),
            (3, "clusterIP", Str),
            (4, "type", Str),
            (5, "externalIPs", StrList),
            (7, "sessionAffinity", Str),
            (10, "externalName", Str),
        ],
        "ServicePort" => &[
            (1, "name", Str),
            (2, "protocol", Str),
            (3, "port", Int),
            (4, "targetPort", IntOrString),
            (5, "nodePort", Int),
            (6, "appProtocol", Str),
        ],
        "Ingress" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "spec", Msg("IngressSpec")),
        ],
        "IngressSpec" => &[
            (1, "defaultBackend", Msg("IngressBackend")),
            (2, "tls", MsgList("IngressTLS")),
            (3, "rules", MsgList("IngressRule")),
            (4, "ingressClassName", Str),
        ],
        "IngressTLS" => &[(1, "hosts", StrList), (2, "secretName", Str)],
        "IngressRule" => &[(1, "host", Str), (2, "", Inline("IngressRuleValue"))],
        "IngressRuleValue" => &[(1, "http", Msg("HTTPIngressRuleValue"))],
        "HTTPIngressRuleValue" => &[(1, "paths", MsgList("HTTPIngressPath"))],
        "HTTPIngressPath" => &[
            (1, "path", Str),
            (2, "backend", Msg("IngressBackend")),
            (3, "pathType", Str),
        ],
        "IngressBackend" => &[(4, "service", Msg("IngressServiceBackend"))],
        "IngressServiceBackend" => &[(1, "name", Str), (2, "port", Msg("ServiceBackendPort"))],
        "ServiceBackendPort" => &[(1, "name", Str), (2, "number", Int)],
        "IntOrString" => &[(1, "type", Int), (2, "intVal", Int), (3, "strVal", Str)],
        "ObjectReference" => &[
            (1, "kind", Str),
            (2, "namespace", Str),
            (3, "name", Str),
            (4, "uid", Str),
        ],
        "LocalObjectReference" => &[(1, "name", Str)],
        "Time" => &[(1, "seconds", Int), (2, "nanos", Int)],
        "TypeMeta" => &[(1, "apiVersion", Str), (2, "kind", Str)],
        _ => &[],
    }
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.b.get(self.i)?;
            self.i += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.varint()? as usize;
        let s = self.b.get(self.i..self.i + n)?;
        self.i += n;
        Some(s)
    }

    /// The next (field number, wire value); fixed-width values are skipped.
    fn next(&mut self) -> Option<Option<(u64, Wire<'a>)>> {
        if self.i >= self.b.len() {
            return Some(None);
        }
        let key = self.varint()?;
        let (field, wire) = (key >> 3, key & 7);
        let v = match wire {
            0 => Wire::Varint(self.varint()?),
            2 => Wire::Len(self.bytes()?),
            1 => {
                self.i += 8;
                Wire::Skip
            }
            5 => {
                self.i += 4;
                Wire::Skip
            }
            _ => return None,
        };
        Some(Some((field, v)))
    }
}

enum Wire<'a> {
    Varint(u64),
    Len(&'a [u8]),
    Skip,
}

fn map_entry(b: &[u8], bytes_value: bool) -> Option<(String, Value)> {
    let mut r = Reader { b, i: 0 };
    let (mut k, mut v) = (String::new(), json!(""));
    while let Some((f, w)) = r.next()? {
        if let Wire::Len(s) = w {
            match f {
                1 => k = String::from_utf8_lossy(s).into_owned(),
                2 if bytes_value => v = json!(base64::engine::general_purpose::STANDARD.encode(s)),
                2 => v = json!(String::from_utf8_lossy(s)),
                _ => {}
            }
        }
    }
    Some((k, v))
}

/// Go pointer fields: present on the wire only when set, so their zero values are meant.
/// Every other scalar is always on the wire and its zero value means "unset" (JSON omitempty).
const KEEP_ZERO: &[&str] = &[
    "replicas",
    "revisionHistoryLimit",
    "progressDeadlineSeconds",
    "terminationGracePeriodSeconds",
    "deletionGracePeriodSeconds",
    "immutable",
    "automountServiceAccountToken",
    "controller",
    "blockOwnerDeletion",
];

fn message(b: &[u8], name: &str) -> Option<Value> {
    let schema = fields(name);
    let mut out = Map::new();
    let mut r = Reader { b, i: 0 };
    while let Some((f, w)) = r.next()? {
        let Some((_, key, ty)) = schema.iter().find(|(n, _, _)| *n == f) else {
            continue;
        };
        let key = key.to_string();
        match (ty, w) {
            (Ty::Str, Wire::Len(s)) if !s.is_empty() => {
                out.insert(key, json!(String::from_utf8_lossy(s)));
            }
            (Ty::Int, Wire::Varint(v)) if v != 0 || KEEP_ZERO.contains(&key.as_str()) => {
                out.insert(key, json!(v as i64));
            }
            (Ty::Bool, Wire::Varint(v)) if v != 0 || KEEP_ZERO.contains(&key.as_str()) => {
                out.insert(key, json!(v != 0));
            }
            (Ty::Time, Wire::Len(s)) => {
                let t = message(s, "Time")?;
                let secs = t["seconds"].as_i64().unwrap_or(0);
                if secs != 0
                    && let Ok(ts) = jiff::Timestamp::from_second(secs)
                {
                    out.insert(key, json!(ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()));
                }
            }
            (Ty::Msg(m), Wire::Len(s)) => {
                out.insert(key, message(s, m)?);
            }
            (Ty::Inline(m), Wire::Len(s)) => {
                if let Value::Object(inner) = message(s, m)? {
                    out.extend(inner);
                }
            }
            (Ty::IntOrString, Wire::Len(s)) => {
                let v = message(s, "IntOrString")?;
                // The zero value (int 0) means unset, as defaulting reads it.
                match (
                    v["type"].as_i64(),
                    v["intVal"].as_i64(),
                    v["strVal"].as_str(),
                ) {
                    (Some(1), _, Some(text)) => {
                        out.insert(key, json!(text));
                    }
                    (_, Some(n), _) if n != 0 => {
                        out.insert(key, json!(n));
                    }
                    _ => {}
                }
            }
            (Ty::IntOrStringPtr, Wire::Len(s)) => {
                let v = message(s, "IntOrString")?;
                match (v["type"].as_i64(), v["strVal"].as_str()) {
                    (Some(1), Some(text)) => out.insert(key, json!(text)),
                    _ => out.insert(key, json!(v["intVal"].as_i64().unwrap_or(0))),
                };
            }
            (Ty::MsgList(m), Wire::Len(s)) => {
                let item = message(s, m)?;
                out.entry(key)
                    .or_insert_with(|| json!([]))
                    .as_array_mut()?
                    .push(item);
            }
            (Ty::StrList, Wire::Len(s)) => {
                out.entry(key)
                    .or_insert_with(|| json!([]))
                    .as_array_mut()?
                    .push(json!(String::from_utf8_lossy(s)));
            }
            (Ty::StrMap | Ty::BytesMap, Wire::Len(s)) => {
                let (k, v) = map_entry(s, matches!(ty, Ty::BytesMap))?;
                out.entry(key)
                    .or_insert_with(|| json!({}))
                    .as_object_mut()?
                    .insert(k, v);
            }
            _ => {}
        }
    }
    Some(Value::Object(out))
}

/// Decodes a protobuf request body into the JSON object it stands for; None when it is not one
/// this emulator understands.
pub fn decode(body: &[u8]) -> Option<Value> {
    let rest = body.strip_prefix(MAGIC)?;
    let mut r = Reader { b: rest, i: 0 };
    let (mut type_meta, mut raw) = (None, None);
    while let Some((f, w)) = r.next()? {
        match (f, w) {
            (1, Wire::Len(s)) => type_meta = message(s, "TypeMeta"),
            (2, Wire::Len(s)) => raw = Some(s),
            _ => {}
        }
    }
    let tm = type_meta?;
    let kind = tm["kind"].as_str()?.to_string();
    if fields(&kind).is_empty() {
        return None;
    }
    let mut obj = message(raw.unwrap_or_default(), &kind)?;
    obj["apiVersion"] = tm["apiVersion"].clone();
    obj["kind"] = json!(kind);
    if obj.get("metadata").is_none() {
        obj["metadata"] = json!({});
    }
    Some(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(n: u64, wire: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![((n << 3) | wire) as u8];
        if wire == 2 {
            out.push(payload.len() as u8);
        }
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn decodes_a_secret_envelope() {
        let meta = [
            field(1, 2, b"rel"),
            field(
                11,
                2,
                &[field(1, 2, b"owner"), field(2, 2, b"helm")].concat(),
            ),
        ]
        .concat();
        let secret = [
            field(1, 2, &meta),
            field(
                2,
                2,
                &[field(1, 2, b"release"), field(2, 2, b"\x00\x01")].concat(),
            ),
            field(3, 2, b"helm.sh/release.v1"),
        ]
        .concat();
        let tm = [field(1, 2, b"v1"), field(2, 2, b"Secret")].concat();
        let body = [MAGIC.to_vec(), field(1, 2, &tm), field(2, 2, &secret)].concat();
        assert_eq!(
            decode(&body).unwrap(),
            json!({"apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
                "metadata": {"name": "rel", "labels": {"owner": "helm"}}, "data": {"release": "AAE="}})
        );
    }
}
