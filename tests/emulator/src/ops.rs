//! The semantics of writes, shared by the HTTP handlers and the in-process controllers: admission
//! (decode, defaults, validation), metadata kube-apiserver owns, generation, finalizers and deletion.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use serde_json::{Value, json};

use super::apply::{Manager, Operation};
use super::engines::{self, CrdSchema};
use super::errors::{ApiError, FieldError};
use super::kinds;
use super::resources::{self, ResourceInfo};
use super::store::Store;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    Strict,
    Warn,
    Ignore,
}

/// Options of one write request.
#[derive(Debug, Clone)]
pub struct WriteOpts {
    pub manager: String,
    pub validation: FieldValidation,
    pub dry_run: bool,
    pub subresource: Option<String>,
    /// An update whose object is a stored one an in-process controller changed: it is already
    /// decoded (typed round trip, conversion, unknown fields dropped), and decoding it again
    /// would change nothing. Requests from clients are always decoded.
    pub decoded: bool,
}

impl WriteOpts {
    /// The options of an in-process write: a controller's update of an object it read from the
    /// store, or an object the server creates itself.
    pub fn internal(manager: &str) -> Self {
        WriteOpts {
            manager: manager.into(),
            validation: FieldValidation::Ignore,
            dry_run: false,
            subresource: None,
            decoded: true,
        }
    }
}

pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

pub fn new_uid() -> String {
    let b: [u8; 16] = rand::random();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    // Version 4, RFC 4122 variant: like the UUIDs kube-apiserver hands out.
    let variant = ["8", "9", "a", "b"][usize::from(b[8] & 3)];
    format!(
        "{}-{}-4{}-{variant}{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// kube-apiserver's suffix alphabet for generateName (no vowels, no confusable characters).
pub fn random_suffix(n: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..n)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

pub(crate) fn meta_str<'a>(o: &'a Value, key: &str) -> &'a str {
    o["metadata"][key].as_str().unwrap_or_default()
}

/// The CRD version's compiled schema (compiled once per CRD version).
pub fn crd_schema(info: &ResourceInfo) -> Result<Option<Arc<CrdSchema>>, ApiError> {
    let Some(c) = &info.crd else {
        return Ok(None);
    };
    let Some(raw) = &c.schema else {
        return Ok(None);
    };
    c.compiled
        .get_or_init(|| CrdSchema::new(raw).map(Arc::new))
        .clone()
        .map(Some)
        .map_err(ApiError::internal)
}

/// Merge information for the patch/apply engines: the CRD version's schema or the built-in one,
/// computed once per CRD version or built-in kind.
pub fn merge_schema(info: &ResourceInfo) -> Arc<Value> {
    static BUILTIN: LazyLock<Mutex<HashMap<String, Arc<Value>>>> = LazyLock::new(Mutex::default);
    match &info.crd {
        Some(c) => c
            .merge
            .get_or_init(|| {
                Arc::new(engines::crd_merge_schema(
                    c.schema.as_ref().unwrap_or(&json!({})),
                ))
            })
            .clone(),
        None => {
            let mut cache = BUILTIN.lock().unwrap_or_else(|e| e.into_inner());
            cache
                .entry(format!("{}/{}/{}", info.group, info.version, info.kind))
                .or_insert_with(|| {
                    Arc::new(
                        engines::builtin_schema(&info.group, &info.version, &info.kind)
                            .unwrap_or_else(|| {
                                json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
                            }),
                    )
                })
                .clone()
        }
    }
}

fn manager<'a>(
    opts: &'a WriteOpts,
    op: Operation,
    api_version: &'a str,
    time: &'a str,
) -> Manager<'a> {
    Manager {
        name: &opts.manager,
        operation: op,
        subresource: opts.subresource.as_deref(),
        api_version,
        time,
    }
}

/// Whether two versions of an object differ in anything but metadata (and status, when it is
/// a subresource): what bumps `generation`.
fn spec_changed(info: &ResourceInfo, a: &Value, b: &Value) -> bool {
    let outside_spec =
        |k: &str| matches!(k, "metadata" | "apiVersion" | "kind") || (info.status && k == "status");
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return a != b;
    };
    let spec_fields =
        |m: &serde_json::Map<String, Value>| m.keys().filter(|k| !outside_spec(k)).count();
    spec_fields(a) != spec_fields(b)
        || a.iter()
            .any(|(k, v)| !outside_spec(k) && b.get(k) != Some(v))
}

