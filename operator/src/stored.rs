//! What a child store keeps of each object: only what reconcile reads. Most kinds are watched as
//! metadata only and stored as that (`PartialObjectMeta`); the Deployment, whose replica count
//! and status reconcile reads, is watched whole and read into a [`DeploymentSummary`]. Either
//! way no managed fields enter a store ([`trim_meta`]).
//!
//! Storing the kinds' own types would cost their full size per object however empty: a
//! `Deployment` value is 2.5 KB of mostly-`None` fields before any of its strings, a `Service`
//! 0.8 KB; at 10,000 DemoWebs that was a fifth of the operator's memory.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Debug;
use std::sync::Mutex;

use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentSpec, DeploymentStatus,
};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::write::drift::Marker;

/// kubectl's client-side copy of the whole object: large, and never read by the operator.
const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A child kind: how the operator keeps it in memory ([`Stored`]) and what tells it changed.
pub trait Child:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + k8s_openapi::Resource
    + Clone
    + Default
    + Serialize
    + DeserializeOwned
    + Debug
    + Send
    + Sync
    + 'static
{
    /// What the kind's store keeps of each object.
    type Stored: Stored<Self>;

    /// What moves when someone changes the object: the generation for kinds whose status
    /// reports an `observedGeneration` (their generation counts spec changes, and their status
    /// updates do not move it), else the resourceVersion.
    const MARKER: Marker = Marker::ResourceVersion;
}

impl Child for ConfigMap {
    type Stored = PartialObjectMeta<Self>;
}
impl Child for Service {
    type Stored = PartialObjectMeta<Self>;
}
impl Child for ServiceAccount {
    type Stored = PartialObjectMeta<Self>;
}
impl Child for Ingress {
    type Stored = PartialObjectMeta<Self>;
}
impl Child for Deployment {
    type Stored = DeploymentSummary;
    const MARKER: Marker = Marker::Generation;
}
impl Child for PodDisruptionBudget {
    type Stored = PartialObjectMeta<Self>;
    const MARKER: Marker = Marker::Generation;
}
impl Child for HorizontalPodAutoscaler {
    type Stored = PartialObjectMeta<Self>;
    const MARKER: Marker = Marker::Generation;
}

/// What no store needs of an object's metadata: managed fields (often the largest part of an
/// object) and kubectl's last-applied copy.
pub fn trim_meta(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED_ANNOTATION);
    }
}

/// One child kind's stored form.
pub trait Stored<K>: Resource<DynamicType = ()> + Clone + Debug + Send + Sync + 'static {
    /// The watch that fills the store, each object already cut down.
    fn events(
        client: &Client,
        namespace: Option<&str>,
        config: watcher::Config,
    ) -> BoxStream<'static, Result<watcher::Event<Self>, watcher::Error>>;

    /// The stored object as the kind's own type, with what the store does not keep left empty.
    fn child(&self) -> K;

    /// A digest of what reconcile reads of the object besides its metadata (a Deployment's
    /// replicas and status), which others change without moving the kind's [`Marker`]; `None`
    /// where the store keeps only metadata.
    fn read_state(&self) -> Option<u64> {
        None
    }
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

impl<K: Child> Stored<K> for PartialObjectMeta<K> {
    fn events(
        client: &Client,
        namespace: Option<&str>,
        config: watcher::Config,
    ) -> BoxStream<'static, Result<watcher::Event<Self>, watcher::Error>> {
        watcher(api::<Self>(client, namespace), config)
            .map_ok(|event| event.modify(|obj| trim_meta(&mut obj.metadata)))
            .boxed()
    }

    fn child(&self) -> K {
        let mut obj = K::default();
        *obj.meta_mut() = self.metadata.clone();
        obj
    }
}

/// What reconcile reads of a Deployment: its metadata, `spec.replicas` (an autoscaled site's
/// status reports the autoscaler's choice) and its status with only the conditions that name a
/// failure (`ReplicaFailure=True`, `Progressing=False`), without their times: diagnosis reads
/// those, and a healthy Deployment's conditions cost nothing.
///
/// It is read straight from the watch's JSON ([`WireDeployment`]): the pod template, the managed
/// fields and the conditions are skipped by the parser rather than built and dropped. Every
/// status update of a watched Deployment arrives whole, so this is most of what the operator
/// decodes.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(from = "WireDeployment")]
pub struct DeploymentSummary {
    pub metadata: ObjectMeta,
    pub replicas: Option<i32>,
    pub status: Option<DeploymentStatus>,
}

