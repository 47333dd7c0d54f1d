//! The DemoWeb controller's wiring: reflectors over DemoWebs, children and references, the
//! mappers from a reference to the DemoWebs that use it, and the controller runtime.

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use demoweb_crd::conditions::reason;
use demoweb_crd::{AzureIdentity, AzureIdentityBinding, DemoWeb};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta};
use kube::api::DynamicObject;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Controller;
use kube::runtime::events::EventType;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Predicate, PredicateConfig, WatchStreamExt, predicates, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::context::{AllowlistApis, Context, Sites, Stores};
use super::ingress;
use super::kong::{self, KongClusterPluginType, KongPluginType};
use super::pods::{PodIndex, pod_watch};
use super::reconcile;
use crate::error::chain;
use crate::identity;
use crate::stored::{Child, Owned, Stored, controller_uid, trim_meta};
use crate::vocabulary;
use crate::write::drift::Verified;
use crate::write::events::publish;

/// A reflector over one child kind, limited to what this operator manages; its stream triggers
/// reconciles of the owner, its store serves "compare before you write". The store keeps only
/// what reconcile reads ([`Stored`]); a deleted child's entry in `verified` is dropped with it.
/// `owned` learns which DemoWeb controls each child (the inventory sweep's index).
///
/// Only news reconciles the owner: a child deleted, changed since it was last known to hold what
/// we want (its [`Child::MARKER`] moved: someone else's edit), or whose state reconcile reads
/// moved ([`Stored::read_state`]: a Deployment's rollout). The echo of the operator's own write
/// is not news, nor a status update that reconcile does not read (an autoscaler's metrics).
fn child_reflector<K: Child>(
    client: &Client,
    namespace: Option<&str>,
    verified: &Arc<Verified>,
    owned: &Arc<Owned>,
) -> (
    Store<K::Stored>,
    impl futures::Stream<Item = Result<K::Stored, watcher::Error>> + Send + 'static,
) {
    let (reader, writer) = reflector::store();
    let config = watcher::Config::default().labels(&vocabulary::managed_selector());
    let (verified, owned) = (verified.clone(), owned.clone());
    let current = verified.clone();
    // The read state last seen, per child uid, of the children in the store.
    let mut states = HashMap::<String, u64>::new();
    let store = reader.clone();
    // After the store took the event in: an object the index names and the store lacks is gone.
    let stream = K::Stored::events(client, namespace, config)
        .default_backoff()
        .reflect(writer)
        .inspect_ok(move |event| match event {
            watcher::Event::Delete(obj) => {
                verified.forget(obj.meta());
                if let (Some(owner), Some(name)) = (controller_uid(obj.meta()), &obj.meta().name) {
                    owned.gone(K::KIND, owner, name);
                }
            }
            watcher::Event::Apply(obj) | watcher::Event::InitApply(obj) => {
                owned.saw(K::KIND, obj.meta());
            }
            watcher::Event::Init | watcher::Event::InitDone => {}
        })
        .touched_objects()
        .try_filter(move |obj| {
            let meta = obj.meta();
            let uid = meta.uid.clone().unwrap_or_default();
            // A deleted child is gone from the store, which has already taken the event in.
            let news = if store.get(&ObjectRef::from_obj(obj)).is_none() {
                states.remove(&uid);
                true
            } else {
                let state_moved = obj
                    .read_state()
                    .is_some_and(|state| states.insert(uid, state) != Some(state));
                state_moved || !current.is_current(meta, K::MARKER)
            };
            futures::future::ready(news)
        });
    (reader, stream)
}

/// A reflector over a referenced kind: all objects, in scope.
fn reference_reflector<K>(
    api: Api<K>,
) -> (
    Store<K>,
    impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(|obj| trim_meta(obj.meta_mut()))
        .reflect(writer)
        .touched_objects();
    (reader, stream)
}

/// DemoWebs whose Ingress depends on this IngressClass (named, or defaulted).
fn demowebs_for_class(class: &IngressClass, demowebs: &Store<DemoWeb>) -> Vec<ObjectRef<DemoWeb>> {
    let name = class.metadata.name.as_deref();
    demowebs
        .state()
        .iter()
        .filter(|dw| {
            dw.spec.ingress.as_ref().is_some_and(|i| {
                !i.allowed_source_ranges.is_empty()
                    && (i.class_name.is_none() || i.class_name.as_deref() == name)
            })
        })
        .map(|dw| ObjectRef::from_obj(&**dw))
        .collect()
}

