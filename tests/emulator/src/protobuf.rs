//! Decoding of the Kubernetes protobuf wire format for the kinds whose typed clients send it
//! (Helm's release Secrets, `kubectl create configmap|secret|namespace|serviceaccount|deployment|
//! service|ingress|poddisruptionbudget`, `kubectl autoscale`).
//!
//! What no table describes is refused with 415 and a message naming the kind and the field, never
//! dropped. Go's encoder writes every non-pointer field whether set or not, so an unknown field
//! holding its zero value (0, "", a message of zeros such as an empty `status`) is accepted as
//! unset: that is all `kubectl create` sends beyond the tables (verified with the flags of the
//! `kubectl_create_flags_reach_the_stored_object` conformance test). The one thing this cannot
//! tell apart is a Go pointer field without a table entry explicitly set to 0 or false.
//!
//! Responses stay JSON: those clients accept `application/json` as well.

use base64::Engine;
use serde_json::{Map, Value, json};

use super::kinds::{self, Proto, ProtoField};

/// The envelope every protobuf body starts with.
const MAGIC: &[u8] = b"k8s\0";

/// (field number, JSON name, type) per message, from k8s.io/api's generated.proto: the messages
/// kinds share here, each kind's own in its file under `kinds/`.
fn fields(message: &str) -> &'static [ProtoField] {
    use Proto::*;
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
        "LabelSelector" => &[
            (1, "matchLabels", StrMap),
            (2, "matchExpressions", MsgList("LabelSelectorRequirement")),
        ],
        "LabelSelectorRequirement" => &[
            (1, "key", Str),
            (2, "operator", Str),
            (3, "values", StrList),
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
        "IntOrString" => &[(1, "type", Int), (2, "intVal", Int), (3, "strVal", Str)],
        "Time" => &[(1, "seconds", Int), (2, "nanos", Int)],
        "TypeMeta" => &[(1, "apiVersion", Str), (2, "kind", Str)],
        _ => kinds::protobuf_message(message).unwrap_or(&[]),
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
        let s = self.b.get(self.i..self.i.checked_add(n)?)?;
        self.i += n;
        Some(s)
    }

    fn fixed(&mut self, n: usize) -> Option<u64> {
        let s = self.b.get(self.i..self.i.checked_add(n)?)?;
        self.i += n;
        Some(s.iter().rev().fold(0, |v, b| (v << 8) | u64::from(*b)))
    }

    /// The next (field number, wire value); None when the bytes are not protobuf.
    fn next(&mut self) -> Option<Option<(u64, Wire<'a>)>> {
        if self.i >= self.b.len() {
            return Some(None);
        }
        let key = self.varint()?;
        let (field, wire) = (key >> 3, key & 7);
        let v = match wire {
            0 => Wire::Varint(self.varint()?),
            2 => Wire::Len(self.bytes()?),
            1 => Wire::Fixed(self.fixed(8)?),
            5 => Wire::Fixed(self.fixed(4)?),
            _ => return None,
        };
        Some(Some((field, v)))
    }
}

enum Wire<'a> {
    Varint(u64),
    Len(&'a [u8]),
    Fixed(u64),
}

impl Wire<'_> {
    /// Whether this is what Go writes for an unset non-pointer field: 0, "", or a message whose
    /// fields are all such zeros (an empty `status`, `resources`, `strategy`).
    fn is_zero(&self) -> bool {
        match self {
            Wire::Varint(v) | Wire::Fixed(v) => *v == 0,
            Wire::Len(s) => {
                let mut r = Reader { b: s, i: 0 };
                loop {
                    match r.next() {
                        Some(None) => return true,
                        Some(Some((_, w))) if w.is_zero() => {}
                        _ => return false,
                    }
                }
            }
        }
    }
}

/// Why a protobuf body could not be decoded.
#[derive(Debug)]
enum Undecodable {
    /// The bytes are not a Kubernetes protobuf envelope.
    Malformed,
    /// The envelope holds a kind this emulator has no table for.
    Kind(String),
    /// A field with a value that no table entry describes; `path` is filled in on the way out.
    Field {
        message: String,
        number: u64,
        path: Vec<String>,
    },
}

impl Undecodable {
    fn field(message: &str, number: u64) -> Self {
        Undecodable::Field {
            message: message.to_string(),
            number,
            path: Vec::new(),
        }
    }

    /// Prepends the JSON path segment of the enclosing field, for the message.
    fn within(mut self, segment: impl FnOnce() -> String) -> Self {
        if let Undecodable::Field { path, .. } = &mut self {
            path.push(segment());
        }
        self
    }