/// Decodes and normalises what a client sent: unknown fields dropped (and reported per fieldValidation),
/// defaults applied. Returns the object and the warnings to send.
fn decode(
    info: &ResourceInfo,
    obj: Value,
    opts: &WriteOpts,
    schema: Option<&CrdSchema>,
) -> Result<(Value, Vec<String>), ApiError> {
    let (mut obj, unknown) = if info.crd.is_some() {
        // metadata is decoded like any ObjectMeta, whatever the CRD says.
        kinds::decode_metadata(&obj)?;
        let mut obj = obj;
        let unknown = match schema {
            Some(s) => {
                let unknown = s.unknown_fields(&obj);
                s.prune(&mut obj);
                unknown
            }
            None => vec![],
        };
        (obj, unknown)
    } else {
        match info.builtin {
            Some(k) => kinds::decode(k, &obj)?,
            None => (obj, vec![]),
        }
    };
    let mut warnings = vec![];
    if !unknown.is_empty() {
        match opts.validation {
            FieldValidation::Strict => {
                let list: Vec<String> = unknown
                    .iter()
                    .map(|p| format!("unknown field \"{p}\""))
                    .collect();
                return Err(ApiError::bad_request(format!(
                    "strict decoding error: {}",
                    list.join(", ")
                )));
            }
            FieldValidation::Warn => {
                warnings.extend(unknown.iter().map(|p| format!("unknown field \"{p}\"")))
            }
            FieldValidation::Ignore => {}
        }
    }
    if let Some(s) = info.storage() {
        obj = (s.to_stored)(&obj);
    }
    Ok((obj, warnings))
}

fn defaults(info: &ResourceInfo, obj: &mut Value, schema: Option<&CrdSchema>) {
    if info.crd.is_some() {
        if let Some(s) = schema {
            s.apply_defaults(obj);
        }
    } else if let Some(k) = info.builtin {
        (k.defaults)(obj);
    }
}

fn validate(
    info: &ResourceInfo,
    obj: &Value,
    old: Option<&Value>,
    schema: Option<&CrdSchema>,
) -> Result<Vec<String>, ApiError> {
    let name = meta_str(obj, "name");
    let mut errs: Vec<FieldError> = vec![];
    if old.is_none()
        && let Some(m) = kinds::check_name(info.builtin, name)
    {
        errs.push(FieldError::invalid("metadata.name", json!(name), m));
    }
    errs.extend(kinds::check_labels(
        &obj["metadata"]["labels"],
        "metadata.labels",
    ));
    if let Some(old) = old {
        let had: Vec<&Value> = old["metadata"]["finalizers"]
            .as_array()
            .into_iter()
            .flatten()
            .collect();
        let new_ones: Vec<String> = obj["metadata"]["finalizers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| !had.contains(f))
            .filter_map(|f| f.as_str().map(|s| format!("\"{s}\"")))
            .collect();
        if old["metadata"]["deletionTimestamp"].is_string() && !new_ones.is_empty() {
            errs.push(FieldError::forbidden(
                "metadata.finalizers",
                format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                    new_ones.join(", ")
                ),
            ));
        }
    }
    if let Some(k) = info.builtin {
        (k.validate)(obj, &mut errs);
        if let Some(old) = old {
            (k.validate_update)(old, obj, &mut errs);
        }
    }
    if !errs.is_empty() {
        return Err(ApiError::invalid(&info.kind, &info.group, name, &errs));
    }
    if info.kind == "CustomResourceDefinition" && info.group == "apiextensions.k8s.io" {
        engines::validate_crd(obj, old)?;
    }
    match schema {
        Some(s) => s.validate(&format!("{}.{}", info.kind, info.group), name, obj, old),
        None => Ok(vec![]),
    }
}