/// DemoWebs whose allowlist is written by one of these controller families: the ones whose plan
/// a change of that family's CRD can change.
fn demowebs_for_families(
    families: &[ingress::ControllerKind],
    demowebs: &Store<DemoWeb>,
    classes: &Store<IngressClass>,
) -> Vec<ObjectRef<DemoWeb>> {
    let classes: Vec<IngressClass> = classes.state().iter().map(|c| (**c).clone()).collect();
    demowebs
        .state()
        .iter()
        .filter(|dw| ingress::allowlist_family(dw, &classes).is_some_and(|f| families.contains(&f)))
        .map(|dw| ObjectRef::from_obj(&**dw))
        .collect()
}

/// DemoWebs whose credentials name this Secret.
fn demowebs_for_secret(
    secret: &PartialObjectMeta<Secret>,
    demowebs: &Store<DemoWeb>,
) -> Vec<ObjectRef<DemoWeb>> {
    let (ns, name) = (
        secret.metadata.namespace.as_deref(),
        secret.metadata.name.as_deref(),
    );
    demowebs
        .state()
        .iter()
        .filter(|dw| {
            dw.metadata.namespace.as_deref() == ns
                && dw.spec.credentials.as_ref().map(|c| c.secret_name.as_str()) == name
        })
        .map(|dw| ObjectRef::from_obj(&**dw))
        .collect()
}

/// Decodes one watched DemoWeb; `Err` carries why it is not a DemoWeb this version understands.
fn decode_demoweb(obj: &DynamicObject) -> Result<DemoWeb, String> {
    let value = serde_json::to_value(obj).map_err(|err| err.to_string())?;
    let mut dw: DemoWeb = serde_json::from_value(value).map_err(|err| err.to_string())?;
    keep_other_status_writers(&mut dw.metadata);
    Ok(dw)
}

/// Trims a DemoWeb's metadata for the store ([`trim_meta`]), but keeps from its managed fields
/// who else wrote its status and when (without the fields themselves): [`wanted_changes`]
/// reconciles when that changes.
fn keep_other_status_writers(meta: &mut ObjectMeta) {
    let writers: Vec<ManagedFieldsEntry> = meta
        .managed_fields
        .take()
        .into_iter()
        .flatten()
        .filter(|entry| {
            entry.subresource.as_deref() == Some("status")
                && entry.manager.as_deref() != Some(vocabulary::MANAGER)
        })
        .map(|entry| ManagedFieldsEntry {
            fields_v1: None,
            ..entry
        })
        .collect();
    trim_meta(meta);
    meta.managed_fields = (!writers.is_empty()).then_some(writers);
}

/// A stand-in that removes an undecodable DemoWeb from the store (its children stay as they are).
fn tombstone(obj: &DynamicObject) -> DemoWeb {
    let mut dw = DemoWeb::new(
        &obj.name_any(),
        demoweb_crd::DemoWebSpec {
            replicas: 0,
            gitrepo: String::new(),
            git_ref: None,
            path: None,
            sync: None,
            credentials: None,
            image: None,
            resources: None,
            ingress: None,
            identity: None,
            autoscaling: None,
        },
    );
    dw.metadata.namespace = obj.metadata.namespace.clone();
    dw.metadata.uid = obj.metadata.uid.clone();
    dw
}

