//! What the cluster says when a workload cannot go on: kube-scheduler's verdict on a pod that fits
//! no node, the ResourceQuota admission's refusal (and the ReplicaSet and Deployment conditions
//! that carry it), and the Deployment controller's progress deadline.

use serde_json::Value;

use super::DEADLINE;
use demoweb_tests::harness::TestEnv;

fn condition<'a>(o: &'a Value, ty: &str) -> &'a Value {
    o["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == ty))
        .unwrap_or(&Value::Null)
}

async fn get(env: &TestEnv, resource: &str, name: &str) -> Option<Value> {
    let out = env.kubectl(&["get", resource, name, "-o", "json"]).await;
    serde_json::from_str(&out.stdout).ok()
}

/// Waits until the object's condition `ty` has `status` and `reason`; returns the condition.
async fn wait_condition(
    env: &TestEnv,
    resource: &str,
    name: &str,
    ty: &str,
    (status, reason): (&str, &str),
) -> Value {
    env.wait_for(
        &format!("{resource} {name}: {ty}={status} {reason}"),
        DEADLINE,
        || async {
            let o = get(env, resource, name).await?;
            let c = condition(&o, ty);
            (c["status"] == status && c["reason"] == reason).then(|| c.clone())
        },
    )
    .await
}

fn pod(name: &str, extra_spec: &str, resources: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n{extra_spec}  containers: [{{name: c, image: nginx:1.27, resources: {resources}}}]\n"
    )
}

#[tokio::test]
async fn a_pod_that_fits_no_node_stays_pending_with_the_schedulers_verdict() {
    let env = TestEnv::new("verdict_scheduling").await;
    let huge = "{requests: {cpu: '100000'}}";
    env.apply_yaml(&pod("huge", "", huge)).await.expect_ok();
    env.apply_yaml(&pod("nowhere", "  nodeSelector: {disk: ssd}\n", "{}"))
        .await
        .expect_ok();
    env.apply_yaml(&pod(
        "huge-in-a",
        "  nodeSelector: {topology.kubernetes.io/zone: zone-a}\n",
        huge,
    ))
    .await
    .expect_ok();
    env.apply_yaml(&pod(
        "in-b",
        "  nodeSelector: {topology.kubernetes.io/zone: zone-b}\n",
        "{requests: {cpu: 100m, memory: 64Mi}}",
    ))
    .await
    .expect_ok();
    let not_helpful =
        "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.";
    for (name, message) in [
        ("huge", "0/3 nodes are available: 3 Insufficient cpu."),
        (
            "nowhere",
            "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.",
        ),
        (
            "huge-in-a",
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match Pod's node affinity/selector.",
        ),
    ] {
        let c = wait_condition(
            &env,
            "pod",
            name,
            "PodScheduled",
            ("False", "Unschedulable"),
        )
        .await;
        assert_eq!(c["message"], format!("{message} {not_helpful}"), "{name}");
        let p = get(&env, "pod", name).await.expect("the pod");
        assert_eq!(p["status"]["phase"], "Pending", "{name}");
        assert!(p["spec"]["nodeName"].is_null(), "{name}: {p:#}");
    }
    // A pod that fits goes to a node its selector names.
    let p = env
        .wait_for("in-b to run", DEADLINE, || async {
            let p = get(&env, "pod", "in-b").await?;
            (p["status"]["phase"] == "Running").then_some(p)
        })
        .await;
    assert_eq!(p["spec"]["nodeName"], "kwok-node-1");
    assert_eq!(condition(&p, "PodScheduled")["status"], "True");

    // Room taken by other pods (of the same priority: none is a victim), then given back.
    let most = "{requests: {cpu: '600'}}";
    for name in ["big-1", "big-2", "big-3"] {
        env.apply_yaml(&pod(name, "", most)).await.expect_ok();
    }
    for name in ["big-1", "big-2", "big-3"] {
        env.wait_for(&format!("{name} to run"), DEADLINE, || async {
            (get(&env, "pod", name).await?["status"]["phase"] == "Running").then_some(())
        })
        .await;
    }
    env.apply_yaml(&pod("big-4", "", most)).await.expect_ok();
    let c = wait_condition(
        &env,
        "pod",
        "big-4",
        "PodScheduled",
        ("False", "Unschedulable"),
    )
    .await;
    assert_eq!(
        c["message"],
        "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
    );
    env.kubectl(&["delete", "pod", "big-1"]).await.expect_ok();
    env.wait_for("big-4 to run once there is room", DEADLINE, || async {
        (get(&env, "pod", "big-4").await?["status"]["phase"] == "Running").then_some(())
    })
    .await;
    env.finish().await;
}

