//! The one place that writes children to the API: server-side apply under one field manager,
//! after checking that we control the object and that it actually differs from what we want.

use std::fmt::Debug;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions, PropagationPolicy};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::demoweb::desired::{APPLIED_HASH_ANNOTATION, short_hash};
use crate::error::Error;
use crate::metrics::Metrics;

/// The field manager of every write this operator makes.
pub const FIELD_MANAGER: &str = "demoweb-operator";
/// The field manager that co-owns a Deployment's `spec.replicas` while the count is handed over
/// to the HorizontalPodAutoscaler (see [`Writer::hand_over`]).
pub const HANDOVER_MANAGER: &str = "demoweb-operator-handover";

/// Whether `path` (e.g. `["spec", "replicas"]`) is owned by our own apply and by no one else.
/// Server-side apply removes a field that the applier stops sending only when no other manager
/// owns it; that is the case where a hand-over is needed to keep the field's value.
pub fn owned_only_by_us(meta: &ObjectMeta, path: &[&str]) -> bool {
    let owns = |fields: &Value| {
        path.iter()
            .try_fold(fields, |v, seg| v.get(format!("f:{seg}")))
            .is_some()
    };
    let mut ours = false;
    for entry in meta.managed_fields.iter().flatten() {
        let Some(fields) = entry.fields_v1.as_ref().map(|f| &f.0) else {
            continue;
        };
        if !owns(fields) {
            continue;
        }
        let is_us = entry.manager.as_deref() == Some(FIELD_MANAGER)
            && entry.operation.as_deref() == Some("Apply")
            && entry.subresource.as_deref().unwrap_or_default().is_empty();
        if is_us {
            ours = true;
        } else {
            return false;
        }
    }
    ours
}

/// What happened to one child.
#[derive(Debug)]
pub enum Applied<K> {
    /// The live object already is what we want: nothing was written.
    Unchanged(K),
    Created(K),
    Updated(K),
    /// An object of that name exists and is not ours: left alone. The message names its owner.
    Conflict(String),
}

impl<K> Applied<K> {
    pub fn object(&self) -> Option<&K> {
        match self {
            Self::Unchanged(k) | Self::Created(k) | Self::Updated(k) => Some(k),
            Self::Conflict(_) => None,
        }
    }
}

/// Writes on behalf of one DemoWeb, identified by its uid, and records Events on it.
pub struct Writer<'a> {
    pub owner_uid: &'a str,
    pub recorder: &'a Recorder,
    pub owner_ref: &'a ObjectReference,
    pub metrics: &'a Metrics,
}

/// Whether `meta` carries a controller owner reference to the DemoWeb with `uid`.
pub fn is_controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|r| r.controller == Some(true) && r.uid == uid)
}

/// Who else holds an object: its controller, else its field managers.
pub fn describe_owner(meta: &ObjectMeta) -> String {
    if let Some(owner) = meta
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
    {
        return format!("controlled by {} {}", owner.kind, owner.name);
    }
    let mut managers: Vec<&str> = meta
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.as_deref())
        .collect();
    managers.sort_unstable();
    managers.dedup();
    if managers.is_empty() {
        "not controlled by this DemoWeb".to_owned()
    } else {
        format!("managed by {}", managers.join(", "))
    }
}

/// Whether `live` holds every field of `want` with an equal value. Fields the API server
/// defaults (absent from `want`) are ignored; lists of scalars must match exactly, lists of
/// objects element by element (the server adds defaults inside elements).
pub fn contains(live: &Value, want: &Value) -> bool {
    match (want, live) {
        (Value::Object(w), Value::Object(l)) => w.iter().all(|(k, wv)| match l.get(k) {
            Some(lv) => contains(lv, wv),
            None => is_empty(wv),
        }),
        (Value::Array(w), Value::Array(l)) if w.iter().all(|v| v.is_object()) => {
            l.len() >= w.len() && w.iter().all(|wv| l.iter().any(|lv| contains(lv, wv)))
        }
        (Value::String(w), Value::String(l)) => w == l || same_quantity(w, l),
        (w, l) => w == l || (is_empty(w) && is_empty(l)),
    }
}

/// The API server stores resource quantities in canonical form (`1000m` becomes `1`); both
/// spellings mean the same and must not look like drift.
fn same_quantity(a: &str, b: &str) -> bool {
    match (parse_quantity(a), parse_quantity(b)) {
        (Some(x), Some(y)) => (x - y).abs() <= f64::EPSILON * x.abs().max(y.abs()) * 4.0,
        _ => false,
    }
}

