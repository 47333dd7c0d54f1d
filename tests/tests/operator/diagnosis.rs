//! "Why is my site not up?": each failure class a pod or its Deployment can show turns into the
//! DemoWeb's `Ready` condition, as `kubectl get dweb` and `kubectl describe dweb` show it, within
//! 10 s of the pod (or Deployment) showing it; planted credentials never appear.
//!
//! Pods come from the ReplicaSet controller and kwok (on the emulator, from its simulation of
//! both). Scheduling, quota and deadline failures are the scheduler's, the quota admission's and
//! the Deployment controller's (on the emulator, its simulation of them); container states (git-sync's errors,
//! image pulls, crash loops) are written to the pod's status through the status subresource by the
//! test, as a kubelet would write them. kwok (and the emulator's kubelet) takes every Pending pod
//! to Running and leaves a status someone else wrote alone, so those pods stay Running, which
//! diagnosis does not read.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use demoweb_tests::harness::TestEnv;
use demoweb_tests::operator::*;

/// What the pods may show before the status says so.
const WITHIN: Duration = Duration::from_secs(10);

/// Held back from every output: planted in the repository URL and the credentials Secret.
const USER: &str = "planted-user";
const PASSWORD: &str = "planted-password-4711";

fn site(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: baeke.info/v1\nkind: DemoWeb\nmetadata: {{name: {name}}}\nspec:\n  replicas: 1\n  gitrepo: https://{USER}:{PASSWORD}@git.example.com/site.git\n{extra}"
    )
}

/// The first pod of the site's Deployment, once the ReplicaSet created it and kwok (or the
/// emulator's kubelet) runs it.
async fn running_pod(env: &TestEnv, op: &Operator, site: &str) -> Value {
    wait(
        env,
        Some(op),
        &format!("a Running pod of {site}"),
        DEADLINE,
        || async {
            let out = env
                .kubectl(&[
                    "get",
                    "pods",
                    "-l",
                    &format!("app.kubernetes.io/instance={site}"),
                    "-o",
                    "json",
                ])
                .await;
            let list: Value = serde_json::from_str(&out.stdout).ok()?;
            list["items"]
                .as_array()?
                .iter()
                .find(|p| p["status"]["phase"] == "Running")
                .cloned()
        },
    )
    .await
}

/// Applies the site, waits for its first pod to run, and writes `state(pod)` (its init
/// containers' and containers' statuses) over the pod's status, not ready, as a kubelet would.
/// Returns the pod's name and when the pod showed the state.
async fn show_pod_state(
    env: &TestEnv,
    op: &Operator,
    (name, extra): (&str, &str),
    state: impl FnOnce(&Value) -> [Value; 2],
) -> (String, Instant) {
    env.apply_yaml(&site(name, extra)).await.expect_ok();
    let pod = running_pod(env, op, name).await;
    let [init, containers] = state(&pod);
    let now = "2026-12-07T10:00:00Z";
    let not_ready = |t: &str| json!({"type": t, "status": "False", "lastTransitionTime": now});
    let patch = json!({"status": {
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            not_ready("Initialized"),
            not_ready("ContainersReady"),
            not_ready("Ready"),
        ],
        "initContainerStatuses": init,
        "containerStatuses": containers,
    }});
    let pod_name = pod["metadata"]["name"].as_str().expect("pod name");
    env.patch_status("pod", pod_name, &patch.to_string())
        .await
        .expect_ok();
    (pod_name.to_owned(), Instant::now())
}

