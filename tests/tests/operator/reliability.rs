//! Reliability: transient API errors, a quiet steady state, start-up checks, leader election.

use std::time::Duration;

use demoweb_tests::emulator::ErrorRule;
use demoweb_tests::harness::TestEnv;

use crate::support::*;

const WRITE_VERBS: &[&str] = &[
    "create",
    "update",
    "patch",
    "apply",
    "delete",
    "deletecollection",
];

#[tokio::test(flavor = "multi_thread")]
async fn transient_api_errors_back_off_and_recover() {
    let (env, op) = setup("transient-errors").await;
    let Some(emulator) = env.emulator_or_skip("injecting API errors") else {
        env.finish().await;
        return;
    };
    // Every write of a Deployment fails for a while. (500, not 503: the client itself retries
    // 429/503/504, so those never reach the operator's backoff.)
    emulator.faults().inject(
        ErrorRule::new(500)
            .resource("deployments")
            .verb("apply")
            .namespace(&env.namespace)
            .times(4),
    );
    env.apply_yaml(SEED).await.expect_ok();
    let dw = wait_condition(&env, &op, "demoweb1", "Ready", "True", "Reconciled").await;
    assert_eq!(dw["status"]["readyReplicas"], 2);
    let attempts = emulator
        .request_counts()
        .snapshot()
        .get(&("apply".to_owned(), "deployments".to_owned()))
        .copied()
        .unwrap_or_default();
    assert!(
        attempts >= 5,
        "four failures, then success: {attempts} applies"
    );
    assert!(
        attempts <= 8,
        "backed off instead of hammering: {attempts} applies"
    );
    let events = events_for(&env, "demoweb1").await;
    assert!(
        events.iter().any(|(t, r, m)| t == "Warning"
            && r == "ReconcileFailed"
            && m.contains("Deployment demoweb1")),
        "{events:?}\n{}",
        op.logs()
    );
    let (_, metrics) = op.http_get("/metrics").await;
    assert!(
        metrics.contains("demoweb_reconcile_errors_total{operation=\"apply\"}"),
        "{metrics}"
    );
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_operator_writes_nothing() {
    let env = TestEnv::new("idle").await;
    install_crds(&env).await;
    // A short resync makes the window below include several full reconciles of each DemoWeb.
    let op = Operator::start(&env, &["--resync-period=2s"]).await;
    env.apply_yaml(SEED).await.expect_ok();
    env.apply_yaml(
        "apiVersion: baeke.info/v1
kind: DemoWeb
metadata:
  name: second
spec:
  gitrepo: https://github.com/gbaeke/static-web.git
  sync: {period: 30s}
  ingress: {host: second.example.com, className: nginx, allowedSourceRanges: [10.0.0.0/8]}
",
    )
    .await
    .expect_ok();
    wait_condition(&env, &op, "demoweb1", "Ready", "True", "Reconciled").await;
    wait_condition(&env, &op, "second", "Ready", "True", "Reconciled").await;
    let Some(emulator) = env.emulator_or_skip("counting API writes") else {
        env.finish().await;
        return;
    };
    // The operator's writes, as the API server counted them.
    let operator_writes = || -> Vec<(String, String, u64)> {
        emulator
            .request_counts()
            .by_agent()
            .into_iter()
            .filter(|((agent, verb, _), _)| {
                agent == "demoweb-operator" && WRITE_VERBS.contains(&verb.as_str())
            })
            .map(|((_, verb, resource), n)| (verb, resource, n))
            .collect()
    };
    // The status writes that follow our own last writes must settle first: wait until the
    // operator has written nothing for 2s (polled, with a deadline).
    let mut last = (operator_writes(), std::time::Instant::now());
    wait(
        &env,
        Some(&op),
        "the operator's writes to settle",
        DEADLINE,
        || {
            let now = operator_writes();
            if now != last.0 {
                last = (now, std::time::Instant::now());
            }
            let settled = last.1.elapsed() >= Duration::from_secs(2);
            async move { settled.then_some(()) }
        },
    )
    .await;
    assert!(
        !last.0.is_empty(),
        "no writes were attributed to the demoweb-operator User-Agent, so none could be counted"
    );
    // Then a quiet window long enough for several resyncs (measured, not waited on).
    emulator.request_counts().reset();
    let window = Duration::from_secs(15);
    tokio::time::sleep(window).await;
    let writes = operator_writes();
    assert!(
        writes.is_empty(),
        "writes during {window:?} of idling: {writes:?}\n{}",
        op.logs()
    );
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_crd_is_reported_at_start_up() {
    let env = TestEnv::new("missing-crd").await;
    if env
        .emulator_or_skip("a cluster without the DemoWeb CRD")
        .is_none()
    {
        env.finish().await;
        return;
    }
    let mut op = Operator::start_bare(&env).await;
    let status = op
        .wait_exit(Duration::from_secs(30))
        .await
        .expect("exits by itself");
    assert!(!status.success());
    let logs = op.logs();
    assert!(
        logs.contains("demoweb-operator crd | kubectl apply -f -"),
        "{logs}"
    );
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_election_lets_one_replica_act() {
    let env = TestEnv::new("leader").await;
    install_crds(&env).await;
    let lease_args = [
        "--leader-election=true".to_owned(),
        format!("--lease-namespace={}", env.namespace),
    ];
    let lease_args: Vec<&str> = lease_args.iter().map(String::as_str).collect();
    let mut first = Operator::start_named(&env, "first", &lease_args).await;
    wait(
        &env,
        Some(&first),
        "the first replica to lead",
        DEADLINE,
        || async {
            let lease = get(&env, "lease", "demoweb-operator").await?;
            (lease["spec"]["holderIdentity"] == "first").then_some(())
        },
    )
    .await;
    let mut second = Operator::start_named(&env, "second", &lease_args).await;
    env.apply_yaml(SEED).await.expect_ok();
    wait_condition(&env, &first, "demoweb1", "Ready", "True", "Reconciled").await;
    let (code, ready) = second.http_get("/readyz").await;
    assert_eq!(
        code, 200,
        "a standby replica is ready to take over: {ready}"
    );
    let (_, metrics) = second.http_get("/metrics").await;
    assert!(metrics.contains("demoweb_leader 0"), "{metrics}");
    assert!(
        !metrics.contains("demoweb_reconciles_total{"),
        "the standby did not reconcile: {metrics}"
    );

    // The leader stops; the standby takes over and keeps reconciling.
    first.terminate();
    let status = first
        .wait_exit(Duration::from_secs(30))
        .await
        .expect("SIGTERM stops the operator");
    assert!(status.success(), "graceful shutdown exits 0: {status}");
    wait(
        &env,
        Some(&second),
        "the second replica to lead",
        DEADLINE,
        || async {
            let lease = get(&env, "lease", "demoweb-operator").await?;
            (lease["spec"]["holderIdentity"] == "second").then_some(())
        },
    )
    .await;
    merge_patch(&env, "demoweb", "demoweb1", r#"{"spec":{"replicas":1}}"#).await;
    wait_object(
        &env,
        &second,
        "deployment",
        "demoweb1",
        "scaled by the new leader",
        |d| d["spec"]["replicas"] == 1,
    )
    .await;
    assert!(second.exited().is_none());
    env.finish().await;
}

const IDENTITY: &str = "apiVersion: aadpodidentity.k8s.io/v1
kind: AzureIdentity
metadata: {name: web-id}
spec:
  type: 0
  resourceID: /subscriptions/6f1c2a4e-0d3b-4e8f-9a51-2b7c8d9e0f11/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/web
  clientID: c35040d0-f73c-4c4e-a376-9bb1c5532fda
---
apiVersion: aadpodidentity.k8s.io/v1
kind: AzureIdentityBinding
metadata: {name: web-binding}
spec: {azureIdentity: web-id, selector: web}
";

#[tokio::test(flavor = "multi_thread")]
async fn identity_api_installed_later_is_picked_up() {
    let env = TestEnv::new("identity-later").await;
    if env
        .emulator_or_skip("installing the aad-pod-identity CRDs while the operator runs")
        .is_none()
    {
        env.finish().await;
        return;
    }
    install_crds(&env).await;
    let op = Operator::start(&env, &[]).await;
    apply_secure_and_wait_for_missing_binding(&env, &op).await;
    assert!(get(&env, "deployment", "secure").await.is_none());

    let crds = repo_root().join("charts/demoweb-operator/files/aadpodidentity-crds.yaml");
    env.kubectl(&["apply", "-f", crds.to_str().expect("utf-8 path")])
        .await
        .expect_ok();
    wait(
        &env,
        Some(&op),
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
    env.apply_yaml(IDENTITY).await.expect_ok();
    // The operator watches the binding CRD: the API is picked up within seconds.
    let d = wait(
        &env,
        Some(&op),
        "the Deployment with the pod identity label (within 10s)",
        Duration::from_secs(10),
        || async {
            get(&env, "deployment", "secure")
                .await
                .filter(|d| d["spec"]["template"]["metadata"]["labels"]["aadpodidbinding"] == "web")
        },
    )
    .await;
    assert!(d["spec"]["template"]["spec"]["containers"][0]["env"].is_array());
    wait_condition(&env, &op, "secure", "Ready", "True", "Reconciled").await;
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn identity_api_served_at_start_is_watched() {
    let env = TestEnv::new("identity-at-start").await;
    if env
        .emulator_or_skip("installing the aad-pod-identity CRDs")
        .is_none()
    {
        env.finish().await;
        return;
    }
    install_crds(&env).await;
    let crds = repo_root().join("charts/demoweb-operator/files/aadpodidentity-crds.yaml");
    env.kubectl(&["apply", "-f", crds.to_str().expect("utf-8 path")])
        .await
        .expect_ok();
    wait(
        &env,
        None,
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
    let op = Operator::start(&env, &[]).await;
    apply_secure_and_wait_for_missing_binding(&env, &op).await;
    // Creating the binding and identity re-reconciles the DemoWeb that names them.
    env.apply_yaml(IDENTITY).await.expect_ok();
    wait_object(
        &env,
        &op,
        "deployment",
        "secure",
        "the pod identity label",
        |d| d["spec"]["template"]["metadata"]["labels"]["aadpodidbinding"] == "web",
    )
    .await;
    let dw = wait_condition(&env, &op, "secure", "Ready", "True", "Reconciled").await;
    assert_eq!(dw["status"]["identity"]["selector"], "web");
    env.finish().await;
}

/// A DemoWeb naming the binding `web-binding`, stalled until that binding exists.
async fn apply_secure_and_wait_for_missing_binding(env: &TestEnv, op: &Operator) {
    env.apply_yaml(
        "apiVersion: baeke.info/v1
kind: DemoWeb
metadata: {name: secure}
spec:
  gitrepo: https://github.com/gbaeke/static-web.git
  identity: {binding: web-binding}
",
    )
    .await
    .expect_ok();
    wait_condition(
        env,
        op,
        "secure",
        "Stalled",
        "True",
        "IdentityBindingNotFound",
    )
    .await;
}
