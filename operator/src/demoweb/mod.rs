//! The DemoWeb controller: wiring of watches and stores, and reconcile as a pipeline
//! identify → gather → validate → build → apply → status → requeue.
//!
//! What a reconcile guarantees, whatever triggered it:
//! - children (ServiceAccount for WorkloadIdentity, ConfigMap, Deployment, HorizontalPodAutoscaler,
//!   PodDisruptionBudget, Service, allowlist object, Ingress) are server-side applied in that order, each only when the live object lacks
//!   a wanted field or carries an older applied-hash — so an unchanged DemoWeb costs no writes;
//! - an object of a child's name that this DemoWeb does not control is never written, adopted or
//!   deleted (NameConflict); an allowlist that cannot be expressed creates no Ingress
//!   (UnsupportedIngressClass), and one whose API is missing also withdraws the existing one
//!   (AllowlistApiMissing); refused annotations never reach the Ingress (AnnotationsRefused);
//!   an invalid spec, a missing Secret or an unresolvable identity applies nothing at all, so
//!   the last good children keep serving;
//! - what decides a plan is watched: IngressClasses, the CRDs of the allowlist APIs, credentials
//!   Secrets (metadata only), identity bindings and identities re-queue exactly the DemoWebs
//!   that use them;
//! - children this DemoWeb controls but no longer wants are deleted, including the seed Kopf
//!   operator's `<name>-deployment`; a ServiceAccount only once the live Deployment's pods no
//!   longer use it, so no order of writes can leave a rollout on a deleted account;
//! - while the site autoscales, the Deployment's replica count is the autoscaler's: our apply
//!   leaves `spec.replicas` out, after handing the field over (see `hand_over_replicas`), so
//!   neither a reconcile nor a resync resets a scaled Deployment;
//! - status is computed from what was applied and written only when it differs.
//!
//! API errors are returned to the runtime, which backs off per object (`error_policy`).

pub mod desired;
pub mod ingress;
pub mod status;

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use demoweb_crd::conditions::{STALLED, reason};
use demoweb_crd::demoweb::IdentityStatus;
use demoweb_crd::validation::summarize;
use demoweb_crd::{AzureIdentity, AzureIdentityBinding, DemoWeb, DemoWebStatus, IdentityMode};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tracing::Instrument;

use crate::apply::{
    Applied, Child, FIELD_MANAGER, Marker, Verified, Writer, applied_hash, get_opt,
    owned_only_by_us, publish, stamp_hash, trim_meta,
};
use crate::context::{AllowlistApis, Context, Stores};
use crate::error::{Error, chain};
use crate::identity::{self, ResolvedIdentity};
use desired::GitAuth;
use ingress::{IngressCapabilities, IngressPlan};
use status::{StatusInput, UserError};

/// Names the DemoWeb being reconciled.
struct Id {
    namespace: String,
    name: String,
    uid: String,
}

/// Step 1: the object's identity, or a named error.
fn identify(dw: &DemoWeb) -> Result<Id, Error> {
    Ok(Id {
        namespace: dw.namespace().ok_or(Error::MissingMetadata("namespace"))?,
        name: dw
            .metadata
            .name
            .clone()
            .ok_or(Error::MissingMetadata("name"))?,
        uid: dw
            .metadata
            .uid
            .clone()
            .ok_or(Error::MissingMetadata("uid"))?,
    })
}

/// What a DemoWeb references, read from stores (the Secret's key names are the exception:
/// Secrets are not cached, to keep their contents out of the operator's memory).
struct Gathered {
    secret_keys: Option<BTreeSet<String>>,
    identity: Option<Result<ResolvedIdentity, identity::ResolveError>>,
    classes: Vec<IngressClass>,
    capabilities: IngressCapabilities,
}

/// Step 2.
async fn gather(dw: &DemoWeb, id: &Id, ctx: &Context) -> Result<Gathered, Error> {
    if !ctx
        .stores
        .wait_for_references(Duration::from_secs(30))
        .await
    {
        tracing::warn!("IngressClass or identity caches are not filled yet; reconciling anyway");
    }
    let secret_keys = match &dw.spec.credentials {
        Some(c) => {
            let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &id.namespace);
            get_opt(&api, "Secret", &c.secret_name).await?.map(|s| {
                s.data
                    .iter()
                    .flat_map(|d| d.keys())
                    .chain(s.string_data.iter().flat_map(|d| d.keys()))
                    .cloned()
                    .collect()
            })
        }
        None => None,
    };
    let identity = dw.spec.identity.as_ref().map(|spec| {
        identity::resolve(
            &id.namespace,
            spec,
            &ctx.stores.bindings,
            &ctx.stores.identities,
        )
    });
    let wants_allowlist = dw
        .spec
        .ingress
        .as_ref()
        .is_some_and(|i| !i.allowed_source_ranges.is_empty());
    let capabilities = if wants_allowlist {
        ctx.capabilities()?
    } else {
        IngressCapabilities::default()
    };
    Ok(Gathered {
        secret_keys,
        identity,
        classes: ctx
            .stores
            .ingress_classes
            .state()
            .iter()
            .map(|c| (**c).clone())
            .collect(),
        capabilities,
    })
}

