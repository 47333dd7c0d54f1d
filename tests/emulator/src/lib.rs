//! An in-memory stand-in for kube-apiserver that speaks the real wire protocol over HTTP.
//!
//! Start it in-process with [`Emulator::start`], or as the `emulator` binary. It serves discovery,
//! CRDs, CRUD, watch, server-side apply, garbage collection and fault injection; Deployments get
//! ReplicaSets and pods as the real controllers, scheduler and a kubelet (kwok) give them.

pub mod apply;
pub mod schema;

mod controllers;
mod discovery;
mod endpointslices;
mod engines;
pub mod errors;
pub mod faults;
mod kinds;
mod ops;
mod protobuf;
mod quota;
mod resources;
mod scheduler;
mod selector;
mod server;
mod shared;
mod store;
mod table;
mod tls;
mod workloads;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

pub use faults::{Access, Connection, ErrorRule, Faults, Matcher, RequestCounts};
use shared::Shared;
pub use tls::{certificate_authority, serving_certificate};

/// How to start an emulator.
#[derive(Debug, Clone)]
pub struct EmulatorOptions {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// When set, every request must carry `Authorization: Bearer <token>` (401 otherwise).
    /// kube-rs sends it over plain HTTP; kubectl sends credentials only over HTTPS (`tls`).
    pub token: Option<String>,
    /// Whether the kubelet starts pods ready (see [`EmulatorHandle::set_deployments_ready`]).
    pub deployments_ready: bool,
    /// How many changes the watch history keeps; older resourceVersions get 410 Gone. The default,
    /// 100,000, is about kube-apiserver's largest watch cache (102,400 events per resource), so a
    /// watch cut during a burst of writes resumes instead of relisting, as it does on a cluster.
    pub watch_window: usize,
    /// How often watches that asked for bookmarks get one.
    pub bookmark_interval: Duration,
    /// Serve HTTPS with a certificate from a CA generated at start-up
    /// ([`EmulatorHandle::ca_pem`]); kubeconfigs and clients from the handle trust it.
    pub tls: bool,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        EmulatorOptions {
            port: 0,
            token: None,
            deployments_ready: true,
            watch_window: 100_000,
            bookmark_interval: Duration::from_secs(5),
            tls: false,
        }
    }
}

/// The emulator entry point.
pub struct Emulator;

/// A running emulator. Dropping it stops the server.
pub struct EmulatorHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    tls: Option<tls::ServerTls>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    controllers: tokio::task::JoinHandle<()>,
}

impl Emulator {
    /// Binds 127.0.0.1 and starts serving; the returned handle is ready to answer.
    pub async fn start(opts: EmulatorOptions) -> std::io::Result<EmulatorHandle> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", opts.port)).await?;
        let addr = listener.local_addr()?;
        let mut st = store::Store::new(opts.watch_window);
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let obj = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            let info = st.resources[0].clone();
            let _ = ops::create(
                &mut st,
                &info,
                "",
                obj,
                &ops::WriteOpts::internal("kube-apiserver"),
                false,
            );
        }
        // The nodes kwok manages on the real control plane, as its stages leave them.
        if let Some(info) = st.find("", "v1", "nodes").cloned() {
            let now = ops::now();
            for n in &scheduler::NODES {
                let _ = ops::create(
                    &mut st,
                    &info,
                    "",
                    kinds::node::kwok_node(n.name, n.zone, n.ip, &now),
                    &ops::WriteOpts::internal("kwok"),
                    false,
                );
            }
        }
        // Versions from before the emulator started are as good as compacted on a real cluster.
        st.compact();
        let shared = Arc::new(Shared {
            store: Mutex::new(st),
            faults: Faults::default(),
            counts: RequestCounts::default(),
            token: opts.token.clone(),
            deployments_ready: AtomicBool::new(opts.deployments_ready),
            recheck_deployments: AtomicBool::new(false),
            wake: Notify::new(),
            bookmark_interval: opts.bookmark_interval,
            addr: addr.to_string(),
        });
        let app = server::router(shared.clone());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let stopped = async {
            let _ = stop_rx.await;
        };
        let tls = if opts.tls {
            Some(tls::ServerTls::generate()?)
        } else {
            None
        };
        let server = match &tls {
            Some(tls) => {
                // `tap_io` only so that the connection's peer address reaches the requests
                // (`ConnectInfo`), as it does for a plain TCP listener.
                let listener = axum::serve::ListenerExt::tap_io(tls.listener(listener), |_| {});
                tokio::spawn(async move {
                    let _ = axum::serve(
                        listener,
                        app.into_make_service_with_connect_info::<SocketAddr>(),
                    )
                    .with_graceful_shutdown(stopped)
                    .await;
                })
            }
            None => tokio::spawn(async move {
                let _ = axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .with_graceful_shutdown(stopped)
                .await;
            }),
        };
        let ctl = shared.clone();
        let controllers = tokio::spawn(async move {
            loop {
                let due = ctl.store().next_due();
                match due {
                    Some(at) => {
                        tokio::select! {
                            () = ctl.wake.notified() => {}
                            () = tokio::time::sleep_until(at.into()) => {}
                        }
                    }
                    None => ctl.wake.notified().await,
                }
                let ready = ctl.deployments_ready.load(Ordering::SeqCst);
                let all = ctl.recheck_deployments.swap(false, Ordering::SeqCst);
                controllers::reconcile(&mut ctl.store(), ready, all);
            }
        });
        Ok(EmulatorHandle {
            shared,
            addr,
            tls,
            stop: Some(stop_tx),
            server: Some(server),
            controllers,
        })
    }
}

