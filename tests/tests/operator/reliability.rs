//! Reliability: transient API errors, a quiet steady state, start-up checks, leader election.

use std::time::Duration;

use demoweb_tests::emulator::ErrorRule;
use demoweb_tests::harness::TestEnv;

use demoweb_tests::operator::*;

const WRITE_VERBS: &[&str] = &[
    "create",
    "update",
    "patch",
    "apply",
    "delete",
    "deletecollection",
];

#[cfg_attr(real_cluster, ignore = "needs the emulator: injecting API errors")]
#[tokio::test(flavor = "multi_thread")]
async fn transient_api_errors_back_off_and_recover() {
    let (env, op) = setup("transient-errors").await;
    let emulator = env.emulator();
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
    let apply_errors: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("demoweb_reconcile_errors_total{operation=\"apply\"} "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no apply error counter:\n{metrics}"));
    assert!(apply_errors >= 4, "four failed applies: {metrics}");
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_operator_writes_nothing() {
    let env = TestEnv::new("idle").await;
    install_crds(&env).await;
    // A short resync, so that the window below holds several full reconciles of each DemoWeb.
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
    // The operator's writes: as it counts them (`demoweb_api_writes_total`) and, on the
    // emulator, as the API server counted requests from its User-Agent.
    let server_writes = || -> Vec<(String, String, u64)> {
        let Some(emulator) = &env.emulator else {
            return vec![];
        };
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
    let writes = async || (api_writes(&op).await, server_writes());
    // The status writes that follow our own last writes must settle first: wait until the
    // operator has written nothing for 2s (polled, with a deadline).
    let last = std::cell::RefCell::new((writes().await, std::time::Instant::now()));
    wait(
        &env,
        Some(&op),
        "the operator's writes to settle",
        DEADLINE,
        || async {
            let now = writes().await;
            let mut last = last.borrow_mut();
            if now != last.0 {
                *last = (now, std::time::Instant::now());
            }
            (last.1.elapsed() >= Duration::from_secs(2)).then_some(())
        },
    )
    .await;
    let (before, server_before) = last.into_inner().0;
    assert!(
        before > 0,
        "demoweb_api_writes_total counted none of the writes that created the children"
    );
    if env.is_emulator() {
        assert!(
            !server_before.is_empty(),
            "no writes were attributed to the demoweb-operator User-Agent, so none could be counted"
        );
    }
    // The window: until each DemoWeb has been reconciled at least twice more (resyncs: nothing
    // changed), so an operator that stopped reconciling cannot pass.
    let reconciled_before = [
        reconciles_of(&op, &env.namespace, "demoweb1"),
        reconciles_of(&op, &env.namespace, "second"),
    ];
    if let Some(emulator) = &env.emulator {
        emulator.request_counts().reset();
    }
    wait(
        &env,
        Some(&op),
        "two resyncs of each DemoWeb",
        DEADLINE,
        || async {
            let now = [
                reconciles_of(&op, &env.namespace, "demoweb1"),
                reconciles_of(&op, &env.namespace, "second"),
            ];
            (now[0] >= reconciled_before[0] + 2 && now[1] >= reconciled_before[1] + 2).then_some(())
        },
    )
    .await;
    let (after, server_after) = writes().await;
    assert_eq!(
        after,
        before,
        "demoweb_api_writes_total rose while idle\n{}",
        op.logs()
    );
    assert!(
        server_after.is_empty(),
        "writes during the resyncs: {server_after:?}\n{}",
        op.logs()
    );
    env.finish().await;
}

/// The sum of the operator's `demoweb_api_writes_total` counters.
async fn api_writes(op: &Operator) -> u64 {
    let (_, metrics) = op.http_get("/metrics").await;
    metrics
        .lines()
        .filter(|l| l.starts_with("demoweb_api_writes_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// How many times the operator has logged a successful reconcile of DemoWeb `namespace/name`.
fn reconciles_of(op: &Operator, namespace: &str, name: &str) -> usize {
    let object = format!("/{name}.{namespace}");
    op.logs()
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|v| {
            v["fields"]["message"] == "reconciled"
                && v["fields"]["object"]
                    .as_str()
                    .is_some_and(|o| o.starts_with("DemoWeb") && o.ends_with(&object))
        })
        .count()
}

#[cfg_attr(
    all(real_cluster, not(cluster_wide)),
    ignore = "changes cluster-wide objects (a cluster without the DemoWeb CRD): runs only on a cluster the suite owns (DEMOWEB_TEST_CLUSTER_WIDE=1), one at a time"
)]
#[tokio::test(flavor = "multi_thread")]
async fn cluster_wide_missing_crd_is_reported_at_start_up() {
    let env = TestEnv::cluster_wide("missing-crd").await;
    env.remove_crd("demowebs.baeke.info").await;
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
    let (_, metrics) = first.http_get("/metrics").await;
    assert!(metrics.contains("\ndemoweb_leader 1\n"), "{metrics}");
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
    let (_, metrics) = second.http_get("/metrics").await;
    assert!(metrics.contains("\ndemoweb_leader 1\n"), "{metrics}");
    assert!(second.exited().is_none());
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crashed_leader_is_replaced_and_a_lost_lease_stops_the_leader() {
    let env = TestEnv::new("leader-crash").await;
    install_crds(&env).await;
    let lease_args = [
        "--leader-election=true".to_owned(),
        format!("--lease-namespace={}", env.namespace),
    ];
    let lease_args: Vec<&str> = lease_args.iter().map(String::as_str).collect();
    let holder = async || {
        let lease = get(&env, "lease", "demoweb-operator").await?;
        lease["spec"]["holderIdentity"].as_str().map(str::to_owned)
    };
    let mut first = Operator::start_named(&env, "first", &lease_args).await;
    wait(
        &env,
        Some(&first),
        "the first replica to lead",
        DEADLINE,
        || async { (holder().await.as_deref() == Some("first")).then_some(()) },
    )
    .await;
    let mut second = Operator::start_named(&env, "second", &lease_args).await;

    // The leader crashes without handing the Lease back: the standby takes over once it expires.
    first.crash().await;
    wait(
        &env,
        Some(&second),
        "the second replica to take over",
        DEADLINE,
        || async { (holder().await.as_deref() == Some("second")).then_some(()) },
    )
    .await;
    env.apply_yaml(SEED).await.expect_ok();
    wait_condition(&env, &second, "demoweb1", "Ready", "True", "Reconciled").await;
    let (_, metrics) = second.http_get("/metrics").await;
    assert!(metrics.contains("\ndemoweb_leader 1\n"), "{metrics}");

    // Someone else takes the Lease: the leader stops rather than reconcile alongside it, and
    // exits with an error so that its pod restarts as a candidate.
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
        .to_string();
    merge_patch(
        &env,
        "lease",
        "demoweb-operator",
        &format!(
            r#"{{"spec":{{"holderIdentity":"intruder","renewTime":"{now}","acquireTime":"{now}","leaseDurationSeconds":3600}}}}"#
        ),
    )
    .await;
    let status = second
        .wait_exit(DEADLINE)
        .await
        .expect("the leader exits after losing the Lease");
    assert!(!status.success(), "losing the Lease is an error: {status}");
    let logs = second.logs();
    assert!(logs.contains("another replica holds the Lease"), "{logs}");
    assert_eq!(
        holder().await.as_deref(),
        Some("intruder"),
        "the Lease is left to its holder"
    );
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

#[cfg_attr(
    all(real_cluster, not(cluster_wide)),
    ignore = "changes cluster-wide objects (installing the aad-pod-identity CRDs while the operator runs): runs only on a cluster the suite owns (DEMOWEB_TEST_CLUSTER_WIDE=1), one at a time"
)]
#[tokio::test(flavor = "multi_thread")]
async fn cluster_wide_identity_api_installed_later_is_picked_up() {
    let env = TestEnv::cluster_wide("identity-later").await;
    // Only the DemoWeb CRD: the identity API arrives while the operator runs.
    for crd in demoweb_crd::identity_crds() {
        env.remove_crd(crd.metadata.name.as_deref().unwrap_or_default())
            .await;
    }
    env.install_crds(&[demoweb_crd::demoweb_crd()]).await;
    // The default poll, so that only the watch on the binding CRD can be this prompt.
    let op = Operator::start(&env, &["--identity-api-poll-period=60s"]).await;
    apply_secure_and_wait_for_missing_binding(&env, &op).await;
    assert!(get(&env, "deployment", "secure").await.is_none());

    env.install_crds(&demoweb_crd::identity_crds()).await;
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
    let env_vars = &d["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(
        env_vars
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["name"] == "AZURE_CLIENT_ID"
                && e["value"] == "c35040d0-f73c-4c4e-a376-9bb1c5532fda"),
        "{env_vars}"
    );
    wait_condition(&env, &op, "secure", "Ready", "True", "Reconciled").await;
    env.finish().await;
}

#[cfg_attr(
    all(
        real_cluster,
        not(any(identity_crds = "ours", identity_crds = "upstream"))
    ),
    ignore = "needs the cluster to serve the aad-pod-identity CRDs (declare which with DEMOWEB_TEST_IDENTITY_CRDS=ours|upstream)"
)]
#[tokio::test(flavor = "multi_thread")]
async fn identity_api_served_at_start_is_watched() {
    let env = TestEnv::new("identity-at-start").await;
    install_crds(&env).await;
    serve_identity_crds(&env, None).await;
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
    let events = events_for(env, "secure").await;
    assert!(
        events.iter().any(|(t, r, m)| t == "Warning"
            && r == "IdentityBindingNotFound"
            && m.contains("web-binding")),
        "a Warning Event says why: {events:?}"
    );
}

