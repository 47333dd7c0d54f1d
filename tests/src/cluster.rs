//! A real Kubernetes control plane on 127.0.0.1, the substrate the emulator is measured against.
//!
//! - **Built from Kubernetes' own Go modules**: kube-apiserver, kube-controller-manager and
//!   kube-scheduler from `k8s.io/kubernetes`, etcd from its server module, pinned by the Go module
//!   in `tests/cluster/kube`; kwok (`tests/cluster/kwok`) simulates the nodes and their pods, with
//!   the stages kwok itself ships (nodes heartbeat through Leases, scheduled pods become Running and
//!   Ready). The binaries are built once per version into `~/.cache/demoweb-operator/` (or
//!   `$DEMOWEB_CACHE_DIR`) and reused.
//! - **Configured like a production cluster** where it matters to the operator: a fresh PKI per start
//!   (client certificates for every component, TLS everywhere but etcd on loopback), RBAC and Node
//!   authorisation, the default admission plugins, service-account tokens, CEL validation, a
//!   service CIDR with room for 65,536 Services, and three nodes in three zones
//!   (`topology.kubernetes.io/zone`). Every component listens on 127.0.0.1 only; the pod and node
//!   addresses kwok reports are for show and nothing sends them traffic.
//! - The controller-manager and the scheduler may send 500 requests a second (Kubernetes' default
//!   is 20): the benchmark creates thousands of Deployments at once, and a managed cluster's
//!   controllers are not throttled to a laptop's pace either.

use std::collections::BTreeMap;
use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use k8s_openapi::api::core::v1::{Node, ServiceAccount};
use kube::api::{Api, PostParams};
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair, KeyUsagePurpose};
use serde::{Deserialize, Serialize};

use crate::gobuild::{GoBuild, cache_root, go_modules_dir, run_go};
use crate::harness::poll;

/// The Kubernetes release `cargo cluster up` runs and CI tests against (`tests/cluster/kube/go.mod`).
pub const PINNED_KUBERNETES: &str = "v1.37.2";
/// The kwok release that simulates nodes and pods (`tests/cluster/kwok/go.mod`).
pub const PINNED_KWOK: &str = "v0.8.0";
/// The Services' address range; its first address is the `kubernetes` Service's.
const SERVICE_CIDR: &str = "10.96.0.0/16";
const KUBERNETES_SERVICE_IP: &str = "10.96.0.1";
/// What kwok assigns pods (and reports as the nodes' address): for show, never contacted.
const POD_CIDR: &str = "10.64.0.1/12";
/// The zones of the three kwok nodes.
pub const ZONES: [&str; 3] = ["zone-a", "zone-b", "zone-c"];
/// The annotation kwok manages nodes by.
const KWOK_NODE_ANNOTATION: (&str, &str) = ("kwok.x-k8s.io/node", "fake");
/// Client request rate of the controller-manager and the scheduler.
const CONTROLLER_QPS: u32 = 500;

/// The programs of a control-plane version, built and cached.
struct Binaries {
    etcd: PathBuf,
    apiserver: PathBuf,
    controller_manager: PathBuf,
    scheduler: PathBuf,
    kwok: PathBuf,
    kwok_stages: PathBuf,
}

/// What `up` recorded, so that `down` and `status` find the processes again.
#[derive(Serialize, Deserialize)]
struct State {
    version: String,
    /// Component name → process id, in start order.
    processes: Vec<(String, u32)>,
    /// Component name → port it listens on (127.0.0.1).
    ports: BTreeMap<String, u16>,
}

/// One cluster, living in a directory.
pub struct Cluster {
    dir: PathBuf,
}