/// A spec we can build from.
struct Valid {
    auth: GitAuth,
    identity: Option<ResolvedIdentity>,
}

/// Step 3: the schema's rules again (the object may predate them), credentials, identity.
fn validate(dw: &DemoWeb, found: &Gathered) -> Result<Valid, UserError> {
    dw.validate().map_err(|errors| UserError {
        reason: reason::INVALID_SPEC,
        message: summarize(&errors),
    })?;
    let auth = desired::git_auth(dw, found.secret_keys.as_ref())?;
    let identity = match &found.identity {
        None => None,
        Some(Ok(resolved)) => Some(resolved.clone()),
        Some(Err(err)) => {
            return Err(UserError {
                reason: err.reason(),
                message: err.to_string(),
            });
        }
    };
    Ok(Valid { auth, identity })
}

/// Every child a valid spec asks for.
struct Children {
    service_account: Option<ServiceAccount>,
    config_map: ConfigMap,
    deployment: Deployment,
    autoscaler: Option<HorizontalPodAutoscaler>,
    disruption_budget: Option<PodDisruptionBudget>,
    service: Service,
    ingress: IngressPlan,
}

/// Step 4: pure.
fn build(dw: &DemoWeb, valid: &Valid, found: &Gathered) -> Children {
    let pod_identity = valid
        .identity
        .as_ref()
        .map(|id| identity::pod_identity(dw, id))
        .unwrap_or_default();
    let service_account = valid.identity.as_ref().and_then(|id| {
        identity::desired_service_account(dw, id).map(|mut sa| {
            let ours = desired::child_meta(dw, dw.name_any(), "identity");
            sa.metadata.owner_references = ours.owner_references;
            sa.metadata.namespace = ours.namespace;
            let mut labels = sa.metadata.labels.take().unwrap_or_default();
            labels.extend(ours.labels.unwrap_or_default());
            sa.metadata.labels = Some(labels);
            sa
        })
    });
    Children {
        service_account,
        config_map: desired::desired_config_map(dw),
        deployment: desired::desired_deployment(dw, &valid.auth, &pod_identity),
        autoscaler: desired::desired_autoscaler(dw),
        disruption_budget: desired::desired_disruption_budget(dw),
        service: desired::desired_service(dw),
        ingress: ingress::plan_ingress(dw, &found.classes, &found.capabilities),
    }
}

/// What apply did, for status.
#[derive(Default)]
struct Report {
    deployment: Option<Deployment>,
    deployment_hash: Option<String>,
    problems: Vec<UserError>,
    url: Option<String>,
    identity: Option<IdentityStatus>,
    /// A watched child was created or changed: its watch event reconciles this DemoWeb again.
    changed_children: bool,
}

/// The live child: the store's trimmed copy when it is there, else the whole object from the API
/// (it may exist without our labels — someone else's object, or ours with the labels edited away).
async fn live<K>(
    store: &Store<K>,
    api: &Api<K>,
    kind: &str,
    name: &str,
    ns: &str,
) -> Result<Option<K>, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    match store.get(&ObjectRef::new(name).within(ns)) {
        Some(obj) => Ok(Some((*obj).clone())),
        None => get_opt(api, kind, name).await,
    }
}

/// Applies one typed child unless it is foreign or current; records a conflict as a problem.
async fn ensure<K>(
    w: &Writer<'_>,
    ctx: &Context,
    store: &Store<K>,
    ns: &str,
    mut desired: K,
    report: &mut Report,
) -> Result<(Option<K>, String), Error>
where
    K: Child,
{
    let kind = K::kind(&()).to_string();
    let hash = stamp_hash(&kind, &mut desired)?;
    let name = desired.meta().name.clone().unwrap_or_default();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    let current = live(store, &api, &kind, &name, ns).await?;
    Ok(
        match w.apply(&api, &kind, current, &desired, K::MARKER).await? {
            Applied::Conflict(message) => {
                report.problems.push(UserError {
                    reason: reason::NAME_CONFLICT,
                    message,
                });
                (None, hash)
            }
            applied => {
                report.changed_children |=
                    matches!(applied, Applied::Created(_) | Applied::Updated(_));
                (applied.object().cloned(), hash)
            }
        },
    )
}