/// A Deployment as the API sends it, limited to the fields [`DeploymentSummary`] keeps; serde
/// passes over the rest without allocating.
#[derive(Deserialize)]
struct WireDeployment {
    #[serde(default)]
    metadata: WireMeta,
    spec: Option<WireSpec>,
    status: Option<WireStatus>,
}

#[derive(Deserialize)]
struct WireSpec {
    replicas: Option<i32>,
}

/// `DeploymentStatus` with its failure conditions only.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireStatus {
    #[serde(default)]
    conditions: Vec<WireCondition>,
    available_replicas: Option<i32>,
    collision_count: Option<i32>,
    observed_generation: Option<i64>,
    ready_replicas: Option<i32>,
    replicas: Option<i32>,
    terminating_replicas: Option<i32>,
    unavailable_replicas: Option<i32>,
    updated_replicas: Option<i32>,
}

#[derive(Deserialize)]
struct WireCondition {
    #[serde(rename = "type")]
    type_: String,
    status: String,
    reason: Option<String>,
    message: Option<String>,
}

impl WireCondition {
    fn is_failure(&self) -> bool {
        (self.type_ == "ReplicaFailure" && self.status == "True")
            || (self.type_ == "Progressing" && self.status == "False")
    }
}

/// `ObjectMeta` without its managed fields.
#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct WireMeta {
    annotations: Option<BTreeMap<String, String>>,
    creation_timestamp: Option<Time>,
    deletion_grace_period_seconds: Option<i64>,
    deletion_timestamp: Option<Time>,
    finalizers: Option<Vec<String>>,
    generate_name: Option<String>,
    generation: Option<i64>,
    labels: Option<BTreeMap<String, String>>,
    name: Option<String>,
    namespace: Option<String>,
    owner_references: Option<Vec<OwnerReference>>,
    resource_version: Option<String>,
    self_link: Option<String>,
    uid: Option<String>,
}

impl From<WireMeta> for ObjectMeta {
    fn from(w: WireMeta) -> Self {
        let mut meta = ObjectMeta {
            annotations: w.annotations,
            creation_timestamp: w.creation_timestamp,
            deletion_grace_period_seconds: w.deletion_grace_period_seconds,
            deletion_timestamp: w.deletion_timestamp,
            finalizers: w.finalizers,
            generate_name: w.generate_name,
            generation: w.generation,
            labels: w.labels,
            managed_fields: None,
            name: w.name,
            namespace: w.namespace,
            owner_references: w.owner_references,
            resource_version: w.resource_version,
            self_link: w.self_link,
            uid: w.uid,
        };
        trim_meta(&mut meta);
        meta
    }
}

impl From<WireDeployment> for DeploymentSummary {
    fn from(w: WireDeployment) -> Self {
        DeploymentSummary {
            metadata: w.metadata.into(),
            replicas: w.spec.and_then(|spec| spec.replicas),
            status: w.status.map(|s| DeploymentStatus {
                available_replicas: s.available_replicas,
                collision_count: s.collision_count,
                conditions: Some(
                    s.conditions
                        .into_iter()
                        .filter(WireCondition::is_failure)
                        .map(|c| DeploymentCondition {
                            type_: c.type_,
                            status: c.status,
                            reason: c.reason,
                            message: c.message,
                            ..DeploymentCondition::default()
                        })
                        .collect::<Vec<_>>(),
                )
                .filter(|c| !c.is_empty()),
                observed_generation: s.observed_generation,
                ready_replicas: s.ready_replicas,
                replicas: s.replicas,
                terminating_replicas: s.terminating_replicas,
                unavailable_replicas: s.unavailable_replicas,
                updated_replicas: s.updated_replicas,
            }),
        }
    }
}

/// Makes a trimmed stand-in (`$summary`, with a `metadata` field) a [`Resource`] of the kind it
/// stands for (`$kind`): same group, version, kind and plural, so it is watched, stored and
/// referenced as that kind.
macro_rules! resource_as {
    ($summary:ty, $kind:ty) => {
        impl ::kube::Resource for $summary {
            type DynamicType = ();
            type Scope = ::k8s_openapi::NamespaceResourceScope;

            fn kind(dt: &()) -> ::std::borrow::Cow<'_, str> {
                <$kind as ::kube::Resource>::kind(dt)
            }
            fn group(dt: &()) -> ::std::borrow::Cow<'_, str> {
                <$kind as ::kube::Resource>::group(dt)
            }
            fn version(dt: &()) -> ::std::borrow::Cow<'_, str> {
                <$kind as ::kube::Resource>::version(dt)
            }
            fn plural(dt: &()) -> ::std::borrow::Cow<'_, str> {
                <$kind as ::kube::Resource>::plural(dt)
            }
            fn meta(&self) -> &::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &self.metadata
            }
            fn meta_mut(
                &mut self,
            ) -> &mut ::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &mut self.metadata
            }
        }
    };
}
pub(crate) use resource_as;