/// The Go module that builds Kubernetes `version`: the committed one for the pinned release, else a
/// copy under the cache with its `k8s.io/kubernetes` requirement and staging replacements moved to
/// that release (the replacements are read from that release's own go.mod).
fn kubernetes_module(version: &str) -> Result<PathBuf, String> {
    let committed = go_modules_dir().join("kube");
    if version == PINNED_KUBERNETES {
        return Ok(committed);
    }
    let minor_patch = version
        .strip_prefix("v1.")
        .ok_or_else(|| format!("{version:?}: a Kubernetes version looks like v1.37.2"))?;
    let staging_version = format!("v0.{minor_patch}");
    let module = cache_root()
        .join("src")
        .join(format!("kubernetes-{version}"));
    let _ = fs::remove_dir_all(&module);
    fs::create_dir_all(module.join("etcd")).map_err(|e| format!("{}: {e}", module.display()))?;
    for file in ["tools.go", "etcd/main.go"] {
        fs::copy(committed.join(file), module.join(file))
            .map_err(|e| format!("copying {file}: {e}"))?;
    }
    let upstream = Command::new("go")
        .args([
            "mod",
            "download",
            "-json",
            &format!("k8s.io/kubernetes@{version}"),
        ])
        .output()
        .map_err(|e| format!("running `go mod download`: {e}"))?;
    let info: serde_json::Value = serde_json::from_slice(&upstream.stdout).map_err(|e| {
        format!(
            "k8s.io/kubernetes@{version} is not served: {e}\n{}",
            String::from_utf8_lossy(&upstream.stderr)
        )
    })?;
    let gomod_path = info["GoMod"]
        .as_str()
        .ok_or_else(|| format!("k8s.io/kubernetes@{version}: no go.mod in {info}"))?;
    let gomod = fs::read_to_string(gomod_path).map_err(|e| format!("{gomod_path}: {e}"))?;
    let go_line = gomod
        .lines()
        .find(|l| l.starts_with("go "))
        .unwrap_or("go 1.26.0");
    let mut text = format!(
        "module demoweb-operator/tests/cluster/kube\n\n{go_line}\n\nrequire k8s.io/kubernetes {version}\n\nreplace (\n"
    );
    for line in gomod.lines() {
        let line = line.trim();
        if let Some((name, _)) = line.split_once(" => ./staging/") {
            text.push_str(&format!("\t{name} => {name} {staging_version}\n"));
        }
    }
    text.push_str(")\n");
    fs::write(module.join("go.mod"), text).map_err(|e| format!("writing go.mod: {e}"))?;
    run_go(&module, &["mod", "tidy"])?;
    Ok(module)
}

/// How the binaries are built; part of the cache's key, so that a change here rebuilds them.
const RECIPE: &str = "r2";