/// Applies an optional child, or deletes the one this DemoWeb controls when it is not wanted.
async fn ensure_or_delete<K>(
    w: &Writer<'_>,
    ctx: &Context,
    store: &Store<K>,
    id: &Id,
    name: String,
    desired: Option<K>,
    report: &mut Report,
) -> Result<(), Error>
where
    K: Child,
{
    let ns = id.namespace.as_str();
    match desired {
        Some(desired) => {
            ensure(w, ctx, store, ns, desired, report).await?;
        }
        None => {
            let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
            let current = store
                .get(&ObjectRef::new(&name).within(ns))
                .map(|o| (*o).clone());
            w.delete_if_ours(&api, &K::kind(&()), current).await?;
        }
    }
    Ok(())
}

/// Before our apply stops sending the Deployment's `spec.replicas` (autoscaling switched on), a
/// second field manager co-owns it at its current value: server-side apply removes a field the
/// applier no longer sends when nobody else owns it, and the Deployment would fall back to the
/// default of 1 replica until the autoscaler caught up. Once the autoscaler (or `kubectl
/// scale`) writes the count through the scale subresource it owns the field alone. Switching
/// autoscaling off, our forced apply takes the field back with `spec.replicas`. Ownership is read
/// from the Deployment's `managedFields`, which the store does not keep: the Deployment is read
/// whole, but only when our apply is about to change it — when the applied-hash of the store's
/// copy already matches, our last apply left `spec.replicas` out and there is nothing to hand over.
async fn hand_over_replicas(
    w: &Writer<'_>,
    ctx: &Context,
    ns: &str,
    desired: &Deployment,
) -> Result<(), Error> {
    let wants_replicas = desired.spec.as_ref().is_some_and(|s| s.replicas.is_some());
    let name = desired.metadata.name.clone().unwrap_or_default();
    let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), ns);
    if wants_replicas {
        return Ok(());
    }
    let hash = stamp_hash("Deployment", &mut desired.clone())?;
    let stored = ctx
        .stores
        .deployments
        .get(&ObjectRef::new(&name).within(ns));
    if stored.is_some_and(|d| applied_hash(&d.metadata) == Some(hash.as_str())) {
        return Ok(());
    }
    let Some(live) = get_opt(&api, "Deployment", &name).await? else {
        return Ok(());
    };
    if !crate::apply::is_controlled_by(&live.metadata, w.owner_uid)
        || !owned_only_by_us(&live.metadata, &["spec", "replicas"])
    {
        return Ok(());
    }
    let Some(replicas) = live.spec.as_ref().and_then(|s| s.replicas) else {
        return Ok(());
    };
    let body = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"replicas": replicas},
    });
    w.hand_over(&api, "Deployment", &name, &body).await
}

fn dynamic_api(ctx: &Context, ns: &str, obj: &DynamicObject) -> (Api<DynamicObject>, String) {
    let (resource, kind) = ingress::allowlist_resource(obj);
    (
        Api::namespaced_with(ctx.client.clone(), ns, &resource),
        kind,
    )
}

/// Step 5: apply in dependency order, then delete what this DemoWeb controls but no longer wants;
/// one Event tells what changed, also when a write failed midway.
async fn apply_all(
    dw: &DemoWeb,
    id: &Id,
    ctx: &Context,
    children: Children,
    valid: &Valid,
) -> Result<Report, Error> {
    let owner_ref = dw.object_ref(&());
    let w = Writer::new(
        &id.uid,
        &owner_ref,
        &ctx.recorder,
        &ctx.metrics,
        &ctx.stores.verified,
    );
    let result = apply_children(dw, id, ctx, children, valid, &w).await;
    w.publish_changes().await;
    result
}

