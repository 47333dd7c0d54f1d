//! The integration-test harness: one cluster (an in-process emulator, or the real one named by
//! `DEMOWEB_TEST_KUBECONFIG`), one fresh namespace per test, `kubectl` and poll-with-deadline helpers.
//!
//! ```no_run
//! # async fn t() {
//! use demoweb_tests::harness::TestEnv;
//! let env = TestEnv::new("my_test").await;
//! env.apply_yaml("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n").await.expect_ok();
//! let out = env.kubectl(&["get", "cm", "x", "-o", "name"]).await.expect_ok();
//! assert_eq!(out.trim(), "configmap/x");
//! env.finish().await;
//! # }
//! ```

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::IngressClass;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use tokio::io::AsyncWriteExt;

use crate::emulator::{Emulator, EmulatorHandle, EmulatorOptions};

/// The one poll loop of the test support: calls `check` until it returns `Some`, backing off from
/// 20ms to 250ms between calls; `None` once `timeout` has passed.
pub async fn poll<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    let mut delay = Duration::from_millis(20);
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if start.elapsed() > timeout {
            return None;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(250));
    }
}

/// Server-side applies CRDs under `field_manager` (forced: the suite's copy is the one wanted) and
/// waits until each is Established. The one CRD installation of the tests, the playground and the
/// benchmark.
pub async fn install_crds(
    client: &kube::Client,
    crds: &[CustomResourceDefinition],
    field_manager: &str,
    timeout: Duration,
) -> Result<(), String> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let pp = PatchParams::apply(field_manager).force();
    for crd in crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(&name, &pp, &Patch::Apply(crd))
            .await
            .map_err(|e| format!("applying CRD {name}: {e}"))?;
    }
    for crd in crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let established = poll(timeout, || async {
            let live = api.get(&name).await.ok()?;
            live.status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
                .then_some(())
        })
        .await;
        if established.is_none() {
            return Err(format!("CRD {name} not Established within {timeout:?}"));
        }
    }
    Ok(())
}

/// The environment variable naming a real cluster's kubeconfig to run the tests against.
pub const KUBECONFIG_ENV: &str = "DEMOWEB_TEST_KUBECONFIG";

/// Set (to `1`) when the real cluster belongs to the suite, as `cargo cluster`'s does in CI: the
/// tests that change cluster-wide objects are then compiled in (`cfg(cluster_wide)`), and must be
/// given the cluster alone. Their names start with `cluster_wide_`, so a run is two passes:
/// `cargo test … -- --skip cluster_wide_`, then `cargo test … cluster_wide_ -- --test-threads=1`.
pub const CLUSTER_WIDE_ENV: &str = "DEMOWEB_TEST_CLUSTER_WIDE";

/// The API groups of other projects' CRDs that cluster-wide tests install (allowlist dialects).
const INSTALLED_BY_TESTS: [&str; 3] = [
    "traefik.io",
    "traefik.containo.us",
    "configuration.konghq.com",
];

/// What a `kubectl` run printed.
#[derive(Debug, Clone)]
pub struct KubectlOutput {
    pub stdout: String,
    pub stderr: String,
    /// The exit code (-1 when killed by a signal).
    pub status: i32,
    /// The command line, for failure messages.
    pub command: String,
}

impl KubectlOutput {
    pub fn success(&self) -> bool {
        self.status == 0
    }

    /// The stdout of a successful run; panics with the command and its stderr otherwise.
    #[track_caller]
    pub fn expect_ok(&self) -> String {
        assert!(
            self.success(),
            "`{}` failed with exit code {}:\nstdout:\n{}\nstderr:\n{}",
            self.command,
            self.status,
            self.stdout,
            self.stderr
        );
        self.stdout.clone()
    }

    /// The stderr of a failed run; panics when it succeeded.
    #[track_caller]
    pub fn expect_err(&self) -> String {
        assert!(
            !self.success(),
            "`{}` succeeded but should have failed:\n{}",
            self.command,
            self.stdout
        );
        self.stderr.clone()
    }
}

/// One test's cluster, namespace and kubeconfig.
pub struct TestEnv {
    pub client: kube::Client,
    pub namespace: String,
    pub kubeconfig_path: PathBuf,
    /// The in-process emulator; `None` against a real cluster (fault injection is emulator-only).
    pub emulator: Option<EmulatorHandle>,
    dir: tempfile::TempDir,
    finished: bool,
}

