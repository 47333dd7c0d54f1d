//! The one place that writes to the API: children by server-side apply under one field manager
//! (after checking that we control the object and that it actually differs from what we want),
//! their deletion, the DemoWeb's status patch and Events ([`Recorder`]).
//!
//! Child stores keep metadata only (and the Deployment's status, see `crate::stored`), not specs: a
//! thousand Deployments with their pod templates and managed fields would be most of the
//! operator's memory. Whether a child still holds what we want is therefore decided in two steps:
//! its metadata (owner, labels, annotations with the applied-hash) is compared with the store's
//! copy on every reconcile; its spec is compared with a full read only when its generation (for
//! kinds whose writes are all spec) or resourceVersion has moved since we last saw it hold what
//! we want ([`Verified`]). An idle operator therefore neither reads nor writes, and an edit by
//! someone else — which moves the generation or resourceVersion — is read and healed.

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions, PropagationPolicy};
use kube::core::TypeMeta;
use kube::runtime::events::{Event, EventType, Reporter};
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use demoweb_crd::DemoWeb;

use crate::error::Error;
use crate::metrics::Metrics;
use crate::vocabulary::{APPLIED_HASH_ANNOTATION, HANDOVER_MANAGER, MANAGER, short_hash};

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

/// What tells that an object changed since we last knew it to hold what we want.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker {
    /// `metadata.generation`, which kube-apiserver moves on every spec change of kinds that
    /// report an `observedGeneration`; metadata is compared on every reconcile anyway.
    Generation,
    /// `metadata.resourceVersion`, which moves on every change.
    ResourceVersion,
}

/// Per child (by uid): the [`Marker`] at which the child was last known to hold what we want,
/// after our own apply or after a full read that compared equal. A child whose marker has not moved since needs no
/// read; the child reflectors drop the entries of deleted children. Keys and markers are kept as
/// 64-bit hashes: a few dozen bytes per child.
#[derive(Debug, Default)]
pub struct Verified {
    seen: Mutex<HashMap<u64, u64>>,
}

