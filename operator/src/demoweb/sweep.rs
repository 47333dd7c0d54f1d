//! The inventory sweep, the last deletions of step 5. What a reconcile applied is its inventory;
//! every other child the DemoWeb controls is deleted. A child is the DemoWeb's when the child
//! stores saw it with a controller owner reference to the DemoWeb's uid and the operator's
//! `managed-by` label — both, so that an object someone else made or adopted is never touched —
//! and every delete is preconditioned on the uid the store saw. A child whose name or kind
//! changes in a later release is so collected by the next reconcile, not only when its DemoWeb is
//! deleted; so is an optional child switched off (autoscaler, disruption budget, Ingress, the
//! workload-identity ServiceAccount).
//!
//! Covered: every kind with a child store — Ingress, HorizontalPodAutoscaler,
//! PodDisruptionBudget, Deployment, Service, ConfigMap, ServiceAccount, deleted in that order (the
//! site stops being exposed before what it routes to goes). Not covered: the allowlist objects
//! (Traefik Middleware, KongPlugin: no store, their APIs come and go; `apply.rs` deletes the ones
//! the previous Ingress named) and the seed Kopf operator's Deployment (no `managed-by` label;
//! `apply.rs` looks for it by name once per DemoWeb).
//!
//! An autoscaler switched off is swept after the Deployment took `spec.replicas` back (before
//! the inventory it was deleted first): should it scale the Deployment in the moment between, the
//! Deployment's generation moves, and the reconcile that follows puts the count back.
//!
//! One rule per kind guards a delete: a ServiceAccount stays while the live Deployment's pods
//! may still run under it ([`identity::deployment_uses_service_account`]); the Deployment's next
//! rollout progress reconciles again and the sweep then takes it.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::Api;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};

use super::context::Context;
use super::desired;
use super::error::Error;
use super::gather::Id;
use crate::identity;
use crate::stored::{Child, Stored};
use crate::vocabulary::{LABEL_MANAGED_BY, MANAGER};
use crate::write::writer::{Writer, get_opt, is_controlled_by};

/// The children one reconcile applied (or found current, or keeps on purpose), by kind and name.
#[derive(Default)]
pub(super) struct Inventory(BTreeSet<(&'static str, String)>);

impl Inventory {
    /// Records a child this reconcile applies.
    pub(super) fn record<K: Child>(&mut self, child: &K) {
        self.record_name::<K>(child.meta().name.as_deref().unwrap_or_default());
    }

    /// Records a child of kind `K` by name (one kept as it is, without an apply).
    pub(super) fn record_name<K: Child>(&mut self, name: &str) {
        self.0.insert((K::KIND, name.to_owned()));
    }

    fn holds(&self, kind: &'static str, name: &str) -> bool {
        self.0.contains(&(kind, name.to_owned()))
    }
}

/// Whether the stored child `meta` is the DemoWeb's with this uid: its controller and our label.
fn controlled_by_us(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    uid: &str,
) -> bool {
    is_controlled_by(meta, uid)
        && meta
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_MANAGED_BY))
            .is_some_and(|v| v == MANAGER)
}

/// The children of kind `K` the DemoWeb controls that are not in the inventory and not already
/// being deleted, as the store has them.
fn leftovers<K: Child>(
    ctx: &Context,
    id: &Id,
    store: &Store<K::Stored>,
    inventory: &Inventory,
) -> Vec<K> {
    let mut found = Vec::new();
    for name in ctx.stores.owned.of(&id.uid, K::KIND) {
        if inventory.holds(K::KIND, &name) {
            continue;
        }
        // The index may name what the store does not hold yet (a re-list in progress) or no
        // longer holds: only the store's copy decides.
        let Some(stored) = store.get(&ObjectRef::new(&name).within(&id.namespace)) else {
            continue;
        };
        if !controlled_by_us(stored.meta(), &id.uid) {
            ctx.stores.owned.gone(K::KIND, &id.uid, &name);
            continue;
        }
        if stored.meta().deletion_timestamp.is_none() {
            found.push(stored.child());
        }
    }
    found
}

