//! The writer: children by server-side apply under one field manager, after checking that we
//! control the object and that it actually differs from what we want ([`super::drift`]); field
//! hand-over; deletions with a uid precondition. The changes it makes are told in one Event per
//! reconcile ([`super::events`]).

use std::fmt::Debug;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions, PropagationPolicy};
use kube::core::TypeMeta;
use kube::runtime::events::EventType;
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::Error;
use super::drift::{Marker, Verified, applied_hash, contains};
use super::events::{
    Change, Recorder, publish_related, reference, reference_to, summarize_changes,
};
use crate::error::{ApiError, Call};
use crate::metrics::Metrics;
use crate::vocabulary::{HANDOVER_MANAGER, MANAGER};

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
        let is_us = entry.manager.as_deref() == Some(MANAGER)
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

/// What happened to one child. A written object is what we applied under the metadata the API
/// server answered with (no status, nothing the server filled in); an unchanged one is the live
/// object as far as it was read (a store's copy keeps only what reconcile reads).
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

/// Writes on behalf of one owner (a DemoWeb, say), identified by its uid. The changes it makes are told in one
/// Event per reconcile ([`Writer::publish_changes`]), not one per child.
pub struct Writer<'a> {
    pub owner_uid: &'a str,
    pub recorder: &'a Recorder,
    pub owner_ref: &'a ObjectReference,
    pub metrics: &'a Metrics,
    pub verified: &'a Verified,
    changes: Mutex<Vec<Change>>,
    /// Whether the Event tells the children this writer created ([`Writer::quiet_creations`]).
    tell_creations: bool,
}

/// Whether `meta` carries a controller owner reference to the object with `uid`.
pub fn is_controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|r| r.controller == Some(true) && r.uid == uid)
}

/// Who else holds an object: its controller, else its field managers; failing both, that it is not
/// controlled by the writer's owner, of kind `owner_kind`.
pub fn describe_owner(meta: &ObjectMeta, owner_kind: &str) -> String {
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
        format!("not controlled by this {owner_kind}")
    } else {
        format!("managed by {}", managers.join(", "))
    }
}

impl<'a> Writer<'a> {
    pub fn new(
        owner_uid: &'a str,
        owner_ref: &'a ObjectReference,
        recorder: &'a Recorder,
        metrics: &'a Metrics,
        verified: &'a Verified,
    ) -> Self {
        Writer {
            owner_uid,
            recorder,
            owner_ref,
            metrics,
            verified,
            changes: Mutex::default(),
            tell_creations: true,
        }
    }

    /// Leaves the children this writer creates out of its Event: the first children of a new
    /// owner, which its status reports from the same reconcile on (an Event for them would be a
    /// sixth write for every new site). Updates and deletions are still told, and so is a child
    /// created later (an Ingress added, a deleted child put back).
    pub fn quiet_creations(mut self) -> Self {
        self.tell_creations = false;
        self
    }

    /// The owner's kind, for messages ("not controlled by this DemoWeb").
    fn owner_kind(&self) -> &str {
        self.owner_ref.kind.as_deref().unwrap_or("owner")
    }

