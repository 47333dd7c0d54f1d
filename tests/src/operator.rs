//! Support for the integration tests: the real operator binary as a child process, CRD
//! installation, polls with a deadline, and reads of what a user would look at.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::harness::{TestEnv, poll};
use crate::operator_process::{OperatorProcess, http_get, metrics_addr_in_log, run_args};
use serde_json::Value;

/// The seed's DemoWeb (gbaeke/kopf-example), unchanged.
pub const SEED: &str = "apiVersion: baeke.info/v1
kind: DemoWeb
metadata:
  name: demoweb1
spec:
  replicas: 2
  gitrepo: \"https://github.com/gbaeke/static-web.git\"
";

/// A git credentials Secret `site-creds` (user name and token), as a DemoWeb's
/// `spec.credentials.secretName` names it.
pub const CREDENTIALS_SECRET: &str = "apiVersion: v1
kind: Secret
metadata:
  name: site-creds
stringData:
  username: me
  password: token
";

/// How long anything the operator should do may take.
pub const DEADLINE: Duration = Duration::from_secs(90);

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The operator binary next to this test executable (`target/<profile>/demoweb-operator`), or
/// `DEMOWEB_OPERATOR_BIN`. `cargo test -p demoweb-tests` does not rebuild it, so a binary older
/// than the operator's sources fails here with the command to run, instead of testing old code.
pub fn operator_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("DEMOWEB_OPERATOR_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/operator-<hash> → target/<profile>/demoweb-operator
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test executable lives in target/<profile>/deps");
    let bin = profile_dir.join(format!("demoweb-operator{}", std::env::consts::EXE_SUFFIX));
    let build = "cargo build -p demoweb-operator";
    let built = std::fs::metadata(&bin)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| {
            panic!(
                "the operator binary {} is missing: run `{build}` (`cargo test --workspace` builds it), or point DEMOWEB_OPERATOR_BIN at it",
                bin.display()
            )
        });
    if let Some(newer) = newer_source(built) {
        panic!(
            "the operator binary {} is older than {}: run `{build}` (`cargo test --workspace` builds it) so the tests run the current operator",
            bin.display(),
            newer.display()
        );
    }
    bin
}

/// A source of the operator binary (its crate or the CRD crate) changed after `built`.
fn newer_source(built: std::time::SystemTime) -> Option<PathBuf> {
    let root = repo_root();
    let mut pending: Vec<PathBuf> = [
        "operator/src",
        "operator/Cargo.toml",
        "crd/src",
        "crd/Cargo.toml",
    ]
    .iter()
    .map(|p| root.join(p))
    .collect();
    while let Some(path) = pending.pop() {
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            let entries = std::fs::read_dir(&path).into_iter().flatten().flatten();
            pending.extend(entries.map(|e| e.path()));
        } else if meta.modified().is_ok_and(|m| m > built) {
            return Some(path);
        }
    }
    None
}

/// A running `demoweb-operator run`, killed when dropped.
pub struct Operator {
    process: OperatorProcess,
    pub metrics_addr: SocketAddr,
}

impl Operator {
    /// Starts the operator on the test's namespace, without leader election unless `extra` asks.
    pub async fn start(env: &TestEnv, extra: &[&str]) -> Operator {
        Self::start_named(env, "operator", extra).await
    }

    /// Starts the operator without waiting for it to serve (for start-up failures).
    pub async fn start_bare(env: &TestEnv) -> Operator {
        Self::spawn(env, "operator", &[])
    }

    pub async fn start_named(env: &TestEnv, name: &str, extra: &[&str]) -> Operator {
        Self::wait_started(Self::spawn(env, name, extra)).await
    }

    /// Starts the operator as the chart runs it: watching every namespace.
    pub async fn start_all_namespaces(env: &TestEnv, extra: &[&str]) -> Operator {
        Self::wait_started(Self::spawn_in(env, "operator", None, extra)).await
    }

