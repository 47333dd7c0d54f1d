//! `metadata.managedFields`: field ownership per manager, server-side apply and update tracking.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::fieldset::{FieldSet, PathElement};
use super::schema::Schema;
use super::walk::{Comparison, compare, field_set, merge, prune};
use super::{ApplyError, Conflict, Manager, Operation, Outcome};

/// Identifies a managedFields entry the way kube-apiserver does: appliers by name (and
/// subresource), updaters by name, apiVersion and subresource.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    manager: String,
    operation: Operation,
    /// Empty for `Apply` entries.
    api_version: String,
    subresource: String,
}

#[derive(Debug, Clone)]
struct Entry {
    api_version: String,
    time: Option<String>,
    set: FieldSet,
}

type Managed = BTreeMap<Key, Entry>;

fn key_of(manager: &Manager<'_>) -> Key {
    Key {
        manager: manager.name.to_owned(),
        operation: manager.operation,
        api_version: match manager.operation {
            Operation::Apply => String::new(),
            Operation::Update => manager.api_version.to_owned(),
        },
        subresource: manager.subresource.unwrap_or_default().to_owned(),
    }
}

fn decode(entries: &Value) -> Result<Managed, String> {
    let mut out = Managed::new();
    let Some(list) = entries.as_array() else {
        return if entries.is_null() {
            Ok(out)
        } else {
            Err("metadata.managedFields must be a list".into())
        };
    };
    for e in list {
        let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or_default();
        let operation = match s("operation") {
            "Apply" => Operation::Apply,
            "Update" => Operation::Update,
            other => return Err(format!("unknown managedFields operation {other:?}")),
        };
        if s("fieldsType") != "FieldsV1" {
            return Err(format!("unsupported fieldsType {:?}", s("fieldsType")));
        }
        let set = FieldSet::from_fields_v1(e.get("fieldsV1").unwrap_or(&json!({})))?;
        let key = Key {
            manager: s("manager").to_owned(),
            operation,
            api_version: match operation {
                Operation::Apply => String::new(),
                Operation::Update => s("apiVersion").to_owned(),
            },
            subresource: s("subresource").to_owned(),
        };
        let entry = Entry {
            api_version: s("apiVersion").to_owned(),
            time: e.get("time").and_then(Value::as_str).map(str::to_owned),
            set,
        };
        match out.get_mut(&key) {
            Some(prev) => prev.set = prev.set.union(&entry.set),
            None => {
                out.insert(key, entry);
            }
        }
    }
    Ok(out)
}

fn seconds(time: Option<&str>) -> i64 {
    time.and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map_or(0, |t| t.as_second())
}

/// Entries in kube-apiserver's order: Apply before Update, then by time (seconds), manager,
/// apiVersion and subresource. Entries that own nothing are dropped.
fn encode(managed: &Managed) -> Vec<Value> {
    let mut entries: Vec<(&Key, &Entry)> =
        managed.iter().filter(|(_, e)| !e.set.is_empty()).collect();
    entries.sort_by(|(ka, ea), (kb, eb)| {
        (ka.operation as u8)
            .cmp(&(kb.operation as u8))
            .then(seconds(ea.time.as_deref()).cmp(&seconds(eb.time.as_deref())))
            .then(ka.manager.cmp(&kb.manager))
            .then(ea.api_version.cmp(&eb.api_version))
            .then(ka.subresource.cmp(&kb.subresource))
    });
    entries
        .into_iter()
        .map(|(k, e)| {
            let mut m = Map::new();
            m.insert("manager".into(), json!(k.manager));
            m.insert(
                "operation".into(),
                json!(match k.operation {
                    Operation::Apply => "Apply",
                    Operation::Update => "Update",
                }),
            );
            m.insert("apiVersion".into(), json!(e.api_version));
            if let Some(t) = &e.time {
                m.insert("time".into(), json!(t));
            }
            m.insert("fieldsType".into(), json!("FieldsV1"));
            m.insert("fieldsV1".into(), e.set.to_fields_v1());
            if !k.subresource.is_empty() {
                m.insert("subresource".into(), json!(k.subresource));
            }
            Value::Object(m)
        })
        .collect()
}