    fn record(&self, verb: &'static str, kind: &str, name: &str, related: Option<ObjectReference>) {
        if verb == "Created" && !self.tell_creations {
            return;
        }
        self.changes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Change {
                verb,
                kind: kind.to_owned(),
                name: name.to_owned(),
                related,
            });
    }

    /// Applies `desired` (already hash-stamped), which the store has no copy of: when nothing of
    /// that name exists, the apply creates it in one round trip ([`CREATE_ONLY`]); when something
    /// does (ours, not yet in the store, or someone else's), that apply is refused and changes
    /// nothing, and the object is read and applied over as [`Writer::apply`] does.
    pub async fn apply_unseen<K>(
        &self,
        api: &Api<K>,
        types: &TypeMeta,
        desired: &K,
        marker: Marker,
    ) -> Result<Applied<K>, Error>
    where
        K: Resource + Clone + Serialize + DeserializeOwned + Debug,
    {
        let kind = types.kind.as_str();
        let name = desired.meta().name.clone().unwrap_or_default();
        let mut create = desired.clone();
        create.meta_mut().resource_version = Some(CREATE_ONLY.to_owned());
        match api
            .patch_metadata(&name, &apply_params(), &Patch::Apply(&create))
            .await
        {
            Ok(answer) => Ok(self.took(types, desired, answer.metadata, None, marker)),
            // Forced, the apply has no field conflicts: a 409 is the precondition, so the name
            // is taken.
            Err(kube::Error::Api(status)) if status.code == 409 => {
                let live = get_opt(api, kind, &name).await?;
                self.apply(api, types, live, desired, marker).await
            }
            Err(source) => Err(Error::Api(ApiError::new(Call::Apply, kind, &name, source))),
        }
    }

    /// Applies `desired` (already hash-stamped) unless `live` shows it is not ours or already
    /// current. `live` may be a store's trimmed copy: its metadata is compared directly, the rest
    /// through [`Verified`] (by `marker`) or, when that does not know the object's current
    /// version, one read.
    pub async fn apply<K>(
        &self,
        api: &Api<K>,
        types: &TypeMeta,
        live: Option<K>,
        desired: &K,
        marker: Marker,
    ) -> Result<Applied<K>, Error>
    where
        K: Resource + Clone + Serialize + DeserializeOwned + Debug,
    {
        let kind = types.kind.as_str();
        let name = desired.meta().name.clone().unwrap_or_default();
        let serialize = |source| Error::Serialize {
            kind: kind.to_owned(),
            name: name.clone(),
            source,
        };
        // The metadata is compared on every reconcile; the whole object only when `live` may have
        // changed since we last knew it current, so only then is it serialised for comparing.
        let want_meta = serde_json::to_value(desired.meta()).map_err(serialize)?;
        let holds = |live: &K| -> Result<bool, Error> {
            Ok(applied_hash(live.meta()) == applied_hash(desired.meta())
                && contains(
                    &serde_json::to_value(live).map_err(serialize)?,
                    &serde_json::to_value(desired).map_err(serialize)?,
                ))
        };
        let mut live = live;
        if let Some(current) = &live {
            if !is_controlled_by(current.meta(), self.owner_uid) {
                return Ok(Applied::Conflict(
                    self.conflict(api, kind, &name, current).await,
                ));
            }
            let meta = serde_json::to_value(current.meta()).map_err(serialize)?;
            let meta_current = applied_hash(current.meta()) == applied_hash(desired.meta())
                && contains(&meta, &want_meta);
            if meta_current {
                if self.verified.is_current(current.meta(), marker) || holds(current)? {
                    self.verified.remember(current.meta(), marker);
                    return Ok(Applied::Unchanged(current.clone()));
                }
                // A trimmed copy, changed since we last knew it current: read it whole.
                live = get_opt(api, kind, &name).await?;
                if let Some(full) = &live {
                    if !is_controlled_by(full.meta(), self.owner_uid) {
                        return Ok(Applied::Conflict(
                            self.conflict(api, kind, &name, full).await,
                        ));
                    }
                    if holds(full)? {
                        self.verified.remember(full.meta(), marker);
                        return Ok(Applied::Unchanged(full.clone()));
                    }
                }
            }
        }
        // The answer as metadata only (`as=PartialObjectMetadata`): the server sends, and we
        // decode, no spec, status or pod template; the object is then what we applied under the
        // metadata the server gave it.
        let answer = api
            .patch_metadata(&name, &apply_params(), &Patch::Apply(desired))
            .await
            .map_err(|source| Error::Api(ApiError::new(Call::Apply, kind, &name, source)))?;
        Ok(self.took(types, desired, answer.metadata, live.as_ref(), marker))
    }

    /// What one of our applies wrote: `desired` under the metadata the server answered with
    /// (`before` is the object it was applied over, if any). Counts the write, remembers the
    /// object as holding what we want, and records the change for the Event — none when the
    /// server found nothing to change (what differed was only how we compared).
    fn took<K>(
        &self,
        types: &TypeMeta,
        desired: &K,
        metadata: ObjectMeta,
        before: Option<&K>,
        marker: Marker,
    ) -> Applied<K>
    where
        K: Resource + Clone,
    {
        let kind = types.kind.as_str();
        let mut written = desired.clone();
        *written.meta_mut() = metadata;
        self.metrics.count_write(
            if before.is_some() {
                "apply_update"
            } else {
                "apply_create"
            },
            kind,
        );
        self.verified.remember(written.meta(), marker);
        let (verb, applied) = match before {
            None => ("Created", Applied::Created(written)),
            Some(before) if before.meta().resource_version == written.meta().resource_version => {
                return Applied::Unchanged(written);
            }
            Some(_) => ("Updated", Applied::Updated(written)),
        };
        let name = desired.meta().name.clone().unwrap_or_default();
        let related = applied.object().map(|obj| reference(types, obj.meta()));
        self.record(verb, kind, &name, related);
        applied
    }

    /// Why `live` is not ours: its controller, else its field managers (read whole when `live`
    /// is a store's copy without them).
    async fn conflict<K>(&self, api: &Api<K>, kind: &str, name: &str, live: &K) -> String
    where
        K: Resource + Clone + DeserializeOwned + Debug,
    {
        let full = match live.meta().managed_fields {
            Some(_) => None,
            None => api.get_opt(name).await.ok().flatten(),
        };
        let meta = full.as_ref().map_or(live.meta(), Resource::meta);
        format!(
            "{kind} {name} already exists and is {}; it is left alone: rename or delete it",
            describe_owner(meta, self.owner_kind())
        )
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
        .map_err(|source| Error::Api(ApiError::new(Call::Apply, kind, name, source)))?;
        self.metrics.count_write("apply_update", kind);
        Ok(())
    }

    /// Deletes `live` if the owner controls it; objects of others are never touched.
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
                return Err(Error::Api(ApiError::new(Call::Delete, kind, &name, source)));
            }
        }
        self.metrics.count_write("delete", kind);
        let related = reference_to(&live);
        self.record("Deleted", kind, &name, related);
        Ok(true)
    }

    /// Publishes one Normal Event that tells every change this writer made (none when nothing
    /// changed): reason `Created` when it only created, `Deleted` when it only deleted, else
    /// `Updated`. Called once at the end of a reconcile's apply step, also when it failed midway.
    pub async fn publish_changes(&self) {
        if let Some(event) = self.take_changes() {
            event
                .publish(self.recorder, self.owner_ref, self.metrics)
                .await;
        }
    }

    /// The Event that tells the changes made so far, taken out of the writer to be published
    /// later ([`ChangesEvent::publish`]); `None` when nothing changed.
    pub fn take_changes(&self) -> Option<ChangesEvent> {
        let changes = std::mem::take(&mut *self.changes.lock().unwrap_or_else(|e| e.into_inner()));
        let (reason, note, related) = summarize_changes(self.owner_kind(), changes)?;
        Some(ChangesEvent {
            reason,
            note,
            related,
        })
    }
}