/// Stamps a CRD's status the way the apiextensions controllers do once the names are accepted.
fn crd_status(obj: &mut Value) {
    let t = now();
    let names = obj["spec"]["names"].clone();
    let mut accepted = names.clone();
    if accepted.get("singular").is_none() {
        accepted["singular"] = json!(names["kind"].as_str().unwrap_or_default().to_lowercase());
    }
    if accepted.get("listKind").is_none() {
        accepted["listKind"] = json!(format!(
            "{}List",
            names["kind"].as_str().unwrap_or_default()
        ));
    }
    let stored: Vec<Value> = obj["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["storage"] == true)
        .map(|v| v["name"].clone())
        .collect();
    let keep = |ty: &str, obj: &Value| -> String {
        obj["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == ty && c["status"] == "True")
            .and_then(|c| c["lastTransitionTime"].as_str().map(String::from))
            .unwrap_or_else(|| t.clone())
    };
    let names_time = keep("NamesAccepted", obj);
    let est_time = keep("Established", obj);
    obj["status"] = json!({
        "acceptedNames": accepted,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": names_time},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": est_time},
        ],
        "storedVersions": stored,
    });
}

fn register_crd(st: &mut Store, crd: &Value) {
    let name = meta_str(crd, "name").to_string();
    st.resources
        .retain(|r| r.crd.as_ref().is_none_or(|c| c.crd_name != name));
    st.resources.extend(resources::from_crd(crd));
}

fn check_namespace(st: &Store, info: &ResourceInfo, ns: &str, name: &str) -> Result<(), ApiError> {
    if !info.namespaced {
        return Ok(());
    }
    match st.get("/namespaces", "", ns) {
        None => Err(ApiError::not_found("namespaces", "", "namespaces", ns)),
        Some(n) if n["metadata"]["deletionTimestamp"].is_string() => Err(ApiError::new(
            403,
            "Forbidden",
            format!(
                "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                info.group_resource()
            ),
        )
        .with_details(json!({"name": name, "group": info.group, "kind": info.plural,
            "causes": [{"reason": "NamespaceTerminating", "message": format!("namespace {ns} is being terminated"), "field": "metadata.namespace"}]}))),
        Some(_) => Ok(()),
    }
}

/// The result of a write: the stored object and warnings for the `Warning` header.
pub type Written = (Arc<Value>, Vec<String>);

/// Creates an object. `applied` is set when server-side apply already computed managedFields.
pub fn create(
    st: &mut Store,
    info: &ResourceInfo,
    ns: &str,
    obj: Value,
    opts: &WriteOpts,
    applied: bool,
) -> Result<Written, ApiError> {
    let schema = crd_schema(info)?;
    let body_ns = obj["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if info.namespaced && !body_ns.is_empty() && body_ns != ns {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let (mut obj, warnings) = decode(info, obj, opts, schema.as_deref())?;
    let mut name = meta_str(&obj, "name").to_string();
    if name.is_empty() {
        let generate = meta_str(&obj, "generateName").to_string();
        if generate.is_empty() {
            return Err(ApiError::invalid(
                &info.kind,
                &info.group,
                "",
                &[FieldError::required(
                    "metadata.name",
                    "name or generateName is required",
                )],
            ));
        }
        // kube-apiserver keeps at most 58 characters of the prefix, so that the name fits 63.
        let base: String = generate.chars().take(58).collect();
        name = loop {
            let candidate = format!("{base}{}", random_suffix(5));
            if st.get(&info.storage_key(), ns, &candidate).is_none() {
                break candidate;
            }
        };
    }
    check_namespace(st, info, ns, &name)?;
    if st
        .get(
            &info.storage_key(),
            if info.namespaced { ns } else { "" },
            &name,
        )
        .is_some()
    {
        return Err(ApiError::already_exists(
            &info.group_resource(),
            &info.group,
            &info.plural,
            &name,
        ));
    }
    let t = now();
    {
        let m = obj["metadata"]
            .as_object_mut()
            .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
        m.insert("name".into(), json!(name));
        if info.namespaced {
            m.insert("namespace".into(), json!(ns));
        } else {
            m.remove("namespace");
        }
        m.insert("uid".into(), json!(new_uid()));
        m.insert("creationTimestamp".into(), json!(t));
        for k in [
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "resourceVersion",
            "generation",
            "selfLink",
        ] {
            m.remove(k);
        }
        if info.generation {
            m.insert("generation".into(), json!(1));
        }
    }
    // Namespaces and Nodes keep the status they are created with (kube-apiserver's strategies for
    // them clear no status on create: a kubelet registers its node with its status).
    let status_on_create = info.builtin.is_some()
        && info.group.is_empty()
        && matches!(info.kind.as_str(), "Namespace" | "Node");
    if info.status && !status_on_create {
        obj.as_object_mut().map(|o| o.remove("status"));
    }
    defaults(info, &mut obj, schema.as_deref());
    if let Some(allocate) = info.builtin.and_then(|k| k.allocate) {
        let st = std::cell::RefCell::new(&mut *st);
        let mut ip = || st.borrow_mut().allocate_cluster_ip();
        let mut port = || {
            let mut st = st.borrow_mut();
            loop {
                let p = st.next_node_port;
                st.next_node_port = if p >= 32767 { 30000 } else { p + 1 };
                if !st.node_port_used(i64::from(p)) {
                    return p;
                }
            }
        };
        allocate(&mut obj, &mut ip, &mut port);
    }
    if info.kind == "CustomResourceDefinition" {
        crd_status(&mut obj);
    }
    let mut warnings = warnings;
    warnings.extend(validate(info, &obj, None, schema.as_deref())?);
    if info.storage_key() == super::workloads::PODS {
        super::quota::admit(st, ns, &name, &obj)?;
    }
    if !applied {
        let av = info.api_version();
        let m = manager(opts, Operation::Update, &av, &t);
        obj = engines::track_update(None, obj, &m, &merge_schema(info));
    }
    if opts.dry_run {
        return Ok((Arc::new(obj), warnings));
    }
    let stored = st.put(&info.storage_key(), obj);
    if info.kind == "CustomResourceDefinition" {
        register_crd(st, &stored);
    }
    if info.kind == "Namespace" && info.group.is_empty() {
        populate_namespace(st, &name);
    }
    Ok((stored, warnings))
}

/// What the namespace controllers put in every new namespace.
fn populate_namespace(st: &mut Store, ns: &str) {
    let t = now();
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "default", "namespace": ns, "uid": new_uid(), "creationTimestamp": t}});
    st.put("/serviceaccounts", sa);
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "kube-root-ca.crt", "namespace": ns, "uid": new_uid(), "creationTimestamp": t,
            "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}},
        "data": {"ca.crt": "-----BEGIN CERTIFICATE-----\nZW11bGF0b3I=\n-----END CERTIFICATE-----\n"}});
    st.put("/configmaps", cm);
}