/// Identity and server-owned fields are never owned by a manager (exact paths, not subtrees).
fn strip_identity(set: &FieldSet) -> FieldSet {
    let f = |s: &str| PathElement::Field(s.to_owned());
    let mut strip = FieldSet::new();
    strip.insert(&[f("apiVersion")]);
    strip.insert(&[f("kind")]);
    strip.insert(&[f("metadata")]);
    for name in [
        "name",
        "namespace",
        "creationTimestamp",
        "selfLink",
        "uid",
        "clusterName",
        "generation",
        "managedFields",
        "resourceVersion",
    ] {
        strip.insert(&[f("metadata"), f(name)]);
    }
    set.difference(&strip)
}

fn managed_fields_of(obj: &Value) -> Option<&Value> {
    obj.get("metadata")
        .and_then(|m| m.get("managedFields"))
        .filter(|v| !v.is_null())
}

fn with_managed_fields(mut obj: Value, managed: &Managed) -> Value {
    let entries = encode(managed);
    if let Some(root) = obj.as_object_mut() {
        let meta = root.entry("metadata").or_insert_with(|| json!({}));
        if let Some(meta) = meta.as_object_mut() {
            if entries.is_empty() {
                meta.remove("managedFields");
            } else {
                meta.insert("managedFields".into(), Value::Array(entries));
            }
        }
    }
    obj
}

fn live_managed(live: Option<&Value>) -> Managed {
    // kube-apiserver starts afresh rather than failing the write when stored entries are garbage.
    live.and_then(managed_fields_of)
        .and_then(|v| decode(v).ok())
        .unwrap_or_default()
}