#[cfg_attr(
    real_cluster,
    ignore = "needs the emulator: failing the operator's list of IngressClasses"
)]
#[tokio::test(flavor = "multi_thread")]
async fn readyz_waits_for_the_caches_and_says_which() {
    let env = TestEnv::new("readyz").await;
    install_crds(&env).await;
    let emulator = env.emulator();
    // The IngressClass cache cannot fill while its list fails.
    emulator
        .faults()
        .inject(ErrorRule::new(500).resource("ingressclasses").verb("list"));
    let op = Operator::wait_serving(Operator::spawn(&env, "operator", &[])).await;
    let (code, body) = wait(
        &env,
        Some(&op),
        "/readyz to name the cache still waiting",
        DEADLINE,
        || async {
            let (code, body) = op.http_get("/readyz").await;
            (body.starts_with("not ready: waiting for caches to sync: ingressclasses\n"))
                .then_some((code, body))
        },
    )
    .await;
    assert_eq!(code, 503, "{body}");
    let (code, body) = op.http_get("/healthz").await;
    assert_eq!(code, 200, "liveness does not depend on the caches: {body}");

    emulator.faults().clear();
    let body = wait(
        &env,
        Some(&op),
        "/readyz to turn ready",
        DEADLINE,
        || async {
            let (code, body) = op.http_get("/readyz").await;
            (code == 200).then_some(body)
        },
    )
    .await;
    assert_eq!(body, "ok: caches synced\n");
    env.finish().await;
}
