//! The built-in kinds: one file per kind, each holding one [`Kind`] value with everything the
//! emulator knows about it (names, subresources, decoding, defaults, validation, `kubectl get`
//! columns, merge schema, protobuf fields, storage version). The other modules consult [`KINDS`],
//! mostly through `ResourceInfo::builtin`; adding or changing a built-in kind is one file here
//! plus its line in [`KINDS`].

mod cluster_role;
mod cluster_role_binding;
mod common;
mod config_map;
mod custom_resource_definition;
pub mod deployment;
mod endpoint_slice;
mod event;
mod horizontal_pod_autoscaler;
mod horizontal_pod_autoscaler_v1;
mod ingress;
mod ingress_class;
mod lease;
mod namespace;
pub mod node;
mod pod;
mod pod_disruption_budget;
mod rbac;
mod replica_set;
mod resource_quota;
mod role;
mod role_binding;
mod secret;
mod service;
mod service_account;
#[cfg(test)]
mod tests;
mod workload;

use serde_json::Value;

use super::errors::{ApiError, FieldError};
pub use common::{age, check_labels, removed_paths, s};

/// A protobuf field: (field number, JSON name, how it is encoded), from k8s.io/api's
/// generated.proto.
pub type ProtoField = (u64, &'static str, Proto);

/// How a protobuf field is encoded on the wire.
#[derive(Clone, Copy)]
pub enum Proto {
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

/// How a served version is kept as the objects of another (events.k8s.io Events as core Events,
/// autoscaling/v1 HorizontalPodAutoscalers as v2 ones), as kube-apiserver keeps one storage version
/// and converts on the way in and out.
#[derive(Clone, Copy)]
pub struct Storage {
    /// The store of the storage version (`group/plural`, as `ResourceInfo::storage_key` names it).
    pub key: &'static str,
    /// This version's object → the storage version's, on every write.
    pub to_stored: fn(&Value) -> Value,
    /// The storage version's object → this version's, on every read.
    pub from_stored: fn(&Value) -> Value,
}

/// Allocation on create: `(object, next cluster IP, next node port)`.
pub type Allocate = fn(&mut Value, &mut dyn FnMut() -> String, &mut dyn FnMut() -> u32);

/// A `kubectl get` column: name, type, priority (1: only with `-o wide`).
pub type Column = (&'static str, &'static str, i64);

/// Everything the emulator knows about one built-in kind.
pub struct Kind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    /// Has a `status` subresource (status changes through the main endpoint are ignored).
    pub status: bool,
    /// Keeps `metadata.generation`.
    pub generation: bool,
    /// Has a `scale` subresource (autoscaling/v1 Scale over `spec.replicas`).
    pub scale: bool,
    /// The verbs discovery lists.
    pub verbs: &'static [&'static str],
    /// The Go type's JSON round trip: wrong types are an error, unknown fields are dropped.
    pub decode: fn(&Value) -> Result<Value, String>,
    /// kube-apiserver's round trip through the internal version, on every write.
    pub convert: fn(&mut Value),
    /// The defaulting functions, for create and update.
    pub defaults: fn(&mut Value),
    /// How `metadata.name` is validated: the message when invalid.
    pub check_name: fn(&str) -> Option<String>,
    pub validate: fn(&Value, &mut Vec<FieldError>),
    /// What may not change on update: `(old, new, errors)`.
    pub validate_update: fn(&Value, &Value, &mut Vec<FieldError>),
    /// What the server allocates on create (a Service's cluster IP and node ports), given fresh
    /// cluster IPs and node ports.
    pub allocate: Option<Allocate>,
    /// Fields the server allocates and keeps across updates that leave them empty: `(old, new)`.
    pub carry_allocated: fn(&Value, &mut Value),
    /// Field selectors beyond `metadata.name` and `metadata.namespace`.
    pub field_selectors: &'static [&'static str],
    /// `kubectl get` columns, and the cells of one object's row.
    pub columns: &'static [Column],
    pub cells: fn(&Value) -> Vec<Value>,
    /// The merge schema fragment (list types, merge keys) without `metadata`; None: no patch or
    /// apply support beyond JSON merge.
    pub merge: Option<fn() -> Value>,
    /// When this version is stored as another one's objects: the shared store and the conversions.
    pub storage: Option<Storage>,
    /// Protobuf messages this kind's typed clients send (the kind's own message first), beyond
    /// the shared ones of [`super::protobuf`]; empty when it is never sent as protobuf.
    pub protobuf: &'static [(&'static str, &'static [ProtoField])],
}

