//! Step 5 of reconcile: apply the built children in dependency order, recording each in the
//! inventory, then sweep what this DemoWeb controls but did not apply (`sweep.rs`); returns what
//! was applied, for status. And step 6's one write, the status patch. Every write goes through
//! `crate::write`.

use demoweb_crd::DemoWeb;
use demoweb_crd::conditions::reason;
use demoweb_crd::demoweb::IdentityStatus;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::core::TypeMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use super::children::Children;
use super::context::Context;
use super::desired;
use super::error::Error;
use super::gather::{Discovered, Id, known};
use super::ingress::{self, IngressPlan};
use super::sweep::{Inventory, sweep};
use crate::error::{ApiError, Call, UserError};
use crate::metrics::Metrics;
use crate::stored::{Child, stored_child};
use crate::vocabulary::MANAGER;
use crate::write::drift::{Marker, applied_hash, stamp_hash};
use crate::write::writer::{Applied, Writer, get_opt, owned_only_by_us};

/// Children in, applied children out: what apply did, which is all that status is computed from.
#[derive(Default)]
pub(super) struct AppliedChildren {
    pub(super) deployment: Option<Deployment>,
    pub(super) deployment_hash: Option<String>,
    pub(super) problems: Vec<UserError>,
    pub(super) url: Option<String>,
    pub(super) identity: Option<IdentityStatus>,
}

/// The store's trimmed copy of the child named like `desired`, if the store has one.
fn stored_like<K: Child>(store: &Store<K::Stored>, ns: &str, desired: &K) -> Option<K> {
    stored_child(
        store,
        desired.meta().name.as_deref().unwrap_or_default(),
        ns,
    )
}

/// Applies one typed child unless it is foreign or current; records a conflict as a problem.
async fn ensure<K>(
    w: &Writer<'_>,
    ctx: &Context,
    store: &Store<K::Stored>,
    ns: &str,
    desired: K,
    report: &mut AppliedChildren,
) -> Result<(Option<K>, String), Error>
where
    K: Child,
{
    let current = stored_like(store, ns, &desired);
    ensure_over(w, ctx, ns, desired, current, report).await
}

/// [`ensure`], with the store's copy already looked up. A child the store has no copy of is
/// created in one round trip when its name is free; when it is not (someone else's object, or
/// ours with its labels edited away) it is read and judged whole.
async fn ensure_over<K>(
    w: &Writer<'_>,
    ctx: &Context,
    ns: &str,
    mut desired: K,
    stored: Option<K>,
    report: &mut AppliedChildren,
) -> Result<(Option<K>, String), Error>
where
    K: Child,
{
    let types = TypeMeta::resource::<K>();
    let kind = types.kind.as_str();
    let hash = stamp_hash(kind, &mut desired)?;
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    let applied = match stored {
        Some(stored) => {
            w.apply(&api, &types, Some(stored), &desired, K::MARKER)
                .await?
        }
        None => w.apply_unseen(&api, &types, &desired, K::MARKER).await?,
    };
    Ok(match applied {
        Applied::Conflict(message) => {
            report.problems.push(UserError {
                reason: reason::NAME_CONFLICT,
                message,
            });
            (None, hash)
        }
        applied => (applied.object().cloned(), hash),
    })
}

impl AppliedChildren {
    /// Takes in what another part of the same apply step did.
    fn absorb(&mut self, other: AppliedChildren) {
        self.problems.extend(other.problems);
    }
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
    if !crate::write::writer::is_controlled_by(&live.metadata, w.owner_uid)
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
    w.hand_over(&api, "Deployment", &name, &body).await?;
    Ok(())
}

fn dynamic_api(ctx: &Context, ns: &str, obj: &DynamicObject) -> Api<DynamicObject> {
    let (resource, _) = ingress::allowlist_resource(obj);
    Api::namespaced_with(ctx.client.clone(), ns, &resource)
}

/// The writer of one reconcile of `dw`: its changes are told in one Event, which the caller
/// publishes (also when a write failed midway) — except the children of a DemoWeb that has no
/// status yet, whose creation its first status reports.
pub(super) fn writer<'a>(
    dw: &DemoWeb,
    id: &'a Id,
    owner_ref: &'a ObjectReference,
    ctx: &'a Context,
) -> Writer<'a> {
    let w = Writer::new(
        &id.uid,
        owner_ref,
        &ctx.recorder,
        &ctx.metrics,
        &ctx.stores.verified,
    );
    let never_reported = dw
        .status
        .as_ref()
        .and_then(|s| s.observed_generation)
        .is_none_or(|g| g < 1);
    if never_reported {
        w.quiet_creations()
    } else {
        w
    }
}