async fn apply_children(
    dw: &DemoWeb,
    id: &Id,
    ctx: &Context,
    children: Children,
    valid: &Valid,
    w: &Writer<'_>,
) -> Result<Report, Error> {
    let ns = id.namespace.as_str();
    let stores = &ctx.stores;
    let mut report = Report {
        identity: valid.identity.as_ref().map(|r| IdentityStatus {
            mode: Some(r.mode),
            selector: Some(r.selector.clone()),
            client_id: r.client_id.clone(),
            service_account_name: (r.mode == IdentityMode::WorkloadIdentity
                && children.service_account.is_some())
            .then(|| id.name.clone()),
        }),
        ..Report::default()
    };

    // A wanted ServiceAccount exists before the Deployment that names it; an unwanted one is
    // deleted only after the Deployment (below).
    let unwanted_service_account = match children.service_account {
        Some(sa) => {
            ensure(w, ctx, &stores.service_accounts, ns, sa, &mut report).await?;
            None
        }
        None => stores
            .service_accounts
            .get(&ObjectRef::new(&id.name).within(ns))
            .map(|a| (*a).clone()),
    };
    ensure(
        w,
        ctx,
        &stores.config_maps,
        ns,
        children.config_map,
        &mut report,
    )
    .await?;
    // The autoscaler goes before the Deployment gets its replica count back, and comes after the
    // Deployment it scales exists.
    let autoscaler_name = desired::autoscaler_name(&id.name);
    if children.autoscaler.is_none() {
        ensure_or_delete(
            w,
            ctx,
            &stores.autoscalers,
            id,
            autoscaler_name.clone(),
            None,
            &mut report,
        )
        .await?;
    }
    hand_over_replicas(w, ctx, ns, &children.deployment).await?;
    let (deployment, hash) = ensure(
        w,
        ctx,
        &stores.deployments,
        ns,
        children.deployment,
        &mut report,
    )
    .await?;
    report.deployment = deployment;
    report.deployment_hash = Some(hash);
    if let Some(sa) = unwanted_service_account {
        delete_service_account_once_unused(w, ctx, id, sa, report.deployment.as_ref()).await?;
    }
    if children.autoscaler.is_some() {
        ensure_or_delete(
            w,
            ctx,
            &stores.autoscalers,
            id,
            autoscaler_name,
            children.autoscaler,
            &mut report,
        )
        .await?;
    }
    ensure_or_delete(
        w,
        ctx,
        &stores.disruption_budgets,
        id,
        desired::disruption_budget_name(&id.name),
        children.disruption_budget,
        &mut report,
    )
    .await?;
    ensure(w, ctx, &stores.services, ns, children.service, &mut report).await?;

    let ingress_api: Api<Ingress> = Api::namespaced(ctx.client.clone(), ns);
    let ingress_name = desired::ingress_name(&id.name);
    let live_ingress = stores
        .ingresses
        .get(&ObjectRef::new(&ingress_name).within(ns))
        .map(|a| (*a).clone())
        .filter(|i| crate::apply::is_controlled_by(&i.metadata, &id.uid));
    match children.ingress {
        IngressPlan::Absent => {
            w.delete_if_ours(&ingress_api, "Ingress", live_ingress.clone())
                .await?;
            delete_stale_allowlists(w, ctx, id, live_ingress.as_ref(), None).await?;
        }
        IngressPlan::Blocked(refusal) => {
            report.problems.push(UserError {
                reason: refusal.reason(),
                message: refusal.message().to_owned(),
            });
            match refusal {
                // The allowlist API is gone: whatever our Ingress referenced is no longer
                // enforced, so the Ingress goes too (fail closed).
                ingress::Refusal::MissingApi(_) => {
                    w.delete_if_ours(&ingress_api, "Ingress", live_ingress.clone())
                        .await?;
                    delete_stale_allowlists(w, ctx, id, live_ingress.as_ref(), None).await?;
                }
                // The Ingress from the last good spec, if any, stays (its class and allowlist
                // are unchanged) — and so does its URL.
                ingress::Refusal::UnsupportedClass(_) => {
                    if live_ingress.is_some() {
                        report.url = dw.status.as_ref().and_then(|s| s.url.clone());
                    }
                }
            }
        }
        IngressPlan::Present { ingress, extra } => {
            let mut extra_ok = true;
            let extra_kind = extra
                .as_ref()
                .and_then(|e| e.types.as_ref().map(|t| t.kind.clone()));
            if let Some(obj) = extra {
                let mut obj = *obj;
                let (api, kind) = dynamic_api(ctx, ns, &obj);
                stamp_hash(&kind, &mut obj)?;
                let name = obj.metadata.name.clone().unwrap_or_default();
                let current = get_opt(&api, &kind, &name).await?;
                let applied = w
                    .apply(&api, &kind, current, &obj, Marker::ResourceVersion)
                    .await?;
                if let Applied::Conflict(message) = applied {
                    // Never expose the site without its allowlist.
                    extra_ok = false;
                    report.problems.push(UserError {
                        reason: reason::NAME_CONFLICT,
                        message,
                    });
                }
            }
            if extra_ok {
                let spec_url = dw.spec.ingress.as_ref().map(ingress::url);
                let (applied, _) =
                    ensure(w, ctx, &stores.ingresses, ns, *ingress, &mut report).await?;
                if applied.is_some() {
                    report.url = spec_url;
                    delete_stale_allowlists(
                        w,
                        ctx,
                        id,
                        live_ingress.as_ref(),
                        extra_kind.as_deref(),
                    )
                    .await?;
                }
            }
        }
    }

    // The seed's Kopf operator named its Deployment `<name>-deployment` and adopted it. It only
    // created one when the DemoWeb was created, so one look per DemoWeb and process is enough.
    let checked = |ctx: &Context| {
        ctx.legacy_checked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&id.uid)
    };
    if !checked(ctx) {
        let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), ns);
        let legacy_name = desired::legacy_deployment_name(&id.name);
        let legacy = get_opt(&deployments, "Deployment", &legacy_name).await?;
        w.delete_if_ours(&deployments, "Deployment", legacy).await?;
        ctx.legacy_checked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.uid.clone());
    }
    Ok(report)
}