/// The DemoWeb watch, decoding each object on its own: one object this version cannot decode
/// (written under an older or hand-made CRD) is reported with a Warning Event and skipped,
/// instead of failing the watch and stalling every other DemoWeb. A DemoWeb's delete event evicts
/// what is remembered of it (`sites`, and its entry in the children's owner index `owned`).
fn tolerant_demoweb_reflector(
    client: &Client,
    namespace: Option<&str>,
    recorder: crate::write::events::Recorder,
    metrics: Arc<crate::metrics::Metrics>,
    sites: Arc<Sites>,
    owned: Arc<Owned>,
) -> (
    Store<DemoWeb>,
    impl futures::Stream<Item = Result<DemoWeb, watcher::Error>> + Send + 'static,
) {
    let resource = kube::api::ApiResource::erase::<DemoWeb>(&());
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let (reader, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .filter_map(move |event| {
            let (recorder, metrics) = (recorder.clone(), metrics.clone());
            let (sites, owned) = (sites.clone(), owned.clone());
            async move {
                let unreadable = sites.clone();
                let report = |obj: DynamicObject, error: String| async move {
                    let version = obj.metadata.resource_version.clone();
                    let uid = obj.metadata.uid.clone().unwrap_or_default();
                    let first = unreadable.with(&uid, |s| {
                        let first = s.unreadable != version;
                        s.unreadable = version;
                        first
                    });
                    tracing::warn!(
                        namespace = obj.metadata.namespace.as_deref().unwrap_or_default(),
                        name = obj.name_any(),
                        %error,
                        "skipping a DemoWeb this version cannot read"
                    );
                    if first {
                        let reference = ObjectReference {
                            api_version: Some("baeke.info/v1".to_owned()),
                            kind: Some("DemoWeb".to_owned()),
                            name: obj.metadata.name.clone(),
                            namespace: obj.metadata.namespace.clone(),
                            uid: obj.metadata.uid.clone(),
                            ..ObjectReference::default()
                        };
                        publish(
                            &recorder,
                            &reference,
                            &metrics,
                            EventType::Warning,
                            reason::INVALID_SPEC,
                            format!("the operator cannot read this DemoWeb and leaves its children as they are: {error}"),
                        )
                        .await;
                    }
                };
                use watcher::Event as E;
                let event = match event {
                    Err(err) => return Some(Err(err)),
                    Ok(event) => event,
                };
                Some(Ok(match event {
                    E::Init => E::Init,
                    E::InitDone => E::InitDone,
                    E::InitApply(obj) => match decode_demoweb(&obj) {
                        Ok(dw) => E::InitApply(dw),
                        Err(error) => {
                            report(obj, error).await;
                            return None;
                        }
                    },
                    E::Apply(obj) => match decode_demoweb(&obj) {
                        Ok(dw) => E::Apply(dw),
                        Err(error) => {
                            let gone = tombstone(&obj);
                            report(obj, error).await;
                            E::Delete(gone)
                        }
                    },
                    E::Delete(obj) => {
                        if let Some(uid) = obj.metadata.uid.as_deref() {
                            sites.evict(uid);
                            owned.forget_owner(uid);
                        }
                        match decode_demoweb(&obj) {
                            Ok(dw) => E::Delete(dw),
                            Err(_) => E::Delete(tombstone(&obj)),
                        }
                    }
                }))
            }
        })
        .reflect(writer)
        .applied_objects();
    (reader, stream)
}

/// The changes to a DemoWeb that reconcile it: its spec (the generation), labels, annotations,
/// and a status write by anyone but the operator (their managed-fields entries, which the store
/// keeps: [`keep_other_status_writers`]). The operator's own status writes, after every
/// reconcile that changed something, move none of these, so they do not come back as one more
/// reconcile; a status someone else edited is put right at once, not at the next resync.
fn wanted_changes(dw: &DemoWeb) -> Option<u64> {
    predicates::generation
        .combine(predicates::labels)
        .combine(predicates::annotations)
        .combine(other_status_writes)
        .hash_property(dw)
}

/// Who else wrote the DemoWeb's status, and when.
fn other_status_writes(dw: &DemoWeb) -> Option<u64> {
    let writers = dw.metadata.managed_fields.as_ref()?;
    let mut hasher = std::hash::DefaultHasher::new();
    for entry in writers {
        (&entry.manager, &entry.operation, &entry.api_version).hash(&mut hasher);
        entry.time.as_ref().map(|t| t.0).hash(&mut hasher);
    }
    Some(hasher.finish())
}

/// Settings of the controller that come from the command line.
pub struct ControllerConfig {
    pub namespace: Option<String>,
    /// Whether the aad-pod-identity API is served (else identity stores stay empty).
    pub identity_served: bool,
    pub reporter: kube::runtime::events::Reporter,
    /// Requeue after a successful reconcile.
    pub resync_period: Duration,
    /// Requeue while stalled (capped at `resync_period`).
    pub stalled_requeue_period: Duration,
    /// How many reconciles run at once (see [`runtime_config`]).
    pub max_concurrent_reconciles: u16,
    /// Set to not ready until every store below has its first full list.
    pub readiness: crate::server::Readiness,
}

/// Triggers for one DemoWeb that arrive within this window are served by one reconcile: the watch
/// events of the children one reconcile wrote (and of the Deployment controller's first status
/// update) lead to one more pass, which writes the status once.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// Every DemoWeb due is started at once: what bounds the work in flight is the reconcile's turns
/// with the API server ([`super::context::Turns`]), not the runtime, so that a reconcile waiting
/// to report does not keep a new DemoWeb from its children. A started reconcile waiting for a turn
/// holds only its DemoWeb's `Arc`; the runtime still runs one reconcile per DemoWeb at a time.
fn runtime_config() -> kube::runtime::controller::Config {
    kube::runtime::controller::Config::default()
        .concurrency(0)
        .debounce(DEBOUNCE)
}

/// Runs the DemoWeb controller until `shutdown` resolves.
pub async fn run(
    client: Client,
    config: ControllerConfig,
    metrics: Arc<crate::metrics::Metrics>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let ns = config.namespace.as_deref();
    let recorder = crate::write::events::Recorder::new(client.clone(), config.reporter.clone());
    let (sites, owned) = (Arc::new(Sites::default()), Arc::new(Owned::default()));
    let (demoweb_store, demoweb_events) = tolerant_demoweb_reflector(
        &client,
        ns,
        recorder.clone(),
        metrics.clone(),
        sites.clone(),
        owned.clone(),
    );
    let verified = Arc::new(Verified::default());
    let (deployments, deployment_events) =
        child_reflector::<Deployment>(&client, ns, &verified, &owned);
    let (config_maps, config_map_events) =
        child_reflector::<ConfigMap>(&client, ns, &verified, &owned);
    let (services, service_events) = child_reflector::<Service>(&client, ns, &verified, &owned);
    let (ingresses, ingress_events) = child_reflector::<Ingress>(&client, ns, &verified, &owned);
    let (service_accounts, service_account_events) =
        child_reflector::<ServiceAccount>(&client, ns, &verified, &owned);
    let (disruption_budgets, disruption_budget_events) =
        child_reflector::<PodDisruptionBudget>(&client, ns, &verified, &owned);
    let (autoscalers, autoscaler_events) =
        child_reflector::<HorizontalPodAutoscaler>(&client, ns, &verified, &owned);
    let (ingress_classes, class_events) =
        reference_reflector::<IngressClass>(Api::all(client.clone()));
    let crd = |name: &str| {
        let api: Api<CustomResourceDefinition> = Api::all(client.clone());
        let (reader, writer) = reflector::store();
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let stream = watcher(api, config)
            .default_backoff()
            .reflect(writer)
            .touched_objects();
        (reader, stream)
    };
    let (traefik_crd, traefik_crd_events) = crd(AllowlistApis::TRAEFIK);
    let (traefik_legacy_crd, traefik_legacy_crd_events) = crd(AllowlistApis::TRAEFIK_LEGACY);
    let (kong_crd, kong_crd_events) = crd(AllowlistApis::KONG);
    let allowlist_apis = AllowlistApis {
        traefik: traefik_crd,
        traefik_legacy: traefik_legacy_crd,
        kong: kong_crd,
    };
    // Kong plugins a DemoWeb names next to its allowlist: their types decide whether it is
    // exposed, so a plugin created, changed or deleted re-queues the DemoWebs naming it.
    let plugin_api: Api<KongPluginType> = match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let (kong_plugins, kong_plugin_events) = kong::plugin_reflector(&client, plugin_api);
    let (kong_cluster_plugins, kong_cluster_plugin_events) =
        kong::plugin_reflector(&client, Api::<KongClusterPluginType>::all(client.clone()));
    // Secrets are watched as metadata only: a credentials Secret that appears or changes
    // re-queues the DemoWebs naming it, and no Secret content is held in memory.
    let secret_api: Api<PartialObjectMeta<Secret>> = match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let secret_events = watcher(secret_api, watcher::Config::default())
        .default_backoff()
        .touched_objects();
    // The sites' pods, trimmed to what diagnosis reads; a change of what it reads reconciles
    // the pod's DemoWeb.
    let pods = PodIndex::default();
    let pod_events = pod_watch(&client, ns, pods.clone());

    let controller = Controller::for_stream(
        demoweb_events.predicate_filter(wanted_changes, PredicateConfig::default()),
        demoweb_store.clone(),
    )
    .with_config(runtime_config());

    let (bindings, identities, controller) = if config.identity_served {
        let (binding_api, identity_api): (Api<AzureIdentityBinding>, Api<AzureIdentity>) = match ns
        {
            Some(ns) => (
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
            ),
            None => (Api::all(client.clone()), Api::all(client.clone())),
        };
        let (bindings, binding_events) = reference_reflector(binding_api);
        let (identities, identity_events) = reference_reflector(identity_api);
        let (dws, dws2, b2) = (
            demoweb_store.clone(),
            demoweb_store.clone(),
            bindings.clone(),
        );
        let controller = controller
            .watches_stream(binding_events, move |b| {
                identity::demowebs_for_binding(&b, &dws)
            })
            .watches_stream(identity_events, move |i| {
                identity::demowebs_for_identity(&i, &b2, &dws2)
            });
        (bindings, identities, controller)
    } else {
        // Not served: empty stores whose writers are gone, which `wait_for_references` accepts.
        let (bindings, _) = reflector::store();
        let (identities, _) = reflector::store();
        (bindings, identities, controller)
    };

    let stores = Stores {
        references_waited: Default::default(),
        verified,
        owned,
        demowebs: demoweb_store.clone(),
        deployments,
        config_maps,
        services,
        ingresses,
        service_accounts,
        disruption_budgets,
        autoscalers,
        ingress_classes,
        bindings,
        identities,
        allowlist_apis,
        kong_plugins,
        kong_cluster_plugins,
        pods,
    };
    let sync_tracker =
        tokio::spawn(stores.track_sync(config.identity_served, config.readiness.clone()));
    let mut ctx = Context::new(client, recorder, metrics, stores, sites);
    ctx.requeue = config.resync_period;
    ctx.stalled_requeue = config.stalled_requeue_period.min(config.resync_period);
    ctx.turns = super::context::Turns::new(config.max_concurrent_reconciles);
    let ctx = Arc::new(ctx);
    let class_store = demoweb_store.clone();
    // Per-site series are read from this store: it sees every deletion, re-list and tombstone.
    ctx.metrics.watch_sites(demoweb_store.clone());
    let api_mapper = |families: &'static [ingress::ControllerKind]| {
        let (dws, classes) = (demoweb_store.clone(), ctx.stores.ingress_classes.clone());
        move |_: CustomResourceDefinition| demowebs_for_families(families, &dws, &classes)
    };
    const TRAEFIK: &[ingress::ControllerKind] = &[
        ingress::ControllerKind::Traefik,
        ingress::ControllerKind::TraefikByName,
    ];
    const KONG: &[ingress::ControllerKind] = &[ingress::ControllerKind::Kong];
    let secret_store = demoweb_store.clone();
    let (plugin_store, cluster_plugin_store) = (demoweb_store.clone(), demoweb_store.clone());
    controller
        .owns_stream(deployment_events)
        .owns_stream(config_map_events)
        .owns_stream(service_events)
        .owns_stream(ingress_events)
        .owns_stream(service_account_events)
        .owns_stream(disruption_budget_events)
        .owns_stream(autoscaler_events)
        .watches_stream(class_events, move |c| demowebs_for_class(&c, &class_store))
        .watches_stream(traefik_crd_events, api_mapper(TRAEFIK))
        .watches_stream(traefik_legacy_crd_events, api_mapper(TRAEFIK))
        .watches_stream(kong_crd_events, api_mapper(KONG))
        .watches_stream(kong_plugin_events, move |p| {
            kong::demowebs_for_plugin(&p, &plugin_store)
        })
        .watches_stream(kong_cluster_plugin_events, move |p| {
            kong::demowebs_for_plugin(&p, &cluster_plugin_store)
        })
        .watches_stream(secret_events, move |s| {
            demowebs_for_secret(&s, &secret_store)
        })
        .watches_stream(pod_events, |pod| pod.site())
        .graceful_shutdown_on(shutdown)
        .run(reconcile::reconcile, reconcile::error_policy, ctx.clone())
        .for_each(|result| async move {
            match result {
                Ok((obj, _)) => tracing::debug!(object = %obj, "reconciled"),
                Err(kube::runtime::controller::Error::ReconcilerFailed(err, obj)) => {
                    tracing::debug!(object = %obj, error = %chain(&err), "reconcile failed")
                }
                // A child's event for a DemoWeb that is gone (deleted with its namespace, or
                // its children being collected): nothing to do, and nothing to warn about.
                Err(kube::runtime::controller::Error::ObjectNotFound(obj)) => {
                    tracing::debug!(object = %obj, "not reconciled: the DemoWeb is gone")
                }
                Err(err) => tracing::warn!(error = %err, "controller"),
            }
        })
        .await;
    sync_tracker.abort();
    ctx.metrics.forget_sites();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demoweb::desired::tests::seed;

    #[test]
    fn secrets_and_allowlist_apis_map_to_the_demowebs_that_use_them() {
        let (reader, mut writer) = reflector::store::<DemoWeb>();
        let mut with_creds = seed();
        with_creds.metadata.name = Some("private".into());
        with_creds.spec.credentials = Some(demoweb_crd::demoweb::CredentialsSpec {
            secret_name: "git-creds".into(),
        });
        let mut traefik = seed();
        traefik.metadata.name = Some("edge".into());
        traefik.spec.ingress = Some(demoweb_crd::demoweb::IngressSpec {
            host: "a.example.com".into(),
            path: "/".into(),
            class_name: Some("traefik".into()),
            tls: None,
            allowed_source_ranges: vec!["10.0.0.0/8".into()],
            annotations: Default::default(),
        });
        for dw in [seed(), with_creds, traefik] {
            writer.apply_watcher_event(&watcher::Event::Apply(dw));
        }
        let secret = |ns: &str, name: &str| PartialObjectMeta::<Secret> {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let names = |refs: Vec<ObjectRef<DemoWeb>>| -> Vec<String> {
            refs.into_iter().map(|r| r.name).collect()
        };
        assert_eq!(
            names(demowebs_for_secret(
                &secret("default", "git-creds"),
                &reader
            )),
            ["private"]
        );
        assert!(demowebs_for_secret(&secret("other", "git-creds"), &reader).is_empty());
        assert!(demowebs_for_secret(&secret("default", "tls"), &reader).is_empty());

        let (classes, _) = reflector::store::<IngressClass>();
        let traefik_kinds = [
            ingress::ControllerKind::Traefik,
            ingress::ControllerKind::TraefikByName,
        ];
        assert_eq!(
            names(demowebs_for_families(&traefik_kinds, &reader, &classes)),
            ["edge"]
        );
        assert!(
            demowebs_for_families(&[ingress::ControllerKind::Kong], &reader, &classes).is_empty()
        );
    }

    #[test]
    fn class_changes_map_to_demowebs_with_allowlists() {
        let (reader, mut writer) = reflector::store::<DemoWeb>();
        let mut with_allowlist = seed();
        with_allowlist.spec.ingress = Some(demoweb_crd::demoweb::IngressSpec {
            host: "a.example.com".into(),
            path: "/".into(),
            class_name: Some("edge".into()),
            tls: None,
            allowed_source_ranges: vec!["10.0.0.0/8".into()],
            annotations: Default::default(),
        });
        let mut other = seed();
        other.metadata.name = Some("plain".into());
        writer.apply_watcher_event(&watcher::Event::Apply(with_allowlist));
        writer.apply_watcher_event(&watcher::Event::Apply(other));
        let class = IngressClass {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("edge".into()),
                ..Default::default()
            },
            spec: None,
        };
        let refs = demowebs_for_class(&class, &reader);
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].name, "demoweb1");
    }

    #[test]
    fn status_writes_reconcile_only_when_someone_else_made_them() {
        let entry = |manager: &str, subresource: Option<&str>, second: i64| ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some("Update".into()),
            subresource: subresource.map(Into::into),
            api_version: Some("baeke.info/v1".into()),
            time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                jiff::Timestamp::from_second(second).unwrap(),
            )),
            fields_v1: Some(Default::default()),
            fields_type: Some("FieldsV1".into()),
        };
        let stored = |entries: Vec<ManagedFieldsEntry>| {
            let mut dw = seed();
            dw.metadata.managed_fields = Some(entries);
            keep_other_status_writers(&mut dw.metadata);
            dw
        };
        let ours = stored(vec![
            entry(vocabulary::MANAGER, None, 1),
            entry("kubectl-client-side-apply", None, 1),
            entry(vocabulary::MANAGER, Some("status"), 1),
        ]);
        assert!(ours.metadata.managed_fields.is_none(), "nothing to keep");
        let ours_again = stored(vec![
            entry(vocabulary::MANAGER, None, 1),
            entry("kubectl-client-side-apply", None, 1),
            entry(vocabulary::MANAGER, Some("status"), 9),
        ]);
        assert_eq!(wanted_changes(&ours), wanted_changes(&ours_again));

        let edited = stored(vec![
            entry(vocabulary::MANAGER, Some("status"), 1),
            entry("kubectl-patch", Some("status"), 5),
        ]);
        let kept = edited.metadata.managed_fields.as_ref().expect("kept");
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].manager.as_deref(), Some("kubectl-patch"));
        assert!(kept[0].fields_v1.is_none(), "without the fields");
        assert_ne!(wanted_changes(&ours), wanted_changes(&edited));
        let edited_again = stored(vec![entry("kubectl-patch", Some("status"), 6)]);
        assert_ne!(wanted_changes(&edited), wanted_changes(&edited_again));
    }
}