fn hash_of(value: impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

impl Verified {
    fn marker(meta: &ObjectMeta, marker: Marker) -> Option<u64> {
        match (marker, meta.generation, &meta.resource_version) {
            (Marker::Generation, Some(generation), _) => Some(hash_of(("generation", generation))),
            (_, _, Some(version)) => Some(hash_of(("resourceVersion", version))),
            _ => None,
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<u64, u64>> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the child with this metadata is unchanged since it was last known to be current.
    pub fn is_current(&self, meta: &ObjectMeta, marker: Marker) -> bool {
        let (Some(uid), Some(marker)) = (&meta.uid, Self::marker(meta, marker)) else {
            return false;
        };
        self.entries().get(&hash_of(uid)) == Some(&marker)
    }

    /// Records that the child with this metadata holds what we want.
    pub fn remember(&self, meta: &ObjectMeta, marker: Marker) {
        if let (Some(uid), Some(marker)) = (&meta.uid, Self::marker(meta, marker)) {
            self.entries().insert(hash_of(uid), marker);
        }
    }

    /// Forgets a deleted child.
    pub fn forget(&self, meta: &ObjectMeta) {
        if let Some(uid) = &meta.uid {
            self.entries().remove(&hash_of(uid));
        }
    }

    pub fn len(&self) -> usize {
        self.entries().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One change a reconcile made, for the Event that sums them up.
struct Change {
    verb: &'static str,
    kind: String,
    name: String,
    related: Option<ObjectReference>,
}

/// Writes on behalf of one DemoWeb, identified by its uid. The changes it makes are told in one
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

/// The applied-hash annotation of an object we applied.
pub fn applied_hash(meta: &ObjectMeta) -> Option<&str> {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(APPLIED_HASH_ANNOTATION))
        .map(String::as_str)
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
    /// DemoWeb, which its status reports from the same reconcile on (an Event for them would be a
    /// sixth write for every new site). Updates and deletions are still told, and so is a child
    /// created later (an Ingress added, a deleted child put back).
    pub fn quiet_creations(mut self) -> Self {
        self.tell_creations = false;
        self
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
            Ok(answer) => {
                let mut written = desired.clone();
                *written.meta_mut() = answer.metadata;
                self.metrics.count_write("apply_create", kind);
                self.verified.remember(written.meta(), marker);
                self.record(
                    "Created",
                    kind,
                    &name,
                    Some(reference(types, written.meta())),
                );
                Ok(Applied::Created(written))
            }
            // Forced, the apply has no field conflicts: a 409 is the precondition, so the name
            // is taken.
            Err(kube::Error::Api(status)) if status.code == 409 => {
                let live = get_opt(api, kind, &name).await?;
                self.apply(api, types, live, desired, marker).await
            }
            Err(source) => Err(Error::Apply {
                kind: kind.to_owned(),
                name,
                source,
            }),
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
            .map_err(|source| Error::Apply {
                kind: kind.to_owned(),
                name: name.clone(),
                source,
            })?;
        let mut written = desired.clone();
        *written.meta_mut() = answer.metadata;
        self.metrics.count_write(
            if live.is_some() {
                "apply_update"
            } else {
                "apply_create"
            },
            kind,
        );
        self.verified.remember(written.meta(), marker);
        let applied = match &live {
            None => Applied::Created(written),
            // The server found nothing to change (what differed was only how we compared).
            Some(before) if before.meta().resource_version == written.meta().resource_version => {
                return Ok(Applied::Unchanged(written));
            }
            Some(_) => Applied::Updated(written),
        };
        let verb = match applied {
            Applied::Created(_) => "Created",
            _ => "Updated",
        };
        let related = applied.object().map(|obj| reference(types, obj.meta()));
        self.record(verb, kind, &name, related);
        Ok(applied)
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
            describe_owner(meta)
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
        self.record("Deleted", kind, &name, related);
        Ok(true)
    }

    /// Publishes one Normal Event that tells every change this writer made (none when nothing
    /// changed): reason `Created` when it only created, `Deleted` when it only deleted, else
    /// `Updated`. Called once at the end of a reconcile's apply step, also when it failed midway.
    pub async fn publish_changes(&self) {
        let changes = std::mem::take(&mut *self.changes.lock().unwrap_or_else(|e| e.into_inner()));
        let Some((reason, note, related)) = summarize_changes(changes) else {
            return;
        };
        publish_related(
            self.recorder,
            self.owner_ref,
            self.metrics,
            EventType::Normal,
            reason,
            note,
            related,
        )
        .await;
    }
}

/// The reason, note and related object of the Event that tells `changes`.
fn summarize_changes(
    mut changes: Vec<Change>,
) -> Option<(&'static str, String, Option<ObjectReference>)> {
    let first = changes.first()?.verb;
    let reason = if changes.iter().all(|c| c.verb == first) && first != "Updated" {
        first
    } else {
        "Updated"
    };
    let note = changes
        .iter()
        .map(|c| match c.verb {
            "Deleted" => format!(
                "deleted {} {}, which this DemoWeb no longer needs",
                c.kind, c.name
            ),
            verb => format!("{} {} {}", verb.to_lowercase(), c.kind, c.name),
        })
        .collect::<Vec<_>>()
        .join("; ");
    let mut note = note;
    if let Some(first) = note.get(..1) {
        note = first.to_uppercase() + &note[1..];
    }
    // One child: name it in `related`, so Events about different children stay apart.
    let related = if changes.len() == 1 {
        changes.pop().and_then(|c| c.related)
    } else {
        None
    };
    Some((reason, note, related))
}

/// A reference to a child for an Event's `related` field. Events about different children must
/// differ in it: the recorder folds Events with equal reason and references into one series.
fn reference_to<K: Serialize + Resource>(obj: &K) -> Option<ObjectReference> {
    let typed = serde_json::to_value(obj).ok()?;
    let types = TypeMeta {
        api_version: typed["apiVersion"].as_str()?.to_owned(),
        kind: typed["kind"].as_str()?.to_owned(),
    };
    Some(reference(&types, obj.meta()))
}

/// The reference to the object `meta` describes, of the apiVersion and kind `types` names.
fn reference(types: &TypeMeta, meta: &ObjectMeta) -> ObjectReference {
    ObjectReference {
        api_version: Some(types.api_version.clone()),
        kind: Some(types.kind.clone()),
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        ..ObjectReference::default()
    }
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
        Err(err) if crate::error::is_namespace_terminating(&err) => {
            tracing::debug!(error = %err, reason, "no Event: the namespace is being deleted")
        }
        Err(err) => tracing::warn!(error = %err, reason, "could not record an Event"),
    }
}

/// Writes a DemoWeb's status as a merge patch (computed by `demoweb::status::status_patch`).
pub async fn patch_status(
    api: &Api<DemoWeb>,
    name: &str,
    patch: &Value,
    metrics: &Metrics,
) -> Result<(), Error> {
    // Under the operator's own name, so that a status write by anyone else shows as theirs in
    // the managed fields (see `demoweb::controller::wanted_changes`).
    let params = PatchParams {
        field_manager: Some(MANAGER.to_owned()),
        ..PatchParams::default()
    };
    api.patch_status(name, &params, &Patch::Merge(patch))
        .await
        .map_err(|source| Error::PatchStatus {
            name: name.to_owned(),
            source,
        })?;
    metrics.count_write("patch_status", "DemoWeb");
    Ok(())
}

/// How long a sent Event is remembered: the same Event again within this time (same type,
/// reason, action, object and related object) becomes one more count of its series rather than a
/// new Event, as kube-apiserver's own components do it.
const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);

/// At most this many sent Events are remembered; beyond it the oldest is forgotten (its next
/// repetition starts a new Event instead of counting on the old one).
const SERIES_REMEMBERED: usize = 2048;

/// Writes `events.k8s.io/v1` Events. Like kube-runtime's recorder it folds a repeated Event into
/// a series; unlike it, it remembers only what a repetition needs (the Event's name and count,
/// not a copy of the Event) and at most [`SERIES_REMEMBERED`] of them, swept now and then rather
/// than on every write: an operator that creates ten thousand DemoWebs does not hold ten
/// thousand Events for six minutes.
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    reporter: Reporter,
    sent: std::sync::Arc<Mutex<SentEvents>>,
}

/// The Events sent within [`SERIES_WINDOW`], by a hash of what makes two Events the same.
#[derive(Default)]
struct SentEvents {
    by_key: HashMap<u64, Sent>,
    swept: Option<Instant>,
}

struct Sent {
    name: String,
    count: i32,
    last: Instant,
}

impl SentEvents {
    /// The name and next count of the series `key` continues, if it was sent within the window.
    fn repeat_of(&mut self, key: u64, now: Instant) -> Option<(String, i32)> {
        if self
            .swept
            .is_none_or(|swept| now.duration_since(swept) >= SERIES_WINDOW / 6)
        {
            self.by_key
                .retain(|_, sent| now.duration_since(sent.last) < SERIES_WINDOW);
            self.swept = Some(now);
        }
        self.by_key
            .get(&key)
            .filter(|sent| now.duration_since(sent.last) < SERIES_WINDOW)
            .map(|sent| (sent.name.clone(), sent.count + 1))
    }

    fn remember(&mut self, key: u64, name: String, count: i32, now: Instant) {
        if self.by_key.len() >= SERIES_REMEMBERED && !self.by_key.contains_key(&key) {
            let oldest = self
                .by_key
                .iter()
                .min_by_key(|(_, sent)| sent.last)
                .map(|(k, _)| *k);
            if let Some(oldest) = oldest {
                self.by_key.remove(&oldest);
            }
        }
        self.by_key.insert(
            key,
            Sent {
                name,
                count,
                last: now,
            },
        );
    }
}

/// What makes two Events the same for a series (the note is not part of it, as in client-go).
fn series_key(event: &Event, regarding: &ObjectReference) -> u64 {
    let reference = |r: &ObjectReference| {
        (
            r.api_version.clone(),
            r.kind.clone(),
            r.namespace.clone(),
            r.name.clone(),
            r.uid.clone(),
        )
    };
    hash_of((
        matches!(event.type_, EventType::Warning),
        &event.action,
        &event.reason,
        reference(regarding),
        event.secondary.as_ref().map(reference),
    ))
}

impl Recorder {
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Recorder {
            client,
            reporter,
            sent: Default::default(),
        }
    }

    fn sent(&self) -> std::sync::MutexGuard<'_, SentEvents> {
        self.sent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates the Event, or counts one more of the same Event sent within the window. The
    /// callers decide what a refusal means: a DemoWeb's reconcile logs it, the identity
    /// controller retries.
    pub async fn publish(
        &self,
        event: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let key = series_key(event, regarding);
        let now = jiff::Timestamp::now();
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), namespace);
        let repeat = self.sent().repeat_of(key, Instant::now());
        let counted = match repeat {
            Some((name, count)) => {
                let patch = serde_json::json!({
                    "series": EventSeries { count, last_observed_time: MicroTime(now) },
                });
                match api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(_) => Some((name, count)),
                    // The Event is gone (deleted, or expired early): this one starts a new series.
                    Err(kube::Error::Api(status)) if status.code == 404 => None,
                    Err(err) => return Err(err),
                }
            }
            None => None,
        };
        let (name, count) = match counted {
            Some(counted) => counted,
            None => {
                let created = api
                    .create(
                        &PostParams::default(),
                        &self.new_event(event, regarding, now),
                    )
                    .await?;
                (created.metadata.name.unwrap_or_default(), 1)
            }
        };
        self.sent().remember(key, name, count, Instant::now());
        Ok(())
    }

    fn new_event(
        &self,
        event: &Event,
        regarding: &ObjectReference,
        now: jiff::Timestamp,
    ) -> K8sEvent {
        let controller = &self.reporter.controller;
        K8sEvent {
            metadata: ObjectMeta {
                namespace: regarding.namespace.clone(),
                name: Some(format!(
                    "{}.{:x}",
                    regarding.name.as_ref().unwrap_or(controller),
                    now.as_nanosecond()
                )),
                ..ObjectMeta::default()
            },
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            note: event.note.clone(),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            related: event.secondary.clone(),
            reporting_controller: Some(controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| controller.clone()),
            ),
            type_: Some(
                match event.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .to_owned(),
            ),
            ..K8sEvent::default()
        }
    }
}

