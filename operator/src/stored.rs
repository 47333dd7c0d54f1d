//! What a child store keeps of each object: only what reconcile reads. Most kinds are watched as
//! metadata only and stored as that (`PartialObjectMeta`); the Deployment, whose replica count
//! and status reconcile reads, is watched whole and stored as a [`DeploymentSummary`]. Either
//! way [`trim_meta`] drops managed fields before an object enters a store.
//!
//! Storing the kinds' own types would cost their full size per object however empty: a
//! `Deployment` value is 2.5 KB of mostly-`None` fields before any of its strings, a `Service`
//! 0.8 KB; at 10,000 DemoWebs that was a fifth of the operator's memory.

use std::borrow::Cow;
use std::fmt::Debug;

use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStatus};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::apply::Marker;

/// kubectl's client-side copy of the whole object: large, and never read by the operator.
const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A child kind: how the operator keeps it in memory ([`Stored`]) and what tells it changed.
pub trait Child:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
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

/// A watch event with its object converted.
fn map_event<A, B>(event: watcher::Event<A>, f: impl FnOnce(A) -> B) -> watcher::Event<B> {
    use watcher::Event as E;
    match event {
        E::Init => E::Init,
        E::InitDone => E::InitDone,
        E::InitApply(obj) => E::InitApply(f(obj)),
        E::Apply(obj) => E::Apply(f(obj)),
        E::Delete(obj) => E::Delete(f(obj)),
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
/// status reports the autoscaler's choice) and its status without the conditions, which the
/// DemoWeb's status is not computed from.
#[derive(Clone, Debug, Default)]
pub struct DeploymentSummary {
    pub metadata: ObjectMeta,
    pub replicas: Option<i32>,
    pub status: Option<DeploymentStatus>,
}

impl From<Deployment> for DeploymentSummary {
    fn from(whole: Deployment) -> Self {
        let mut metadata = whole.metadata;
        trim_meta(&mut metadata);
        let mut status = whole.status;
        if let Some(status) = status.as_mut() {
            status.conditions = None;
        }
        DeploymentSummary {
            metadata,
            replicas: whole.spec.and_then(|spec| spec.replicas),
            status,
        }
    }
}

impl Resource for DeploymentSummary {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        Deployment::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        Deployment::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        Deployment::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        Deployment::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl Stored<Deployment> for DeploymentSummary {
    fn events(
        client: &Client,
        namespace: Option<&str>,
        config: watcher::Config,
    ) -> BoxStream<'static, Result<watcher::Event<Self>, watcher::Error>> {
        watcher(api::<Deployment>(client, namespace), config)
            .map_ok(|event| map_event(event, DeploymentSummary::from))
            .boxed()
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
    fn a_stored_deployment_keeps_what_reconcile_reads() {
        let whole = Deployment {
            metadata: ObjectMeta {
                name: Some("web".into()),
                annotations: Some(
                    [
                        (
                            "kubectl.kubernetes.io/last-applied-configuration".to_owned(),
                            "{...}".to_owned(),
                        ),
                        (APPLIED_HASH_ANNOTATION.to_owned(), "abc".to_owned()),
                    ]
                    .into(),
                ),
                managed_fields: Some(vec![ManagedFieldsEntry::default()]),
                ..ObjectMeta::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(3),
                template: PodTemplateSpec {
                    spec: Some(Default::default()),
                    ..Default::default()
                },
                ..Default::default()
            }),
            status: Some(DeploymentStatus {
                ready_replicas: Some(2),
                conditions: Some(vec![Default::default()]),
                ..Default::default()
            }),
        };
        let d = DeploymentSummary::from(whole).child();
        let spec = d.spec.expect("spec.replicas kept");
        assert_eq!(spec.replicas, Some(3));
        assert!(spec.template.spec.is_none(), "no pod template");
        let status = d.status.expect("status kept");
        assert_eq!(status.ready_replicas, Some(2));
        assert!(status.conditions.is_none(), "no conditions");
        assert!(d.metadata.managed_fields.is_none());
        assert_eq!(
            d.metadata
                .annotations
                .map(|a| a.into_keys().collect::<Vec<_>>()),
            Some(vec![APPLIED_HASH_ANNOTATION.to_owned()])
        );
    }
}
