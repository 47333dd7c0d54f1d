//! The identity validation controller: watches AzureIdentity and AzureIdentityBinding objects and
//! publishes Warning Events for invalid ones and for deprecated keys, once per change.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use demoweb_crd::{AzureIdentity, AzureIdentityBinding};
use futures::{FutureExt, StreamExt};
use kube::api::{Api, GroupVersionKind};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt, discovery};

use crate::error::{ApiError, Call};
use crate::runtime::Backoff;
use crate::vocabulary::MANAGER;
use crate::write::events::Recorder;

use super::findings::{
    CrdVariant, Finding, Published, binding_findings, events_to_publish, identity_findings,
    spec_fingerprint,
};

/// Name this controller reports Events under.
/// Retry delay while discovery fails or the identities' store has not listed yet. A failed
/// Event write is retried with the per-object backoff the DemoWeb controller uses.
const RETRY: Duration = Duration::from_secs(30);

/// Why the identity controller stopped or failed one object: API calls ([`ApiError`]), which
/// Event an Event write was for.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Asking discovery whether an aad-pod-identity kind is served.
    #[error(transparent)]
    Discover(ApiError),
    #[error("publishing a {reason} Event")]
    PublishEvent {
        reason: &'static str,
        #[source]
        source: ApiError,
    },
}

/// Which variant of a kind the cluster serves: ours (with a status subresource), upstream's
/// (without), or None when the kind is not served at all.
pub async fn crd_variant(client: &Client, kind: &'static str) -> Result<Option<CrdVariant>, Error> {
    let gvk = GroupVersionKind::gvk("aadpodidentity.k8s.io", "v1", kind);
    match discovery::pinned_kind(client, &gvk).await {
        Ok((_, caps)) => Ok(Some(
            if caps
                .subresources
                .iter()
                .any(|(sub, _)| sub.plural == "status")
            {
                CrdVariant::Ours
            } else {
                CrdVariant::Upstream
            },
        )),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
        Err(kube::Error::Discovery(_)) => Ok(None),
        Err(source) => Err(Error::Discover(ApiError::new(
            Call::Discover,
            "the aad-pod-identity kind",
            kind,
            source,
        ))),
    }
}

struct Context {
    recorder: Recorder,
    identity_variant: CrdVariant,
    binding_variant: CrdVariant,
    identities: Store<AzureIdentity>,
    bindings: Store<AzureIdentityBinding>,
    // Keyed by uid: what was last published, so resyncs stay silent.
    published: Mutex<HashMap<String, Published>>,
    /// Per object (by uid): the retry delay after failed Event writes, reset on success.
    backoff: Backoff,
}

/// Entries of deleted objects are dropped once the memory holds this many more than live objects.
const FORGET_SLACK: usize = 256;

/// Runs until `shutdown` completes. Waits (polling discovery, retrying its failures) while the
/// identity CRDs are not served, so a cluster without aad-pod-identity's kinds runs the operator
/// fine. `namespace` limits the watches like the DemoWeb controller's `--namespace`. Pass the
/// same shutdown future as the DemoWeb controller's, so that losing the leader Lease stops both.
/// `crd_poll` is how often discovery is asked again while the CRDs are not served.
///
/// Status is not written: our CRDs' status (upstream's fields) has no conditions, and upstream's
/// CRDs have no status subresource, so findings go to Events and to the DemoWebs' conditions.
pub async fn run(
    client: Client,
    namespace: Option<String>,
    crd_poll: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let shutdown = shutdown.boxed().shared();
    // Said once, not on every poll.
    let mut said_not_served = false;
    let (identity_variant, binding_variant) = loop {
        let served = async {
            Ok::<_, Error>((
                crd_variant(&client, "AzureIdentity").await?,
                crd_variant(&client, "AzureIdentityBinding").await?,
            ))
        };
        let delay = match served.await {
            Ok((Some(identity), Some(binding))) => break (identity, binding),
            Ok(_) if said_not_served => crd_poll,
            Ok(_) => {
                said_not_served = true;
                tracing::info!(
                    "the AzureIdentity and AzureIdentityBinding CRDs are not served; identity validation waits for them (install them with `demoweb-operator crd --only identity`, the chart, or aad-pod-identity)"
                );
                crd_poll
            }
            // The API server may be briefly unreachable at start-up; that is no reason to stop.
            Err(error) => {
                tracing::warn!(%error, source = ?std::error::Error::source(&error), "identity CRD discovery failed; retrying");
                RETRY
            }
        };
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.clone() => return Ok(()),
        }
    };
    tracing::info!(
        ?identity_variant,
        ?binding_variant,
        "identity validation controller starting"
    );

    let identities_api: Api<AzureIdentity> = scoped_api(&client, namespace.as_deref());
    let bindings_api: Api<AzureIdentityBinding> = scoped_api(&client, namespace.as_deref());
    let config = watcher::Config::default().any_semantic();

    let identity_controller = Controller::new(identities_api.clone(), config.clone());
    // The bindings' view of identities is a reflector of its own: it stores each change before
    // passing it on, so a binding re-checked because its identity appeared finds it in the store
    // (the identity controller's store, fed by another watch, may not have it yet).
    let (identities, identity_writer) = reflector::store();
    let identity_changes = reflector(identity_writer, watcher(identities_api, config.clone()))
        .default_backoff()
        .touched_objects();
    let binding_controller = Controller::new(bindings_api, config);
    let bindings = binding_controller.store();
    let binding_controller = binding_controller.watches_stream(identity_changes, {
        let bindings = bindings.clone();
        move |identity: AzureIdentity| bindings_naming(&identity, &bindings)
    });

    let ctx = Arc::new(Context {
        recorder: Recorder::new(
            client,
            Reporter {
                controller: MANAGER.to_owned(),
                instance: std::env::var("POD_NAME").ok(),
            },
        ),
        identity_variant,
        binding_variant,
        identities,
        bindings,
        published: Mutex::new(HashMap::new()),
        backoff: Backoff::default(),
    });

    let identity_run = identity_controller
        .graceful_shutdown_on(shutdown.clone())
        .run(reconcile_identity, error_policy, ctx.clone())
        .for_each(|result| async move { log_result(result) });
    let binding_run = binding_controller
        .graceful_shutdown_on(shutdown)
        .run(reconcile_binding, error_policy, ctx)
        .for_each(|result| async move { log_result(result) });
    futures::join!(identity_run, binding_run);
    Ok(())
}

