//! Deployments, their ReplicaSets and pods, as kube-controller-manager, the scheduler and a kubelet
//! (kwok on the real control plane) make them: names, labels, owners, the pods' status, scaling,
//! rollouts, garbage collection, and pod status written through the status subresource.

use serde_json::{Value, json};

use super::DEADLINE;
use demoweb_tests::harness::TestEnv;

const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web, tier: front}, annotations: {note: one}}\n    spec:\n      initContainers: [{name: init, image: busybox:1.36}]\n      containers: [{name: c, image: nginx:1.27}]\n";

/// kube-apiserver's generateName alphabet (no vowels, no confusable characters).
const SUFFIX_ALPHABET: &str = "bcdfghjklmnpqrstvwxz2456789";

async fn list(env: &TestEnv, resource: &str, selector: &str) -> Vec<Value> {
    let out = env
        .kubectl(&["get", resource, "-l", selector, "-o", "json"])
        .await
        .expect_ok();
    let list: Value = serde_json::from_str(&out).expect("a list");
    list["items"].as_array().cloned().unwrap_or_default()
}

fn condition<'a>(o: &'a Value, ty: &str) -> &'a Value {
    o["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == ty))
        .unwrap_or(&Value::Null)
}

fn controller(o: &Value) -> &Value {
    o["metadata"]["ownerReferences"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["controller"] == true))
        .unwrap_or(&Value::Null)
}

/// Waits until the Deployment's `readyReplicas` and `updatedReplicas` are `n` and only `n` pods
/// of it are left; returns its ReplicaSets and pods.
async fn rolled_out(env: &TestEnv, n: i64) -> (Value, Vec<Value>, Vec<Value>) {
    env.wait_for(&format!("{n} ready pods of web"), DEADLINE, || async {
        let d: Value = serde_json::from_str(
            &env.kubectl(&["get", "deployment", "web", "-o", "json"])
                .await
                .stdout,
        )
        .ok()?;
        let s = &d["status"];
        let pods = list(env, "pods", "app=web").await;
        (s["observedGeneration"] == d["metadata"]["generation"]
            && s["readyReplicas"].as_i64().unwrap_or(0) == n
            && s["updatedReplicas"].as_i64().unwrap_or(0) == n
            && s["replicas"].as_i64().unwrap_or(0) == n
            && pods.len() as i64 == n)
            .then_some(())?;
        Some((d, list(env, "replicasets", "app=web").await, pods))
    })
    .await
}