/// Deletes the leftovers of kind `K` that `keep` does not hold back.
async fn sweep_kind<K: Child>(
    w: &Writer<'_>,
    ctx: &Context,
    id: &Id,
    store: &Store<K::Stored>,
    inventory: &Inventory,
) -> Result<(), Error> {
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &id.namespace);
    for child in leftovers::<K>(ctx, id, store, inventory) {
        w.delete_if_ours(&api, K::KIND, Some(child)).await?;
    }
    Ok(())
}

/// Deletes what the DemoWeb controls that `inventory` does not hold (see the module's doc).
pub(super) async fn sweep(
    w: &Writer<'_>,
    ctx: &Context,
    id: &Id,
    inventory: &Inventory,
) -> Result<(), Error> {
    let stores = &ctx.stores;
    sweep_kind::<Ingress>(w, ctx, id, &stores.ingresses, inventory).await?;
    sweep_kind::<HorizontalPodAutoscaler>(w, ctx, id, &stores.autoscalers, inventory).await?;
    sweep_kind::<PodDisruptionBudget>(w, ctx, id, &stores.disruption_budgets, inventory).await?;
    sweep_kind::<Deployment>(w, ctx, id, &stores.deployments, inventory).await?;
    sweep_kind::<Service>(w, ctx, id, &stores.services, inventory).await?;
    sweep_kind::<ConfigMap>(w, ctx, id, &stores.config_maps, inventory).await?;
    let accounts = leftovers::<ServiceAccount>(ctx, id, &stores.service_accounts, inventory);
    if accounts.is_empty() {
        return Ok(());
    }
    // The live pod template and rollout decide: neither the store's copy nor what our apply
    // answered carries both, so the Deployment is read (only while an unwanted ServiceAccount is
    // left). After a name clash, whatever Deployment of that name is live decides.
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &id.namespace);
    let live = get_opt(
        &deployments,
        "Deployment",
        &desired::deployment_name(&id.name),
    )
    .await?;
    let api: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &id.namespace);
    for account in accounts {
        let name = account.name_any();
        if identity::deployment_uses_service_account(live.as_ref(), &name) {
            tracing::debug!(
                service_account = name,
                "keeping the ServiceAccount until the Deployment's pods no longer use it"
            );
            continue;
        }
        w.delete_if_ours(&api, "ServiceAccount", Some(account))
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    fn meta(controller: Option<bool>, label: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            name: Some("old".into()),
            labels: label.map(|v| [(LABEL_MANAGED_BY.to_owned(), v.to_owned())].into()),
            owner_references: controller.map(|c| {
                vec![OwnerReference {
                    api_version: "baeke.info/v1".into(),
                    kind: "DemoWeb".into(),
                    name: "web".into(),
                    uid: "u-1".into(),
                    controller: Some(c),
                    block_owner_deletion: Some(true),
                }]
            }),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn only_a_child_with_our_controller_reference_and_label_is_ours() {
        assert!(controlled_by_us(&meta(Some(true), Some(MANAGER)), "u-1"));
        assert!(!controlled_by_us(&meta(Some(true), Some(MANAGER)), "u-2"));
        assert!(!controlled_by_us(&meta(Some(false), Some(MANAGER)), "u-1"));
        assert!(!controlled_by_us(&meta(None, Some(MANAGER)), "u-1"));
        assert!(!controlled_by_us(&meta(Some(true), Some("helm")), "u-1"));
        assert!(!controlled_by_us(&meta(Some(true), None), "u-1"));
    }

    #[test]
    fn the_inventory_holds_kind_and_name() {
        let mut inventory = Inventory::default();
        inventory.record_name::<Service>("web");
        assert!(inventory.holds("Service", "web"));
        assert!(!inventory.holds("ConfigMap", "web"));
        assert!(!inventory.holds("Service", "web-old"));
    }
}