fn parse_quantity(s: &str) -> Option<f64> {
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0f64.powi(2),
        "Gi" => 1024.0f64.powi(3),
        "Ti" => 1024.0f64.powi(4),
        "Pi" => 1024.0f64.powi(5),
        "Ei" => 1024.0f64.powi(6),
        exp => {
            let digits = exp.strip_prefix('e').or_else(|| exp.strip_prefix('E'))?;
            10f64.powi(digits.parse().ok()?)
        }
    };
    Some(number * factor)
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Hashes the desired object and stamps the hash on it, so a field we stop wanting is noticed
/// even though the live object still "contains" everything we want.
pub fn stamp_hash<K: Resource + Serialize>(kind: &str, desired: &mut K) -> Result<String, Error> {
    let text = serde_json::to_string(&*desired).map_err(|source| Error::Serialize {
        kind: kind.to_owned(),
        name: desired.meta().name.clone().unwrap_or_default(),
        source,
    })?;
    let hash = short_hash(&text);
    desired
        .meta_mut()
        .annotations
        .get_or_insert_with(Default::default)
        .insert(APPLIED_HASH_ANNOTATION.to_owned(), hash.clone());
    Ok(hash)
}

fn applied_hash(meta: &ObjectMeta) -> Option<&str> {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(APPLIED_HASH_ANNOTATION))
        .map(String::as_str)
}

impl Writer<'_> {
    /// Applies `desired` (already hash-stamped) unless `live` shows it is not ours or already current.
    pub async fn apply<K>(
        &self,
        api: &Api<K>,
        kind: &str,
        live: Option<K>,
        desired: &K,
    ) -> Result<Applied<K>, Error>
    where
        K: Resource + Clone + Serialize + DeserializeOwned + Debug,
    {
        let name = desired.meta().name.clone().unwrap_or_default();
        let serialize = |source| Error::Serialize {
            kind: kind.to_owned(),
            name: name.clone(),
            source,
        };
        if let Some(live) = &live {
            if !is_controlled_by(live.meta(), self.owner_uid) {
                return Ok(Applied::Conflict(format!(
                    "{kind} {name} already exists and is {}; it is left alone: rename or delete it",
                    describe_owner(live.meta())
                )));
            }
            let want = serde_json::to_value(desired).map_err(serialize)?;
            let have = serde_json::to_value(live).map_err(serialize)?;
            if applied_hash(live.meta()) == applied_hash(desired.meta()) && contains(&have, &want) {
                return Ok(Applied::Unchanged(live.clone()));
            }
        }
        let mut params = PatchParams::apply(FIELD_MANAGER).force();
        // Unknown fields must fail the write rather than be pruned silently: an allowlist
        // object with its rule pruned away would leave the site open.
        params.field_validation = Some(kube::api::ValidationDirective::Strict);
        let written = api
            .patch(&name, &params, &Patch::Apply(desired))
            .await
            .map_err(|source| Error::Apply {
                kind: kind.to_owned(),
                name: name.clone(),
                source,
            })?;
        self.metrics.count_write(
            if live.is_some() {
                "apply_update"
            } else {
                "apply_create"
            },
            kind,
        );
        let (reason, applied) = if live.is_some() {
            ("Updated", Applied::Updated(written))
        } else {
            ("Created", Applied::Created(written))
        };
        let related = applied.object().and_then(reference_to);
        self.event(
            EventType::Normal,
            reason,
            format!("{reason} {kind} {name}"),
            related,
        )
        .await;
        Ok(applied)
    }

    /// Makes [`HANDOVER_MANAGER`] co-own the fields of `body` with their current values, so the
    /// next apply of ours can leave them out without the API server removing them (it removes a
    /// field the applier stops sending only when nobody else owns it). Not forced: a value that
    /// changed since it was read is a conflict, and reconcile retries with the new one.
    pub async fn hand_over<K>(
        &self,
        api: &Api<K>,
        kind: &str,
        name: &str,
        body: &Value,
    ) -> Result<(), Error>
    where
        K: Resource + Clone + DeserializeOwned + Debug,
    {
        api.patch(
            name,
            &PatchParams::apply(HANDOVER_MANAGER),
            &Patch::Apply(body),
        )
        .await
        .map_err(|source| Error::Apply {
            kind: kind.to_owned(),
            name: name.to_owned(),
            source,
        })?;
        self.metrics.count_write("apply_update", kind);
        Ok(())
    }

    /// Deletes `live` if this DemoWeb controls it; objects of others are never touched.
    pub async fn delete_if_ours<K>(
        &self,
        api: &Api<K>,
        kind: &str,
        live: Option<K>,
    ) -> Result<bool, Error>
    where
        K: Resource + Clone + Serialize + DeserializeOwned + Debug,
    {
        let Some(live) = live else { return Ok(false) };
        if !is_controlled_by(live.meta(), self.owner_uid) {
            return Ok(false);
        }
        let name = live.meta().name.clone().unwrap_or_default();
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            // Exactly the object we checked, not a namesake created since.
            preconditions: Some(Preconditions {
                uid: live.meta().uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&name, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => return Ok(false),
            Err(source) => {
                return Err(Error::Delete {
                    kind: kind.to_owned(),
                    name,
                    source,
                });
            }
        }
        self.metrics.count_write("delete", kind);
        let related = reference_to(&live);
        self.event(
            EventType::Normal,
            "Deleted",
            format!("Deleted {kind} {name}, which this DemoWeb no longer needs"),
            related,
        )
        .await;
        Ok(true)
    }

    /// Records an Event on the DemoWeb about a child. Failing to record one never fails reconcile.
    pub async fn event(
        &self,
        type_: EventType,
        reason: &str,
        note: String,
        related: Option<ObjectReference>,
    ) {
        publish_related(
            self.recorder,
            self.owner_ref,
            self.metrics,
            type_,
            reason,
            note,
            related,
        )
        .await;
    }
}

