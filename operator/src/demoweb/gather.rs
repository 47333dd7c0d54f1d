//! Steps 1 and 2 of reconcile: name the DemoWeb, and read what it references from the stores
//! (the allowlist APIs once per reconcile).

use std::collections::BTreeSet;
use std::time::Duration;

use demoweb_crd::DemoWeb;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::IngressClass;
use kube::{Api, ResourceExt};

use super::context::Context;
use super::error::Error;
use super::ingress::IngressCapabilities;
use super::{desired, kong};
use crate::identity::{self, ResolvedIdentity};
use crate::write::writer::get_opt;

/// Names the DemoWeb being reconciled.
pub(super) struct Id {
    pub(super) namespace: String,
    pub(super) name: String,
    pub(super) uid: String,
}

/// Step 1: the object's identity, or a named error.
pub(super) fn identify(dw: &DemoWeb) -> Result<Id, Error> {
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
pub(super) struct Gathered {
    pub(super) secret_keys: Option<BTreeSet<String>>,
    pub(super) identity: Option<Result<ResolvedIdentity, identity::ResolveError>>,
    pub(super) classes: Vec<IngressClass>,
    /// What the plan may use: the discovered capabilities when the spec asks for an allowlist.
    pub(super) capabilities: IngressCapabilities,
    /// The allowlist APIs served, read once per reconcile (see [`AllowlistApis::capabilities`]).
    pub(super) discovered: Discovered,
    /// Why the Kong plugins named next to the allowlist may not stand there (`kong::check`).
    pub(super) kong_refusal: Option<String>,
}

/// Which allowlist APIs the cluster serves, or the CRD whose watch has not listed it yet.
pub(super) type Discovered = Result<IngressCapabilities, &'static str>;

/// The discovered capabilities, or the error that retries the reconcile while they are unknown.
pub(super) fn known(discovered: &Discovered) -> Result<IngressCapabilities, Error> {
    discovered
        .clone()
        .map_err(|crd| Error::CapabilitiesUnknown { crd })
}

/// The Kong plugins the DemoWeb names next to its allowlist, looked up and checked; while a
/// plugin store has not listed yet the reconcile is retried rather than judged on a guess.
fn kong_refusal(dw: &DemoWeb, id: &Id, ctx: &Context) -> Result<Option<String>, Error> {
    use futures::FutureExt;
    let named = kong::plugins_to_check(dw, &desired::allowlist_name(&id.name));
    if named.is_empty() {
        return Ok(None);
    }
    let (plugins, cluster_plugins) = (&ctx.stores.kong_plugins, &ctx.stores.kong_cluster_plugins);
    for (crd, listed) in [
        (
            kong::KONG_PLUGIN_CRD,
            plugins.wait_until_ready().now_or_never(),
        ),
        (
            kong::KONG_CLUSTER_PLUGIN_CRD,
            cluster_plugins.wait_until_ready().now_or_never(),
        ),
    ] {
        if listed.is_none() {
            return Err(Error::CapabilitiesUnknown { crd });
        }
    }
    let found: Vec<(String, kong::Found)> = named
        .into_iter()
        .map(|name| {
            let found = kong::find(&id.namespace, &name, plugins, cluster_plugins);
            (name, found)
        })
        .collect();
    Ok(kong::check(&id.namespace, &found).err())
}

/// Step 2.
pub(super) async fn gather(dw: &DemoWeb, id: &Id, ctx: &Context) -> Result<Gathered, Error> {
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
    let discovered = ctx.stores.allowlist_apis.capabilities();
    let capabilities = if wants_allowlist {
        known(&discovered)?
    } else {
        IngressCapabilities::default()
    };
    let kong_refusal = kong_refusal(dw, id, ctx)?;
    Ok(Gathered {
        kong_refusal,
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
        discovered,
    })
}
