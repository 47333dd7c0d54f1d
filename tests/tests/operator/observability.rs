//! What Flux and Prometheus see: what kstatus (the real library, `demoweb_tests::kstatus`) concludes
//! about a DemoWeb read back from the API at each step of its life, and about each status the operator
//! computes; and the per-site series on `/metrics`, which go away with the DemoWeb.

use demoweb_crd::DemoWeb;
use demoweb_crd::conditions::reason;
use demoweb_operator::demoweb::status::{Rollout, StatusInput, compute_status};
use demoweb_operator::error::UserError;
use demoweb_tests::emulator::ErrorRule;
use demoweb_tests::harness::TestEnv;
use demoweb_tests::kstatus::{Status, compute, compute_all};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use demoweb_tests::operator::*;

/// Waits until kstatus, computed from the DemoWeb as `kubectl get -o json` returns it, is `want`.
async fn wait_kstatus(
    env: &TestEnv,
    op: Option<&Operator>,
    name: &str,
    want: Status,
) -> serde_json::Value {
    wait(
        env,
        op,
        &format!("kstatus of demoweb/{name} to be {want}"),
        DEADLINE,
        || async {
            get(env, "demoweb", name)
                .await
                .filter(|dw| compute(dw).status == want)
        },
    )
    .await
}