/// A reference to a child for an Event's `related` field. Events about different children must
/// differ in it: the recorder folds Events with equal reason and references into one series.
fn reference_to<K: Serialize + Resource>(obj: &K) -> Option<ObjectReference> {
    let v = serde_json::to_value(obj).ok()?;
    Some(ObjectReference {
        api_version: v["apiVersion"].as_str().map(str::to_owned),
        kind: v["kind"].as_str().map(str::to_owned),
        name: obj.meta().name.clone(),
        namespace: obj.meta().namespace.clone(),
        uid: obj.meta().uid.clone(),
        ..ObjectReference::default()
    })
}

/// Publishes an Event, logging (not failing) when the API refuses it.
pub async fn publish(
    recorder: &Recorder,
    reference: &ObjectReference,
    metrics: &Metrics,
    type_: EventType,
    reason: &str,
    note: String,
) {
    publish_related(recorder, reference, metrics, type_, reason, note, None).await;
}

async fn publish_related(
    recorder: &Recorder,
    reference: &ObjectReference,
    metrics: &Metrics,
    type_: EventType,
    reason: &str,
    note: String,
    related: Option<ObjectReference>,
) {
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note),
        action: "Reconcile".to_owned(),
        secondary: related,
    };
    match recorder.publish(&event, reference).await {
        Ok(()) => metrics.count_write("event", "Event"),
        Err(err) => tracing::warn!(error = %err, reason, "could not record an Event"),
    }
}