    /// The message of the 415 Status: which kind and which field the emulator could not decode.
    fn message(&self, kind: &str) -> String {
        const ACCEPTED: &str = "accepted media types include: application/json, application/yaml";
        match self {
            Undecodable::Malformed => {
                format!("the body of the request was in an unknown format - {ACCEPTED}")
            }
            Undecodable::Kind(k) => format!(
                "the emulator cannot decode {k} from protobuf (it has no field table for the kind) - {ACCEPTED}"
            ),
            Undecodable::Field {
                message,
                number,
                path,
            } => {
                let at: Vec<&str> = path.iter().rev().map(String::as_str).collect();
                let at = if at.is_empty() {
                    String::new()
                } else {
                    format!(" at {}", at.join("").trim_start_matches('.'))
                };
                format!(
                    "the emulator cannot decode field {number} of protobuf message {message}{at} in this {kind}, so it refuses the object rather than drop the field - {ACCEPTED}"
                )
            }
        }
    }
}

fn malformed<T>(v: Option<T>) -> Result<T, Undecodable> {
    v.ok_or(Undecodable::Malformed)
}

fn map_entry(b: &[u8], bytes_value: bool) -> Result<(String, Value), Undecodable> {
    let mut r = Reader { b, i: 0 };
    let (mut k, mut v) = (String::new(), json!(""));
    while let Some((f, w)) = malformed(r.next())? {
        if let Wire::Len(s) = w {
            match f {
                1 => k = String::from_utf8_lossy(s).into_owned(),
                2 if bytes_value => v = json!(base64::engine::general_purpose::STANDARD.encode(s)),
                2 => v = json!(String::from_utf8_lossy(s)),
                _ => {}
            }
        }
    }
    Ok((k, v))
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
    "minReplicas",
    "targetCPUUtilizationPercentage",
];