/// The Normal Event that tells what one reconcile changed, held until it is published.
pub struct ChangesEvent {
    reason: &'static str,
    note: String,
    related: Option<ObjectReference>,
}

impl ChangesEvent {
    pub async fn publish(
        self,
        recorder: &Recorder,
        owner_ref: &ObjectReference,
        metrics: &Metrics,
    ) {
        publish_related(
            recorder,
            owner_ref,
            metrics,
            EventType::Normal,
            self.reason,
            self.note,
            self.related,
        )
        .await;
    }
}

/// Our server-side applies: forced (the operator owns what it applies), and strict: unknown fields
/// fail the write rather than being pruned silently — an allowlist object with its rule pruned
/// away would leave the site open.
fn apply_params() -> PatchParams {
    let mut params = PatchParams::apply(MANAGER).force();
    params.field_validation = Some(kube::api::ValidationDirective::Strict);
    params
}

/// The `metadata.resourceVersion` that makes an apply create-only. A resourceVersion in an applied
/// configuration is a precondition on the live object, and an apply that finds no object creates
/// it whatever the configuration's resourceVersion says; no live object is ever at this version
/// (etcd's revision starts at 1 and its first write makes revision 2), so an apply carrying it
/// creates when the name is free and is refused with 409 Conflict, writing nothing, when anything
/// of that name exists. Being metadata, it is not a field anyone owns.
pub const CREATE_ONLY: &str = "1";

/// Reads one object; `None` when there is none of that name.
pub async fn get_opt<K>(api: &Api<K>, kind: &str, name: &str) -> Result<Option<K>, Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    api.get_opt(name)
        .await
        .map_err(|source| Error::Api(ApiError::new(Call::Read, kind, name, source)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, OwnerReference};
    use serde_json::json;

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
                vec![entry(MANAGER, "Apply", None, replicas.clone())],
                true,
            ),
            (
                "co-owned by the hand-over manager",
                vec![
                    entry(MANAGER, "Apply", None, replicas.clone()),
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
                    entry(MANAGER, "Apply", None, template.clone()),
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
                vec![entry(MANAGER, "Apply", None, template)],
                false,
            ),
            (
                "our name, but an update",
                vec![entry(MANAGER, "Update", None, replicas)],
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
        assert_eq!(
            describe_owner(&helm, "DemoWeb"),
            "controlled by HelmRelease web"
        );
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
            describe_owner(&kubectl, "DemoWeb"),
            "managed by kube-controller-manager, kubectl-client-side-apply"
        );
    }
}