/// Deletes the ServiceAccount this DemoWeb no longer wants, but only once the live Deployment no
/// longer uses it (`identity::deployment_uses_service_account` states the rule). `applied` is the
/// Deployment as our apply returned it; without one (a name clash), whatever Deployment of that
/// name is live decides. While the account is still in use it stays; the Deployment's next status
/// change (its rollout progressing) triggers the reconcile that deletes it.
async fn delete_service_account_once_unused(
    w: &Writer<'_>,
    ctx: &Context,
    id: &Id,
    sa: ServiceAccount,
    applied: Option<&Deployment>,
) -> Result<(), Error> {
    let ns = id.namespace.as_str();
    // The pod template decides; the store's copy has none, so read the Deployment unless our
    // apply just returned it whole.
    let live_deployment = match applied {
        Some(d) if d.spec.as_ref().is_some_and(|s| s.template.spec.is_some()) => Some(d.clone()),
        _ => {
            let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), ns);
            get_opt(&api, "Deployment", &desired::deployment_name(&id.name)).await?
        }
    };
    let name = sa.name_any();
    if identity::deployment_uses_service_account(live_deployment.as_ref(), &name) {
        tracing::debug!(
            service_account = name,
            "keeping the ServiceAccount until the Deployment's pods no longer use it"
        );
        return Ok(());
    }
    let api: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), ns);
    w.delete_if_ours(&api, "ServiceAccount", Some(sa)).await?;
    Ok(())
}

/// Deletes the Middleware / KongPlugin the previous Ingress referenced, unless still wanted.
async fn delete_stale_allowlists(
    w: &Writer<'_>,
    ctx: &Context,
    id: &Id,
    previous: Option<&Ingress>,
    keep_kind: Option<&str>,
) -> Result<(), Error> {
    let Some(previous) = previous else {
        return Ok(());
    };
    let name = desired::allowlist_name(&id.name);
    let annotations = previous.annotations();
    let references = |key: &str, item: &str| {
        annotations
            .get(key)
            .is_some_and(|v| v.split(',').any(|s| s.trim() == item))
    };
    let middleware_ref = format!("{}-{name}@kubernetescrd", id.namespace);
    if keep_kind != Some("Middleware")
        && references(ingress::TRAEFIK_MIDDLEWARES_ANNOTATION, &middleware_ref)
        && let Some(api) = ctx.capabilities()?.traefik_middleware
    {
        let ar = ingress::middleware_resource(api);
        let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &id.namespace, &ar);
        let current = get_opt(&api, "Middleware", &name).await?;
        w.delete_if_ours(&api, "Middleware", current).await?;
    }
    if keep_kind != Some("KongPlugin")
        && references(ingress::KONG_PLUGINS_ANNOTATION, &name)
        && ctx.capabilities()?.kong_plugin
    {
        let ar = ingress::kong_plugin_resource();
        let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &id.namespace, &ar);
        let current = get_opt(&api, "KongPlugin", &name).await?;
        w.delete_if_ours(&api, "KongPlugin", current).await?;
    }
    Ok(())
}