/// Reads one object, `None` when it does not exist.
pub async fn get_opt<K>(api: &Api<K>, kind: &str, name: &str) -> Result<Option<K>, Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    api.get_opt(name).await.map_err(|source| Error::Read {
        kind: kind.to_owned(),
        name: name.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, OwnerReference};
    use serde_json::json;

    #[test]
    fn containment() {
        let cases = [
            ("equal", json!({"a": 1}), json!({"a": 1}), true),
            (
                "server defaults ignored",
                json!({"a": 1, "b": 2}),
                json!({"a": 1}),
                true,
            ),
            ("changed value", json!({"a": 2}), json!({"a": 1}), false),
            ("missing field", json!({}), json!({"a": 1}), false),
            (
                "canonical quantity",
                json!({"cpu": "1"}),
                json!({"cpu": "1000m"}),
                true,
            ),
            (
                "canonical memory",
                json!({"memory": "1Gi"}),
                json!({"memory": "1024Mi"}),
                true,
            ),
            (
                "different quantity",
                json!({"cpu": "2"}),
                json!({"cpu": "1000m"}),
                false,
            ),
            (
                "plain strings",
                json!({"image": "nginx:1"}),
                json!({"image": "nginx:2"}),
                false,
            ),
            (
                "empty wanted list vs absent",
                json!({}),
                json!({"a": []}),
                true,
            ),
            (
                "scalar lists exact",
                json!({"args": ["x", "y"]}),
                json!({"args": ["y", "x"]}),
                false,
            ),
            (
                "scalar list extra",
                json!({"args": ["x", "y"]}),
                json!({"args": ["x"]}),
                false,
            ),
            (
                "object list with defaults",
                json!({"ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}),
                json!({"ports": [{"name": "http", "port": 80}]}),
                true,
            ),
            (
                "object list element edited",
                json!({"ports": [{"name": "http", "port": 81}]}),
                json!({"ports": [{"name": "http", "port": 80}]}),
                false,
            ),
            (
                "object list element removed",
                json!({"c": [{"name": "web"}]}),
                json!({"c": [{"name": "web"}, {"name": "git-sync"}]}),
                false,
            ),
        ];
        for (name, live, want, expected) in cases {
            assert_eq!(contains(&live, &want), expected, "{name}");
        }
    }

    #[test]
    fn sole_ownership_of_a_field() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::FieldsV1;
        let entry =
            |manager: &str, operation: &str, sub: Option<&str>, fields: Value| ManagedFieldsEntry {
                manager: Some(manager.into()),
                operation: Some(operation.into()),
                subresource: sub.map(Into::into),
                fields_v1: Some(FieldsV1(fields)),
                ..Default::default()
            };
        let replicas = json!({"f:spec": {"f:replicas": {}, "f:template": {}}});
        let template = json!({"f:spec": {"f:template": {}}});
        let cases = [
            (
                "only our apply",
                vec![entry(FIELD_MANAGER, "Apply", None, replicas.clone())],
                true,
            ),
            (
                "co-owned by the hand-over manager",
                vec![
                    entry(FIELD_MANAGER, "Apply", None, replicas.clone()),
                    entry(
                        HANDOVER_MANAGER,
                        "Apply",
                        None,
                        json!({"f:spec": {"f:replicas": {}}}),
                    ),
                ],
                false,
            ),
            (
                "taken by a scale",
                vec![
                    entry(FIELD_MANAGER, "Apply", None, template.clone()),
                    entry(
                        "kube-controller-manager",
                        "Update",
                        Some("scale"),
                        json!({"f:spec": {"f:replicas": {}}}),
                    ),
                ],
                false,
            ),
            (
                "owned by nobody",
                vec![entry(FIELD_MANAGER, "Apply", None, template)],
                false,
            ),
            (
                "our name, but an update",
                vec![entry(FIELD_MANAGER, "Update", None, replicas)],
                false,
            ),
        ];
        for (name, entries, want) in cases {
            let meta = ObjectMeta {
                managed_fields: Some(entries),
                ..ObjectMeta::default()
            };
            assert_eq!(
                owned_only_by_us(&meta, &["spec", "replicas"]),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn ownership() {
        let ours = OwnerReference {
            api_version: "baeke.info/v1".into(),
            kind: "DemoWeb".into(),
            name: "demoweb1".into(),
            uid: "u1".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        };
        let mut meta = ObjectMeta {
            owner_references: Some(vec![ours.clone()]),
            ..ObjectMeta::default()
        };
        assert!(is_controlled_by(&meta, "u1"));
        assert!(!is_controlled_by(&meta, "u2"));
        meta.owner_references = Some(vec![OwnerReference {
            controller: None,
            ..ours.clone()
        }]);
        assert!(
            !is_controlled_by(&meta, "u1"),
            "a non-controller reference is not control"
        );

        let helm = ObjectMeta {
            owner_references: Some(vec![OwnerReference {
                kind: "HelmRelease".into(),
                name: "web".into(),
                uid: "h".into(),
                ..ours
            }]),
            ..ObjectMeta::default()
        };
        assert_eq!(describe_owner(&helm), "controlled by HelmRelease web");
        let kubectl = ObjectMeta {
            managed_fields: Some(vec![
                ManagedFieldsEntry {
                    manager: Some("kubectl-client-side-apply".into()),
                    ..Default::default()
                },
                ManagedFieldsEntry {
                    manager: Some("kube-controller-manager".into()),
                    ..Default::default()
                },
            ]),
            ..ObjectMeta::default()
        };
        assert_eq!(
            describe_owner(&kubectl),
            "managed by kube-controller-manager, kubectl-client-side-apply"
        );
    }
}