#[tokio::test]
async fn deployments_get_a_replica_set_and_running_pods() {
    let env = TestEnv::new("workload_pods").await;
    env.apply_yaml(DEPLOYMENT).await.expect_ok();
    let (d, sets, pods) = rolled_out(&env, 2).await;
    assert_eq!(sets.len(), 1, "{sets:#?}");
    let rs = &sets[0];
    let rs_name = rs["metadata"]["name"].as_str().unwrap();
    let hash = rs["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap();
    assert_eq!(rs_name, format!("web-{hash}"));
    assert_eq!(
        rs["spec"]["selector"]["matchLabels"]["pod-template-hash"],
        hash
    );
    assert_eq!(rs["spec"]["replicas"], 2);
    assert_eq!(rs["status"]["readyReplicas"], 2);
    assert_eq!(
        rs["spec"]["template"]["metadata"]["labels"],
        json!({"app": "web", "tier": "front", "pod-template-hash": hash})
    );
    assert_eq!(
        rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );
    let owner = controller(rs);
    assert_eq!(
        (
            &owner["kind"],
            &owner["name"],
            &owner["uid"],
            &owner["blockOwnerDeletion"]
        ),
        (
            &json!("Deployment"),
            &json!("web"),
            &d["metadata"]["uid"],
            &json!(true)
        )
    );
    for pod in &pods {
        let name = pod["metadata"]["name"].as_str().unwrap();
        let suffix = name
            .strip_prefix(&format!("{rs_name}-"))
            .unwrap_or_default();
        assert!(
            suffix.len() == 5 && suffix.chars().all(|c| SUFFIX_ALPHABET.contains(c)),
            "pod name {name}"
        );
        // The template's labels and the hash (kwok may add its node's zone).
        for (k, v) in [
            ("app", "web"),
            ("tier", "front"),
            ("pod-template-hash", hash),
        ] {
            assert_eq!(pod["metadata"]["labels"][k], v, "{pod:#}");
        }
        assert_eq!(pod["metadata"]["annotations"]["note"], "one");
        let owner = controller(pod);
        assert_eq!(
            (&owner["kind"], &owner["name"], &owner["uid"]),
            (
                &json!("ReplicaSet"),
                &json!(rs_name),
                &rs["metadata"]["uid"]
            )
        );
        assert!(
            pod["spec"]["nodeName"]
                .as_str()
                .is_some_and(|n| !n.is_empty()),
            "{pod:#}"
        );
        assert_eq!(pod["spec"]["serviceAccountName"], "default");
        let s = &pod["status"];
        assert_eq!(s["phase"], "Running", "{pod:#}");
        for ty in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
            assert_eq!(condition(pod, ty)["status"], "True", "{ty}: {pod:#}");
        }
        assert_eq!(s["qosClass"], "BestEffort");
        assert!(
            s["podIP"].is_string() && s["startTime"].is_string(),
            "{s:#}"
        );
        let c = &s["containerStatuses"][0];
        assert_eq!(
            (&c["name"], &c["ready"], &c["restartCount"]),
            (&json!("c"), &json!(true), &json!(0))
        );
        assert!(c["state"]["running"]["startedAt"].is_string(), "{c:#}");
        let i = &s["initContainerStatuses"][0];
        assert_eq!((&i["name"], &i["ready"]), (&json!("init"), &json!(true)));
        assert_eq!(i["state"]["terminated"]["reason"], "Completed", "{i:#}");
    }
    // Label selectors select pods; kubectl prints them.
    assert_eq!(list(&env, "pods", "tier=front,app in (web)").await.len(), 2);
    assert!(list(&env, "pods", "tier=back").await.is_empty());
    let table = env
        .kubectl(&["get", "pods", "-l", "app=web"])
        .await
        .expect_ok();
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    for line in table.lines().skip(1) {
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(&cells[1..4], ["1/1", "Running", "0"], "{table}");
    }
    let rs_table = env
        .kubectl(&["get", "rs", "-l", "app=web"])
        .await
        .expect_ok();
    assert!(
        rs_table.lines().nth(1).is_some_and(|l| {
            l.split_whitespace().collect::<Vec<_>>()[..4] == [rs_name, "2", "2", "2"]
        }),
        "{rs_table}"
    );
    env.finish().await;
}