/// Step 6: compute status, write it only when it differs, and tell the user about new problems.
async fn update_status(
    dw: &DemoWeb,
    id: &Id,
    ctx: &Context,
    report: Report,
) -> Result<bool, Error> {
    let problem = report.problems.first().map(|first| UserError {
        reason: first.reason,
        message: report
            .problems
            .iter()
            .map(|p| p.message.as_str())
            .collect::<Vec<_>>()
            .join("; "),
    });
    let rollout = report.deployment_hash.as_deref().map(|hash| {
        let wanted = match &dw.spec.autoscaling {
            // The autoscaler's choice, as the live Deployment carries it.
            Some(_) => report
                .deployment
                .as_ref()
                .and_then(|d| d.spec.as_ref()?.replicas)
                .unwrap_or(1),
            None => dw.spec.replicas,
        };
        status::rollout(report.deployment.as_ref(), hash, wanted)
    });
    let new = status::compute_status(StatusInput {
        dw,
        deployment: report.deployment.as_ref(),
        rollout,
        problem: problem.clone(),
        url: report.url,
        identity: report.identity,
        now: Time(jiff::Timestamp::now()),
    });
    let old = dw.status.clone().unwrap_or_default();
    if let Some(problem) = &problem {
        let already_reported = old.conditions.iter().any(|c| {
            c.type_ == STALLED
                && c.status == "True"
                && c.reason == problem.reason
                && c.message == problem.message
        });
        if !already_reported {
            publish(
                &ctx.recorder,
                &dw.object_ref(&()),
                &ctx.metrics,
                EventType::Warning,
                problem.reason,
                problem.message.clone(),
            )
            .await;
        }
    }
    if dw.status.as_ref() != Some(&new) {
        let api: Api<DemoWeb> = Api::namespaced(ctx.client.clone(), &id.namespace);
        api.patch_status(
            &id.name,
            &PatchParams::default(),
            &Patch::Merge(status_patch(&old, &new)),
        )
        .await
        .map_err(|source| Error::PatchStatus {
            name: id.name.clone(),
            source,
        })?;
        ctx.metrics.count_write("patch_status", "DemoWeb");
    }
    Ok(problem.is_some())
}

/// A merge patch that replaces the status: fields we no longer set are nulled out.
fn status_patch(old: &DemoWebStatus, new: &DemoWebStatus) -> Value {
    let mut body = serde_json::to_value(new).unwrap_or_else(|_| json!({}));
    if let (Value::Object(body), Ok(Value::Object(old))) = (&mut body, serde_json::to_value(old)) {
        for key in old.keys() {
            body.entry(key.clone()).or_insert(Value::Null);
        }
    }
    json!({ "status": body })
}

/// The whole pipeline for one DemoWeb. Returns whether it is stalled on a user problem.
async fn reconcile_inner(dw: &DemoWeb, ctx: &Context) -> Result<bool, Error> {
    let id = identify(dw)?;
    if dw.metadata.deletion_timestamp.is_some() {
        // Owner references let the garbage collector remove the children.
        return Ok(false);
    }
    let found = gather(dw, &id, ctx).await?;
    // Refused annotations are left off the Ingress, and the rest of the spec applies: the site
    // keeps serving, without the part that could weaken its allowlist.
    let (clean, refused) = ingress::strip_refused_annotations(dw);
    let dw = &clean;
    let refused = refused.map(|message| UserError {
        reason: reason::ANNOTATIONS_REFUSED,
        message,
    });
    let report = match validate(dw, &found) {
        Ok(valid) => {
            let children = build(dw, &valid, &found);
            let mut report = apply_all(dw, &id, ctx, children, &valid).await?;
            if report.changed_children {
                // Their watch events reconcile this DemoWeb again, and that pass writes the
                // status once, from the children as they are by then — rather than a status
                // write now and another as soon as they settle.
                return Ok(false);
            }
            report.problems.splice(0..0, refused);
            report
        }
        // Keep the last good children: nothing is applied or deleted.
        Err(problem) => Report {
            deployment: ctx
                .stores
                .deployments
                .get(&ObjectRef::new(&desired::deployment_name(&id.name)).within(&id.namespace))
                .map(|d| (*d).clone()),
            problems: std::iter::once(problem).chain(refused).collect(),
            url: dw.status.as_ref().and_then(|s| s.url.clone()),
            identity: dw.status.as_ref().and_then(|s| s.identity.clone()),
            ..Report::default()
        },
    };
    update_status(dw, &id, ctx, report).await
}