#[tokio::test]
async fn a_resource_quota_counts_pods_and_refuses_what_exceeds_it() {
    let env = TestEnv::new("verdict_quota").await;
    env.apply_yaml("apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: small}\nspec: {hard: {pods: '1', requests.memory: 100Mi}}\n")
        .await
        .expect_ok();
    env.wait_for("the quota to be counted", DEADLINE, || async {
        let q = get(&env, "resourcequota", "small").await?;
        (q["status"]["hard"]["pods"] == "1" && q["status"]["used"]["pods"] == "0").then_some(())
    })
    .await;
    // A quota of memory: every container says how much it requests.
    let out = env.apply_yaml(&pod("bare", "", "{}")).await;
    assert!(!out.success());
    assert!(
        out.stderr.contains("Error from server (Forbidden)")
            && out.stderr.contains(
                "pods \"bare\" is forbidden: failed quota: small: must specify requests.memory for: c"
            ),
        "{}",
        out.stderr
    );
    env.apply_yaml(&pod("one", "", "{requests: {memory: 50Mi}}"))
        .await
        .expect_ok();
    env.wait_for("the pod to be counted", DEADLINE, || async {
        let q = get(&env, "resourcequota", "small").await?;
        (q["status"]["used"]["pods"] == "1" && q["status"]["used"]["requests.memory"] == "50Mi")
            .then_some(())
    })
    .await;
    let table = env
        .kubectl(&["get", "quota", "small", "--no-headers"])
        .await
        .expect_ok();
    assert!(
        table.contains("pods: 1/1, requests.memory: 50Mi/100Mi"),
        "{table}"
    );
    let out = env
        .apply_yaml(&pod("two", "", "{requests: {memory: 60Mi}}"))
        .await;
    assert!(
        out.stderr.contains("pods \"two\" is forbidden: exceeded quota: small, requested: pods=1,requests.memory=60Mi, used: pods=1,requests.memory=50Mi, limited: pods=1,requests.memory=100Mi"),
        "{}",
        out.stderr
    );
    // The ReplicaSet controller cannot create pods either: its ReplicaSet, and the Deployment,
    // say why.
    env.apply_yaml("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: c, image: nginx:1.27, resources: {requests: {memory: 10Mi}}}]\n")
        .await
        .expect_ok();
    let d = wait_condition(
        &env,
        "deployment",
        "web",
        "ReplicaFailure",
        ("True", "FailedCreate"),
    )
    .await;
    let message = d["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("pods \"web-")
            && message.ends_with("\" is forbidden: exceeded quota: small, requested: pods=1, used: pods=1, limited: pods=1"),
        "{message}"
    );
    let rs_name = env
        .kubectl(&[
            "get",
            "rs",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[0].metadata.name}",
        ])
        .await
        .expect_ok();
    let rs = wait_condition(
        &env,
        "rs",
        &rs_name,
        "ReplicaFailure",
        ("True", "FailedCreate"),
    )
    .await;
    assert_eq!(rs["message"], d["message"]);
    // No pod, no progress: the rollout is where the new ReplicaSet left it.
    let deployment = get(&env, "deployment", "web")
        .await
        .expect("the Deployment");
    let progressing = condition(&deployment, "Progressing");
    assert_eq!(
        (&progressing["reason"], &progressing["message"]),
        (
            &Value::from("NewReplicaSetCreated"),
            &Value::from(format!("Created new replica set \"{rs_name}\""))
        )
    );
    // Room again: the pods come, and the condition goes.
    env.kubectl(&["delete", "pod", "one"]).await.expect_ok();
    env.wait_for("the ReplicaFailure to clear", DEADLINE, || async {
        let d = get(&env, "deployment", "web").await?;
        (condition(&d, "ReplicaFailure").is_null() && d["status"]["replicas"] == 1).then_some(())
    })
    .await;
    env.finish().await;
}

#[tokio::test]
async fn a_rollout_without_progress_passes_its_deadline() {
    let env = TestEnv::new("verdict_deadline").await;
    // Its pod fits no node, so the rollout cannot progress.
    env.apply_yaml("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: stuck}\nspec:\n  progressDeadlineSeconds: 3\n  selector: {matchLabels: {app: stuck}}\n  template:\n    metadata: {labels: {app: stuck}}\n    spec:\n      containers: [{name: c, image: nginx:1.27, resources: {requests: {cpu: '100000'}}}]\n")
        .await
        .expect_ok();
    let c = wait_condition(
        &env,
        "deployment",
        "stuck",
        "Progressing",
        ("False", "ProgressDeadlineExceeded"),
    )
    .await;
    let rs_name = env
        .kubectl(&[
            "get",
            "rs",
            "-l",
            "app=stuck",
            "-o",
            "jsonpath={.items[0].metadata.name}",
        ])
        .await
        .expect_ok();
    assert_eq!(
        c["message"],
        format!("ReplicaSet \"{rs_name}\" has timed out progressing.")
    );
    let d = get(&env, "deployment", "stuck")
        .await
        .expect("the Deployment");
    assert_eq!(condition(&d, "Available")["status"], "False");
    let out = env
        .kubectl(&["rollout", "status", "deployment/stuck", "--timeout=5s"])
        .await;
    assert!(
        !out.success() && out.stderr.contains("exceeded its progress deadline"),
        "{}",
        out.stderr
    );
    env.finish().await;
}