/// Reads one object, `None` when it does not exist.
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

    fn change(verb: &'static str, kind: &str, name: &str) -> Change {
        Change {
            verb,
            kind: kind.into(),
            name: name.into(),
            related: Some(ObjectReference {
                kind: Some(kind.into()),
                name: Some(name.into()),
                ..ObjectReference::default()
            }),
        }
    }

    #[test]
    fn sent_events_fold_repeats_within_the_window_and_stay_bounded() {
        let mut sent = SentEvents::default();
        let start = Instant::now();
        assert_eq!(sent.repeat_of(1, start), None);
        sent.remember(1, "web.1".into(), 1, start);
        assert_eq!(sent.repeat_of(1, start), Some(("web.1".into(), 2)));
        sent.remember(1, "web.1".into(), 2, start);
        let later = start + SERIES_WINDOW / 2;
        assert_eq!(sent.repeat_of(1, later), Some(("web.1".into(), 3)));
        assert_eq!(sent.repeat_of(1, later + SERIES_WINDOW), None, "expired");
        assert!(sent.by_key.is_empty(), "swept");

        for key in 0..SERIES_REMEMBERED as u64 + 10 {
            sent.remember(
                key,
                format!("web.{key}"),
                1,
                start + Duration::from_millis(key),
            );
        }
        assert_eq!(sent.by_key.len(), SERIES_REMEMBERED);
        assert_eq!(
            sent.repeat_of(0, start),
            None,
            "the oldest is forgotten first"
        );
        let newest = SERIES_REMEMBERED as u64 + 9;
        assert!(sent.repeat_of(newest, start).is_some());
    }

    #[test]
    fn series_key_tells_events_apart_by_reason_object_and_related() {
        let web = |name: &str| ObjectReference {
            api_version: Some("baeke.info/v1".into()),
            kind: Some("DemoWeb".into()),
            namespace: Some("default".into()),
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            ..ObjectReference::default()
        };
        let event = |reason: &str, note: &str, related: Option<ObjectReference>| Event {
            type_: EventType::Normal,
            reason: reason.into(),
            note: Some(note.into()),
            action: "Reconcile".into(),
            secondary: related,
        };
        let key = series_key(&event("Created", "a", None), &web("a"));
        assert_eq!(
            key,
            series_key(&event("Created", "other note", None), &web("a"))
        );
        assert_ne!(key, series_key(&event("Updated", "a", None), &web("a")));
        assert_ne!(key, series_key(&event("Created", "a", None), &web("b")));
        assert_ne!(
            key,
            series_key(&event("Created", "a", Some(web("c"))), &web("a"))
        );
    }

    #[test]
    fn one_event_tells_every_change() {
        assert!(summarize_changes(vec![]).is_none(), "no change, no Event");
        let (reason, note, related) = summarize_changes(vec![
            change("Created", "ConfigMap", "web-nginx"),
            change("Created", "Deployment", "web"),
            change("Created", "Service", "web"),
        ])
        .expect("an Event");
        assert_eq!(reason, "Created");
        assert_eq!(
            note,
            "Created ConfigMap web-nginx; created Deployment web; created Service web"
        );
        assert_eq!(related, None, "several children: none is singled out");

        let (reason, note, related) =
            summarize_changes(vec![change("Updated", "Deployment", "web")]).expect("an Event");
        assert_eq!(
            (reason, note.as_str()),
            ("Updated", "Updated Deployment web")
        );
        assert_eq!(
            related.and_then(|r| r.name),
            Some("web".to_owned()),
            "one child is named, so Events about different children are not folded together"
        );

        let (reason, note, _) = summarize_changes(vec![
            change("Created", "Ingress", "web"),
            change("Deleted", "Middleware", "web-allowlist"),
        ])
        .expect("an Event");
        assert_eq!(reason, "Updated", "a mix of changes updated the site");
        assert_eq!(
            note,
            "Created Ingress web; deleted Middleware web-allowlist, which this DemoWeb no longer needs"
        );
        let (reason, _, _) =
            summarize_changes(vec![change("Deleted", "Ingress", "web")]).expect("an Event");
        assert_eq!(reason, "Deleted");
    }

    #[test]
    fn verified_follows_generation_or_resource_version() {
        let meta = |generation: Option<i64>, version: &str| ObjectMeta {
            uid: Some("c1".into()),
            generation,
            resource_version: Some(version.into()),
            ..ObjectMeta::default()
        };
        let v = Verified::default();
        let (gen_, rv) = (Marker::Generation, Marker::ResourceVersion);
        assert!(!v.is_current(&meta(Some(1), "10"), gen_), "unknown child");
        v.remember(&meta(Some(1), "10"), gen_);
        assert!(
            v.is_current(&meta(Some(1), "11"), gen_),
            "a status update moves the resourceVersion, not the generation"
        );
        assert!(!v.is_current(&meta(Some(2), "12"), gen_), "a spec edit");
        assert!(
            !v.is_current(&meta(Some(1), "11"), rv),
            "other kinds follow the resourceVersion"
        );
        v.remember(&meta(None, "20"), gen_);
        assert!(
            v.is_current(&meta(None, "20"), gen_),
            "no generation: the resourceVersion"
        );
        assert!(!v.is_current(&meta(None, "21"), gen_));
        let other = ObjectMeta {
            uid: Some("c2".into()),
            ..meta(None, "20")
        };
        assert!(!v.is_current(&other, gen_), "per child");
        v.forget(&meta(None, "20"));
        assert!(v.is_empty());
    }
}