/// Updates an existing object with `candidate` (a PUT body or a patched object).
pub fn update(
    st: &mut Store,
    info: &ResourceInfo,
    ns: &str,
    name: &str,
    candidate: Value,
    opts: &WriteOpts,
    applied: bool,
) -> Result<Written, ApiError> {
    let ns = if info.namespaced { ns } else { "" };
    let schema = crd_schema(info)?;
    let key = info.storage_key();
    let live = st.get_shared(&key, ns, name).ok_or_else(|| {
        ApiError::not_found(&info.group_resource(), &info.group, &info.plural, name)
    })?;
    let old: &Value = &live;
    let body_name = meta_str(&candidate, "name");
    if !body_name.is_empty() && body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let want_rv = meta_str(&candidate, "resourceVersion").to_string();
    if !want_rv.is_empty() && want_rv != meta_str(old, "resourceVersion") {
        return Err(ApiError::stale(
            &info.group_resource(),
            &info.group,
            &info.plural,
            name,
        ));
    }
    let (mut decoded, warnings) = if opts.decoded {
        (candidate, vec![])
    } else {
        decode(info, candidate, opts, schema.as_deref())?
    };
    let mut obj = if opts.subresource.as_deref() == Some("status") {
        // What the stored object keeps of what this version can say.
        let mut o = match info.storage() {
            Some(s) => (s.to_stored)(&(s.from_stored)(old)),
            None => old.clone(),
        };
        o["status"] = decoded
            .get_mut("status")
            .map(Value::take)
            .unwrap_or_default();
        if o["status"].is_null() {
            o.as_object_mut().map(|m| m.remove("status"));
        }
        if applied {
            o["metadata"]["managedFields"] = decoded
                .pointer_mut("/metadata/managedFields")
                .map(Value::take)
                .unwrap_or_default();
        }
        o
    } else {
        let mut o = decoded;
        if info.status {
            match old.get("status") {
                Some(s) => o["status"] = s.clone(),
                None => {
                    o.as_object_mut().map(|m| m.remove("status"));
                }
            }
        }
        o
    };
    {
        let m = obj["metadata"]
            .as_object_mut()
            .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
        for k in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            match old["metadata"].get(k) {
                Some(v) => m.insert(k.into(), v.clone()),
                None => m.remove(k),
            };
        }
        m.insert(
            "resourceVersion".into(),
            old["metadata"]["resourceVersion"].clone(),
        );
    }
    if opts.subresource.is_none() {
        defaults(info, &mut obj, schema.as_deref());
        if let Some(k) = info.builtin {
            (k.carry_allocated)(old, &mut obj);
        }
    }
    if info.kind == "CustomResourceDefinition" {
        obj["status"] = old["status"].clone();
        crd_status(&mut obj);
    }
    let mut warnings = warnings;
    warnings.extend(validate(info, &obj, Some(old), schema.as_deref())?);
    if info.generation && spec_changed(info, &obj, old) {
        let g = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
        obj["metadata"]["generation"] = json!(g);
    }
    let t = now();
    if !applied {
        let av = info.api_version();
        let m = manager(opts, Operation::Update, &av, &t);
        obj = engines::track_update(Some(old), obj, &m, &merge_schema(info));
    }
    if obj == *old {
        // A no-op write stores nothing and keeps the resourceVersion, like kube-apiserver.
        return Ok((live, warnings));
    }
    if opts.dry_run {
        return Ok((Arc::new(obj), warnings));
    }
    if old["metadata"]["deletionTimestamp"].is_string() && finalizers(&obj).is_empty() {
        let mut last = st.put(&key, obj);
        if let Some(o) = st.remove(&key, ns, name) {
            last = Arc::new(o);
        }
        after_remove(st, info, &last);
        return Ok((last, warnings));
    }
    let stored = st.put(&key, obj);
    if info.kind == "CustomResourceDefinition" {
        register_crd(st, &stored);
    }
    Ok((stored, warnings))
}