fn as_is(v: &Value) -> Result<Value, String> {
    Ok(v.clone())
}
fn no_convert(_: &mut Value) {}
fn no_defaults(_: &mut Value) {}
fn no_validation(_: &Value, _: &mut Vec<FieldError>) {}
fn no_update_validation(_: &Value, _: &Value, _: &mut Vec<FieldError>) {}
fn nothing_allocated(_: &Value, _: &mut Value) {}

/// A kind's name and age, the columns kubectl shows for a kind without its own.
const NAME_AGE: &[Column] = &[("Name", "string", 0), ("Age", "string", 0)];

fn name_age(o: &Value) -> Vec<Value> {
    vec![
        o["metadata"]["name"].clone(),
        common::age(&o["metadata"]["creationTimestamp"]),
    ]
}

impl std::fmt::Debug for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Kind({}/{} {})", self.group, self.version, self.kind)
    }
}

impl Kind {
    /// A kind with no behaviour of its own; kind files fill in what differs with `..Kind::BASE`.
    pub const BASE: Kind = Kind {
        group: "",
        version: "v1",
        kind: "",
        plural: "",
        namespaced: true,
        short_names: &[],
        categories: &[],
        status: false,
        generation: false,
        scale: false,
        verbs: &[
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ],
        decode: as_is,
        convert: no_convert,
        defaults: no_defaults,
        check_name: common::check_subdomain,
        validate: no_validation,
        validate_update: no_update_validation,
        allocate: None,
        carry_allocated: nothing_allocated,
        field_selectors: &[],
        columns: NAME_AGE,
        cells: name_age,
        merge: None,
        storage: None,
        protobuf: &[],
    };
}

/// The built-in kinds this emulator serves, in discovery order.
pub static KINDS: &[&Kind] = &[
    &namespace::KIND,
    &config_map::KIND,
    &secret::KIND,
    &service::KIND,
    &service_account::KIND,
    &pod::KIND,
    &node::KIND,
    &resource_quota::KIND,
    &event::CORE,
    &deployment::KIND,
    &replica_set::KIND,
    &ingress::KIND,
    &endpoint_slice::KIND,
    &pod_disruption_budget::KIND,
    &horizontal_pod_autoscaler::KIND,
    &horizontal_pod_autoscaler_v1::KIND,
    &ingress_class::KIND,
    &lease::KIND,
    &cluster_role::KIND,
    &cluster_role_binding::KIND,
    &role::KIND,
    &role_binding::KIND,
    &event::EVENTS_V1,
    &custom_resource_definition::KIND,
];

/// The merge schema of a built-in kind's version, `metadata` included.
pub fn merge_schema(group: &str, version: &str, kind: &str) -> Option<Value> {
    let k = KINDS
        .iter()
        .find(|k| k.group == group && k.version == version && k.kind == kind)?;
    Some(super::apply::builtin_schema((k.merge?)()))
}

/// The protobuf fields of a message some built-in kind declares.
pub fn protobuf_message(message: &str) -> Option<&'static [ProtoField]> {
    KINDS
        .iter()
        .flat_map(|k| k.protobuf.iter())
        .find(|(name, _)| *name == message)
        .map(|(_, fields)| *fields)
}

/// Decodes a built-in object like the real server decodes into its Go type: wrong types are a 400,
/// unknown fields are dropped and reported (for `fieldValidation`).
pub fn decode(k: &Kind, obj: &Value) -> Result<(Value, Vec<String>), ApiError> {
    let mut out = (k.decode)(obj).map_err(|e| {
        ApiError::bad_request(format!(
            "{kind} in version \"{}\" cannot be handled as a {kind}: {e}",
            obj["apiVersion"]
                .as_str()
                .unwrap_or("v1")
                .rsplit('/')
                .next()
                .unwrap_or("v1"),
            kind = k.kind,
        ))
    })?;
    let mut unknown = vec![];
    removed_paths(obj, &out, "", &mut unknown);
    (k.convert)(&mut out);
    Ok((out, unknown))
}

/// Decodes an object's `metadata` as the ObjectMeta every kind has (a custom resource's too).
pub fn decode_metadata(obj: &Value) -> Result<(), ApiError> {
    let meta_only = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| serde_json::json!({}))});
    decode(&config_map::KIND, &meta_only).map(|_| ())
}

/// How `metadata.name` is validated: by the kind's rule, a DNS subdomain for custom resources.
pub fn check_name(k: Option<&Kind>, name: &str) -> Option<String> {
    k.map_or_else(|| common::check_subdomain(name), |k| (k.check_name)(name))
}