#[tokio::test]
async fn scaling_and_a_new_template_roll_the_pods() {
    let env = TestEnv::new("workload_rollout").await;
    env.apply_yaml(DEPLOYMENT).await.expect_ok();
    let (_, sets, _) = rolled_out(&env, 2).await;
    let first = sets[0]["metadata"]["name"].as_str().unwrap().to_owned();

    env.kubectl(&["scale", "deployment", "web", "--replicas=1"])
        .await
        .expect_ok();
    rolled_out(&env, 1).await;

    env.apply_yaml(&DEPLOYMENT.replace("note: one", "note: two"))
        .await
        .expect_ok();
    let (d, sets, pods) = rolled_out(&env, 2).await;
    let new = sets
        .iter()
        .find(|rs| rs["metadata"]["name"] != first.as_str())
        .expect("a new ReplicaSet");
    let hash = new["metadata"]["labels"]["pod-template-hash"].clone();
    assert_eq!(
        new["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "2"
    );
    let old = sets
        .iter()
        .find(|rs| rs["metadata"]["name"] == first.as_str())
        .expect("the old ReplicaSet is kept (revisionHistoryLimit)");
    assert_eq!(old["spec"]["replicas"], 0, "{old:#}");
    for pod in &pods {
        assert_eq!(pod["metadata"]["labels"]["pod-template-hash"], hash);
        assert_eq!(pod["metadata"]["annotations"]["note"], "two");
    }
    let progressing = condition(&d, "Progressing");
    assert_eq!(progressing["reason"], "NewReplicaSetAvailable", "{d:#}");
    assert_eq!(
        progressing["message"],
        format!(
            "ReplicaSet \"{}\" has successfully progressed.",
            new["metadata"]["name"].as_str().unwrap()
        )
    );
    env.finish().await;
}

#[tokio::test]
async fn replica_sets_and_pods_go_with_their_deployment() {
    let env = TestEnv::new("workload_gc").await;
    env.apply_yaml(DEPLOYMENT).await.expect_ok();
    rolled_out(&env, 2).await;
    env.kubectl(&["delete", "deployment", "web"])
        .await
        .expect_ok();
    env.wait_for("no ReplicaSets or pods left", DEADLINE, || async {
        (list(&env, "replicasets", "app=web").await.is_empty()
            && list(&env, "pods", "app=web").await.is_empty())
        .then_some(())
    })
    .await;
    env.finish().await;
}

#[tokio::test]
async fn pod_status_is_written_through_its_subresource_and_counted() {
    let env = TestEnv::new("workload_pod_status").await;
    env.apply_yaml(&DEPLOYMENT.replace("replicas: 2", "replicas: 1"))
        .await
        .expect_ok();
    let (_, _, pods) = rolled_out(&env, 1).await;
    let name = pods[0]["metadata"]["name"].as_str().unwrap();
    // What a kubelet writes when the container crashes.
    let now = "2026-12-07T10:00:00Z";
    let patch = json!({"status": {
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            {"type": "Ready", "status": "False", "lastTransitionTime": now, "reason": "ContainersNotReady"},
            {"type": "ContainersReady", "status": "False", "lastTransitionTime": now},
        ],
        "containerStatuses": [{"name": "c", "image": "nginx:1.27", "imageID": "", "ready": false,
            "restartCount": 4, "started": false,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 1m20s"}},
            "lastState": {"terminated": {"exitCode": 2, "reason": "Error", "message": "it broke",
                "startedAt": now, "finishedAt": now}}}],
    }});
    // The main resource ignores status; the subresource takes it.
    env.kubectl(&[
        "patch",
        "pod",
        name,
        "--type=merge",
        "-p",
        &patch.to_string(),
    ])
    .await
    .expect_ok();
    let pod: Value = serde_json::from_str(
        &env.kubectl(&["get", "pod", name, "-o", "json"])
            .await
            .expect_ok(),
    )
    .unwrap();
    assert_eq!(condition(&pod, "Ready")["status"], "True");
    env.patch_status("pod", name, &patch.to_string())
        .await
        .expect_ok();
    // The Deployment counts it unready, and the written status stays.
    env.wait_for(
        "the Deployment to count the pod unready",
        DEADLINE,
        || async {
            let out = env
                .kubectl(&["get", "deployment", "web", "-o", "json"])
                .await;
            let d: Value = serde_json::from_str(&out.stdout).ok()?;
            (d["status"]["readyReplicas"].is_null() && d["status"]["unavailableReplicas"] == 1)
                .then_some(())
        },
    )
    .await;
    let pod: Value = serde_json::from_str(
        &env.kubectl(&["get", "pod", name, "-o", "json"])
            .await
            .expect_ok(),
    )
    .unwrap();
    let c = &pod["status"]["containerStatuses"][0];
    assert_eq!(
        c["state"]["waiting"]["reason"], "CrashLoopBackOff",
        "{pod:#}"
    );
    assert_eq!(c["lastState"]["terminated"]["message"], "it broke");
    assert_eq!(c["restartCount"], 4);
    assert_eq!(pod["status"]["phase"], "Running");
    let table = env
        .kubectl(&["get", "pod", name, "--no-headers"])
        .await
        .expect_ok();
    let cells: Vec<&str> = table.split_whitespace().collect();
    assert_eq!(&cells[1..4], ["0/1", "CrashLoopBackOff", "4"], "{table}");
    env.finish().await;
}

#[tokio::test]
async fn a_pod_spec_is_immutable_but_for_images() {
    let env = TestEnv::new("workload_pod_immutable").await;
    env.apply_yaml(&DEPLOYMENT.replace("replicas: 2", "replicas: 1"))
        .await
        .expect_ok();
    let (_, _, pods) = rolled_out(&env, 1).await;
    let name = pods[0]["metadata"]["name"].as_str().unwrap();
    let stderr = env
        .kubectl(&[
            "patch",
            "pod",
            name,
            "--type=json",
            "-p",
            r#"[{"op":"add","path":"/spec/containers/0/workingDir","value":"/tmp"}]"#,
        ])
        .await
        .expect_err();
    assert!(
        stderr.contains(&format!("The Pod \"{name}\" is invalid: spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`")),
        "{stderr}"
    );
    env.kubectl(&[
        "patch",
        "pod",
        name,
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/containers/0/image","value":"nginx:1.28"}]"#,
    ])
    .await
    .expect_ok();
    env.finish().await;
}
