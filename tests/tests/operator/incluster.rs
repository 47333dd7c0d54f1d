//! The path the chart takes: the operator started as the chart's Deployment starts it — its rendered
//! arguments and environment (downward API included), no kubeconfig, in-cluster configuration from
//! `KUBERNETES_SERVICE_HOST/PORT` and the ServiceAccount token and `ca.crt` at
//! /var/run/secrets/kubernetes.io/serviceaccount (in a private mount namespace) — against an API server
//! that speaks HTTPS and checks the token. It must elect itself through a Lease in its own namespace and
//! reconcile a DemoWeb.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use demoweb_tests::emulator::EmulatorOptions;
use demoweb_tests::harness::TestEnv;

use demoweb_tests::operator::{
    DEADLINE, Operator, SEED, get, install_crds, operator_binary, wait, wait_condition, wait_object,
};

/// Where kube clients (kube-rs, client-go) read a pod's ServiceAccount credentials.
const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The chart's Deployment as `helm template` renders it for `release` in `namespace`.
fn render_deployment(release: &str, namespace: &str) -> Value {
    let objects = demoweb_tests::helm::render(release, namespace, &json!({}))
        .unwrap_or_else(|e| panic!("helm template failed:\n{e}"));
    let mut deployments = objects.into_iter().filter(|o| o["kind"] == "Deployment");
    let deployment = deployments.next().expect("the chart renders a Deployment");
    assert!(
        deployments.next().is_none(),
        "the chart renders one Deployment"
    );
    deployment
}

/// The container's environment as the kubelet resolves it for this pod: plain values and the
/// downward API fields the chart uses. Anything else fails, so a chart change cannot slip past.
fn resolve_env(container: &Value, pod_name: &str, namespace: &str) -> Vec<(String, String)> {
    let mut env = Vec::new();
    for var in container["env"].as_array().into_iter().flatten() {
        let name = var["name"].as_str().expect("env name").to_owned();
        let value = if let Some(v) = var.get("value") {
            v.as_str().unwrap_or_default().to_owned()
        } else {
            match var["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                Some("metadata.name") => pod_name.to_owned(),
                Some("metadata.namespace") => namespace.to_owned(),
                _ => panic!("the test does not resolve env {name}: {var}"),
            }
        };
        env.push((name, value));
    }
    env
}

/// Writes what the kubelet mounts at /var/run/secrets/kubernetes.io/serviceaccount, under
/// `<dir>/run/…`, ready to be bind-mounted over /var/run.
fn service_account_files(dir: &Path, token: &str, ca_pem: &str, namespace: &str) -> PathBuf {
    let run = dir.join("run");
    let sa = run.join(
        SERVICE_ACCOUNT_DIR
            .strip_prefix("/var/run/")
            .expect("under /var/run"),
    );
    std::fs::create_dir_all(&sa).expect("create the service account directory");
    std::fs::write(sa.join("token"), token).expect("write token");
    std::fs::write(sa.join("ca.crt"), ca_pem).expect("write ca.crt");
    std::fs::write(sa.join("namespace"), namespace).expect("write namespace");
    run
}

/// Whether this process is root: /proc/self belongs to the process's user.
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// `unshare` arguments for a private mount namespace (through a user namespace when not root).
fn unshare_args() -> Vec<&'static str> {
    let mut args = vec!["--mount", "--propagation", "private"];
    if !is_root() {
        args.splice(0..0, ["--user", "--map-root-user"]);
    }
    args
}

#[tokio::test]
#[cfg_attr(
    real_cluster,
    ignore = "the in-cluster path on a real cluster is a pod: install the chart there"
)]
#[cfg_attr(
    all(not(real_cluster), no_go),
    ignore = "Helm, which renders the chart, is built from its Go module (tests/cluster/helm): `go` was not on the PATH when the tests were built"
)]
#[cfg_attr(
    all(not(real_cluster), not(no_go), no_unshare),
    ignore = "needs `unshare` to create a private mount namespace for the ServiceAccount files"
)]
async fn the_operator_runs_in_cluster_as_the_chart_deploys_it() {
    let token = format!("in-cluster-{:016x}", rand::random::<u64>());
    let env = TestEnv::with_options(
        "incluster",
        EmulatorOptions {
            tls: true,
            token: Some(token.clone()),
            ..EmulatorOptions::default()
        },
    )
    .await;
    let ns = env.namespace.clone();
    let release = "demoweb";
    let deployment = render_deployment(release, &ns);
    let emulator = env.emulator.as_ref().expect("the emulator");
    let ca_pem = emulator
        .ca_pem()
        .expect("the emulator serves TLS")
        .to_owned();
    let port = emulator.addr().port();

    // The emulator checks the token: kubectl over HTTPS with another one is turned away.
    let wrong = env
        .kubectl(&["get", "namespaces", "--token=not-the-token"])
        .await;
    assert!(
        !wrong.success() && wrong.stderr.contains("must be logged in"),
        "a wrong bearer token must be refused: {}",
        wrong.stderr
    );

    install_crds(&env).await;

    let pod = &deployment["spec"]["template"];
    let container = &pod["spec"]["containers"][0];
    let pod_name = format!("{release}-demoweb-operator-7f9c6d5b8-x2x4q");
    let mut args: Vec<String> = container["args"]
        .as_array()
        .expect("the chart passes arguments")
        .iter()
        .map(|a| a.as_str().expect("string argument").to_owned())
        .collect();
    // A pod has its own network namespace; here every test shares one, so the metrics port is chosen
    // by the kernel. Every other argument is the chart's.
    let metrics = args
        .iter_mut()
        .find(|a| a.starts_with("--metrics-addr="))
        .expect("the chart sets --metrics-addr");
    *metrics = "--metrics-addr=127.0.0.1:0".to_owned();
    assert!(
        !args.iter().any(|a| a.starts_with("--lease-namespace")),
        "the chart leaves the Lease's namespace to the pod's namespace (POD_NAMESPACE): {args:?}"
    );

    let run = service_account_files(env.dir(), &token, &ca_pem, &ns);
    let mut command = std::process::Command::new("unshare");
    command
        .args(unshare_args())
        .args([
            "--",
            "sh",
            "-c",
            r#"mount --bind "$0" /var/run && exec "$@""#,
        ])
        .arg(&run)
        .arg(operator_binary())
        .args(&args)
        // Nothing from this machine: what a container runtime and the kubelet give the pod.
        .env_clear()
        .env("HOME", "/")
        .env("HOSTNAME", &pod_name)
        .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        .env("KUBERNETES_SERVICE_PORT", port.to_string())
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(resolve_env(container, &pod_name, &ns));
    let op = Operator::start_command(&env, "in-cluster", command).await;

    // Leader election through a Lease in the pod's own namespace, held by the pod.
    let lease = wait(
        &env,
        Some(&op),
        "the operator to hold the Lease in its namespace",
        DEADLINE,
        || async {
            get(&env, "lease", "demoweb-operator")
                .await
                .filter(|l| l["spec"]["holderIdentity"] == json!(pod_name))
        },
    )
    .await;
    assert_eq!(lease["metadata"]["namespace"], json!(ns));

    env.apply_yaml(SEED).await.expect_ok();
    wait_object(
        &env,
        &op,
        "deployment",
        "demoweb1",
        "created by the operator",
        |d| d["spec"]["replicas"] == 2,
    )
    .await;
    wait_condition(&env, &op, "demoweb1", "Ready", "True", "Reconciled").await;
    assert!(
        op.logs().contains("became leader"),
        "the operator says it leads: {}",
        op.logs()
    );
    env.finish().await;
}