impl EmulatorHandle {
    /// `http://127.0.0.1:<port>`, or `https://` when serving TLS.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// With TLS, the CA certificate (PEM) that signed the serving certificate: what a pod's
    /// `/var/run/secrets/kubernetes.io/serviceaccount/ca.crt` holds on a real cluster.
    pub fn ca_pem(&self) -> Option<&str> {
        self.tls.as_ref().map(|t| t.ca_pem.as_str())
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kubeconfig (YAML) pointing at this emulator, with the token when one is required.
    pub fn kubeconfig_yaml(&self) -> String {
        self.kubeconfig_yaml_in("default")
    }

    /// A kubeconfig whose context defaults to `namespace`, as `kubectl config set-context
    /// --current --namespace` leaves it.
    pub fn kubeconfig_yaml_in(&self, namespace: &str) -> String {
        let user = match &self.shared.token {
            Some(t) => format!("    token: {t}\n"),
            None => "    {}\n".to_string(),
        };
        let ca = match &self.tls {
            Some(t) => {
                use base64::Engine;
                let data = base64::engine::general_purpose::STANDARD.encode(&t.ca_pem);
                format!("    certificate-authority-data: {data}\n")
            }
            None => String::new(),
        };
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: emulator\n  cluster:\n    server: {}\n{ca}contexts:\n- name: emulator\n  context:\n    cluster: emulator\n    user: emulator\n    namespace: {namespace}\ncurrent-context: emulator\nusers:\n- name: emulator\n  user:\n{user}",
            self.url()
        )
        .replace("  user:\n    {}\n", "  user: {}\n")
    }

    /// Writes the kubeconfig atomically (temp file + rename), so readers never see half a file.
    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        self.write_kubeconfig_in(path, "default")
    }

    /// [`Self::write_kubeconfig`] with the context's namespace set to `namespace`.
    pub fn write_kubeconfig_in(&self, path: &Path, namespace: &str) -> std::io::Result<()> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let tmp = tempfile::NamedTempFile::new_in(dir)?;
        std::fs::write(tmp.path(), self.kubeconfig_yaml_in(namespace))?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    }

    /// A kube client for this emulator (with the token when one is required).
    pub fn client(&self) -> kube::Client {
        let mut config =
            kube::Config::new(self.url().parse().expect("emulator url is a valid uri"));
        config.default_namespace = "default".into();
        if let Some(t) = &self.tls {
            config.root_cert = Some(vec![t.ca_der.clone()]);
        }
        if let Some(t) = &self.shared.token {
            config.auth_info.token = Some(t.clone().into());
        }
        kube::Client::try_from(config).expect("client for the emulator")
    }

    /// The fault-injection controls.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// Requests served so far, by verb and resource.
    pub fn request_counts(&self) -> &RequestCounts {
        &self.shared.counts
    }

    /// Whether the kubelet starts pods ready; switching has it report every pod again whose
    /// status only it has written (a pod whose status someone else wrote keeps it).
    ///
    /// Held back, a pod stays `Pending` with its containers waiting (`PodInitializing`, or
    /// `ContainerCreating` without init containers), as while images are pulled; its Deployment
    /// reports `replicas`, `updatedReplicas`, `unavailableReplicas`, `Available=False`
    /// (MinimumReplicasUnavailable) and `Progressing=True` (ReplicaSetUpdated); no ready replicas.
    pub fn set_deployments_ready(&self, ready: bool) {
        self.shared.deployments_ready.store(ready, Ordering::SeqCst);
        self.shared
            .recheck_deployments
            .store(true, Ordering::SeqCst);
        self.shared.wake.notify_one();
    }

    /// Stops accepting requests, ends watches and waits for the server to finish.
    pub async fn shutdown(mut self) {
        self.stop_now();
        self.shared.faults.cut_watches();
        if let Some(s) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), s).await;
        }
    }

    fn stop_now(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.controllers.abort();
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        self.stop_now();
        self.shared.faults.cut_watches();
        if let Some(s) = self.server.take() {
            s.abort();
        }
    }
}