fn message(b: &[u8], name: &str) -> Result<Value, Undecodable> {
    let schema = fields(name);
    let mut out = Map::new();
    let mut r = Reader { b, i: 0 };
    while let Some((f, w)) = malformed(r.next())? {
        let Some((_, key, ty)) = schema.iter().find(|(n, _, _)| *n == f) else {
            // Go's encoder writes every non-pointer field, set or not: an unknown field carrying
            // its zero value says nothing. Anything else would be lost, so it is refused.
            if w.is_zero() {
                continue;
            }
            return Err(Undecodable::field(name, f));
        };
        let key = key.to_string();
        let within = |e: Undecodable| e.within(|| format!(".{key}"));
        match (ty, w) {
            (Proto::Str, Wire::Len(s)) if !s.is_empty() => {
                out.insert(key, json!(String::from_utf8_lossy(s)));
            }
            (Proto::Int, Wire::Varint(v)) if v != 0 || KEEP_ZERO.contains(&key.as_str()) => {
                out.insert(key, json!(v as i64));
            }
            (Proto::Bool, Wire::Varint(v)) if v != 0 || KEEP_ZERO.contains(&key.as_str()) => {
                out.insert(key, json!(v != 0));
            }
            (Proto::Time, Wire::Len(s)) => {
                let t = message(s, "Time").map_err(within)?;
                let secs = t["seconds"].as_i64().unwrap_or(0);
                if secs != 0
                    && let Ok(ts) = jiff::Timestamp::from_second(secs)
                {
                    out.insert(key, json!(ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()));
                }
            }
            (Proto::Msg(m), Wire::Len(s)) => {
                let v = message(s, m).map_err(within)?;
                out.insert(key, v);
            }
            (Proto::Inline(m), Wire::Len(s)) => {
                if let Value::Object(inner) = message(s, m)? {
                    out.extend(inner);
                }
            }
            (Proto::IntOrString, Wire::Len(s)) => {
                let v = message(s, "IntOrString").map_err(within)?;
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
            (Proto::IntOrStringPtr, Wire::Len(s)) => {
                let v = message(s, "IntOrString").map_err(within)?;
                match (v["type"].as_i64(), v["strVal"].as_str()) {
                    (Some(1), Some(text)) => out.insert(key, json!(text)),
                    _ => out.insert(key, json!(v["intVal"].as_i64().unwrap_or(0))),
                };
            }
            (Proto::MsgList(m), Wire::Len(s)) => {
                let list = out.entry(key.clone()).or_insert_with(|| json!([]));
                let index = list.as_array().map_or(0, Vec::len);
                let item = message(s, m).map_err(|e| e.within(|| format!(".{key}[{index}]")))?;
                if let Some(list) = list.as_array_mut() {
                    list.push(item);
                }
            }
            (Proto::StrList, Wire::Len(s)) => {
                if let Some(list) = out.entry(key).or_insert_with(|| json!([])).as_array_mut() {
                    list.push(json!(String::from_utf8_lossy(s)));
                }
            }
            (Proto::StrMap | Proto::BytesMap, Wire::Len(s)) => {
                let (k, v) = map_entry(s, matches!(ty, Proto::BytesMap))?;
                if let Some(map) = out.entry(key).or_insert_with(|| json!({})).as_object_mut() {
                    map.insert(k, v);
                }
            }
            // A zero where the table expects it unset (an empty string, a false bool).
            (_, w) if w.is_zero() => {}
            // A wire type the table does not expect for this field.
            _ => return Err(Undecodable::field(name, f)),
        }
    }
    Ok(Value::Object(out))
}

/// Decodes a protobuf request body into the JSON object it stands for, or gives the message of the
/// 415 that refuses it: a kind or a field with a value that no table here describes is refused,
/// never dropped.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let refuse = |e: Undecodable| e.message("object");
    let rest = malformed(body.strip_prefix(MAGIC)).map_err(refuse)?;
    let mut r = Reader { b: rest, i: 0 };
    let (mut type_meta, mut raw) = (None, None);
    while let Some((f, w)) = malformed(r.next()).map_err(refuse)? {
        match (f, w) {
            (1, Wire::Len(s)) => type_meta = Some(message(s, "TypeMeta").map_err(refuse)?),
            (2, Wire::Len(s)) => raw = Some(s),
            _ => {}
        }
    }
    let tm = malformed(type_meta).map_err(refuse)?;
    let kind = malformed(tm["kind"].as_str()).map_err(refuse)?.to_string();
    if fields(&kind).is_empty() {
        return Err(Undecodable::Kind(kind).message("object"));
    }
    let mut obj = message(raw.unwrap_or_default(), &kind).map_err(|e| e.message(&kind))?;
    obj["apiVersion"] = tm["apiVersion"].clone();
    obj["kind"] = json!(kind);
    if obj.get("metadata").is_none() {
        obj["metadata"] = json!({});
    }
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(n: u64, wire: u64, payload: &[u8]) -> Vec<u8> {
        let (mut out, mut key) = (Vec::new(), (n << 3) | wire);
        while key >= 0x80 {
            out.push((key as u8) | 0x80);
            key >>= 7;
        }
        out.push(key as u8);
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

    fn deployment(spec: &[u8], status: &[u8]) -> Vec<u8> {
        let meta = field(1, 2, b"web");
        let deployment = [field(1, 2, &meta), field(2, 2, spec), field(3, 2, status)].concat();
        let tm = [field(1, 2, b"apps/v1"), field(2, 2, b"Deployment")].concat();
        [MAGIC.to_vec(), field(1, 2, &tm), field(2, 2, &deployment)].concat()
    }

    #[test]
    fn zero_values_of_unknown_fields_are_what_go_always_writes() {
        // DeploymentSpec.strategy {}, an empty status with zero counters, PodSpec.hostNetwork false.
        let pod = [field(11, 0, &[0]), field(9, 2, b"")].concat();
        let template = field(2, 2, &pod);
        let spec = [field(1, 0, &[0]), field(3, 2, &template), field(4, 2, b"")].concat();
        let status = [field(1, 0, &[0]), field(2, 0, &[0])].concat();
        assert_eq!(
            decode(&deployment(&spec, &status)).unwrap(),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                "spec": {"replicas": 0, "strategy": {}, "template": {"spec": {}}}})
        );
    }

    #[test]
    fn an_unknown_field_with_a_value_is_refused_with_where_it_was() {
        // A container with field 99 set: no table entry, so the object is refused, not thinned.
        let container = [field(1, 2, b"web"), field(99, 2, b"surprise")].concat();
        let pod = field(2, 2, &container);
        let spec = field(3, 2, &field(2, 2, &pod));
        let err = decode(&deployment(&spec, b"")).unwrap_err();
        assert_eq!(
            err,
            "the emulator cannot decode field 99 of protobuf message Container at \
             spec.template.spec.containers[0] in this Deployment, so it refuses the object rather \
             than drop the field - accepted media types include: application/json, application/yaml"
        );
        let tm = [
            field(1, 2, b"rbac.authorization.k8s.io/v1"),
            field(2, 2, b"RoleBinding"),
        ]
        .concat();
        let body = [MAGIC.to_vec(), field(1, 2, &tm)].concat();
        assert!(
            decode(&body)
                .unwrap_err()
                .starts_with("the emulator cannot decode RoleBinding from protobuf"),
        );
    }
}