fn scoped_api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Bindings in the identity's namespace that name it: they must be checked again when it appears
/// or disappears.
fn bindings_naming(
    identity: &AzureIdentity,
    bindings: &Store<AzureIdentityBinding>,
) -> Vec<ObjectRef<AzureIdentityBinding>> {
    let namespace = identity.namespace();
    let name = identity.name_any();
    bindings
        .state()
        .iter()
        .filter(|b| b.namespace() == namespace && b.spec.azure_identity() == Some(name.as_str()))
        .map(|b| ObjectRef::from_obj(b.as_ref()))
        .collect()
}

async fn reconcile_identity(
    identity: Arc<AzureIdentity>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let findings = identity_findings(&identity, ctx.identity_variant);
    let spec = spec_fingerprint(&identity.spec);
    publish(&ctx, identity.as_ref(), "AzureIdentity", spec, findings).await?;
    ctx.backoff.reset(&uid_of(identity.as_ref()));
    Ok(Action::await_change())
}

async fn reconcile_binding(
    binding: Arc<AzureIdentityBinding>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    // Before the first list completes an existing identity would look missing.
    if !crate::runtime::until_ready(&ctx.identities).await {
        return Ok(Action::requeue(RETRY));
    }
    let namespace = binding.namespace().unwrap_or_default();
    let findings = binding_findings(&binding, ctx.binding_variant, |name| {
        ctx.identities
            .get(&ObjectRef::new(name).within(&namespace))
            .is_some()
    });
    let spec = spec_fingerprint(&binding.spec);
    publish(
        &ctx,
        binding.as_ref(),
        "AzureIdentityBinding",
        spec,
        findings,
    )
    .await?;
    ctx.backoff.reset(&uid_of(binding.as_ref()));
    Ok(Action::await_change())
}

/// Publishes what changed since the last call for this object, then remembers the new state.
async fn publish<K>(
    ctx: &Context,
    obj: &K,
    kind: &'static str,
    spec: u64,
    findings: Vec<Finding>,
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()>,
{
    let uid = obj.meta().uid.clone().unwrap_or_default();
    let current = Published { spec, findings };
    let to_publish = {
        let published = ctx.published.lock().unwrap_or_else(|e| e.into_inner());
        events_to_publish(published.get(&uid), &current)
    };
    let reference = obj.object_ref(&());
    for finding in to_publish {
        let event = Event {
            type_: if finding.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: finding.reason.to_owned(),
            note: Some(finding.note.clone()),
            action: "Validate".to_owned(),
            secondary: None,
        };
        ctx.recorder
            .publish(&event, &reference)
            .await
            .map_err(|source| Error::PublishEvent {
                reason: finding.reason,
                source: ApiError::new(
                    Call::CreateEvent,
                    kind,
                    &format!(
                        "{}/{}",
                        obj.meta().namespace.as_deref().unwrap_or_default(),
                        obj.meta().name.as_deref().unwrap_or_default()
                    ),
                    source,
                ),
            })?;
    }
    let mut published = ctx.published.lock().unwrap_or_else(|e| e.into_inner());
    published.insert(uid, current);
    // Reconcile never runs for a deleted object, so its entries (here and in the backoff) would
    // stay forever: sweep now and then, keeping the uids the stores still hold.
    if published.len() > ctx.identities.len() + ctx.bindings.len() + FORGET_SLACK {
        let live: HashSet<String> = ctx
            .identities
            .state()
            .iter()
            .filter_map(|o| o.meta().uid.clone())
            .chain(
                ctx.bindings
                    .state()
                    .iter()
                    .filter_map(|o| o.meta().uid.clone()),
            )
            .collect();
        published.retain(|uid, _| live.contains(uid));
        ctx.backoff.retain(|uid| live.contains(uid));
    }
    Ok(())
}

/// A failed Event write is retried with the DemoWeb controller's policy: per-object exponential
/// backoff, reset on success.
fn error_policy<K: Resource>(obj: Arc<K>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.backoff.next_delay(&uid_of(obj.as_ref()));
    tracing::warn!(error = %error, source = ?std::error::Error::source(error), retry_in = ?delay, "identity validation failed; retrying");
    Action::requeue(delay)
}

fn uid_of<K: Resource>(obj: &K) -> String {
    obj.meta().uid.clone().unwrap_or_default()
}

fn log_result<T: std::fmt::Debug, E: std::error::Error>(result: Result<T, E>) {
    match result {
        Ok(obj) => tracing::debug!(?obj, "identity object validated"),
        Err(error) => tracing::debug!(%error, "identity validation pass failed"),
    }
}