/// Entry point for the controller runtime.
pub async fn reconcile(dw: Arc<DemoWeb>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let span = tracing::info_span!(
        "reconcile",
        namespace = dw.namespace().unwrap_or_default(),
        name = dw.name_any()
    );
    let result = reconcile_inner(&dw, &ctx).instrument(span).await;
    let seconds = started.elapsed().as_secs_f64();
    match result {
        Ok(stalled) => {
            if let Some(uid) = &dw.metadata.uid {
                ctx.backoff.reset(uid);
            }
            ctx.metrics
                .count_reconcile(if stalled { "stalled" } else { "ok" }, seconds);
            Ok(Action::requeue(if stalled {
                ctx.stalled_requeue
            } else {
                ctx.requeue
            }))
        }
        Err(err) => {
            ctx.metrics.count_reconcile("error", seconds);
            ctx.metrics.count_error(err.metric_label());
            Err(err)
        }
    }
}

/// Transient errors back off per object; the Warning Event says what failed.
pub fn error_policy(dw: Arc<DemoWeb>, err: &Error, ctx: Arc<Context>) -> Action {
    let uid = dw.metadata.uid.clone().unwrap_or_default();
    let delay = if err.is_transient() {
        ctx.backoff.next_delay(&uid)
    } else {
        ctx.backoff.next_delay(&uid).max(Duration::from_secs(60))
    };
    let message = chain(err);
    tracing::warn!(
        namespace = dw.namespace().unwrap_or_default(),
        name = dw.name_any(),
        error = %message,
        retry_in = ?delay,
        "reconcile failed"
    );
    let reference: ObjectReference = dw.object_ref(&());
    let ctx2 = ctx.clone();
    tokio::spawn(async move {
        publish(
            &ctx2.recorder,
            &reference,
            &ctx2.metrics,
            EventType::Warning,
            "ReconcileFailed",
            format!("{message}; retrying in {}s", delay.as_secs_f64().ceil()),
        )
        .await;
    });
    Action::requeue(delay)
}

/// A reflector over one child kind, limited to what this operator manages; its stream triggers
/// reconciles of the owner, its store serves "compare before you write". The store keeps only
/// what [`Child`] says reconcile reads (metadata, and the Deployment's status); a deleted child's
/// entry in `verified` is dropped with it.
fn child_reflector<K: Child>(
    client: &Client,
    namespace: Option<&str>,
    verified: &Arc<Verified>,
) -> (
    Store<K>,
    impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
) {
    let (reader, writer) = reflector::store();
    let config = watcher::Config::default().labels(&desired::managed_selector());
    let events = if K::KEEPS_STATUS {
        let api: Api<K> = match namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        watcher(api, config)
            .map_ok(|event| {
                event.modify(|obj| {
                    obj.trim();
                    trim_meta(obj.meta_mut());
                })
            })
            .left_stream()
    } else {
        let api: Api<PartialObjectMeta<K>> = match namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        watcher(api, config)
            .map_ok(|event| {
                map_event(event, |partial| {
                    let mut obj = K::default();
                    *obj.meta_mut() = partial.metadata;
                    trim_meta(obj.meta_mut());
                    obj
                })
            })
            .right_stream()
    };
    let verified = verified.clone();
    let stream = events
        .inspect_ok(move |event| {
            if let watcher::Event::Delete(obj) = event {
                verified.forget(obj.meta());
            }
        })
        .default_backoff()
        .reflect(writer)
        .touched_objects();
    (reader, stream)
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
    trim_meta(&mut dw.metadata);
    Ok(dw)
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
/// instead of failing the watch and stalling every other DemoWeb.
fn tolerant_demoweb_reflector(
    client: &Client,
    namespace: Option<&str>,
    recorder: kube::runtime::events::Recorder,
    metrics: Arc<crate::metrics::Metrics>,
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
    let reported = Arc::new(std::sync::Mutex::new(BTreeSet::<String>::new()));
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .filter_map(move |event| {
            let (recorder, metrics, reported) = (recorder.clone(), metrics.clone(), reported.clone());
            async move {
                let report = |obj: DynamicObject, error: String| async move {
                    let key = format!(
                        "{}/{}",
                        obj.metadata.uid.clone().unwrap_or_default(),
                        obj.metadata.resource_version.clone().unwrap_or_default()
                    );
                    let first = reported.lock().map(|mut r| r.insert(key)).unwrap_or(true);
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
                    E::Delete(obj) => match decode_demoweb(&obj) {
                        Ok(dw) => E::Delete(dw),
                        Err(_) => E::Delete(tombstone(&obj)),
                    },
                }))
            }
        })
        .reflect(writer)
        .applied_objects();
    (reader, stream)
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
    /// Set to not ready until every store below has its first full list.
    pub readiness: crate::server::Readiness,
}

