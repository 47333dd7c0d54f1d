//! The manager: the client, signals, the endpoints, leader terms, and the controllers' start and
//! stop. `demoweb-operator run` hands over to [`run`].
//!
//! One [`CancellationToken`] says when to stop: the root is cancelled on Ctrl-C or SIGTERM; each
//! leader term is a child of it, cancelled also when the Lease is lost; each run of the DemoWeb
//! controller is a child of the term, cancelled also when the aad-pod-identity API appears (and
//! the controller restarts with its watches).

use std::sync::Arc;
use std::time::Duration;

use demoweb_crd::DemoWeb;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::ListParams;
use kube::runtime::events::Reporter;
use kube::{Api, Client};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::error::StartupError;
use crate::metrics::Metrics;
use crate::{demoweb, identity, leader, server, vocabulary};

/// Resolves when `rx` holds `want` (or its sender is gone).
async fn flipped(mut rx: watch::Receiver<bool>, want: bool) {
    let _ = rx.wait_for(|v| *v == want).await;
}

/// The CRD whose arrival means the aad-pod-identity API may be served now.
pub const IDENTITY_BINDING_CRD: &str = "azureidentitybindings.aadpodidentity.k8s.io";

async fn identity_served(client: &Client) -> bool {
    serves(client, "aadpodidentity.k8s.io/v1", "azureidentitybindings").await
        && serves(client, "aadpodidentity.k8s.io/v1", "azureidentities").await
}

/// Resolves once the aad-pod-identity API is served: woken by a watch on the binding CRD (so a
/// `helm upgrade` that installs it is acted on in seconds), and by a poll every `poll` (the
/// fallback when that watch is not allowed).
async fn identity_api_appeared(client: Client, poll: Duration) {
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let config =
        watcher::Config::default().fields(&format!("metadata.name={IDENTITY_BINDING_CRD}"));
    let mut crd_events = watcher(api, config)
        .default_backoff()
        .touched_objects()
        .boxed();
    let mut poll = tokio::time::interval(poll);
    poll.tick().await;
    loop {
        tokio::select! {
            Some(_) = crd_events.next() => {
                // Discovery follows the CRD's Established condition by a moment.
                for _ in 0..10 {
                    if identity_served(&client).await {
                        return;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
            }
            _ = poll.tick() => {
                if identity_served(&client).await {
                    return;
                }
            }
        }
    }
}

/// Runs the DemoWeb controller until `term` is cancelled (shutdown, or loss of the Lease). Without
/// the aad-pod-identity API it runs without identity watches and restarts with them once the API
/// is served, so installing those CRDs later (e.g. `helm upgrade` with the identity CRDs enabled)
/// needs no restart of the pod. `poll` is how often the API is looked for while it is not served.
async fn run_demoweb(
    client: &Client,
    config: impl Fn(bool) -> demoweb::ControllerConfig,
    poll: Duration,
    metrics: &Arc<Metrics>,
    term: &CancellationToken,
) {
    loop {
        let served = identity_served(client).await;
        // This run's end: the term's, or the identity API appearing.
        let this_run = term.child_token();
        let poller = (!served).then(|| {
            tracing::info!(
                "aadpodidentity.k8s.io/v1 is not served: DemoWebs with spec.identity report their binding as not found until it is"
            );
            let client = client.clone();
            let appeared = this_run.clone();
            tokio::spawn(async move {
                identity_api_appeared(client, poll).await;
                appeared.cancel();
            })
        });
        let shutdown = this_run.clone().cancelled_owned();
        demoweb::run(client.clone(), config(served), metrics.clone(), shutdown).await;
        if let Some(poller) = poller {
            poller.abort();
        }
        // Only the identity API's appearance cancels this run and not the term.
        let restart = this_run.is_cancelled() && !term.is_cancelled();
        if !restart {
            return;
        }
        tracing::info!(
            "aadpodidentity.k8s.io/v1 is now served: restarting the DemoWeb controller with identity watches"
        );
    }
}

/// The identity validation controller, alongside the DemoWeb controller.
fn spawn_identity(
    client: &Client,
    namespace: Option<String>,
    poll: Duration,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let client = client.clone();
    tokio::spawn(async move {
        if let Err(err) = identity::run(client, namespace, poll, shutdown).await {
            tracing::error!(error = %err, "the identity controller stopped");
        }
    })
}

/// Cancels `shutdown` on Ctrl-C or SIGTERM.
fn spawn_signal_handler(shutdown: CancellationToken) {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
        shutdown.cancel();
    });
}

/// Fails with installation instructions when the DemoWeb CRD is not served.
async fn check_crd(client: &Client, namespace: Option<&str>) -> Result<(), StartupError> {
    let api: Api<DemoWeb> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    match api.list_metadata(&ListParams::default().limit(1)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Err(StartupError::CrdNotInstalled),
        Err(err) => Err(StartupError::CheckCrd(err)),
    }
}

async fn serves(client: &Client, group_version: &str, plural: &str) -> bool {
    client
        .list_api_group_resources(group_version)
        .await
        .is_ok_and(|l| l.resources.iter().any(|r| r.name == plural))
}

/// This replica's name: the pod's, else the host's.
fn replica_identity() -> String {
    std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| format!("{}-{}", vocabulary::MANAGER, std::process::id()))
}