/// What Kubernetes' release build stamps into its programs (`hack/lib/version.sh`): without it
/// kube-apiserver reports `v0.0.0-master` as its version, and clients that check it (Helm's
/// `kubeVersion`) refuse the cluster.
fn version_ldflags(version: &str) -> String {
    let mut parts = version.trim_start_matches('v').split('.');
    let (major, minor) = (parts.next().unwrap_or("1"), parts.next().unwrap_or("0"));
    ["k8s.io/component-base/version", "k8s.io/client-go/pkg/version"]
        .iter()
        .map(|pkg| {
            format!(
                "-X {pkg}.gitVersion={version} -X {pkg}.gitMajor={major} -X {pkg}.gitMinor={minor} -X {pkg}.gitTreeState=clean"
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Builds (or finds in the cache) the control plane of `version` and kwok.
pub fn build(version: &str) -> Result<(), String> {
    binaries(version).map(|_| ())
}

fn binaries(version: &str) -> Result<Binaries, String> {
    let kube_dir = GoBuild {
        name: "kubernetes",
        version,
        recipe: RECIPE,
        ldflags: &version_ldflags(version),
        packages: &[
            "k8s.io/kubernetes/cmd/kube-apiserver",
            "k8s.io/kubernetes/cmd/kube-controller-manager",
            "k8s.io/kubernetes/cmd/kube-scheduler",
            "./etcd",
        ],
    }
    .cached(|| kubernetes_module(version))?;
    let kwok_dir = GoBuild {
        name: "kwok",
        version: PINNED_KWOK,
        recipe: "",
        ldflags: "",
        packages: &["sigs.k8s.io/kwok/cmd/kwok", "./stages"],
    }
    .cached(|| Ok(go_modules_dir().join("kwok")))?;
    Ok(Binaries {
        etcd: kube_dir.join("etcd"),
        apiserver: kube_dir.join("kube-apiserver"),
        controller_manager: kube_dir.join("kube-controller-manager"),
        scheduler: kube_dir.join("kube-scheduler"),
        kwok: kwok_dir.join("kwok"),
        kwok_stages: kwok_dir.join("stages"),
    })
}

pub(crate) fn free_port() -> Result<u16, String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("finding a free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

fn port_listening(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// A certificate authority and what it signed, in PEM.
struct Pki {
    ca: Issuer<'static, KeyPair>,
    ca_pem: String,
}

/// A certificate and its key, in PEM.
struct Signed {
    cert: String,
    key: String,
}

fn pki_error(e: rcgen::Error) -> String {
    format!("generating certificates: {e}")
}

impl Pki {
    fn new() -> Result<Pki, String> {
        let (ca, cert) =
            crate::emulator::certificate_authority("demoweb-cluster-ca").map_err(pki_error)?;
        Ok(Pki {
            ca_pem: cert.pem(),
            ca,
        })
    }

    /// A client certificate: Kubernetes takes the user from the common name and the groups from
    /// the organisations.
    fn client(&self, user: &str, groups: &[&str]) -> Result<Signed, String> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(pki_error)?;
        params.distinguished_name.push(DnType::CommonName, user);
        for group in groups {
            params
                .distinguished_name
                .push(DnType::OrganizationName, *group);
        }
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params)
    }

    /// The API server's serving certificate, for the names clients reach it by.
    fn server(&self, names: &[&str]) -> Result<Signed, String> {
        let (cert, key) =
            crate::emulator::serving_certificate(&self.ca, names).map_err(pki_error)?;
        Ok(Signed {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    }

    fn sign(&self, params: CertificateParams) -> Result<Signed, String> {
        let key = KeyPair::generate().map_err(pki_error)?;
        let cert = params.signed_by(&key, &self.ca).map_err(pki_error)?;
        Ok(Signed {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    }
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))
}

fn kubeconfig_yaml(server: &str, ca_pem: &str, user: &str, client: &Signed) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "demoweb", "cluster": {
            "server": server,
            "certificate-authority-data": b64(ca_pem),
        }}],
        "users": [{"name": user, "user": {
            "client-certificate-data": b64(&client.cert),
            "client-key-data": b64(&client.key),
        }}],
        "contexts": [{"name": "demoweb", "context": {"cluster": "demoweb", "user": user}}],
        "current-context": "demoweb",
    });
    serde_yaml::to_string(&config).expect("a kubeconfig serialises")
}

/// Whether process `pid` is alive and was started with `marker` (the cluster directory) on its
/// command line, so that a recycled process id is never taken for ours.
fn is_ours(pid: u32, marker: &str) -> bool {
    fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
}

fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

impl Cluster {
    pub fn at(dir: PathBuf) -> Cluster {
        let dir = fs::create_dir_all(&dir)
            .ok()
            .and_then(|_| dir.canonicalize().ok())
            .unwrap_or(dir);
        Cluster { dir }
    }

    /// The admin kubeconfig (user `admin` in `system:masters`).
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    fn state(&self) -> Option<State> {
        let text = fs::read_to_string(self.state_path()).ok()?;
        serde_json::from_str(&text).ok()
    }

    fn marker(&self) -> String {
        self.dir.display().to_string()
    }

    fn all_running(&self, state: &State) -> bool {
        let marker = self.marker();
        state
            .processes
            .iter()
            .all(|(_, pid)| is_ours(*pid, &marker))
    }

    /// Builds what is missing and starts the cluster; a cluster already up is left as it is.
    pub async fn up(&self, version: &str) -> Result<(), String> {
        if let Some(state) = self.state() {
            if state.version == version && self.all_running(&state) && self.ready().await {
                println!(
                    "cluster {version} is already up; kubeconfig: {}",
                    self.kubeconfig().display()
                );
                return Ok(());
            }
            eprintln!("a previous cluster is not whole: stopping what is left of it");
            self.down()?;
        }
        let bins = binaries(version)?;
        let started = Instant::now();
        // The ports are picked free, then given to the components: one may be taken in between
        // by another program, and that component exits. Such a start is tried again, on new ports.
        let mut attempt = 1;
        let state = loop {
            match self.start(version, &bins).await {
                Ok(state) => break state,
                Err(e) => {
                    let _ = self.down();
                    if attempt < 3 && e.ends_with(" exited") {
                        eprintln!("{e}; starting again on other ports");
                        attempt += 1;
                        continue;
                    }
                    return Err(format!(
                        "{e}\n(logs in {})",
                        self.dir.join("logs").display()
                    ));
                }
            }
        };
        println!(
            "cluster {version} up in {:.1?}: {} on https://127.0.0.1:{}, 3 kwok nodes; kubeconfig: {}",
            started.elapsed(),
            state
                .processes
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            state.ports["kube-apiserver"],
            self.kubeconfig().display()
        );
        Ok(())
    }

    async fn start(&self, version: &str, bins: &Binaries) -> Result<State, String> {
        let dir = &self.dir;
        for sub in ["pki", "logs"] {
            let _ = fs::remove_dir_all(dir.join(sub));
            fs::create_dir_all(dir.join(sub)).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let _ = fs::remove_dir_all(dir.join("etcd"));
        let pki_dir = dir.join("pki");
        let pki = Pki::new()?;
        let ca_file = pki_dir.join("ca.crt");
        write(&ca_file, &pki.ca_pem)?;
        let serving = pki.server(&[
            "127.0.0.1",
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            KUBERNETES_SERVICE_IP,
        ])?;
        write(&pki_dir.join("apiserver.crt"), &serving.cert)?;
        write(&pki_dir.join("apiserver.key"), &serving.key)?;
        let sa_key = KeyPair::generate().map_err(pki_error)?;
        write(&pki_dir.join("sa.key"), &sa_key.serialize_pem())?;
        write(&pki_dir.join("sa.pub"), &sa_key.public_key_pem())?;

        let mut ports = BTreeMap::new();
        for name in [
            "etcd",
            "etcd-peer",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kwok",
        ] {
            ports.insert(name.to_owned(), free_port()?);
        }
        let server = format!("https://127.0.0.1:{}", ports["kube-apiserver"]);
        let clients = [
            ("kubeconfig", "admin", vec!["system:masters"]),
            (
                "controller-manager.kubeconfig",
                "system:kube-controller-manager",
                vec![],
            ),
            ("scheduler.kubeconfig", "system:kube-scheduler", vec![]),
            // kwok plays every node's kubelet; one identity in system:masters is what kwokctl gives it.
            ("kwok.kubeconfig", "kwok", vec!["system:masters"]),
        ];
        for (file, user, groups) in &clients {
            let signed = pki.client(user, groups)?;
            write(
                &dir.join(file),
                &kubeconfig_yaml(&server, &pki.ca_pem, user, &signed),
            )?;
        }
        let p = |name: &str| dir.join(name).display().to_string();
        let pki_path = |name: &str| pki_dir.join(name).display().to_string();
        let stages = dir.join("kwok-stages.yaml");
        let out = Command::new(&bins.kwok_stages)
            .output()
            .map_err(|e| format!("running {}: {e}", bins.kwok_stages.display()))?;
        fs::write(&stages, &out.stdout).map_err(|e| format!("{}: {e}", stages.display()))?;

        let etcd_url = format!("http://127.0.0.1:{}", ports["etcd"]);
        let peer_url = format!("http://127.0.0.1:{}", ports["etcd-peer"]);
        let mut state = State {
            version: version.to_owned(),
            processes: vec![],
            ports: ports.clone(),
        };
        self.spawn(
            &mut state,
            "etcd",
            &bins.etcd,
            &[
                "--name=default".into(),
                format!("--data-dir={}", p("etcd")),
                format!("--listen-client-urls={etcd_url}"),
                format!("--advertise-client-urls={etcd_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster=default={peer_url}"),
                // A test cluster is thrown away: fsync only slows it down.
                "--unsafe-no-fsync".into(),
                "--quota-backend-bytes=8589934592".into(),
                "--log-level=warn".into(),
            ],
        )?;
        self.spawn(
            &mut state,
            "kube-apiserver",
            &bins.apiserver,
            &[
                format!("--etcd-servers={etcd_url}"),
                "--bind-address=127.0.0.1".into(),
                "--advertise-address=127.0.0.1".into(),
                // The `kubernetes` Service's endpoints may not be a loopback address, and nothing
                // here reaches the API server through it.
                "--endpoint-reconciler-type=none".into(),
                format!("--secure-port={}", ports["kube-apiserver"]),
                format!("--cert-dir={}", pki_path("")),
                format!("--tls-cert-file={}", pki_path("apiserver.crt")),
                format!("--tls-private-key-file={}", pki_path("apiserver.key")),
                format!("--client-ca-file={}", ca_file.display()),
                format!("--service-cluster-ip-range={SERVICE_CIDR}"),
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
                format!("--service-account-key-file={}", pki_path("sa.pub")),
                format!("--service-account-signing-key-file={}", pki_path("sa.key")),
                "--authorization-mode=Node,RBAC".into(),
                "--allow-privileged=true".into(),
                // Lets `kubectl logs` and `exec` fail fast: kwok's kubelets serve nothing.
                "--kubelet-preferred-address-types=InternalIP".into(),
            ],
        )?;
        self.wait_ready(Duration::from_secs(120)).await?;
        self.spawn(
            &mut state,
            "kube-controller-manager",
            &bins.controller_manager,
            &[
                format!("--kubeconfig={}", p("controller-manager.kubeconfig")),
                format!(
                    "--authentication-kubeconfig={}",
                    p("controller-manager.kubeconfig")
                ),
                format!(
                    "--authorization-kubeconfig={}",
                    p("controller-manager.kubeconfig")
                ),
                "--bind-address=127.0.0.1".into(),
                format!("--secure-port={}", ports["kube-controller-manager"]),
                format!("--cert-dir={}", pki_path("")),
                "--leader-elect=false".into(),
                "--use-service-account-credentials=true".into(),
                format!("--service-account-private-key-file={}", pki_path("sa.key")),
                format!("--root-ca-file={}", ca_file.display()),
                format!("--service-cluster-ip-range={SERVICE_CIDR}"),
                "--allocate-node-cidrs=false".into(),
                format!("--kube-api-qps={CONTROLLER_QPS}"),
                format!("--kube-api-burst={}", CONTROLLER_QPS * 2),
            ],
        )?;
        self.spawn(
            &mut state,
            "kube-scheduler",
            &bins.scheduler,
            &[
                format!("--kubeconfig={}", p("scheduler.kubeconfig")),
                format!("--authentication-kubeconfig={}", p("scheduler.kubeconfig")),
                format!("--authorization-kubeconfig={}", p("scheduler.kubeconfig")),
                "--bind-address=127.0.0.1".into(),
                format!("--secure-port={}", ports["kube-scheduler"]),
                format!("--cert-dir={}", pki_path("")),
                "--leader-elect=false".into(),
                format!("--kube-api-qps={CONTROLLER_QPS}"),
                format!("--kube-api-burst={}", CONTROLLER_QPS * 2),
            ],
        )?;
        self.spawn(
            &mut state,
            "kwok",
            &bins.kwok,
            &[
                format!("--kubeconfig={}", p("kwok.kubeconfig")),
                format!("--config={}", stages.display()),
                "--manage-all-nodes=false".into(),
                format!(
                    "--manage-nodes-with-annotation-selector={}={}",
                    KWOK_NODE_ANNOTATION.0, KWOK_NODE_ANNOTATION.1
                ),
                format!("--cidr={POD_CIDR}"),
                "--node-ip=10.64.0.1".into(),
                format!("--server-address=127.0.0.1:{}", ports["kwok"]),
                "--node-lease-duration-seconds=40".into(),
            ],
        )?;
        self.create_nodes().await?;
        self.wait_settled(Duration::from_secs(120)).await?;
        Ok(state)
    }

    /// Starts one component in a process group of its own (so that it outlives `cargo cluster up`),
    /// its output in `logs/<name>.log`, and records it at once so that a failed start is cleaned up.
    fn spawn(
        &self,
        state: &mut State,
        name: &str,
        program: &Path,
        args: &[String],
    ) -> Result<(), String> {
        use std::os::unix::process::CommandExt;
        let log_path = self.dir.join("logs").join(format!("{name}.log"));
        let log =
            fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", program.display()))?;
        state.processes.push((name.to_owned(), child.id()));
        let text = serde_json::to_string_pretty(&*state).expect("state serialises");
        write(&self.state_path(), &text)
    }

    async fn client(&self) -> Result<kube::Client, String> {
        let kc = kube::config::Kubeconfig::read_from(self.kubeconfig())
            .map_err(|e| format!("reading {}: {e}", self.kubeconfig().display()))?;
        let config =
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| format!("kubeconfig: {e}"))?;
        kube::Client::try_from(config).map_err(|e| format!("client: {e}"))
    }

    /// Whether kube-apiserver answers `/readyz` with ok.
    async fn ready(&self) -> bool {
        let Ok(client) = self.client().await else {
            return false;
        };
        let request = http::Request::get("/readyz")
            .body(Vec::new())
            .expect("a GET request");
        client
            .request_text(request)
            .await
            .is_ok_and(|t| t.trim() == "ok")
    }

    async fn wait_ready(&self, timeout: Duration) -> Result<(), String> {
        let marker = self.marker();
        let state = self.state();
        poll(timeout, || async {
            if let Some(state) = &state
                && let Some((name, _)) = state.processes.iter().find(|(_, p)| !is_ours(*p, &marker))
            {
                return Some(Err(format!("{name} exited")));
            }
            self.ready().await.then_some(Ok(()))
        })
        .await
        .unwrap_or_else(|| Err(format!("kube-apiserver not ready within {timeout:?}")))
    }

    async fn create_nodes(&self) -> Result<(), String> {
        let nodes: Api<Node> = Api::all(self.client().await?);
        for (i, zone) in ZONES.iter().enumerate() {
            let name = format!("kwok-node-{i}");
            let node: Node = serde_json::from_value(serde_json::json!({
                "metadata": {
                    "name": name,
                    "annotations": {KWOK_NODE_ANNOTATION.0: KWOK_NODE_ANNOTATION.1},
                    "labels": {
                        "kubernetes.io/hostname": name,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "topology.kubernetes.io/zone": zone,
                        "type": "kwok",
                    },
                },
            }))
            .expect("a Node");
            nodes
                .create(&PostParams::default(), &node)
                .await
                .map_err(|e| format!("creating node {name}: {e}"))?;
        }
        Ok(())
    }

    /// Waits until the three nodes are Ready (kwok runs) and the controller-manager has given the
    /// `default` namespace its ServiceAccount (it runs, and pods can be admitted).
    async fn wait_settled(&self, timeout: Duration) -> Result<(), String> {
        let client = self.client().await?;
        let nodes: Api<Node> = Api::all(client.clone());
        let accounts: Api<ServiceAccount> = Api::namespaced(client, "default");
        let marker = self.marker();
        poll(timeout, || async {
            if let Some(state) = self.state()
                && let Some((name, _)) = state.processes.iter().find(|(_, p)| !is_ours(*p, &marker))
            {
                return Some(Err(format!("{name} exited")));
            }
            let ready = nodes
                .list(&Default::default())
                .await
                .ok()?
                .items
                .iter()
                .filter(|n| node_ready(n))
                .count();
            let account = accounts.get_opt("default").await.ok()?;
            (ready == ZONES.len() && account.is_some()).then_some(Ok(()))
        })
        .await
        .unwrap_or_else(|| {
            Err(format!(
                "nodes not Ready or no default ServiceAccount within {timeout:?}"
            ))
        })
    }

    /// Stops every process (SIGTERM, then SIGKILL after 15 s) and deletes the cluster's data;
    /// fails if one of its ports is still open afterwards.
    pub fn down(&self) -> Result<(), String> {
        let Some(state) = self.state() else {
            println!("no cluster in {}", self.dir.display());
            return Ok(());
        };
        let marker = self.marker();
        for (_, pid) in state.processes.iter().rev() {
            if is_ours(*pid, &marker) {
                signal(*pid, "-TERM");
            }
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while state.processes.iter().any(|(_, p)| is_ours(*p, &marker)) {
            if Instant::now() > deadline {
                for (_, pid) in &state.processes {
                    if is_ours(*pid, &marker) {
                        signal(*pid, "-KILL");
                    }
                }
                std::thread::sleep(Duration::from_millis(200));
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let left: Vec<&str> = state
            .processes
            .iter()
            .filter(|(_, p)| is_ours(*p, &marker))
            .map(|(n, _)| n.as_str())
            .collect();
        let open: Vec<String> = state
            .ports
            .iter()
            .filter(|(_, port)| port_listening(**port))
            .map(|(n, port)| format!("{n} ({port})"))
            .collect();
        let _ = fs::remove_file(self.state_path());
        let _ = fs::remove_dir_all(self.dir.join("etcd"));
        if !left.is_empty() || !open.is_empty() {
            return Err(format!(
                "still running: {left:?}; still listening: {open:?}"
            ));
        }
        println!("cluster stopped; nothing of it runs or listens");
        Ok(())
    }

    /// Prints each component's process and the cluster's readiness; true when all is well.
    pub async fn status(&self) -> bool {
        let Some(state) = self.state() else {
            println!("no cluster in {} (cargo cluster up)", self.dir.display());
            return false;
        };
        let marker = self.marker();
        let mut healthy = true;
        println!("Kubernetes {} in {}", state.version, self.dir.display());
        for (name, pid) in &state.processes {
            let alive = is_ours(*pid, &marker);
            healthy &= alive;
            let port = state
                .ports
                .get(name)
                .map(|p| format!(" 127.0.0.1:{p}"))
                .unwrap_or_default();
            println!(
                "  {name:<24} pid {pid:<8}{port:<17} {}",
                if alive { "running" } else { "NOT RUNNING" }
            );
        }
        let ready = self.ready().await;
        healthy &= ready;
        println!(
            "  kube-apiserver /readyz: {}",
            if ready { "ok" } else { "not ready" }
        );
        if let Ok(client) = self.client().await {
            let nodes: Api<Node> = Api::all(client);
            if let Ok(list) = nodes.list(&Default::default()).await {
                let ready = list.items.iter().filter(|n| node_ready(n)).count();
                healthy &= ready == ZONES.len();
                println!("  nodes Ready: {ready} of {}", list.items.len());
            }
        }
        println!("  kubeconfig: {}", self.kubeconfig().display());
        healthy
    }
}

fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}
