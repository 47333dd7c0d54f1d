//! What Flux and Prometheus see: the kstatus result of a DemoWeb read back from the API at each step
//! of its life, and the per-site series on `/metrics`, which go away with the DemoWeb.

use demoweb_operator::kstatus::{KStatus, compute};
use demoweb_tests::emulator::ErrorRule;
use demoweb_tests::harness::TestEnv;

use demoweb_tests::operator::*;

/// Waits until kstatus, computed from the DemoWeb as `kubectl get -o json` returns it, is `want`.
async fn wait_kstatus(
    env: &TestEnv,
    op: Option<&Operator>,
    name: &str,
    want: KStatus,
) -> serde_json::Value {
    wait(
        env,
        op,
        &format!("kstatus of demoweb/{name} to be {want}"),
        DEADLINE,
        || async {
            get(env, "demoweb", name)
                .await
                .filter(|dw| compute(dw) == want)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn flux_sees_a_site_roll_out_stall_recover_and_go() {
    let env = TestEnv::new("kstatus").await;
    install_crds(&env).await;

    // Committed, the operator not running yet: the CRD's default observedGeneration (-1) tells
    // kstatus the spec is not observed, so `wait: true` does not pass on a site nobody has seen.
    env.apply_yaml(SEED).await.expect_ok();
    let dw = get(&env, "demoweb", "demoweb1").await.expect("created");
    assert_eq!(dw["status"]["observedGeneration"], -1, "{dw}");
    assert_eq!(compute(&dw), KStatus::InProgress, "{dw}");

    // Children applied, pods not ready (the emulator can hold Deployments unready; a real
    // cluster's pods are simply not ready yet, or already are).
    if let Some(emulator) = env.emulator.as_ref() {
        emulator.set_deployments_ready(false);
    }
    let op = Operator::start(&env, &[]).await;
    if let Some(emulator) = env.emulator.as_ref() {
        let dw = wait_condition(&env, &op, "demoweb1", "Reconciling", "True", "Progressing").await;
        assert_eq!(compute(&dw), KStatus::InProgress, "{dw}");
        emulator.set_deployments_ready(true);
    }
    let dw = wait_condition(&env, &op, "demoweb1", "Ready", "True", "Reconciled").await;
    assert_eq!(compute(&dw), KStatus::Current, "{dw}");

    // A commit that needs the user: a Secret that does not exist.
    merge_patch(
        &env,
        "demoweb",
        "demoweb1",
        r#"{"spec":{"credentials":{"secretName":"missing"}}}"#,
    )
    .await;
    let dw = wait_condition(
        &env,
        &op,
        "demoweb1",
        "Stalled",
        "True",
        "CredentialsNotFound",
    )
    .await;
    assert_eq!(compute(&dw), KStatus::Failed, "{dw}");

    // The fix is committed.
    merge_patch(
        &env,
        "demoweb",
        "demoweb1",
        r#"{"spec":{"credentials":null}}"#,
    )
    .await;
    let dw = wait_condition(&env, &op, "demoweb1", "Ready", "True", "Reconciled").await;
    assert_eq!(compute(&dw), KStatus::Current, "{dw}");

    // Deleted (Flux prunes it) while something still holds a finalizer: Terminating.
    merge_patch(
        &env,
        "demoweb",
        "demoweb1",
        r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
    )
    .await;
    env.kubectl(&["delete", "demoweb", "demoweb1", "--wait=false"])
        .await
        .expect_ok();
    wait_kstatus(&env, Some(&op), "demoweb1", KStatus::Terminating).await;
    merge_patch(
        &env,
        "demoweb",
        "demoweb1",
        r#"{"metadata":{"finalizers":null}}"#,
    )
    .await;
    wait_gone(&env, &op, "demoweb", "demoweb1").await;
    env.finish().await;
}

fn series<'a>(metrics: &'a str, name: &str) -> Vec<&'a str> {
    let marker = format!("name=\"{name}\"");
    metrics
        .lines()
        .filter(|l| l.starts_with("demoweb_") && l.contains(&marker))
        .collect()
}

/// Polls `/metrics` until `check` accepts it.
async fn wait_metrics(
    env: &TestEnv,
    op: &Operator,
    what: &str,
    check: impl Fn(&str) -> bool,
) -> String {
    wait(env, Some(op), what, DEADLINE, || async {
        let (code, body) = op.http_get("/metrics").await;
        (code == 200 && check(&body)).then_some(body)
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn per_site_series_appear_and_disappear_with_the_demoweb() {
    let (env, op) = setup("site-metrics").await;
    let ns = env.namespace.clone();
    env.apply_yaml(SEED).await.expect_ok();
    wait_condition(&env, &op, "demoweb1", "Ready", "True", "Reconciled").await;
    let site = format!("namespace=\"{ns}\",name=\"demoweb1\"");
    let expected = [
        format!(
            "demoweb_info{{{site},gitrepo=\"https://github.com/gbaeke/static-web.git\",ref=\"\"}} 1"
        ),
        format!("demoweb_spec_replicas{{{site}}} 2"),
        format!("demoweb_status_ready_replicas{{{site}}} 2"),
        format!(
            "demoweb_status_condition{{{site},type=\"Ready\",status=\"True\",reason=\"Reconciled\"}} 1"
        ),
        format!(
            "demoweb_status_condition{{{site},type=\"Ready\",status=\"False\",reason=\"Reconciled\"}} 0"
        ),
        format!(
            "demoweb_status_condition{{{site},type=\"Ready\",status=\"Unknown\",reason=\"Reconciled\"}} 0"
        ),
        format!(
            "demoweb_status_condition{{{site},type=\"Stalled\",status=\"False\",reason=\"Reconciled\"}} 1"
        ),
        format!(
            "demoweb_status_condition{{{site},type=\"Reconciling\",status=\"False\",reason=\"Reconciled\"}} 1"
        ),
    ];
    let metrics = wait_metrics(&env, &op, "the site's series", |m| {
        expected.iter().all(|line| m.lines().any(|l| l == line))
    })
    .await;
    // The operator's own metrics are still there.
    for family in [
        "demoweb_reconciles_total{result=\"ok\"}",
        "demoweb_reconcile_duration_seconds_count",
        "demoweb_api_writes_total",
        "demoweb_leader",
    ] {
        assert!(metrics.contains(family), "{family} missing:\n{metrics}");
    }

    // A stalled site reads Stalled=True.
    merge_patch(
        &env,
        "demoweb",
        "demoweb1",
        r#"{"spec":{"credentials":{"secretName":"missing"}}}"#,
    )
    .await;
    wait_metrics(&env, &op, "Stalled=True in the series", |m| {
        m.lines().any(|l| {
            l == format!("demoweb_status_condition{{{site},type=\"Stalled\",status=\"True\",reason=\"CredentialsNotFound\"}} 1")
        })
    })
    .await;

    env.kubectl(&["delete", "demoweb", "demoweb1"])
        .await
        .expect_ok();
    let metrics = wait_metrics(&env, &op, "the deleted site's series to go", |m| {
        series(m, "demoweb1").is_empty()
    })
    .await;
    assert!(metrics.contains("demoweb_reconciles_total"), "{metrics}");
    env.finish().await;
}

#[cfg_attr(
    real_cluster,
    ignore = "needs the emulator: cutting the operator's watch"
)]
#[tokio::test(flavor = "multi_thread")]
async fn series_of_a_demoweb_deleted_while_the_watch_was_down_go() {
    // Deleted while the operator's DemoWeb watch was down: the re-list after `410 Gone` has no
    // DELETED event to give, and the series still go.
    let (env, op) = setup("site-metrics-relist").await;
    let ns = env.namespace.clone();
    let emulator = env.emulator();
    env.apply_yaml(&SEED.replace("demoweb1", "second"))
        .await
        .expect_ok();
    wait_metrics(&env, &op, "the second site's series", |m| {
        !series(m, "second").is_empty()
    })
    .await;
    emulator.faults().inject(
        ErrorRule::new(503)
            .verb("watch")
            .resource("demowebs")
            .namespace(&ns),
    );
    emulator.faults().cut_watches();
    env.kubectl(&["delete", "demoweb", "second"])
        .await
        .expect_ok();
    let (_, metrics) = op.http_get("/metrics").await;
    assert!(
        !series(&metrics, "second").is_empty(),
        "the watch is down, so the operator cannot know yet:\n{metrics}"
    );
    emulator.faults().clear();
    emulator.faults().expire_next_watch();
    wait_metrics(
        &env,
        &op,
        "the series of the site deleted while the watch was down to go",
        |m| series(m, "second").is_empty(),
    )
    .await;
    env.finish().await;
}

#[cfg_attr(
    all(real_cluster, not(cluster_wide)),
    ignore = "changes cluster-wide objects (replacing the cluster-wide DemoWeb CRD with one that validates nothing): runs only on a cluster the suite owns (DEMOWEB_TEST_CLUSTER_WIDE=1), one at a time"
)]
#[tokio::test(flavor = "multi_thread")]
async fn cluster_wide_series_of_a_demoweb_this_version_cannot_read_go() {
    let env = crate::safety::env_with_permissive_crd("site-metrics-unreadable").await;
    let op = Operator::start(&env, &[]).await;
    env.apply_yaml(SEED).await.expect_ok();
    wait_condition(&env, &op, "demoweb1", "Ready", "True", "Reconciled").await;
    wait_metrics(&env, &op, "the site's series", |m| {
        !series(m, "demoweb1").is_empty()
    })
    .await;
    // Edited past the schema into something this version cannot decode: the operator drops it
    // from its cache (and leaves its children alone), and its series go with it.
    merge_patch(
        &env,
        "demoweb",
        "demoweb1",
        r#"{"spec":{"replicas":"two"}}"#,
    )
    .await;
    wait_metrics(&env, &op, "the unreadable site's series to go", |m| {
        series(m, "demoweb1").is_empty()
    })
    .await;
    env.finish().await;
}