/// Step 5: apply in dependency order, then sweep what this DemoWeb controls but did not apply.
pub(super) async fn apply_all(
    dw: &DemoWeb,
    id: &Id,
    ctx: &Context,
    children: Children,
    discovered: &Discovered,
    w: &Writer<'_>,
) -> Result<AppliedChildren, Error> {
    let ns = id.namespace.as_str();
    let stores = &ctx.stores;
    let mut report = AppliedChildren::default();
    // What this reconcile applies; the sweep deletes the rest of what the DemoWeb controls.
    let mut inventory = Inventory::default();
    // Every child, named: a new one that apply forgets does not compile.
    let Children {
        service_account,
        config_map,
        deployment,
        autoscaler,
        disruption_budget,
        service,
        ingress: ingress_plan,
    } = children;

    // A wanted ServiceAccount exists before the Deployment that names it; an unwanted one is
    // swept after the Deployment stopped naming it.
    if let Some(sa) = service_account {
        inventory.record(&sa);
        ensure(w, ctx, &stores.service_accounts, ns, sa, &mut report).await?;
    }
    hand_over_replicas(w, ctx, ns, &deployment).await?;
    // The children every DemoWeb has are written at once, each write a round trip the reconcile
    // waits for — except that a ConfigMap that exists is written before the Deployment, so that
    // pods a changed Deployment starts read the new configuration. A new ConfigMap needs no such
    // order: a pod cannot start before the ConfigMap it mounts exists.
    inventory.record(&config_map);
    inventory.record(&deployment);
    inventory.record(&service);
    let config_map_stored = stored_like(&stores.config_maps, ns, &config_map);
    let (deployment_stored, service_stored) = (
        stored_like(&stores.deployments, ns, &deployment),
        stored_like(&stores.services, ns, &service),
    );
    let mut reports: [AppliedChildren; 3] = Default::default();
    let [config_map_report, deployment_report, service_report] = &mut reports;
    let config_map_first = config_map_stored.is_some();
    let write_config_map =
        ensure_over(w, ctx, ns, config_map, config_map_stored, config_map_report);
    let write_deployment =
        ensure_over(w, ctx, ns, deployment, deployment_stored, deployment_report);
    let write_service = ensure_over(w, ctx, ns, service, service_stored, service_report);
    let ((applied_deployment, hash), _) = if config_map_first {
        write_config_map.await?;
        futures::try_join!(write_deployment, write_service)?
    } else {
        let (_, deployment, service) =
            futures::try_join!(write_config_map, write_deployment, write_service)?;
        (deployment, service)
    };
    for r in reports {
        report.absorb(r);
    }
    report.deployment = applied_deployment;
    report.deployment_hash = Some(hash);
    // The autoscaler comes after the Deployment it scales exists. Switched off, it is swept
    // below, after the Deployment took its replica count back.
    if let Some(autoscaler) = autoscaler {
        inventory.record(&autoscaler);
        ensure(w, ctx, &stores.autoscalers, ns, autoscaler, &mut report).await?;
    }
    if let Some(budget) = disruption_budget {
        inventory.record(&budget);
        ensure(w, ctx, &stores.disruption_budgets, ns, budget, &mut report).await?;
    }

    let stale_allowlists =
        apply_ingress(w, ctx, dw, id, ingress_plan, &mut inventory, &mut report).await?;
    sweep(w, ctx, id, &inventory).await?;
    // After the Ingress that named them changed or went: never an Ingress without its allowlist.
    if let Some(stale) = stale_allowlists {
        delete_stale_allowlists(w, ctx, id, discovered, stale).await?;
    }
    delete_kopf_leftover(w, ctx, dw, id).await?;
    Ok(report)
}

/// The allowlist objects the Ingress before this reconcile named, to delete once the sweep
/// removed or this reconcile replaced that Ingress: all, or all but the kind still wanted.
struct StaleAllowlists {
    previous: Ingress,
    keep_kind: Option<String>,
}