/// A client from the in-cluster config or KUBECONFIG that names itself in the User-Agent, so API
/// server audit logs and request metrics tell this operator's requests apart.
async fn client(protocols: crate::client::Protocols) -> Result<Client, StartupError> {
    let mut config = kube::Config::infer()
        .await
        .map_err(|e| StartupError::Config(kube::Error::InferConfig(e)))?;
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(concat!("demoweb-operator/", env!("CARGO_PKG_VERSION"))),
    ));
    crate::client::build(config, protocols).map_err(StartupError::Config)
}

/// What the `run` command needs, as the command line (or a test) decided it.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Watch one namespace only; all when `None`.
    pub namespace: Option<String>,
    /// Address of the /metrics, /healthz and /readyz endpoints.
    pub metrics_addr: std::net::SocketAddr,
    /// The Lease to compete for so that only one replica reconciles; `None` runs alone.
    pub lease: Option<Lease>,
    pub resync_period: Duration,
    pub stalled_requeue_period: Duration,
    pub identity_api_poll_period: Duration,
    /// How many DemoWeb reconciles run at once.
    pub max_concurrent_reconciles: u16,
    /// Whether the client offers HTTP/2.
    pub protocols: crate::client::Protocols,
}

/// Where the leader Lease lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub namespace: String,
    pub name: String,
}

/// The `run` command: health and metrics endpoints, leader election, the controllers.
pub async fn run(config: RunConfig) -> Result<(), StartupError> {
    let client = client(config.protocols).await?;
    check_crd(&client, config.namespace.as_deref()).await?;

    let metrics = Arc::new(Metrics::default());
    let readiness = server::Readiness::not_ready("starting");
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone());

    let listener = tokio::net::TcpListener::bind(config.metrics_addr)
        .await
        .map_err(|source| StartupError::Listen {
            addr: config.metrics_addr,
            source,
        })?;
    let bound = listener.local_addr().unwrap_or(config.metrics_addr);
    tracing::info!(addr = %bound, "serving /metrics, /healthz and /readyz");
    let state = server::ServerState {
        metrics: metrics.clone(),
        readiness: readiness.clone(),
    };
    let server = tokio::spawn(server::serve(
        listener,
        state,
        shutdown.clone().cancelled_owned(),
    ));

    let identity = replica_identity();
    let controllers = Controllers {
        client: &client,
        config: &config,
        identity: &identity,
        readiness: &readiness,
        metrics: &metrics,
    };
    let result = match &config.lease {
        None => {
            controllers.run(&shutdown).await;
            Ok(())
        }
        Some(lease) => {
            let cfg = leader::LeaderConfig::new(
                lease.namespace.clone(),
                lease.name.clone(),
                identity.clone(),
            );
            let (lead_tx, lead_rx) = watch::channel(false);
            let elector = tokio::spawn(leader::run_elector(
                client.clone(),
                cfg.clone(),
                lead_tx,
                metrics.clone(),
                shutdown.clone(),
            ));
            // A replica standing by is ready: it serves its endpoints and would take over, and a
            // rollout must not wait for it to lead. Leading, it is ready once its caches synced.
            readiness.ready(format!(
                "standing by for the Lease {}/{}",
                cfg.namespace, cfg.name
            ));
            tracing::info!(lease = %format!("{}/{}", cfg.namespace, cfg.name), %identity, "waiting for leadership");
            tokio::select! {
                _ = flipped(lead_rx.clone(), true) => {}
                _ = shutdown.cancelled() => {}
            }
            if !shutdown.is_cancelled() {
                // The term ends on shutdown or when the Lease is lost.
                let term = shutdown.child_token();
                let lost = term.clone();
                let lead = lead_rx.clone();
                tokio::spawn(async move {
                    flipped(lead, false).await;
                    lost.cancel();
                });
                controllers.run(&term).await;
            }
            if shutdown.is_cancelled() {
                let _ = elector.await;
                Ok(())
            } else {
                Err(StartupError::LostLeadership {
                    namespace: cfg.namespace,
                    name: cfg.name,
                })
            }
        }
    };
    server.abort();
    result
}

/// The operator's controllers and what they share, started the same way whether or not this
/// replica had to win a Lease first.
struct Controllers<'a> {
    client: &'a Client,
    config: &'a RunConfig,
    identity: &'a str,
    readiness: &'a server::Readiness,
    metrics: &'a Arc<Metrics>,
}

impl Controllers<'_> {
    /// Runs the identity and DemoWeb controllers until `term` is cancelled: on shutdown or, when
    /// leading, on losing the Lease.
    async fn run(&self, term: &CancellationToken) {
        let poll = self.config.identity_api_poll_period;
        let identity_task = spawn_identity(
            self.client,
            self.config.namespace.clone(),
            poll,
            term.clone().cancelled_owned(),
        );
        let controller_config = |identity_served| demoweb::ControllerConfig {
            namespace: self.config.namespace.clone(),
            identity_served,
            reporter: Reporter {
                controller: vocabulary::MANAGER.to_owned(),
                instance: Some(self.identity.to_owned()),
            },
            resync_period: self.config.resync_period,
            stalled_requeue_period: self.config.stalled_requeue_period,
            max_concurrent_reconciles: self.config.max_concurrent_reconciles,
            readiness: self.readiness.clone(),
        };
        run_demoweb(self.client, controller_config, poll, self.metrics, term).await;
        let _ = identity_task.await;
    }
}