pub fn finalizers(o: &Value) -> Vec<String> {
    o["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().map(String::from))
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

#[derive(Debug, Clone, Default)]
pub struct DeleteOpts {
    pub propagation: Option<Propagation>,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub dry_run: bool,
}

/// What a delete answers: the object when deletion is pending (finalizers), or None when it is gone.
pub fn delete(
    st: &mut Store,
    info: &ResourceInfo,
    ns: &str,
    name: &str,
    opts: &DeleteOpts,
) -> Result<(Value, bool), ApiError> {
    let ns = if info.namespaced { ns } else { "" };
    let key = info.storage_key();
    let old = st.get(&key, ns, name).cloned().ok_or_else(|| {
        ApiError::not_found(&info.group_resource(), &info.group, &info.plural, name)
    })?;
    let gr = info.group_resource();
    if let Some(uid) = &opts.uid
        && uid != meta_str(&old, "uid")
    {
        return Err(ApiError::conflict(
            &gr,
            &info.group,
            &info.plural,
            name,
            &format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                meta_str(&old, "uid")
            ),
        ));
    }
    if let Some(rv) = &opts.resource_version
        && rv != meta_str(&old, "resourceVersion")
    {
        return Err(ApiError::conflict(
            &gr,
            &info.group,
            &info.plural,
            name,
            &format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                meta_str(&old, "resourceVersion")
            ),
        ));
    }
    if opts.dry_run {
        return Ok((old, false));
    }
    let mut obj = old.clone();
    let mut fins = finalizers(&obj);
    match opts.propagation {
        Some(Propagation::Orphan) if !fins.iter().any(|f| f == "orphan") => {
            fins.push("orphan".into())
        }
        Some(Propagation::Foreground) if !fins.iter().any(|f| f == "foregroundDeletion") => {
            fins.push("foregroundDeletion".into())
        }
        _ => {}
    }
    if info.kind == "Namespace" && info.group.is_empty() {
        if obj["metadata"]["deletionTimestamp"].is_null() {
            obj["metadata"]["deletionTimestamp"] = json!(now());
            obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            obj["status"]["phase"] = json!("Terminating");
            obj["metadata"]["finalizers"] = json!(fins);
            obj = Arc::unwrap_or_clone(st.put(&key, obj));
        }
        return Ok((obj, true));
    }
    if info.kind == "CustomResourceDefinition" {
        remove_crd_objects(st, &old);
    }
    if !fins.is_empty() {
        let already = obj["metadata"]["deletionTimestamp"].is_string();
        if !already || fins != finalizers(&old) {
            if !already {
                obj["metadata"]["deletionTimestamp"] = json!(now());
                obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            }
            obj["metadata"]["finalizers"] = json!(fins);
            obj = Arc::unwrap_or_clone(st.put(&key, obj));
        }
        return Ok((obj, true));
    }
    let last = st.remove(&key, ns, name).unwrap_or(old);
    after_remove(st, info, &last);
    Ok((last, false))
}