    /// Waits until the operator serves its endpoints and `/readyz` says it is ready.
    pub async fn wait_started(op: Operator) -> Operator {
        let mut op = Self::wait_serving(op).await;
        let start = Instant::now();
        loop {
            let (code, body) = op.http_get("/readyz").await;
            if code == 200 {
                return op;
            }
            if let Some(status) = op.process.exited() {
                panic!("the operator exited with {status}:\n{}", op.logs());
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the operator was not ready in 30s ({code} {body}):\n{}",
                op.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts the operator from a command prepared by the caller (environment, arguments, a wrapper
    /// such as unshare), logging to `name.log`, and waits until `/readyz` says it is ready.
    pub async fn start_command(
        env: &TestEnv,
        name: &str,
        command: std::process::Command,
    ) -> Operator {
        let log = env.dir().join(format!("{name}.log"));
        let process = OperatorProcess::from_command(command, &log).expect("start the operator");
        Self::wait_started(Operator {
            process,
            metrics_addr: "127.0.0.1:0".parse().expect("addr"),
        })
        .await
    }

    /// Waits until the operator logs the address of its endpoints.
    pub async fn wait_serving(op: Operator) -> Operator {
        op.serving().await
    }

    async fn serving(mut self) -> Operator {
        let start = Instant::now();
        loop {
            if let Some(addr) = self.logged_addr() {
                self.metrics_addr = addr;
                return self;
            }
            if let Some(status) = self.process.exited() {
                panic!(
                    "the operator exited with {status} before serving:\n{}",
                    self.logs()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the operator did not start serving in 30s:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts the process on the test's namespace without waiting for anything.
    pub fn spawn(env: &TestEnv, name: &str, extra: &[&str]) -> Operator {
        Self::spawn_in(env, name, Some(&env.namespace), extra)
    }

    fn spawn_in(env: &TestEnv, name: &str, namespace: Option<&str>, extra: &[&str]) -> Operator {
        let log = env.dir().join(format!("{name}.log"));
        let mut extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        // Short intervals, so that what the operator does "eventually" happens within a test;
        // the defaults (30s, 60s) are pinned by the operator's CLI tests.
        for (flag, value) in [
            ("--stalled-requeue-period", "1s"),
            ("--identity-api-poll-period", "1s"),
        ] {
            if !extra.iter().any(|a| a.starts_with(flag)) {
                extra.push(format!("{flag}={value}"));
            }
        }
        let process = OperatorProcess::start(
            &operator_binary(),
            &run_args(namespace, &extra),
            &env.kubeconfig_path,
            &[
                ("RUST_LOG", "info,demoweb_operator=debug"),
                ("POD_NAME", name),
            ],
            &log,
        )
        .expect("start the operator binary");
        Operator {
            process,
            metrics_addr: "127.0.0.1:0".parse().expect("addr"),
        }
    }

    fn logged_addr(&self) -> Option<SocketAddr> {
        metrics_addr_in_log(&self.logs())
    }

    pub fn logs(&self) -> String {
        self.process.logs()
    }

    /// Whether the process has exited, and how.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.process.exited()
    }

    /// Waits for the process to exit by itself.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let process = &mut self.process;
        poll(timeout, || std::future::ready(process.exited())).await
    }

    /// SIGKILL: a crash, with no chance to hand anything back.
    pub async fn crash(&mut self) {
        self.process.kill();
    }

    /// SIGTERM, as Kubernetes stops a pod.
    pub fn terminate(&self) {
        self.process.terminate();
    }

    /// GET on the operator's HTTP endpoint: (status code, body).
    pub async fn http_get(&self, path: &str) -> (u16, String) {
        http_get(self.metrics_addr, path)
            .await
            .unwrap_or_else(|e| panic!("GET {path} on the operator's endpoint: {e}"))
    }
}

/// Installs the project's CRDs (the chart's `crds/` are generated from the same types) and waits
/// until kubectl can list DemoWebs.
pub async fn install_crds(env: &TestEnv) {
    env.install_crds(&demoweb_crd::all_crds()).await;
    wait(
        env,
        None,
        "the DemoWeb CRD to be served",
        DEADLINE,
        || async {
            env.kubectl(&["get", "demowebs"])
                .await
                .success()
                .then_some(())
        },
    )
    .await;
}

/// A ResourceQuota of no pods in the test's namespace, once the quota controller has counted it
/// (the quota admission reads its status: until then pods are not held back).
pub async fn no_pods_quota(env: &TestEnv) {
    env.apply_yaml(
        "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: no-pods}\nspec: {hard: {pods: '0'}}\n",
    )
    .await
    .expect_ok();
    env.wait_for("the quota to be counted", DEADLINE, || async {
        let out = env
            .kubectl(&[
                "get",
                "resourcequota",
                "no-pods",
                "-o",
                "jsonpath={.status.hard.pods}",
            ])
            .await;
        (out.success() && out.stdout == "0").then_some(())
    })
    .await;
}

/// A fresh environment with the CRDs installed and the operator running.
pub async fn setup(test: &str) -> (TestEnv, Operator) {
    let env = TestEnv::new(test).await;
    install_crds(&env).await;
    let op = Operator::start(&env, &[]).await;
    (env, op)
}

/// Makes the aad-pod-identity CRDs served and waits until they are: on the emulator this project's are
/// installed; a real cluster's are its own (declared with `DEMOWEB_TEST_IDENTITY_CRDS`), never replaced
/// by a test.
pub async fn serve_identity_crds(env: &TestEnv, op: Option<&Operator>) {
    if env.is_emulator() {
        let crds = repo_root().join("charts/demoweb-operator/files/aadpodidentity-crds.yaml");
        env.kubectl(&["apply", "-f", crds.to_str().expect("utf-8 path")])
            .await
            .expect_ok();
    }
    wait(
        env,
        op,
        "the identity CRDs to be served",
        DEADLINE,
        || async {
            env.kubectl(&["get", "azureidentitybindings"])
                .await
                .success()
                .then_some(())
        },
    )
    .await;
}

/// Polls `check` until it returns `Some`; on timeout panics with the namespace and the operator's log.
pub async fn wait<T, F, Fut>(
    env: &TestEnv,
    op: Option<&Operator>,
    what: &str,
    timeout: Duration,
    check: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    if let Some(v) = poll(timeout, check).await {
        return v;
    }
    let logs = op.map(Operator::logs).unwrap_or_default();
    let tail: Vec<&str> = logs.lines().rev().take(60).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    panic!(
        "timed out after {timeout:?} waiting for {what}\n--- namespace {} ---\n{}\n--- operator log (tail) ---\n{}",
        env.namespace,
        env.dump().await,
        tail.join("\n")
    );
}

/// `kubectl get <kind> <name> -o json`, `None` when it does not exist.
pub async fn get(env: &TestEnv, kind: &str, name: &str) -> Option<Value> {
    let out = env.kubectl(&["get", kind, name, "-o", "json"]).await;
    if !out.success() {
        assert!(
            out.stderr.contains("NotFound") || out.stderr.contains("not found"),
            "`{}` failed: {}",
            out.command,
            out.stderr
        );
        return None;
    }
    Some(serde_json::from_str(&out.stdout).expect("kubectl printed JSON"))
}

/// Waits until `kind/name` exists and `check` accepts it; returns it.
pub async fn wait_object(
    env: &TestEnv,
    op: &Operator,
    kind: &str,
    name: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    wait(
        env,
        Some(op),
        &format!("{kind}/{name}: {what}"),
        DEADLINE,
        || async { get(env, kind, name).await.filter(|v| check(v)) },
    )
    .await
}

/// Waits until `kind/name` is gone.
pub async fn wait_gone(env: &TestEnv, op: &Operator, kind: &str, name: &str) {
    wait(
        env,
        Some(op),
        &format!("{kind}/{name} to be deleted"),
        DEADLINE,
        || async { get(env, kind, name).await.is_none().then_some(()) },
    )
    .await
}

/// A condition of an object's status: (status, reason, message).
pub fn condition(obj: &Value, type_: &str) -> Option<(String, String, String)> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .map(|c| {
            (
                c["status"].as_str().unwrap_or_default().to_owned(),
                c["reason"].as_str().unwrap_or_default().to_owned(),
                c["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
}

/// Waits until the DemoWeb's condition has this status and reason; returns the DemoWeb.
pub async fn wait_condition(
    env: &TestEnv,
    op: &Operator,
    name: &str,
    type_: &str,
    status: &str,
    reason: &str,
) -> Value {
    wait_object(
        env,
        op,
        "demoweb",
        name,
        &format!("condition {type_}={status} ({reason}) for the current generation"),
        |dw| {
            condition(dw, type_).is_some_and(|(s, r, _)| s == status && r == reason)
                && dw["status"]["observedGeneration"] == dw["metadata"]["generation"]
        },
    )
    .await
}

/// `kubectl patch --type=merge`.
pub async fn merge_patch(env: &TestEnv, kind: &str, name: &str, patch: &str) {
    env.kubectl(&["patch", kind, name, "--type=merge", "-p", patch])
        .await
        .expect_ok();
}

/// Container `name` of a Deployment (init containers included).
pub fn container<'a>(deployment: &'a Value, name: &str) -> Option<&'a Value> {
    let pod = &deployment["spec"]["template"]["spec"];
    pod["containers"]
        .as_array()
        .into_iter()
        .chain(pod["initContainers"].as_array())
        .flatten()
        .find(|c| c["name"] == name)
}

pub fn args(deployment: &Value, name: &str) -> Vec<String> {
    container(deployment, name)
        .and_then(|c| c["args"].as_array())
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the object carries a controller owner reference to the object with `uid`.
pub fn controlled_by(obj: &Value, uid: &str) -> bool {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r["controller"] == true && r["uid"] == uid)
        })
}

/// Events of the namespace about `name`, as (type, reason, message).
pub async fn events_for(env: &TestEnv, name: &str) -> Vec<(String, String, String)> {
    let out = env
        .kubectl(&["get", "events", "-o", "json"])
        .await
        .expect_ok();
    let list: Value = serde_json::from_str(&out).expect("events JSON");
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["involvedObject"]["name"] == name || e["regarding"]["name"] == name)
        .map(|e| {
            let text = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
            let message = if e["message"].is_string() {
                text("message")
            } else {
                text("note")
            };
            (text("type"), text("reason"), message)
        })
        .collect()
}