#[cfg_attr(
    no_go,
    ignore = "kstatus is built from its Go module (tests/cluster/kstatus): `go` was not on the PATH when the tests were built"
)]
#[tokio::test(flavor = "multi_thread")]
async fn flux_sees_a_site_roll_out_stall_recover_and_go() {
    let env = TestEnv::new("kstatus").await;
    install_crds(&env).await;

    // Committed, the operator not running yet: the CRD's default observedGeneration (-1) tells
    // kstatus the spec is not observed, so `wait: true` does not pass on a site nobody has seen.
    env.apply_yaml(SEED).await.expect_ok();
    let dw = get(&env, "demoweb", "demoweb1").await.expect("created");
    assert_eq!(dw["status"]["observedGeneration"], -1, "{dw}");
    assert_eq!(compute(&dw).status, Status::InProgress, "{dw}");

    // Children applied, pods not ready (the emulator can hold Deployments unready; a real
    // cluster's pods are simply not ready yet, or already are).
    if let Some(emulator) = env.emulator.as_ref() {
        emulator.set_deployments_ready(false);
    }
    let op = Operator::start(&env, &[]).await;
    if let Some(emulator) = env.emulator.as_ref() {
        let dw = wait_condition(&env, &op, "demoweb1", "Reconciling", "True", "Progressing").await;
        assert_eq!(compute(&dw).status, Status::InProgress, "{dw}");
        emulator.set_deployments_ready(true);
    }
    let dw = wait_condition(&env, &op, "demoweb1", "Ready", "True", "Reconciled").await;
    assert_eq!(compute(&dw).status, Status::Current, "{dw}");

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
    let kstatus = compute(&dw);
    assert_eq!(kstatus.status, Status::Failed, "{dw}");
    // What Flux reports for the failed health check is the Stalled condition's message.
    assert!(kstatus.message.contains("missing"), "{kstatus:?}");

    // The fix is committed.
    merge_patch(
        &env,
        "demoweb",
        "demoweb1",
        r#"{"spec":{"credentials":null}}"#,
    )
    .await;
    let dw = wait_condition(&env, &op, "demoweb1", "Ready", "True", "Reconciled").await;
    assert_eq!(compute(&dw).status, Status::Current, "{dw}");

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
    wait_kstatus(&env, Some(&op), "demoweb1", Status::Terminating).await;
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

/// `dw` after a reconcile that saw `rollout` and `problem`, as the API returns it.
fn reconciled(mut dw: DemoWeb, rollout: Option<Rollout>, problem: Option<UserError>) -> DemoWeb {
    let status = compute_status(StatusInput {
        dw: &dw,
        deployment: None,
        rollout,
        problem,
        diagnosis: None,
        url: None,
        identity: None,
        now: Time(jiff::Timestamp::from_second(1_700_000_000).expect("a time")),
    });
    dw.status = Some(status);
    dw
}

/// The seed as the API returns it once created: generation 1.
fn seed() -> DemoWeb {
    let mut dw: DemoWeb = demoweb_crd::yaml::from_str(SEED).expect("the seed parses");
    dw.metadata.namespace = Some("default".into());
    dw.metadata.generation = Some(1);
    dw
}

fn as_json(dw: &DemoWeb) -> serde_json::Value {
    serde_json::to_value(dw).expect("a DemoWeb serialises")
}

/// Every status the operator computes along a DemoWeb's life (docs/operations.md, "What kstatus
/// concludes"), and what kstatus concludes from it: what Flux's `wait: true` then says.
#[cfg_attr(
    no_go,
    ignore = "kstatus is built from its Go module (tests/cluster/kstatus): `go` was not on the PATH when the tests were built"
)]
#[test]
fn kstatus_concludes_what_the_user_should_along_the_demoweb_lifecycle() {
    let progressing = || {
        Some(Rollout::Progressing {
            message: "Deployment demoweb1: 0 of 2 replicas ready".into(),
        })
    };
    let complete = || Some(Rollout::Complete { ready: 2 });
    let stalled = |reason: &'static str| {
        reconciled(
            seed(),
            None,
            Some(UserError {
                reason,
                message: format!("a problem the user must fix ({reason})"),
            }),
        )
    };
    let mut rows: Vec<(String, serde_json::Value, Status)> = Vec::new();

    // Created, the operator has not written a status yet. The CRD defaults
    // `status.observedGeneration` to -1 (kube-apiserver applies defaults when it reads the object).
    let mut created = as_json(&seed());
    created["status"] = serde_json::json!({"observedGeneration": -1});
    rows.push((
        "created, not yet observed".into(),
        created,
        Status::InProgress,
    ));
    // Without that default kstatus could not tell (an object without conditions is Current): this
    // row is why the CRD carries it.
    rows.push((
        "created, no status at all".into(),
        as_json(&seed()),
        Status::Current,
    ));
    rows.push((
        "children applied, pods not ready".into(),
        as_json(&reconciled(seed(), progressing(), None)),
        Status::InProgress,
    ));
    rows.push((
        "children being created (no Deployment yet)".into(),
        as_json(&reconciled(seed(), None, None)),
        Status::InProgress,
    ));
    let ready = reconciled(seed(), complete(), None);
    rows.push(("ready".into(), as_json(&ready), Status::Current));

    let mut changed = ready.clone();
    changed.metadata.generation = Some(2);
    rows.push((
        "spec changed, not yet observed".into(),
        as_json(&changed),
        Status::InProgress,
    ));
    rows.push((
        "spec change observed, rolling out".into(),
        as_json(&reconciled(changed.clone(), progressing(), None)),
        Status::InProgress,
    ));
    rows.push((
        "spec change rolled out".into(),
        as_json(&reconciled(changed, complete(), None)),
        Status::Current,
    ));
    for reason in [
        reason::INVALID_SPEC,
        reason::NAME_CONFLICT,
        reason::CREDENTIALS_NOT_FOUND,
        reason::UNSUPPORTED_INGRESS_CLASS,
        reason::IDENTITY_BINDING_NOT_FOUND,
        reason::IDENTITY_NOT_FOUND,
        reason::INVALID_IDENTITY,
    ] {
        rows.push((
            format!("stalled: {reason}"),
            as_json(&stalled(reason)),
            Status::Failed,
        ));
    }
    // A stalled site stays stalled even when its old pods are all ready.
    rows.push((
        "stalled with the last good children ready".into(),
        as_json(&reconciled(
            seed(),
            complete(),
            Some(UserError {
                reason: reason::NAME_CONFLICT,
                message: "Service demoweb1 is controlled by someone else".into(),
            }),
        )),
        Status::Failed,
    ));
    let mut fix_committed = stalled(reason::INVALID_SPEC);
    fix_committed.metadata.generation = Some(2);
    rows.push((
        "stalled, fix committed but not yet observed".into(),
        as_json(&fix_committed),
        Status::InProgress,
    ));
    rows.push((
        "stalled, fix observed and rolled out".into(),
        as_json(&reconciled(fix_committed, complete(), None)),
        Status::Current,
    ));
    for (name, base) in [("ready", ready), ("stalled", stalled(reason::INVALID_SPEC))] {
        let mut deleting = as_json(&base);
        deleting["metadata"]["deletionTimestamp"] = serde_json::json!("2026-01-01T00:00:00Z");
        rows.push((format!("deleting ({name})"), deleting, Status::Terminating));
    }

    let objects: Vec<serde_json::Value> = rows.iter().map(|(_, obj, _)| obj.clone()).collect();
    let got = compute_all(&objects).unwrap_or_else(|e| panic!("kstatus failed: {e}"));
    let failures: Vec<String> = rows
        .iter()
        .zip(&got)
        .filter(|((_, _, want), got)| got.status != *want)
        .map(|((name, obj, want), got)| {
            format!(
                "{name}: kstatus {} ({}), want {want}\n  {obj}",
                got.status, got.message
            )
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
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