resource_as!(DeploymentSummary, Deployment);

impl Stored<Deployment> for DeploymentSummary {
    fn events(
        client: &Client,
        namespace: Option<&str>,
        config: watcher::Config,
    ) -> BoxStream<'static, Result<watcher::Event<Self>, watcher::Error>> {
        watcher(api::<Self>(client, namespace), config).boxed()
    }

    fn child(&self) -> Deployment {
        Deployment {
            metadata: self.metadata.clone(),
            spec: Some(DeploymentSpec {
                replicas: self.replicas,
                ..DeploymentSpec::default()
            }),
            status: self.status.clone(),
        }
    }

    fn read_state(&self) -> Option<u64> {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::hash::DefaultHasher::new();
        self.replicas.hash(&mut hasher);
        serde_json::to_string(&self.status)
            .unwrap_or_default()
            .hash(&mut hasher);
        Some(hasher.finish())
    }
}

/// Which children each owner controls: by the owner's uid, the kind and name of every object the
/// child watches last saw with a controller owner reference to it. The child watches keep it
/// ([`Owned::saw`], [`Owned::gone`]); the inventory sweep reads it, so that finding what a DemoWeb
/// controls costs a look-up, not a pass over every store. An entry may outlive what it names (a
/// deletion missed while a watch re-listed, a controller reference edited away): readers check
/// the store's copy, and drop the entry with [`Owned::gone`] when the store has none.
#[derive(Default)]
pub struct Owned(Mutex<HashMap<String, BTreeSet<(&'static str, String)>>>);

impl Owned {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, BTreeSet<(&'static str, String)>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A child watch saw `meta` of kind `kind` created or changed.
    pub fn saw(&self, kind: &'static str, meta: &ObjectMeta) {
        let (Some(owner), Some(name)) = (controller_uid(meta), meta.name.as_ref()) else {
            return;
        };
        self.lock()
            .entry(owner.to_owned())
            .or_default()
            .insert((kind, name.clone()));
    }

    /// The child `name` of kind `kind` is no longer controlled by `owner` (or gone).
    pub fn gone(&self, kind: &'static str, owner: &str, name: &str) {
        let mut owned = self.lock();
        if let Some(children) = owned.get_mut(owner) {
            children.remove(&(kind, name.to_owned()));
            if children.is_empty() {
                owned.remove(owner);
            }
        }
    }

    /// The names of the children of kind `kind` last seen controlled by `owner`.
    pub fn of(&self, owner: &str, kind: &'static str) -> Vec<String> {
        self.lock()
            .get(owner)
            .into_iter()
            .flatten()
            .filter(|(k, _)| *k == kind)
            .map(|(_, name)| name.clone())
            .collect()
    }

    /// Forgets everything `owner` controlled (the owner is gone; so are its children, or soon).
    pub fn forget_owner(&self, owner: &str) {
        self.lock().remove(owner);
    }
}

/// The uid of the object's controller (the owner reference with `controller: true`).
pub fn controller_uid(meta: &ObjectMeta) -> Option<&str> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.as_str())
}

/// The child named `name` in `ns` as the store has it.
pub fn stored_child<K: Child>(store: &Store<K::Stored>, name: &str, ns: &str) -> Option<K> {
    store
        .get(&ObjectRef::new(name).within(ns))
        .map(|stored| stored.child())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocabulary::APPLIED_HASH_ANNOTATION;
    use k8s_openapi::api::core::v1::PodTemplateSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;

    #[test]
    fn the_owner_index_follows_controller_references() {
        let child = |name: &str, owner: Option<(&str, bool)>| ObjectMeta {
            name: Some(name.into()),
            owner_references: owner.map(|(uid, controller)| {
                vec![OwnerReference {
                    api_version: "baeke.info/v1".into(),
                    kind: "DemoWeb".into(),
                    name: "web".into(),
                    uid: uid.into(),
                    controller: Some(controller),
                    block_owner_deletion: None,
                }]
            }),
            ..ObjectMeta::default()
        };
        let owned = Owned::default();
        owned.saw("Service", &child("web", Some(("u-1", true))));
        owned.saw("Service", &child("web-old", Some(("u-1", true))));
        owned.saw("ConfigMap", &child("web", Some(("u-1", true))));
        owned.saw("Service", &child("other", Some(("u-2", true))));
        owned.saw("Service", &child("adopted-by-none", Some(("u-1", false))));
        owned.saw("Service", &child("orphan", None));
        assert_eq!(owned.of("u-1", "Service"), ["web", "web-old"]);
        assert_eq!(owned.of("u-1", "ConfigMap"), ["web"]);
        assert_eq!(owned.of("u-2", "Service"), ["other"]);
        owned.gone("Service", "u-1", "web-old");
        assert_eq!(owned.of("u-1", "Service"), ["web"]);
        owned.gone("Service", "u-2", "other");
        assert!(
            owned.lock().get("u-2").is_none(),
            "an owner with no children is dropped"
        );
        owned.forget_owner("u-1");
        assert!(owned.of("u-1", "ConfigMap").is_empty());
    }

    #[test]
    fn a_stored_deployment_keeps_what_reconcile_reads() {
        let time = |s: &str| Time(s.parse().unwrap());
        // Every metadata field set, so that a misspelt field of the wire form shows.
        let kept = ObjectMeta {
            annotations: Some([(APPLIED_HASH_ANNOTATION.to_owned(), "abc".to_owned())].into()),
            creation_timestamp: Some(time("2026-01-02T03:04:05Z")),
            deletion_grace_period_seconds: Some(30),
            deletion_timestamp: Some(time("2026-01-02T03:05:05Z")),
            finalizers: Some(vec!["example.com/keep".into()]),
            generate_name: Some("web-".into()),
            generation: Some(4),
            labels: Some([("app".to_owned(), "web".to_owned())].into()),
            managed_fields: None,
            name: Some("web".into()),
            namespace: Some("sites".into()),
            owner_references: Some(vec![OwnerReference {
                api_version: "baeke.info/v1".into(),
                kind: "DemoWeb".into(),
                name: "web".into(),
                uid: "u-1".into(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            resource_version: Some("42".into()),
            self_link: Some("/apis/apps/v1/namespaces/sites/deployments/web".into()),
            uid: Some("u-2".into()),
        };
        let mut metadata = kept.clone();
        metadata.managed_fields = Some(vec![ManagedFieldsEntry::default()]);
        metadata.annotations.as_mut().unwrap().insert(
            "kubectl.kubernetes.io/last-applied-configuration".to_owned(),
            "{...}".to_owned(),
        );
        let whole = Deployment {
            metadata,
            spec: Some(DeploymentSpec {
                replicas: Some(3),
                template: PodTemplateSpec {
                    spec: Some(Default::default()),
                    ..Default::default()
                },
                ..Default::default()
            }),
            status: Some(DeploymentStatus {
                available_replicas: Some(1),
                collision_count: Some(2),
                conditions: Some(vec![
                    DeploymentCondition {
                        type_: "Progressing".into(),
                        status: "True".into(),
                        reason: Some("NewReplicaSetAvailable".into()),
                        last_update_time: Some(time("2026-01-02T03:04:05Z")),
                        ..Default::default()
                    },
                    DeploymentCondition {
                        type_: "ReplicaFailure".into(),
                        status: "True".into(),
                        reason: Some("FailedCreate".into()),
                        message: Some("exceeded quota".into()),
                        last_transition_time: Some(time("2026-01-02T03:04:05Z")),
                        ..Default::default()
                    },
                ]),
                observed_generation: Some(4),
                ready_replicas: Some(3),
                replicas: Some(4),
                terminating_replicas: Some(5),
                unavailable_replicas: Some(6),
                updated_replicas: Some(7),
            }),
        };
        // As the watch reads it: from the object's JSON.
        let json = serde_json::to_string(&whole).unwrap();
        let d = serde_json::from_str::<DeploymentSummary>(&json)
            .unwrap()
            .child();
        assert_eq!(
            d.metadata, kept,
            "metadata without managed fields or last-applied"
        );
        let spec = d.spec.expect("spec.replicas kept");
        assert_eq!(spec.replicas, Some(3));
        assert!(spec.template.spec.is_none(), "no pod template");
        let mut status = whole.status.unwrap();
        status.conditions = Some(vec![DeploymentCondition {
            type_: "ReplicaFailure".into(),
            status: "True".into(),
            reason: Some("FailedCreate".into()),
            message: Some("exceeded quota".into()),
            ..Default::default()
        }]);
        assert_eq!(
            d.status,
            Some(status),
            "status with its failure conditions only, without their times"
        );
    }
}