/// The Ingress and its allowlist object: the allowlist first (never expose the site without it);
/// a refused plan keeps (unsupported class) or withdraws (allowlist API missing) the live Ingress
/// — withdrawn by leaving it out of the inventory, so the sweep deletes it. Returns the allowlist
/// objects the previous Ingress referenced that are no longer wanted.
async fn apply_ingress(
    w: &Writer<'_>,
    ctx: &Context,
    dw: &DemoWeb,
    id: &Id,
    ingress_plan: IngressPlan,
    inventory: &mut Inventory,
    report: &mut AppliedChildren,
) -> Result<Option<StaleAllowlists>, Error> {
    let ns = id.namespace.as_str();
    let stores = &ctx.stores;
    let ingress_name = desired::ingress_name(&id.name);
    let live_ingress = stored_child::<Ingress>(&stores.ingresses, &ingress_name, ns)
        .filter(|i| crate::write::writer::is_controlled_by(&i.metadata, &id.uid));
    let stale = |keep_kind: Option<String>| {
        live_ingress.clone().map(|previous| StaleAllowlists {
            previous,
            keep_kind,
        })
    };
    match ingress_plan {
        IngressPlan::Absent => Ok(stale(None)),
        IngressPlan::Blocked(refusal) => {
            report.problems.push(UserError {
                reason: refusal.reason(),
                message: refusal.message().to_owned(),
            });
            match refusal {
                // The allowlist API is gone: whatever our Ingress referenced is no longer
                // enforced, so the Ingress goes too (fail closed). Likewise when a Kong plugin
                // it names is missing or could widen access.
                ingress::Refusal::MissingApi(_) | ingress::Refusal::KongPlugin(_) => {
                    Ok(stale(None))
                }
                // The Ingress from the last good spec, if any, stays (its class and allowlist
                // are unchanged) — and so does its URL.
                ingress::Refusal::UnsupportedClass(_) => {
                    inventory.record_name::<Ingress>(&ingress_name);
                    if live_ingress.is_some() {
                        report.url = dw.status.as_ref().and_then(|s| s.url.clone());
                    }
                    Ok(None)
                }
            }
        }
        IngressPlan::Present { ingress, extra } => {
            // Applied, or (its allowlist refused) the live one left as it is.
            inventory.record(&*ingress);
            let mut extra_ok = true;
            let extra_kind = extra
                .as_ref()
                .and_then(|e| e.types.as_ref().map(|t| t.kind.clone()));
            if let Some(obj) = extra {
                let mut obj = *obj;
                let api = dynamic_api(ctx, ns, &obj);
                let types = obj.types.clone().unwrap_or_default();
                stamp_hash(&types.kind, &mut obj)?;
                let name = obj.metadata.name.clone().unwrap_or_default();
                let current = get_opt(&api, &types.kind, &name).await?;
                let applied = w
                    .apply(&api, &types, current, &obj, Marker::ResourceVersion)
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
                let (applied, _) = ensure(w, ctx, &stores.ingresses, ns, *ingress, report).await?;
                if applied.is_some() {
                    report.url = spec_url;
                    return Ok(stale(extra_kind));
                }
            }
            Ok(None)
        }
    }
}

/// Whether the seed's Kopf operator handled this DemoWeb: after its create handler succeeds, Kopf
/// records the spec it handled in the annotation `kopf.zalando.org/last-handled-configuration`
/// (the prefix is configurable, the key is not). A DemoWeb without it never got a Kopf Deployment.
pub(super) fn handled_by_kopf(dw: &DemoWeb) -> bool {
    dw.annotations()
        .keys()
        .any(|k| k.ends_with("/last-handled-configuration"))
}

/// Deletes the seed Kopf operator's leftover Deployment when this DemoWeb controls it.
async fn delete_kopf_leftover(
    w: &Writer<'_>,
    ctx: &Context,
    dw: &DemoWeb,
    id: &Id,
) -> Result<(), Error> {
    // Only a DemoWeb Kopf handled can have one: a new DemoWeb costs no lookup.
    if !handled_by_kopf(dw) {
        return Ok(());
    }
    let ns = id.namespace.as_str();
    // The seed's Kopf operator named its Deployment `<name>-deployment` and adopted it. It only
    // created one when the DemoWeb was created, so one look per DemoWeb and process is enough.
    if !ctx.sites.with(&id.uid, |s| s.kopf_checked) {
        let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), ns);
        let legacy_name = desired::legacy_deployment_name(&id.name);
        let legacy = get_opt(&deployments, "Deployment", &legacy_name).await?;
        w.delete_if_ours(&deployments, "Deployment", legacy).await?;
        ctx.sites.with(&id.uid, |s| s.kopf_checked = true);
    }
    Ok(())
}

/// Deletes the Middleware / KongPlugin the previous Ingress referenced, unless still wanted.
async fn delete_stale_allowlists(
    w: &Writer<'_>,
    ctx: &Context,
    id: &Id,
    discovered: &Discovered,
    stale: StaleAllowlists,
) -> Result<(), Error> {
    let StaleAllowlists {
        previous,
        keep_kind,
    } = stale;
    let keep_kind = keep_kind.as_deref();
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
        && let Some(api) = known(discovered)?.traefik_middleware
    {
        let ar = ingress::middleware_resource(api);
        let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &id.namespace, &ar);
        let current = get_opt(&api, "Middleware", &name).await?;
        w.delete_if_ours(&api, "Middleware", current).await?;
    }
    if keep_kind != Some("KongPlugin")
        && references(ingress::KONG_PLUGINS_ANNOTATION, &name)
        && known(discovered)?.kong_plugin
    {
        let ar = ingress::kong_plugin_resource();
        let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &id.namespace, &ar);
        let current = get_opt(&api, "KongPlugin", &name).await?;
        w.delete_if_ours(&api, "KongPlugin", current).await?;
    }
    Ok(())
}

/// Writes a DemoWeb's status as a merge patch (computed by [`super::status::status_patch`]).
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
        .map_err(|source| ApiError::new(Call::PatchStatus, "DemoWeb", name, source))?;
    metrics.count_write("patch_status", "DemoWeb");
    Ok(())
}