/// How many reconciles run at once. Each holds its desired children and the API's answers in
/// memory, so a burst of N new DemoWebs costs memory in proportion to this, not to N; the API
/// server gets a steady stream of requests instead of N at once.
const CONCURRENT_RECONCILES: u16 = 16;

/// Triggers for one DemoWeb that arrive within this window are served by one reconcile: the watch
/// events of the children one reconcile wrote (and of the Deployment controller's first status
/// update) lead to one more pass, which writes the status once.
const DEBOUNCE: Duration = Duration::from_millis(100);

fn runtime_config() -> kube::runtime::controller::Config {
    kube::runtime::controller::Config::default()
        .concurrency(CONCURRENT_RECONCILES)
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
    let recorder = kube::runtime::events::Recorder::new(client.clone(), config.reporter.clone());
    let (demoweb_store, demoweb_events) =
        tolerant_demoweb_reflector(&client, ns, recorder.clone(), metrics.clone());
    let verified = Arc::new(Verified::default());
    let (deployments, deployment_events) = child_reflector::<Deployment>(&client, ns, &verified);
    let (config_maps, config_map_events) = child_reflector::<ConfigMap>(&client, ns, &verified);
    let (services, service_events) = child_reflector::<Service>(&client, ns, &verified);
    let (ingresses, ingress_events) = child_reflector::<Ingress>(&client, ns, &verified);
    let (service_accounts, service_account_events) =
        child_reflector::<ServiceAccount>(&client, ns, &verified);
    let (disruption_budgets, disruption_budget_events) =
        child_reflector::<PodDisruptionBudget>(&client, ns, &verified);
    let (autoscalers, autoscaler_events) =
        child_reflector::<HorizontalPodAutoscaler>(&client, ns, &verified);
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
    // Secrets are watched as metadata only: a credentials Secret that appears or changes
    // re-queues the DemoWebs naming it, and no Secret content is held in memory.
    let secret_api: Api<PartialObjectMeta<Secret>> = match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let secret_events = watcher(secret_api, watcher::Config::default())
        .default_backoff()
        .touched_objects();

    let controller =
        Controller::for_stream(demoweb_events, demoweb_store.clone()).with_config(runtime_config());

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
    };
    let sync_tracker =
        tokio::spawn(stores.track_sync(config.identity_served, config.readiness.clone()));
    let mut ctx = Context::new(client, recorder, metrics, stores);
    ctx.requeue = config.resync_period;
    ctx.stalled_requeue = config.stalled_requeue_period.min(config.resync_period);
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
        .watches_stream(secret_events, move |s| {
            demowebs_for_secret(&s, &secret_store)
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx.clone())
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

/// Field manager re-exported for tests and the chart's documentation.
pub const MANAGER: &str = FIELD_MANAGER;

#[cfg(test)]
mod tests {
    use super::*;
    use desired::tests::seed;

    fn gathered() -> Gathered {
        Gathered {
            secret_keys: None,
            identity: None,
            classes: vec![],
            capabilities: IngressCapabilities::default(),
        }
    }

    #[test]
    fn validation_outcomes() {
        let mut bad = seed();
        bad.spec.gitrepo = "file:///etc/passwd".into();
        bad.spec.replicas = -1;
        let err = validate(&bad, &gathered()).err().expect("invalid");
        assert_eq!(err.reason, reason::INVALID_SPEC);
        assert!(
            err.message.contains("spec.gitrepo") && err.message.contains("spec.replicas"),
            "{}",
            err.message
        );

        let mut unresolved = seed();
        unresolved.spec.identity = Some(demoweb_crd::demoweb::IdentitySpec {
            binding: "mymsi".into(),
            mode: IdentityMode::PodIdentity,
        });
        let found = Gathered {
            identity: Some(Err(identity::ResolveError::BindingNotFound {
                namespace: "default".into(),
                binding: "mymsi".into(),
            })),
            ..gathered()
        };
        let err = validate(&unresolved, &found).err().expect("unresolved");
        assert_eq!(err.reason, reason::IDENTITY_BINDING_NOT_FOUND);

        assert!(validate(&seed(), &gathered()).is_ok());
    }

    #[test]
    fn status_patch_nulls_dropped_fields() {
        let old = DemoWebStatus {
            url: Some("http://x/".into()),
            replicas: Some(1),
            ..DemoWebStatus::default()
        };
        let new = DemoWebStatus {
            replicas: Some(2),
            ..DemoWebStatus::default()
        };
        let patch = status_patch(&old, &new);
        assert_eq!(patch["status"]["url"], Value::Null);
        assert_eq!(patch["status"]["replicas"], json!(2));
    }

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
}