/// The `events.k8s.io` Events about `name` with `reason`, as (series count, note).
async fn event_series(env: &TestEnv, name: &str, reason: &str) -> Vec<(i64, String)> {
    let out = env
        .kubectl(&["get", "events.events.k8s.io", "-o", "json"])
        .await
        .expect_ok();
    let list: serde_json::Value = serde_json::from_str(&out).expect("events JSON");
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["regarding"]["name"] == name && e["reason"] == reason)
        .map(|e| {
            (
                e["series"]["count"].as_i64().unwrap_or(1),
                e["note"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repeated_warning_counts_up_its_event_and_a_deleted_event_starts_again() {
    let (env, op) = setup("event-series").await;
    env.apply_yaml(CREDENTIALS_SECRET).await.expect_ok();
    env.apply_yaml(SEED).await.expect_ok();
    wait_condition(&env, &op, "demoweb1", "Ready", "True", "Reconciled").await;

    // The user names a Secret that does not exist, fixes it, and makes the same mistake again.
    let stall = |secret: &'static str| {
        let (env, op) = (&env, &op);
        async move {
            merge_patch(
                env,
                "demoweb",
                "demoweb1",
                &format!(r#"{{"spec":{{"credentials":{{"secretName":"{secret}"}}}}}}"#),
            )
            .await;
            wait_condition(
                env,
                op,
                "demoweb1",
                "Stalled",
                "True",
                "CredentialsNotFound",
            )
            .await;
            merge_patch(
                env,
                "demoweb",
                "demoweb1",
                r#"{"spec":{"credentials":{"secretName":"site-creds"}}}"#,
            )
            .await;
            wait_condition(env, op, "demoweb1", "Ready", "True", "Reconciled").await;
        }
    };
    stall("missing-creds").await;
    stall("missing-creds").await;
    let series = wait(
        &env,
        Some(&op),
        "one CredentialsNotFound Event counted twice",
        DEADLINE,
        || async {
            let series = event_series(&env, "demoweb1", "CredentialsNotFound").await;
            (series.len() == 1 && series[0].0 == 2).then_some(series)
        },
    )
    .await;
    assert!(series[0].1.contains("missing-creds"), "{series:?}");

    // Someone deletes the Events (or they expire): the next repetition is a new Event, not a
    // count on one that is gone.
    env.kubectl(&["delete", "events.events.k8s.io", "--all"])
        .await
        .expect_ok();
    stall("other-creds").await;
    let series = wait(
        &env,
        Some(&op),
        "a new CredentialsNotFound Event",
        DEADLINE,
        || async {
            let series = event_series(&env, "demoweb1", "CredentialsNotFound").await;
            (series.len() == 1).then_some(series)
        },
    )
    .await;
    assert_eq!(series[0].0, 1, "{series:?}");
    assert!(series[0].1.contains("other-creds"), "{series:?}");
    env.finish().await;
}