fn remove_crd_objects(st: &mut Store, crd: &Value) {
    let group = crd["spec"]["group"].as_str().unwrap_or_default();
    let plural = crd["spec"]["names"]["plural"].as_str().unwrap_or_default();
    let key = format!("{group}/{plural}");
    for o in st.list(&key, None) {
        st.remove(&key, meta_str(&o, "namespace"), meta_str(&o, "name"));
    }
    st.drop_resource(&key);
    let name = meta_str(crd, "name").to_string();
    st.resources
        .retain(|r| r.crd.as_ref().is_none_or(|c| c.crd_name != name));
}

fn after_remove(st: &mut Store, info: &ResourceInfo, last: &Value) {
    if info.kind == "CustomResourceDefinition" {
        remove_crd_objects(st, last);
    }
}

/// Removes one finalizer (a controller finishing its work) and completes the deletion when none remain.
pub fn remove_finalizer(
    st: &mut Store,
    info: &ResourceInfo,
    ns: &str,
    name: &str,
    finalizer: &str,
) {
    let Some(old) = st.get(&info.storage_key(), ns, name).cloned() else {
        return;
    };
    let fins: Vec<String> = finalizers(&old)
        .into_iter()
        .filter(|f| f != finalizer)
        .collect();
    let mut obj = old.clone();
    obj["metadata"]["finalizers"] = json!(fins);
    if fins.is_empty() {
        obj["metadata"]
            .as_object_mut()
            .map(|m| m.remove("finalizers"));
    }
    let _ = update(
        st,
        info,
        ns,
        name,
        obj,
        &WriteOpts::internal("kube-controller-manager"),
        false,
    );
}

/// The `autoscaling/v1` Scale view of a Deployment.
pub fn scale_of(d: &Value) -> Value {
    let m = &d["metadata"];
    let selector = d["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|l| {
            l.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
            "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"]},
        "spec": {"replicas": d["spec"]["replicas"]},
        "status": {"replicas": d["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector},
    })
}

/// Where a scalable kind keeps its replica count.
pub const REPLICAS_PATH: [&str; 2] = ["spec", "replicas"];

/// Merge information of `autoscaling/v1` Scale: plain structs, no lists.
pub fn scale_schema() -> Value {
    json!({"type": "object", "properties": {
        "metadata": {"type": "object"},
        "spec": {"type": "object"},
        "status": {"type": "object"},
    }})
}

/// The Scale of a live object with the owners of its replicas carried over, as the scale
/// subresource's writes see it (kube-apiserver's `ScaleHandler.ToSubresource`).
pub fn scale_with_owners(info: &ResourceInfo, live: &Value) -> Value {
    let mut scale = scale_of(live);
    scale["metadata"]["managedFields"] = engines::scale_entries(
        &live["metadata"]["managedFields"],
        &info.api_version(),
        &REPLICAS_PATH,
    );
    scale
}

/// Stores a write through the scale subresource: the new Scale's replicas, and the parent's
/// managedFields with the Scale's owners of `spec.replicas` folded back
/// (`ScaleHandler.ToParent`).
pub fn store_scale(
    st: &mut Store,
    info: &ResourceInfo,
    ns: &str,
    name: &str,
    live: &Value,
    new_scale: &Value,
    opts: &WriteOpts,
) -> Result<Written, ApiError> {
    let replicas = &new_scale["spec"]["replicas"];
    if replicas.as_i64().is_none_or(|r| r < 0) {
        return Err(ApiError::new(
            422,
            "Invalid",
            format!(
                "Scale.autoscaling \"{name}\" is invalid: spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0"
            ),
        ));
    }
    let mut d = live.clone();
    d["spec"]["replicas"] = replicas.clone();
    d["metadata"]["managedFields"] = engines::scale_to_parent(
        &live["metadata"]["managedFields"],
        &new_scale["metadata"]["managedFields"],
        &info.api_version(),
        &REPLICAS_PATH,
    );
    update(st, info, ns, name, d, opts, true)
}
