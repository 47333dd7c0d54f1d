//! What every DemoWeb reconcile shares: the client, the reflector stores, metrics, Events, what is
//! remembered of each DemoWeb (`Sites`, by uid: its backoff among others) and the watched
//! discovery of ingress-controller allowlist APIs.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use crate::write::events::Recorder;
use demoweb_crd::{AzureIdentity, AzureIdentityBinding, DemoWeb};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};

use super::ingress::{IngressCapabilities, capabilities_from};
use super::kong::{KongClusterPluginType, KongPluginType};
use super::pods::PodIndex;
use crate::metrics::Metrics;
use crate::runtime::{PerObject, until_ready};
use crate::server::Readiness;
use crate::stored::{DeploymentSummary, Owned};
use crate::write::drift::Verified;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use tokio::sync::Semaphore;

/// Reflector stores: what reconcile reads instead of asking the API. Child stores hold trimmed
/// copies: metadata without managed fields, and the Deployment's status (see `crate::stored`).
#[derive(Clone)]
pub struct Stores {
    /// Set once the reference stores were waited for: a store that never fills (e.g. no RBAC to
    /// list IngressClasses) must delay only the first reconciles, not every one.
    pub references_waited: Arc<std::sync::atomic::AtomicBool>,
    /// The children last known to hold what we want (the child stores keep no specs).
    pub verified: Arc<Verified>,
    /// Which children each DemoWeb controls, by its uid (what the inventory sweep looks through).
    pub owned: Arc<Owned>,
    pub demowebs: Store<DemoWeb>,
    pub deployments: Store<DeploymentSummary>,
    pub config_maps: Store<PartialObjectMeta<ConfigMap>>,
    pub services: Store<PartialObjectMeta<Service>>,
    pub ingresses: Store<PartialObjectMeta<Ingress>>,
    pub service_accounts: Store<PartialObjectMeta<ServiceAccount>>,
    pub disruption_budgets: Store<PartialObjectMeta<PodDisruptionBudget>>,
    pub autoscalers: Store<PartialObjectMeta<HorizontalPodAutoscaler>>,
    pub ingress_classes: Store<IngressClass>,
    pub bindings: Store<AzureIdentityBinding>,
    pub identities: Store<AzureIdentity>,
    /// The CRDs that decide an allowlist dialect, each watched by name.
    pub allowlist_apis: AllowlistApis,
    /// Kong plugins' types, watched while their CRDs are served (see `kong.rs`).
    pub kong_plugins: Store<KongPluginType>,
    pub kong_cluster_plugins: Store<KongClusterPluginType>,
    /// The pods of the sites' Deployments, by site (see `pods.rs`).
    pub pods: PodIndex,
}

/// One store per CRD that decides an allowlist dialect (Traefik's two Middleware groups and
/// Kong's KongPlugin), each fed by a watch on that one name.
#[derive(Clone)]
pub struct AllowlistApis {
    pub traefik: Store<CustomResourceDefinition>,
    pub traefik_legacy: Store<CustomResourceDefinition>,
    pub kong: Store<CustomResourceDefinition>,
}

impl AllowlistApis {
    pub const TRAEFIK: &'static str = "middlewares.traefik.io";
    pub const TRAEFIK_LEGACY: &'static str = "middlewares.traefik.containo.us";
    pub const KONG: &'static str = "kongplugins.configuration.konghq.com";

    fn stores(&self) -> [(&'static str, &Store<CustomResourceDefinition>); 3] {
        [
            (Self::TRAEFIK, &self.traefik),
            (Self::TRAEFIK_LEGACY, &self.traefik_legacy),
            (Self::KONG, &self.kong),
        ]
    }

    /// What the cluster serves now, or the name of a CRD whose watch has not listed it yet (no
    /// guess: an unknown answer is retried, never taken for "served" or "Traefik v3").
    pub fn capabilities(&self) -> Result<IngressCapabilities, &'static str> {
        use futures::FutureExt;
        let mut found = Vec::with_capacity(3);
        for (name, store) in self.stores() {
            if store.wait_until_ready().now_or_never().is_none() {
                return Err(name);
            }
            found.push(store.get(&ObjectRef::new(name)));
        }
        Ok(capabilities_from(
            found[0].as_deref(),
            found[1].as_deref(),
            found[2].as_deref(),
        ))
    }
}

impl Stores {
    /// Waits until the stores reconcile reads references from have their first full list, so a
    /// DemoWeb is not reported as broken only because the operator just started. A store whose
    /// kind is not served (its writer is gone) counts as ready.
    pub async fn wait_for_references(&self, timeout: Duration) -> bool {
        use std::sync::atomic::Ordering;
        if self.references_waited.load(Ordering::Relaxed) {
            return true;
        }
        let all = async {
            until_ready(&self.ingress_classes).await;
            until_ready(&self.bindings).await;
            until_ready(&self.identities).await;
            for (_, store) in self.allowlist_apis.stores() {
                until_ready(store).await;
            }
            until_ready(&self.kong_plugins).await;
            until_ready(&self.kong_cluster_plugins).await;
        };
        let ready = tokio::time::timeout(timeout, all).await.is_ok();
        self.references_waited.store(true, Ordering::Relaxed);
        ready
    }