fn namespace_for(test_name: &str) -> String {
    let mut base: String = test_name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    base.truncate(50);
    let base = base.trim_matches('-');
    let suffix: String = (0..5)
        .map(|_| (b'a' + rand::random_range(0..26u8)) as char)
        .collect();
    if base.is_empty() {
        format!("t-{suffix}")
    } else {
        format!("{base}-{suffix}")
    }
}

impl TestEnv {
    /// Connects to `DEMOWEB_TEST_KUBECONFIG`'s cluster or starts an emulator, and creates a fresh namespace.
    pub async fn new(test_name: &str) -> TestEnv {
        Self::with_options(test_name, EmulatorOptions::default()).await
    }

    /// Like [`TestEnv::new`], with options for the emulator (ignored against a real cluster).
    pub async fn with_options(test_name: &str, opts: EmulatorOptions) -> TestEnv {
        let dir = tempfile::tempdir().expect("temp dir");
        let (client, kubeconfig_path, emulator) = match std::env::var_os(KUBECONFIG_ENV) {
            Some(path) => {
                let path = PathBuf::from(path);
                let kc = kube::config::Kubeconfig::read_from(&path)
                    .expect("read DEMOWEB_TEST_KUBECONFIG");
                let config = kube::Config::from_custom_kubeconfig(
                    kc,
                    &kube::config::KubeConfigOptions::default(),
                )
                .await
                .expect("kubeconfig usable");
                (kube::Client::try_from(config).expect("client"), path, None)
            }
            None => {
                let emu = Emulator::start(opts).await.expect("start emulator");
                let path = dir.path().join("kubeconfig");
                emu.write_kubeconfig(&path).expect("write kubeconfig");
                (emu.client(), path, Some(emu))
            }
        };
        let namespace = namespace_for(test_name);
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": namespace, "labels": {"demoweb.test/name": namespace}}
        }))
        .expect("namespace");
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("create test namespace");
        TestEnv {
            client,
            namespace,
            kubeconfig_path,
            emulator,
            dir,
            finished: false,
        }
    }

    /// For a test that changes cluster-wide objects (CRDs, the default IngressClass): on the
    /// emulator a fresh one as for any test; on a real cluster (only with [`CLUSTER_WIDE_ENV`], one
    /// such test at a time) it first puts back what every test expects of the cluster: the
    /// project's CRDs exactly as generated, no allowlist CRDs of other projects, no default
    /// IngressClass.
    pub async fn cluster_wide(test_name: &str) -> TestEnv {
        let env = TestEnv::new(test_name).await;
        if !env.is_emulator() {
            env.reset_cluster_wide().await;
        }
        env
    }

    async fn reset_cluster_wide(&self) {
        let crds: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        let live = crds.list(&Default::default()).await.expect("list CRDs");
        for crd in &live.items {
            if INSTALLED_BY_TESTS.contains(&crd.spec.group.as_str()) {
                self.remove_crd(crd.metadata.name.as_deref().unwrap_or_default())
                    .await;
            }
        }
        let classes: Api<IngressClass> = Api::all(self.client.clone());
        for class in classes.list(&Default::default()).await.expect("list").items {
            let default = class
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("ingressclass.kubernetes.io/is-default-class"))
                .is_some_and(|v| v == "true");
            if default {
                let name = class.metadata.name.unwrap_or_default();
                classes
                    .delete(&name, &DeleteParams::default())
                    .await
                    .unwrap_or_else(|e| panic!("deleting IngressClass {name}: {e}"));
            }
        }
        let ours = demoweb_crd::all_crds();
        for crd in &ours {
            let name = crd.metadata.name.clone().unwrap_or_default();
            let Some(live) = crds.get_opt(&name).await.expect("get CRD") else {
                continue;
            };
            // A test may have put a permissive copy in its place: overwrite it whole.
            let same = serde_json::to_value(&live.spec.versions).ok()
                == serde_json::to_value(&crd.spec.versions).ok();
            if !same {
                let mut replacement = crd.clone();
                replacement.metadata.resource_version = live.metadata.resource_version.clone();
                crds.replace(&name, &PostParams::default(), &replacement)
                    .await
                    .unwrap_or_else(|e| panic!("putting back CRD {name}: {e}"));
            }
        }
        self.install_crds(&ours).await;
    }

    /// Deletes a CRD (every object of its kind goes with it) and waits until it is gone.
    pub async fn remove_crd(&self, name: &str) {
        let crds: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        match crds.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => return,
            Err(e) => panic!("deleting CRD {name}: {e}"),
        }
        self.wait_for(
            &format!("CRD {name} to be gone"),
            Duration::from_secs(120),
            || async { crds.get_opt(name).await.ok()?.is_none().then_some(()) },
        )
        .await;
    }

    /// Writes a merge patch (`{"status": ...}`) through the object's status subresource, as its
    /// controller (a kubelet, for a pod) writes it; kubectl prints the object as JSON.
    pub async fn patch_status(&self, resource: &str, name: &str, patch: &str) -> KubectlOutput {
        self.kubectl(&[
            "patch",
            resource,
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            patch,
            "-o",
            "json",
        ])
        .await
    }

    /// Whether the tests run against the in-process emulator.
    pub fn is_emulator(&self) -> bool {
        self.emulator.is_some()
    }

    /// The emulator, for tests that need its fault injection or counters. Such tests carry
    /// `#[cfg_attr(real_cluster, ignore = "...")]`, so they are reported as ignored (with why) when
    /// the suite runs against a real cluster, and never reach this there.
    #[track_caller]
    pub fn emulator(&self) -> &EmulatorHandle {
        self.emulator.as_ref().expect(
            "this test needs the emulator: mark it #[cfg_attr(real_cluster, ignore = \"why\")]",
        )
    }

    /// A scratch directory that lives as long as the test.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A namespaced API in the test's namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Server-side applies CRDs (e.g. `demoweb_crd::all_crds()`) and waits until each is Established.
    /// Idempotent, so tests sharing a real cluster may all call it.
    pub async fn install_crds(&self, crds: &[CustomResourceDefinition]) {
        install_crds(&self.client, crds, "demoweb-tests", Duration::from_secs(60))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Runs the real kubectl with this test's kubeconfig and namespace.
    pub async fn kubectl(&self, args: &[&str]) -> KubectlOutput {
        self.kubectl_with_stdin(args, None).await
    }

    /// `kubectl apply -f -` with the given YAML.
    pub async fn apply_yaml(&self, yaml: &str) -> KubectlOutput {
        self.kubectl_with_stdin(&["apply", "-f", "-"], Some(yaml))
            .await
    }

    /// Runs kubectl with `input` on stdin (e.g. `["apply", "--server-side", "-f", "-"]`).
    pub async fn kubectl_with_stdin(&self, args: &[&str], input: Option<&str>) -> KubectlOutput {
        let kubectl = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
        let kubeconfig = self.kubeconfig_path.to_string_lossy().to_string();
        let mut full: Vec<&str> = vec!["--kubeconfig", &kubeconfig, "-n", &self.namespace];
        full.extend_from_slice(args);
        let command = format!("kubectl {}", args.join(" "));
        let mut child = tokio::process::Command::new(&kubectl)
            .args(&full)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {kubectl} (install kubectl or set KUBECTL): {e}")
            });
        if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin
                .write_all(text.as_bytes())
                .await
                .expect("write kubectl stdin");
        }
        let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("`{command}` did not finish in 120s"))
            .expect("kubectl ran");
        KubectlOutput {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            status: out.status.code().unwrap_or(-1),
            command,
        }
    }

    /// Polls `check` until it returns `Some`, or panics after `timeout` with what the namespace holds.
    pub async fn wait_for<T, F, Fut>(&self, description: &str, timeout: Duration, check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        match poll(timeout, check).await {
            Some(v) => v,
            None => {
                let dump = self.dump().await;
                panic!(
                    "timed out after {timeout:?} waiting for {description}\n--- namespace {} ---\n{dump}",
                    self.namespace
                );
            }
        }
    }

    /// `kubectl get all,events -o yaml` in the test's namespace, for failure messages.
    pub async fn dump(&self) -> String {
        let out = self
            .kubectl(&[
                "get",
                "all,events,configmaps,secrets,ingresses,leases",
                "-o",
                "yaml",
            ])
            .await;
        format!("{}{}", out.stdout, out.stderr)
    }

    /// Deletes the test's namespace (against a real cluster) and stops the emulator.
    pub async fn finish(mut self) {
        self.finished = true;
        if self.emulator.is_none() {
            let _ = Api::<Namespace>::all(self.client.clone())
                .delete(&self.namespace, &DeleteParams::default())
                .await;
        }
        if let Some(e) = self.emulator.take() {
            e.shutdown().await;
        }
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if self.finished || self.emulator.is_some() {
            return;
        }
        // A failed test on a real cluster: remove its namespace without waiting.
        let kubectl = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
        let _ = std::process::Command::new(kubectl)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig_path)
            .args(["delete", "namespace", &self.namespace, "--wait=false"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }
}