fn image_of(pod: &Value, name: &str) -> String {
    pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .chain(pod["spec"]["initContainers"].as_array())
        .flatten()
        .find(|c| c["name"] == name)
        .and_then(|c| c["image"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// A container that failed `restarts` times and waits to be started again.
fn crash_looping(pod: &Value, name: &str, message: &str) -> Value {
    json!({
        "name": name, "image": image_of(pod, name), "imageID": "", "ready": false,
        "restartCount": 3, "started": false,
        "state": {"waiting": {"reason": "CrashLoopBackOff",
            "message": format!("back-off 40s restarting failed container={name} pod={}", pod["metadata"]["name"].as_str().unwrap_or_default())}},
        "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "message": message,
            "startedAt": "2026-12-07T09:59:58Z", "finishedAt": "2026-12-07T09:59:59Z"}},
    })
}

fn waiting(pod: &Value, name: &str, reason: &str, message: &str) -> Value {
    json!({
        "name": name, "image": image_of(pod, name), "imageID": "", "ready": false,
        "restartCount": 0, "started": false,
        "state": {"waiting": {"reason": reason, "message": message}},
    })
}

fn completed(pod: &Value, name: &str) -> Value {
    json!({
        "name": name, "image": image_of(pod, name), "imageID": "", "ready": true,
        "restartCount": 0,
        "state": {"terminated": {"exitCode": 0, "reason": "Completed",
            "startedAt": "2026-12-07T09:59:58Z", "finishedAt": "2026-12-07T09:59:59Z"}},
    })
}

/// git-sync v4's log tail as the kubelet takes it for the termination message
/// (`FallbackToLogsOnError`): its last line is the error, git's stderr inside it.
fn git_sync_log(stderr: &str) -> String {
    let error = format!(
        "Run(git fetch https://{USER}:{PASSWORD}@git.example.com/site.git HEAD --verbose --no-progress --prune --no-auto-gc --depth 1): exit status 128: {{ stdout: \"\", stderr: {stderr:?} }}"
    );
    let line = json!({"logger": "", "ts": "2026-12-07 09:59:59.000000", "level": 0,
        "msg": "too many failures, aborting", "error": error, "failCount": 1});
    format!("{{\"logger\":\"\",\"msg\":\"starting up\"}}\n{line}\n")
}

/// Waits for the DemoWeb's Ready condition to carry `reason`, then checks what a user reads:
/// the columns of `kubectl get dweb -o wide`, `kubectl describe dweb`, and the Events.
async fn expect_cause(
    env: &TestEnv,
    op: &Operator,
    name: &str,
    since: Option<Instant>,
    reason: &str,
    says: &[&str],
    stalled: bool,
) {
    let dw = wait_object(
        env,
        op,
        "demoweb",
        name,
        &format!("Ready=False {reason}"),
        |dw| condition(dw, "Ready").is_some_and(|(s, r, _)| s == "False" && r == reason),
    )
    .await;
    if let Some(since) = since {
        let took = since.elapsed();
        assert!(
            took <= WITHIN,
            "{reason} took {took:?} after the pod showed it"
        );
    }
    let (_, _, message) = condition(&dw, "Ready").expect("Ready");
    for part in says {
        assert!(
            message.contains(part),
            "{reason}: {message:?} lacks {part:?}"
        );
    }
    assert_eq!(
        condition(&dw, "Stalled").map(|c| c.0),
        Some(if stalled { "True" } else { "False" }.to_owned()),
        "{reason}: kstatus"
    );
    assert_eq!(
        condition(&dw, "Reconciling").map(|c| c.0),
        Some(if stalled { "False" } else { "True" }.to_owned()),
        "{reason}: kstatus"
    );
    let wide = env
        .kubectl(&["get", "dweb", name, "-o", "wide", "--no-headers"])
        .await
        .expect_ok();
    assert!(
        wide.contains("False") && wide.contains(reason),
        "kubectl get dweb -o wide: {wide}"
    );
    let describe = env.kubectl(&["describe", "dweb", name]).await.expect_ok();
    assert!(describe.contains(reason), "kubectl describe: {describe}");
    let events = wait(
        env,
        Some(op),
        &format!("a Warning Event {reason}"),
        DEADLINE,
        || async {
            let events = events_for(env, name).await;
            events
                .iter()
                .any(|(t, r, _)| t == "Warning" && r == reason)
                .then_some(events)
        },
    )
    .await;
    // What the operator wrote: the status (and so the MESSAGE column and the conditions that
    // `describe` prints after `Status:`), the Events, its log. The spec is the user's own text.
    let status_part = describe
        .split_once("\nStatus:")
        .map(|(_, after)| after)
        .unwrap_or_default();
    let everything = format!("{}\n{status_part}\n{events:?}\n{}", dw["status"], op.logs());
    for secret in [USER, PASSWORD] {
        assert!(
            !everything.contains(secret),
            "{reason}: {secret} leaked into what a user reads:\n{everything}"
        );
    }
}

async fn credentials(env: &TestEnv) {
    env.apply_yaml(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: git-creds}}\nstringData: {{username: {USER}, password: {PASSWORD}}}\n"
    ))
    .await
    .expect_ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn git_failures_are_named() {
    let (env, op) = setup("diag-git").await;
    credentials(&env).await;
    let cases: [(&str, &str, &str, &[&str], bool); 4] = [
        (
            "unreachable",
            "fatal: unable to access 'https://planted-user:planted-password-4711@git.example.com/site.git/': Could not resolve host: git.example.com",
            "GitUnreachable",
            &["cannot reach", "Could not resolve host"],
            false,
        ),
        (
            "auth",
            "remote: Invalid username or password.\nfatal: Authentication failed for 'https://git.example.com/site.git/'",
            "GitAuthenticationFailed",
            &[
                "cannot authenticate",
                "Secret \"git-creds\"",
                "Authentication failed",
            ],
            true,
        ),
        (
            "norepo",
            "remote: Repository not found.\nfatal: repository 'https://git.example.com/site.git/' not found",
            "GitRepositoryNotFound",
            &["not found"],
            true,
        ),
        (
            "noref",
            "fatal: couldn't find remote ref nope",
            "GitRefNotFound",
            &["ref \"nope\" not found", "couldn't find remote ref nope"],
            true,
        ),
    ];
    for (name, stderr, reason, says, stalled) in cases {
        let extra = "  ref: nope\n  credentials: {secretName: git-creds}\n";
        let (pod_name, since) = show_pod_state(&env, &op, (name, extra), |pod| {
            [
                json!([crash_looping(pod, "git-clone", &git_sync_log(stderr))]),
                json!([waiting(pod, "web", "PodInitializing", "")]),
            ]
        })
        .await;
        let mut says = says.to_vec();
        says.push(&pod_name);
        expect_cause(&env, &op, name, Some(since), reason, &says, stalled).await;
    }
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_path_is_named() {
    let (env, op) = setup("diag-path").await;
    let (pod_name, since) = show_pod_state(&env, &op, ("nopath", "  path: docs\n"), |pod| {
        [
            json!([
                completed(pod, "git-clone"),
                crash_looping(
                    pod,
                    "check-path",
                    "path \"docs\" is not a directory of the repository\n"
                ),
            ]),
            json!([waiting(pod, "web", "PodInitializing", "")]),
        ]
    })
    .await;
    expect_cause(
        &env,
        &op,
        "nopath",
        Some(since),
        "GitPathNotFound",
        &[&pod_name, "path \"docs\" is not a directory"],
        true,
    )
    .await;
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn image_pulls_and_crash_loops_are_named() {
    let (env, op) = setup("diag-containers").await;
    let bad_image = ("badimage", "  image: nginx:does-not-exist\n");
    let (pod_name, since) = show_pod_state(&env, &op, bad_image, |pod| {
        [
            json!([completed(pod, "git-clone")]),
            json!([waiting(
                pod,
                "web",
                "ImagePullBackOff",
                "Back-off pulling image \"nginx:does-not-exist\""
            )]),
        ]
    })
    .await;
    expect_cause(
        &env,
        &op,
        "badimage",
        Some(since),
        "ImagePullFailed",
        &[&pod_name, "cannot pull image nginx:does-not-exist"],
        true,
    )
    .await;

    let (pod_name, since) = show_pod_state(&env, &op, ("crashing", ""), |pod| {
        [
            json!([completed(pod, "git-clone")]),
            json!([crash_looping(pod, "web", "")]),
        ]
    })
    .await;
    expect_cause(
        &env,
        &op,
        "crashing",
        Some(since),
        "CrashLoopBackOff",
        &[&pod_name, "container web keeps crashing", "exit code 1"],
        true,
    )
    .await;
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn scheduling_quota_and_deadline_are_named() {
    let (env, op) = setup("diag-cluster").await;
    // More CPU than any kwok node has: the scheduler says so.
    env.apply_yaml(&site("huge", "  resources: {requests: {cpu: '100000'}}\n"))
        .await
        .expect_ok();
    expect_cause(
        &env,
        &op,
        "huge",
        None,
        "Unschedulable",
        &["cannot be scheduled", "Insufficient cpu"],
        false,
    )
    .await;
    // Past the rollout's deadline, waiting is over: the same cause, now Stalled.
    merge_patch(
        &env,
        "deployment",
        "huge",
        r#"{"spec":{"progressDeadlineSeconds":1}}"#,
    )
    .await;
    wait_object(
        &env,
        &op,
        "demoweb",
        "huge",
        "Stalled past the deadline",
        |dw| condition(dw, "Stalled").is_some_and(|(s, r, _)| s == "True" && r == "Unschedulable"),
    )
    .await;

    // A quota of no pods: the ReplicaSet cannot create any.
    no_pods_quota(&env).await;
    env.apply_yaml(&site("quota", "")).await.expect_ok();
    expect_cause(
        &env,
        &op,
        "quota",
        None,
        "ReplicaFailure",
        &[
            "Deployment quota cannot create pods",
            "exceeded quota: no-pods",
        ],
        true,
    )
    .await;
    env.finish().await;
}