/// Server-side apply (`PATCH` with `application/apply-patch+yaml`).
///
/// `live` is the stored object (None creates it); `config` the applied configuration, already
/// decoded from YAML; `schema` from [`super::builtin_schema`] or [`super::crd_schema`]. The result
/// carries the updated `metadata.managedFields`; `changed` is false when storing it would change
/// nothing (kube-apiserver then keeps the resourceVersion and does not bump the entry's time).
/// The server keeps precondition checks (`metadata.resourceVersion`, `uid`), defaulting,
/// validation and status/spec resetting per endpoint to itself.
pub fn server_side_apply(
    live: Option<&Value>,
    config: &Value,
    manager: &Manager<'_>,
    force: bool,
    schema: &Value,
) -> Result<Outcome, ApplyError> {
    let Some(cfg) = config.as_object() else {
        return Err(ApplyError::BadRequest(
            "error decoding YAML: the apply configuration must be an object".into(),
        ));
    };
    if managed_fields_of(config).is_some() {
        return Err(ApplyError::BadRequest(
            "metadata.managedFields must be nil".into(),
        ));
    }
    let api_version = cfg.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if cfg
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty()
    {
        return Err(ApplyError::BadRequest(format!(
            "Object 'Kind' is missing in '{config}'"
        )));
    }
    if api_version != manager.api_version {
        return Err(ApplyError::BadRequest(format!(
            "Incorrect version specified in apply patch. Specified patch version: {api_version}, \
             expected: {}",
            manager.api_version
        )));
    }
    let s = Schema::new(schema);
    let applied = field_set(config, s, true).map_err(ApplyError::Invalid)?;
    let applied = strip_identity(&applied);

    // managedFields is left as it is: `merge` carries the live records along (replaced below),
    // `compare` leaves them out.
    let nothing = json!({});
    let live_obj = live.unwrap_or(&nothing);
    let mut managed = live_managed(live);
    let key = key_of(&Manager {
        operation: Operation::Apply,
        ..manager.clone()
    });
    let previous = managed.remove(&key);

    let mut merged = merge(Some(live_obj), Some(config), s).unwrap_or_else(|| json!({}));
    let everyone = managed
        .values()
        .fold(applied.clone(), |acc, e| acc.union(&e.set));
    if let Some(prev) = &previous {
        prune(&mut merged, s, &prev.set, Some(&everyone));
    }

    // With no other manager nothing can conflict and nobody loses a field: on a create, or
    // when the applier is the only manager, the comparison would go unused.
    let cmp = if managed.is_empty() {
        Comparison::default()
    } else {
        compare(live_obj, &merged, s)
    };
    let changed_fields = cmp.added.union(&cmp.modified);
    let mut conflicts: Vec<Conflict> = Vec::new();
    for (k, e) in &managed {
        for path in e.set.intersection(&changed_fields).paths() {
            conflicts.push(Conflict {
                manager: k.manager.clone(),
                operation: k.operation,
                api_version: e.api_version.clone(),
                subresource: (!k.subresource.is_empty()).then(|| k.subresource.clone()),
                field: path.to_string(),
            });
        }
    }
    if !conflicts.is_empty() && !force && manager.name == KUBECTL {
        // `kubectl apply --server-side` after client-side apply: fields whose live value is still
        // what the last-applied annotation says are taken over without conflict.
        if let Some(allowed) = allowed_by_last_applied(live_obj, manager.api_version, s) {
            conflicts.retain(|c| !allowed.contains(&c.field));
        }
        if conflicts.is_empty() {
            return server_side_apply(live, config, manager, true, schema);
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(ApplyError::Conflicts(conflicts));
    }
    for e in managed.values_mut() {
        e.set = e.set.difference(&changed_fields).difference(&cmp.removed);
    }

    let object_changed = merged != *live_obj;
    let time = if object_changed {
        Some(manager.time.to_owned())
    } else {
        previous.and_then(|p| p.time)
    };
    managed.insert(
        key,
        Entry {
            api_version: manager.api_version.to_owned(),
            time,
            set: applied,
        },
    );
    if manager.name == KUBECTL {
        sync_last_applied(&mut merged, config);
    }
    let object = with_managed_fields(merged, &managed);
    let changed = live != Some(&object);
    Ok(Outcome { object, changed })
}

/// The field manager kubectl uses for `apply --server-side`; kube-apiserver treats it specially.
const KUBECTL: &str = "kubectl";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// kube-apiserver's limit on the total size of an object's annotations.
const ANNOTATIONS_SIZE_LIMIT: usize = 256 * 1024;

fn last_applied(obj: &Value) -> Option<&str> {
    obj.get("metadata")?
        .get("annotations")?
        .get(LAST_APPLIED)?
        .as_str()
        .filter(|s| !s.is_empty())
}

/// The fields of the last-applied configuration whose live values still match it, rendered as
/// conflict paths.
fn allowed_by_last_applied(
    live: &Value,
    api_version: &str,
    s: Schema<'_>,
) -> Option<std::collections::HashSet<String>> {
    let last: Value = serde_json::from_str(last_applied(live)?).ok()?;
    if last.get("apiVersion").and_then(Value::as_str) != Some(api_version) {
        return None;
    }
    let set = field_set(&last, s, false).ok()?;
    let cmp = compare(&last, live, s);
    let allowed = set
        .difference(&cmp.modified)
        .difference(&cmp.added)
        .difference(&cmp.removed);
    Some(allowed.paths().iter().map(ToString::to_string).collect())
}

/// Keeps an existing last-applied annotation in step with what kubectl applies server-side.
fn sync_last_applied(obj: &mut Value, config: &Value) {
    if last_applied(obj).is_none() {
        return;
    }
    let mut cfg = config.clone();
    if let Some(a) = cfg
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
        .and_then(Value::as_object_mut)
    {
        a.remove(LAST_APPLIED);
    }
    let Some(annotations) = obj["metadata"]["annotations"].as_object_mut() else {
        return;
    };
    annotations.insert(LAST_APPLIED.into(), Value::String(format!("{cfg}\n")));
    let size: usize = annotations
        .iter()
        .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
        .sum();
    if size > ANNOTATIONS_SIZE_LIMIT {
        annotations.remove(LAST_APPLIED);
    }
}

/// `[{}]` asks kube-apiserver to drop all ownership records; an empty list does not (so clients
/// unaware of managedFields cannot wipe them by accident).
fn is_reset(v: &Value) -> bool {
    v.as_array()
        .is_some_and(|a| a.len() == 1 && a[0].as_object().is_some_and(Map::is_empty))
}

/// Records a create, update or non-apply patch (`operation: Update`): the fields this write added
/// or changed become the manager's, and other managers lose them; removed fields leave every set.
///
/// `new` is the object about to be stored (after patching, defaulting, and resetting what the
/// endpoint may not change). Its `metadata.managedFields`, when a non-empty valid list, replaces
/// the recorded ownership first (a client may rewrite it), `[{}]` clears it, and anything else
/// (absent, `[]`, undecodable) keeps the live records; writes through a subresource always keep
/// the live records.
pub fn track_update(
    live: Option<&Value>,
    mut new: Value,
    manager: &Manager<'_>,
    schema: &Value,
) -> Value {
    let from_live = || live_managed(live);
    let sent = new
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .and_then(|m| m.remove("managedFields"))
        .filter(|v| !v.is_null());
    let mut managed = match (manager.subresource, sent.as_ref()) {
        (None, Some(v)) if is_reset(v) => Managed::new(),
        (None, Some(v)) => match decode(v) {
            Ok(m) if !m.is_empty() => m,
            _ => from_live(),
        },
        _ => from_live(),
    };
    let s = Schema::new(schema);
    let nothing = json!({});
    let cmp = compare(live.unwrap_or(&nothing), &new, s);
    let taken = strip_identity(&cmp.added.union(&cmp.modified));
    for e in managed.values_mut() {
        e.set = e.set.difference(&taken).difference(&cmp.removed);
    }
    if !taken.is_empty() {
        let key = key_of(&Manager {
            operation: Operation::Update,
            ..manager.clone()
        });
        let set = managed
            .remove(&key)
            .map_or_else(|| taken.clone(), |prev| prev.set.union(&taken));
        managed.insert(
            key,
            Entry {
                api_version: manager.api_version.to_owned(),
                time: Some(manager.time.to_owned()),
                set,
            },
        );
    }
    cap_update_managers(&mut managed);
    with_managed_fields(new, &managed)
}

/// kube-apiserver keeps at most this many `Update` entries; older ones are folded together.
const MAX_UPDATE_MANAGERS: usize = 10;
const ANCIENT_CHANGES: &str = "ancient-changes";

/// Folds the oldest `Update` entries, per apiVersion, into an `ancient-changes` entry until at most
/// [`MAX_UPDATE_MANAGERS`] remain, the way kube-apiserver bounds managedFields.
fn cap_update_managers(managed: &mut Managed) {
    let mut updaters: Vec<Key> = managed
        .keys()
        .filter(|k| k.operation == Operation::Update)
        .cloned()
        .collect();
    if updaters.len() <= MAX_UPDATE_MANAGERS {
        return;
    }
    updaters.sort_by_key(|k| (seconds(managed[k].time.as_deref()), k.clone()));
    let mut remaining = updaters.len();
    let mut first_of_version: BTreeMap<String, Key> = BTreeMap::new();
    for key in updaters {
        if remaining <= MAX_UPDATE_MANAGERS {
            break;
        }
        let Some(entry) = managed.get(&key).cloned() else {
            continue;
        };
        let Some(first) = first_of_version.get(&entry.api_version).cloned() else {
            first_of_version.insert(entry.api_version.clone(), key);
            continue;
        };
        let bucket = Key {
            manager: ANCIENT_CHANGES.to_owned(),
            operation: Operation::Update,
            api_version: entry.api_version.clone(),
            subresource: String::new(),
        };
        if !managed.contains_key(&bucket)
            && let Some(moved) = managed.remove(&first)
        {
            managed.insert(bucket.clone(), moved);
        }
        managed.remove(&key);
        if let Some(b) = managed.get_mut(&bucket) {
            b.set = b.set.union(&entry.set);
            b.time = entry.time;
        }
        remaining -= 1;
    }
}

/// The owners of a scalable object's replicas field, as the `autoscaling/v1` Scale sees them
/// (kube-apiserver's `ScaleHandler.ToSubresource`): every entry of `parent_version` that owns
/// `replicas` becomes an entry owning the Scale's `spec.replicas`, keeping its manager,
/// operation, subresource and time; entries of other versions are not carried over.
pub fn scale_entries(parent: &Value, parent_version: &str, replicas: &[&str]) -> Value {
    let path = field_path(replicas);
    let scale_path = field_path(&["spec", "replicas"]);
    let managed = decode(parent).unwrap_or_default();
    let mut out = Managed::new();
    for (key, entry) in managed {
        if entry.api_version != parent_version || !entry.set.contains(&path) {
            continue;
        }
        let mut set = FieldSet::new();
        set.insert(&scale_path);
        let key = Key {
            api_version: match key.operation {
                Operation::Apply => String::new(),
                Operation::Update => SCALE_VERSION.to_owned(),
            },
            ..key
        };
        out.insert(
            key,
            Entry {
                api_version: SCALE_VERSION.to_owned(),
                time: entry.time,
                set,
            },
        );
    }
    Value::Array(encode(&out))
}

const SCALE_VERSION: &str = "autoscaling/v1";

fn field_path(segments: &[&str]) -> Vec<PathElement> {
    segments
        .iter()
        .map(|s| PathElement::Field((*s).to_owned()))
        .collect()
}

/// Folds the Scale's managedFields after a write back into the parent's
/// (`ScaleHandler.ToParent`). A parent entry that owned `replicas` keeps it only when the same
/// manager (by name, operation, subresource and, for updates, apiVersion) still owns the Scale's
/// `spec.replicas`; otherwise the field is taken from it. Scale owners not matched that way get
/// an entry of their own in `parent_version` owning only `replicas`, with the time the parent
/// had recorded under that identity (none for a new one). Entries of other versions are dropped.
pub fn scale_to_parent(
    parent: &Value,
    scale: &Value,
    parent_version: &str,
    replicas: &[&str],
) -> Value {
    let path = field_path(replicas);
    let scale_path = field_path(&["spec", "replicas"]);
    let parent = decode(parent).unwrap_or_default();
    let mut scale = decode(scale).unwrap_or_default();
    let mut out = Managed::new();
    for (key, entry) in &parent {
        if entry.api_version != parent_version {
            continue;
        }
        if !entry.set.contains(&path) {
            out.insert(key.clone(), entry.clone());
            continue;
        }
        if scale.remove(key).is_some() {
            out.insert(key.clone(), entry.clone());
            continue;
        }
        let mut only = FieldSet::new();
        only.insert(&path);
        let rest = entry.set.difference(&only);
        if !rest.is_empty() {
            out.insert(
                key.clone(),
                Entry {
                    set: rest,
                    ..entry.clone()
                },
            );
        }
    }
    for (key, entry) in scale {
        if !entry.set.contains(&scale_path) {
            continue;
        }
        let mut set = FieldSet::new();
        set.insert(&path);
        let time = parent.get(&key).and_then(|e| e.time.clone());
        let key = Key {
            api_version: match key.operation {
                Operation::Apply => String::new(),
                Operation::Update => parent_version.to_owned(),
            },
            ..key
        };
        let set = match out.remove(&key) {
            Some(prev) => prev.set.union(&set),
            None => set,
        };
        out.insert(
            key,
            Entry {
                api_version: parent_version.to_owned(),
                time,
                set,
            },
        );
    }
    Value::Array(encode(&out))
}