    /// Keeps `readiness` naming the caches still waiting for their first full list, and turns it
    /// ready once none is. A cache that never fills (e.g. no permission to list its kind) keeps
    /// the process unready, and `/readyz` says which.
    pub fn track_sync(
        &self,
        identity_served: bool,
        readiness: Readiness,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut caches = vec![
            synced("demowebs", &self.demowebs),
            synced("deployments", &self.deployments),
            synced("configmaps", &self.config_maps),
            synced("services", &self.services),
            synced("ingresses", &self.ingresses),
            synced("serviceaccounts", &self.service_accounts),
            synced("ingressclasses", &self.ingress_classes),
        ];
        for (name, store) in self.allowlist_apis.stores() {
            caches.push(synced(name, store));
        }
        caches.push(synced("kongplugins", &self.kong_plugins));
        caches.push(synced("kongclusterplugins", &self.kong_cluster_plugins));
        if identity_served {
            caches.push(synced("azureidentitybindings", &self.bindings));
            caches.push(synced("azureidentities", &self.identities));
        }
        let mut waiting: BTreeSet<&'static str> = caches.iter().map(|(name, _)| *name).collect();
        let mut pending: FuturesUnordered<_> = caches.into_iter().map(|(_, f)| f).collect();
        async move {
            let say = |waiting: &BTreeSet<&str>| {
                let names: Vec<&str> = waiting.iter().copied().collect();
                readiness.waiting(format!("waiting for caches to sync: {}", names.join(", ")));
            };
            say(&waiting);
            while let Some(name) = pending.next().await {
                waiting.remove(name);
                if waiting.is_empty() {
                    readiness.ready("caches synced");
                } else {
                    say(&waiting);
                }
            }
        }
    }
}

/// A store's name and a future that resolves with it once the store has its first full list (or
/// its writer is gone: the kind is not watched).
fn synced<K>(
    name: &'static str,
    store: &Store<K>,
) -> (&'static str, BoxFuture<'static, &'static str>)
where
    K: kube::Resource + Clone + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    let store = store.clone();
    let wait = async move {
        until_ready(&store).await;
        name
    };
    (name, Box::pin(wait))
}

/// How many reconciles work with the API server at once, in two phases, each with its own
/// first-come-first-served queue: applying children, then reporting (the status and the Events).
/// A reconcile that has applied its children waits for a report turn holding no apply turn, so a
/// burst of new DemoWebs gets its Deployments while the DemoWebs before it report; and a
/// reconcile waiting for either turn holds little memory (see `reconcile::reconcile`).
pub struct Turns {
    pub apply: Semaphore,
    pub report: Semaphore,
}

impl Turns {
    pub fn new(each: u16) -> Self {
        let each = usize::from(each.max(1));
        Self {
            apply: Semaphore::new(each),
            report: Semaphore::new(each),
        }
    }
}

pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub stores: Stores,
    pub turns: Turns,
    /// Requeue after success or a user-action problem, to heal drift nobody told us about.
    pub requeue: Duration,
    /// Requeue while stalled: the fix may be in an object the operator does not watch
    /// (someone else's Deployment, a Secret's keys read on reconcile), so look again sooner.
    /// Reads only.
    pub stalled_requeue: Duration,
    /// What is remembered of each DemoWeb between reconciles, by uid, evicted by its delete event.
    pub sites: Arc<Sites>,
}

/// The DemoWeb controller's per-object state ([`PerObject`]: by uid, gone with the DemoWeb).
pub type Sites = PerObject<SiteState>;

/// What the DemoWeb controller remembers of one DemoWeb between reconciles. Not here: what each
/// child was last verified at (`write::drift::Verified`, keyed by the child's uid and evicted by
/// the child's own delete event) and which children it controls (`stored::Owned`, fed by the
/// child watches); the DemoWeb's delete event drops its entry in `Owned` too.
#[derive(Debug, Default)]
pub struct SiteState {
    /// Failed reconciles in a row: the backoff's exponent ([`crate::runtime::Backoff::delay`]), reset by a success.
    pub failures: u32,
    /// Whether the seed Kopf operator's Deployment was looked for (once per DemoWeb and process).
    pub kopf_checked: bool,
    /// The resourceVersion last reported as unreadable (one Warning Event per version).
    pub unreadable: Option<String>,
}

impl Context {
    pub fn new(
        client: Client,
        recorder: Recorder,
        metrics: Arc<Metrics>,
        stores: Stores,
        sites: Arc<Sites>,
    ) -> Self {
        Self {
            client,
            recorder,
            metrics,
            stores,
            turns: Turns::new(16),
            requeue: Duration::from_secs(300),
            stalled_requeue: Duration::from_secs(30),
            sites,
        }
    }
}
