//! What every reconcile shares: the client, the reflector stores, metrics, Events, backoff and
//! the cached discovery of ingress-controller APIs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use demoweb_crd::{AzureIdentity, AzureIdentityBinding, DemoWeb};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::Store;
use kube::{Api, Client};

use crate::demoweb::ingress::{
    IngressCapabilities, TRAEFIK_V2, TRAEFIK_V2_LEGACY, TRAEFIK_V3, TraefikMiddlewareApi,
};
use crate::apply::Verified;
use crate::error::Error;
use crate::metrics::Metrics;

/// Reflector stores: what reconcile reads instead of asking the API. Child stores hold trimmed
/// copies: metadata without managed fields, and the Deployment's status (see `apply::Child`).
#[derive(Clone)]
pub struct Stores {
    /// Set once the reference stores were waited for: a store that never fills (e.g. no RBAC to
    /// list IngressClasses) must delay only the first reconciles, not every one.
    pub references_waited: Arc<std::sync::atomic::AtomicBool>,
    /// The children last known to hold what we want (the child stores keep no specs).
    pub verified: Arc<Verified>,
    pub demowebs: Store<DemoWeb>,
    pub deployments: Store<Deployment>,
    pub config_maps: Store<ConfigMap>,
    pub services: Store<Service>,
    pub ingresses: Store<Ingress>,
    pub service_accounts: Store<ServiceAccount>,
    pub ingress_classes: Store<IngressClass>,
    pub bindings: Store<AzureIdentityBinding>,
    pub identities: Store<AzureIdentity>,
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
            let _ = self.ingress_classes.wait_until_ready().await;
            let _ = self.bindings.wait_until_ready().await;
            let _ = self.identities.wait_until_ready().await;
        };
        let ready = tokio::time::timeout(timeout, all).await.is_ok();
        self.references_waited.store(true, Ordering::Relaxed);
        ready
    }
}

/// Per-object exponential backoff for transient errors, keyed by uid, reset on success.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    pub const BASE: Duration = Duration::from_millis(500);
    pub const CAP: Duration = Duration::from_secs(300);

    /// Records one more failure and returns how long to wait before the next try.
    pub fn next_delay(&self, uid: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = failures.entry(uid.to_owned()).or_default();
        let delay = Self::BASE
            .saturating_mul(2u32.saturating_pow(*n))
            .min(Self::CAP);
        *n = n.saturating_add(1);
        delay
    }

    pub fn reset(&self, uid: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(uid);
    }
}

/// How long discovery answers are trusted: CRDs of ingress controllers come and go rarely.
const DISCOVERY_TTL: Duration = Duration::from_secs(60);

pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub stores: Stores,
    pub backoff: Backoff,
    /// Requeue after success or a user-action problem, to heal drift nobody told us about.
    pub requeue: Duration,
    /// Requeue while stalled: the fix is often in an object the operator does not watch (a
    /// Secret, someone else's Deployment), so look again sooner. Reads only.
    pub stalled_requeue: Duration,
    capabilities: tokio::sync::Mutex<Option<(Instant, IngressCapabilities)>>,
    /// DemoWebs (by uid) already checked for the Kopf operator's leftover Deployment.
    pub legacy_checked: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl Context {
    pub fn new(client: Client, recorder: Recorder, metrics: Arc<Metrics>, stores: Stores) -> Self {
        Self {
            client,
            recorder,
            metrics,
            stores,
            backoff: Backoff::default(),
            requeue: Duration::from_secs(300),
            stalled_requeue: Duration::from_secs(30),
            capabilities: tokio::sync::Mutex::new(None),
            legacy_checked: std::sync::Mutex::new(std::collections::HashSet::new()),
        }
    }

    /// Which allowlist APIs the cluster serves (Traefik Middleware, Kong KongPlugin), cached.
    pub async fn capabilities(&self) -> Result<IngressCapabilities, Error> {
        let mut cached = self.capabilities.lock().await;
        if let Some((at, caps)) = cached.as_ref()
            && at.elapsed() < DISCOVERY_TTL
        {
            return Ok(caps.clone());
        }
        let caps = self.discover().await?;
        *cached = Some((Instant::now(), caps.clone()));
        Ok(caps)
    }

    async fn discover(&self) -> Result<IngressCapabilities, Error> {
        let traefik_middleware = if self.serves("traefik.io/v1alpha1", "middlewares").await? {
            Some(self.traefik_flavour().await)
        } else if self
            .serves("traefik.containo.us/v1alpha1", "middlewares")
            .await?
        {
            Some(TRAEFIK_V2_LEGACY)
        } else {
            None
        };
        let kong_plugin = self
            .serves("configuration.konghq.com/v1", "kongplugins")
            .await?;
        Ok(IngressCapabilities {
            traefik_middleware,
            kong_plugin,
        })
    }

    /// Whether `group_version` serves `plural`.
    pub async fn serves(&self, group_version: &str, plural: &str) -> Result<bool, Error> {
        match self.client.list_api_group_resources(group_version).await {
            Ok(list) => Ok(list.resources.iter().any(|r| r.name == plural)),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
            Err(source) => Err(Error::Discovery {
                group_version: group_version.to_owned(),
                source,
            }),
        }
    }

    /// Traefik v3 renamed `ipWhiteList` to `ipAllowList` in the same API group; the CRD's schema
    /// tells which one this cluster has. When the CRD cannot be read, v3 is assumed: the write
    /// uses strict field validation, so a wrong guess fails instead of exposing the site.
    async fn traefik_flavour(&self) -> TraefikMiddlewareApi {
        let crds: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        match crds.get_opt("middlewares.traefik.io").await {
            Ok(Some(crd)) => {
                let schema = serde_json::to_string(&crd.spec).unwrap_or_default();
                if schema.contains("\"ipAllowList\"") {
                    TRAEFIK_V3
                } else {
                    TRAEFIK_V2
                }
            }
            _ => TRAEFIK_V3,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_resets() {
        let b = Backoff::default();
        let delays: Vec<_> = (0..12).map(|_| b.next_delay("u1")).collect();
        assert_eq!(delays[0], Duration::from_millis(500));
        assert_eq!(delays[1], Duration::from_secs(1));
        assert_eq!(delays[2], Duration::from_secs(2));
        assert!(delays.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(*delays.last().unwrap(), Backoff::CAP);
        assert_eq!(b.next_delay("u2"), Duration::from_millis(500), "per object");
        b.reset("u1");
        assert_eq!(b.next_delay("u1"), Duration::from_millis(500));
    }
}
