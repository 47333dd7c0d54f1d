//! Production-grade sites: a PodDisruptionBudget for replicated sites, spread and surge-only
//! rollouts in the pod template, and autoscaling that the operator never fights.

use std::time::{Duration, Instant};

use serde_json::Value;

use demoweb_tests::harness::TestEnv;
use demoweb_tests::operator::{
    DEADLINE, Operator, SEED, container, controlled_by, get, install_crds, merge_patch, setup,
    wait, wait_condition, wait_gone, wait_object,
};

fn replicas(d: &Value) -> Option<i64> {
    d["spec"]["replicas"].as_i64()
}

/// The Deployment with its managedFields (which `kubectl get` leaves out unless asked).
async fn deployment(env: &TestEnv) -> Value {
    let out = env
        .kubectl(&[
            "get",
            "deployment",
            "demoweb1",
            "-o",
            "json",
            "--show-managed-fields",
        ])
        .await
        .expect_ok();
    serde_json::from_str(&out).expect("kubectl printed JSON")
}

/// Field managers owning a Deployment's `spec.replicas`.
fn replicas_owners(d: &Value) -> Vec<String> {
    let mut owners: Vec<String> = d["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["fieldsV1"]["f:spec"].get("f:replicas").is_some())
        .filter_map(|e| e["manager"].as_str().map(str::to_owned))
        .collect();
    owners.sort();
    owners.dedup();
    owners
}

/// The operator must neither have written the count nor let it be reset. On a real cluster the
/// autoscaler may have changed it meanwhile (it owns the field then); otherwise it is still
/// `value`, from `owners`.
#[track_caller]
fn count_left_alone(d: &Value, owners: &[String], value: i64, when: &str) {
    let now = replicas_owners(d);
    assert!(
        !now.iter().any(|o| o == "demoweb-operator"),
        "{when}: the operator took spec.replicas back: {now:?}"
    );
    // Owned by nobody means removed by our apply and defaulted again: the count was lost.
    assert!(
        !now.is_empty(),
        "{when}: nobody owns spec.replicas ({:?})",
        replicas(d)
    );
    if now == owners {
        assert_eq!(replicas(d), Some(value), "{when}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn replicated_sites_get_a_disruption_budget_spread_and_surge_rollouts() {
    let (env, op) = setup("availability").await;
    env.apply_yaml(&SEED.replace("replicas: 2", "replicas: 3"))
        .await
        .expect_ok();
    let dw = wait_condition(&env, &op, "demoweb1", "Ready", "True", "Reconciled").await;
    let uid = dw["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    let pdb = wait_object(&env, &op, "pdb", "demoweb1", "the site's budget", |_| true).await;
    assert!(controlled_by(&pdb, &uid), "{pdb:#}");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1, "{pdb:#}");
    assert!(pdb["spec"].get("minAvailable").is_none(), "{pdb:#}");
    let deployment = get(&env, "deployment", "demoweb1")
        .await
        .expect("Deployment");
    assert_eq!(
        pdb["spec"]["selector"], deployment["spec"]["selector"],
        "the budget selects exactly the site's pods"
    );

    let spec = &deployment["spec"];
    assert_eq!(spec["strategy"]["type"], "RollingUpdate");
    assert_eq!(spec["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
    assert!(
        spec["strategy"]["rollingUpdate"]["maxSurge"] != 0,
        "{:#}",
        spec["strategy"]
    );
    let pod = &spec["template"]["spec"];
    let spread: Vec<(&str, &str)> = pod["topologySpreadConstraints"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            assert_eq!(
                c["labelSelector"], spec["selector"],
                "spread counts the site's pods"
            );
            (
                c["topologyKey"].as_str().unwrap_or_default(),
                c["whenUnsatisfiable"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        spread,
        [
            ("kubernetes.io/hostname", "ScheduleAnyway"),
            ("topology.kubernetes.io/zone", "ScheduleAnyway")
        ]
    );
    let web = container(&deployment, "web").expect("web container");
    let pause: i64 = web["lifecycle"]["preStop"]["exec"]["command"][1]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("a preStop pause");
    assert_eq!(web["lifecycle"]["preStop"]["exec"]["command"][0], "sleep");
    assert!(
        pod["terminationGracePeriodSeconds"].as_i64() > Some(pause),
        "the grace period covers the pause: {pod:#}"
    );

    merge_patch(&env, "demoweb", "demoweb1", r#"{"spec":{"replicas":1}}"#).await;
    wait_gone(&env, &op, "pdb", "demoweb1").await;
    wait_condition(&env, &op, "demoweb1", "Ready", "True", "Reconciled").await;
    env.finish().await;
}

/// Reconciles counted by the operator's metrics.
async fn reconciles(op: &Operator) -> u64 {
    let (_, metrics) = op.http_get("/metrics").await;
    metrics
        .lines()
        .filter(|l| l.starts_with("demoweb_reconciles_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Polls until the operator has reconciled at least `n` more times and `at_least` has passed, so
/// that a resync (every 2s here) happened in between.
async fn wait_for_reconciles(env: &TestEnv, op: &Operator, n: u64, at_least: Duration) {
    let (before, since) = (reconciles(op).await, Instant::now());
    wait(env, Some(op), "more reconciles", DEADLINE, || async move {
        (reconciles(op).await >= before + n && since.elapsed() >= at_least).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn autoscaled_sites_leave_replicas_to_the_autoscaler() {
    let env = TestEnv::new("autoscaling").await;
    install_crds(&env).await;
    let op = Operator::start(&env, &["--resync-period=2s"]).await;
    env.apply_yaml(&SEED.replace("replicas: 2", "replicas: 3"))
        .await
        .expect_ok();
    wait_condition(&env, &op, "demoweb1", "Ready", "True", "Reconciled").await;

    // Switching autoscaling on keeps the pods the site has; the autoscaler takes it from there.
    merge_patch(
        &env,
        "demoweb",
        "demoweb1",
        r#"{"spec":{"autoscaling":{"minReplicas":2,"maxReplicas":6}}}"#,
    )
    .await;
    let hpa = wait_object(
        &env,
        &op,
        "hpa",
        "demoweb1",
        "the site's autoscaler",
        |_| true,
    )
    .await;
    assert_eq!(
        (
            hpa["spec"]["scaleTargetRef"]["kind"].as_str(),
            hpa["spec"]["scaleTargetRef"]["name"].as_str(),
            hpa["spec"]["minReplicas"].as_i64(),
            hpa["spec"]["maxReplicas"].as_i64(),
        ),
        (Some("Deployment"), Some("demoweb1"), Some(2), Some(6))
    );
    assert_eq!(
        hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        80
    );
    wait_condition(&env, &op, "demoweb1", "Ready", "True", "Reconciled").await;
    let live = deployment(&env).await;
    // The count must not fall back to the default when the operator lets go of it.
    count_left_alone(
        &live,
        &["demoweb-operator-handover".to_owned()],
        3,
        "autoscaling switched on",
    );
    let web = container(&live, "web").expect("web container");
    assert_eq!(
        web["resources"]["requests"]["cpu"], "50m",
        "CPU utilisation needs a request"
    );
    wait_object(
        &env,
        &op,
        "pdb",
        "demoweb1",
        "a budget for minReplicas 2",
        |_| true,
    )
    .await;

    // What the HorizontalPodAutoscaler does, through the scale subresource.
    env.kubectl(&["scale", "deployment", "demoweb1", "--replicas=5"])
        .await
        .expect_ok();
    let scaled = deployment(&env).await;
    assert_eq!(replicas(&scaled), Some(5));
    let scaler = replicas_owners(&scaled);
    assert!(
        !scaler.is_empty() && !scaler.iter().any(|o| o.starts_with("demoweb-operator")),
        "the scale took the field: {scaler:?}"
    );
    let hash = |d: &Value| d["spec"]["template"]["metadata"]["annotations"].clone();

    // A reconcile that re-applies the Deployment (a new pod template), then resyncs.
    merge_patch(&env, "demoweb", "demoweb1", r#"{"spec":{"path":"docs"}}"#).await;
    wait_condition(&env, &op, "demoweb1", "Ready", "True", "Reconciled").await;
    let live = deployment(&env).await;
    assert_ne!(hash(&live), hash(&scaled), "the Deployment was re-applied");
    count_left_alone(&live, &scaler, 5, "after a reconcile");
    wait_for_reconciles(&env, &op, 3, Duration::from_secs(5)).await;
    let live = deployment(&env).await;
    count_left_alone(&live, &scaler, 5, "after resyncs");

    // Status and `kubectl get dweb` show the count the site runs now.
    let current = replicas(&live).unwrap_or_default();
    wait_object(
        &env,
        &op,
        "demoweb",
        "demoweb1",
        "the current count in status",
        |dw| dw["status"]["replicas"].as_i64() == Some(current),
    )
    .await;
    let table = env.kubectl(&["get", "dweb", "demoweb1"]).await.expect_ok();
    let cells = |n: usize| -> Vec<&str> {
        table
            .lines()
            .nth(n)
            .unwrap_or_default()
            .split_whitespace()
            .collect()
    };
    let column = cells(0).iter().position(|c| *c == "REPLICAS");
    assert_eq!(
        column.and_then(|i| cells(1).get(i).copied()),
        Some(current.to_string().as_str()),
        "kubectl get dweb:\n{table}"
    );

    // Switching it off removes the autoscaler and gives the count back to spec.replicas.
    merge_patch(
        &env,
        "demoweb",
        "demoweb1",
        r#"{"spec":{"autoscaling":null}}"#,
    )
    .await;
    wait_gone(&env, &op, "hpa", "demoweb1").await;
    wait_object(
        &env,
        &op,
        "deployment",
        "demoweb1",
        "spec.replicas back at 3",
        |d| replicas(d) == Some(3),
    )
    .await;
    wait_condition(&env, &op, "demoweb1", "Ready", "True", "Reconciled").await;
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_autoscaling_bounds_are_refused_with_a_message() {
    let env = TestEnv::new("autoscaling_bounds").await;
    install_crds(&env).await;
    let cases = [
        (
            "minReplicas: 5\n    maxReplicas: 2",
            "autoscaling.minReplicas must not be greater than autoscaling.maxReplicas",
        ),
        (
            "minReplicas: 0\n    maxReplicas: 2",
            "autoscaling.minReplicas must be between 1 and 1000",
        ),
        (
            "minReplicas: -1\n    maxReplicas: 2",
            "autoscaling.minReplicas must be between 1 and 1000",
        ),
        (
            "maxReplicas: 0",
            "autoscaling.maxReplicas must be between 1 and 1000",
        ),
        (
            "maxReplicas: 3\n    targetCPUUtilizationPercentage: 0",
            "autoscaling.targetCPUUtilizationPercentage must be between 1 and 100",
        ),
        (
            "maxReplicas: 3\n    targetCPUUtilizationPercentage: 101",
            "autoscaling.targetCPUUtilizationPercentage must be between 1 and 100",
        ),
    ];
    for (bounds, message) in cases {
        let yaml = format!(
            "apiVersion: baeke.info/v1
kind: DemoWeb
metadata:
  name: bounds
spec:
  gitrepo: https://github.com/gbaeke/static-web.git
  autoscaling:
    {bounds}
"
        );
        let err = env.apply_yaml(&yaml).await.expect_err();
        assert!(err.contains(message), "{bounds}: {err}");
    }
    assert!(get(&env, "demoweb", "bounds").await.is_none());
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_foreign_disruption_budget_is_never_touched() {
    let (env, op) = setup("foreign_pdb").await;
    env.apply_yaml(
        "apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: demoweb1
spec:
  minAvailable: 1
  selector: {matchLabels: {app: mine}}
",
    )
    .await
    .expect_ok();
    let before = get(&env, "pdb", "demoweb1").await.expect("foreign budget");
    env.apply_yaml(SEED).await.expect_ok();
    let dw = wait_condition(&env, &op, "demoweb1", "Stalled", "True", "NameConflict").await;
    let (_, _, message) = demoweb_tests::operator::condition(&dw, "Stalled").expect("Stalled");
    assert!(
        message.contains("PodDisruptionBudget demoweb1"),
        "{message}"
    );

    // Below 2 replicas the site wants no budget; someone else's is still not ours to delete.
    merge_patch(&env, "demoweb", "demoweb1", r#"{"spec":{"replicas":1}}"#).await;
    wait_condition(&env, &op, "demoweb1", "Ready", "True", "Reconciled").await;
    let after = get(&env, "pdb", "demoweb1").await.expect("still there");
    assert_eq!(
        after["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
    assert!(after["metadata"]["ownerReferences"].is_null(), "{after:#}");
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_highly_available_example_starts_at_min_replicas() {
    let (env, op) = setup("ha_example").await;
    let example =
        demoweb_tests::operator::repo_root().join("examples/demoweb-highly-available.yaml");
    env.kubectl(&["apply", "-f", example.to_str().expect("utf-8 path")])
        .await
        .expect_ok();
    // The autoscaler raises the new Deployment to minReplicas; the site reports it.
    wait_object(&env, &op, "demoweb", "shop-front", "3 pods ready", |dw| {
        dw["status"]["replicas"] == 3 && dw["status"]["readyReplicas"] == 3
    })
    .await;
    let hpa = get(&env, "hpa", "shop-front").await.expect("autoscaler");
    assert_eq!(
        hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        70
    );
    wait_object(&env, &op, "pdb", "shop-front", "the budget", |_| true).await;
    let live = get(&env, "deployment", "shop-front")
        .await
        .expect("Deployment");
    let web = container(&live, "web").expect("web container");
    assert_eq!(
        web["resources"]["requests"]["cpu"], "100m",
        "the user's request is kept"
    );
    wait_condition(&env, &op, "shop-front", "Ready", "True", "Reconciled").await;
    env.finish().await;
}
