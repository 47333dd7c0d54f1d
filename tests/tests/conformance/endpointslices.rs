//! EndpointSlices (`discovery.k8s.io/v1`) as kube-controller-manager's EndpointSlice controller
//! keeps them for Services with a selector (the pods' addresses, their readiness, the resolved
//! ports, the Service as owner), and as kube-apiserver validates them.

use serde_json::{Value, json};

use super::DEADLINE;
use demoweb_tests::harness::TestEnv;

/// Two pods with a named container port, a Service selecting them by that name, labelled.
const SITE: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: c, image: nginx:1.27, ports: [{name: http, containerPort: 8080}]}]\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web, labels: {team: blue}}\nspec:\n  selector: {app: web}\n  ports: [{name: site, port: 80, targetPort: http}]\n";

const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";

async fn json_of(env: &TestEnv, args: &[&str]) -> Value {
    let out = env.kubectl(args).await.expect_ok();
    serde_json::from_str(&out).expect("JSON")
}

/// The EndpointSlices of a Service, found as clients find them: by the service-name label.
async fn slices_of(env: &TestEnv, service: &str) -> Vec<Value> {
    let selector = format!("kubernetes.io/service-name={service}");
    json_of(
        env,
        &["get", "endpointslices", "-l", &selector, "-o", "json"],
    )
    .await["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn endpoints(slice: &Value) -> Vec<Value> {
    slice["endpoints"].as_array().cloned().unwrap_or_default()
}

fn ready(endpoint: &Value) -> bool {
    endpoint["conditions"]["ready"] == true
}

/// Waits until the Service has one slice whose `n` endpoints satisfy `ok`; returns it.
async fn one_slice(env: &TestEnv, service: &str, n: usize, ok: fn(&Value) -> bool) -> Value {
    env.wait_for(
        &format!("one slice of {service} with {n} such endpoints"),
        DEADLINE,
        || async {
            let slices = slices_of(env, service).await;
            let [slice] = &slices[..] else {
                return None;
            };
            let e = endpoints(slice);
            (e.len() == n && e.iter().all(ok)).then(|| slice.clone())
        },
    )
    .await
}

#[tokio::test]
async fn a_service_with_a_selector_gets_a_managed_slice_of_its_ready_pods() {
    let env = TestEnv::new("slices_managed").await;
    env.apply_yaml(SITE).await.expect_ok();
    let slice = one_slice(&env, "web", 2, ready).await;
    let svc = json_of(&env, &["get", "service", "web", "-o", "json"]).await;
    let pods = json_of(&env, &["get", "pods", "-l", "app=web", "-o", "json"]).await;
    let pods = pods["items"].as_array().cloned().unwrap_or_default();

    let m = &slice["metadata"];
    assert_eq!(m["generateName"], "web-", "{slice:#}");
    assert!(m["name"].as_str().unwrap().starts_with("web-"), "{slice:#}");
    let labels = &m["labels"];
    assert_eq!(labels["kubernetes.io/service-name"], "web");
    assert_eq!(labels[MANAGED_BY], "endpointslice-controller.k8s.io");
    assert_eq!(labels["team"], "blue", "the Service's labels: {slice:#}");
    let owner = &m["ownerReferences"][0];
    assert_eq!(
        (
            &owner["apiVersion"],
            &owner["kind"],
            &owner["name"],
            &owner["uid"]
        ),
        (
            &json!("v1"),
            &json!("Service"),
            &json!("web"),
            &svc["metadata"]["uid"]
        )
    );
    assert_eq!(
        (&owner["controller"], &owner["blockOwnerDeletion"]),
        (&json!(true), &json!(true))
    );
    assert_eq!(slice["addressType"], "IPv4");
    // The Service's port by name, the pods' container port by number.
    assert_eq!(
        slice["ports"],
        json!([{"name": "site", "port": 8080, "protocol": "TCP"}])
    );
    for pod in &pods {
        let ip = &pod["status"]["podIP"];
        let e = endpoints(&slice)
            .into_iter()
            .find(|e| e["addresses"] == json!([ip]))
            .unwrap_or_else(|| panic!("no endpoint for {ip}: {slice:#}"));
        assert_eq!(
            e["conditions"],
            json!({"ready": true, "serving": true, "terminating": false})
        );
        assert_eq!(e["nodeName"], pod["spec"]["nodeName"]);
        let node = pod["spec"]["nodeName"].as_str().unwrap();
        let node = json_of(&env, &["get", "node", node, "-o", "json"]).await;
        assert_eq!(
            e["zone"], node["metadata"]["labels"]["topology.kubernetes.io/zone"],
            "{e:#}"
        );
        let target = &e["targetRef"];
        assert_eq!(
            (&target["kind"], &target["name"], &target["uid"]),
            (
                &json!("Pod"),
                &pod["metadata"]["name"],
                &pod["metadata"]["uid"]
            )
        );
    }
    env.finish().await;
}

#[tokio::test]
async fn slices_follow_the_pods_readiness_and_count() {
    let env = TestEnv::new("slices_follow").await;
    env.apply_yaml(&SITE.replace("replicas: 2", "replicas: 1"))
        .await
        .expect_ok();
    let slice = one_slice(&env, "web", 1, ready).await;
    let pod = slice["endpoints"][0]["targetRef"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    // A kubelet whose container stopped being ready: the endpoint is neither ready nor serving.
    let now = "2026-12-07T10:00:00Z";
    let patch = json!({"status": {"conditions": [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
        {"type": "Ready", "status": "False", "lastTransitionTime": now, "reason": "ContainersNotReady"},
        {"type": "ContainersReady", "status": "False", "lastTransitionTime": now},
    ]}});
    env.patch_status("pod", &pod, &patch.to_string())
        .await
        .expect_ok();
    one_slice(&env, "web", 1, |e| {
        e["conditions"] == json!({"ready": false, "serving": false, "terminating": false})
    })
    .await;
    // No pods: the Service keeps one slice, with no endpoints.
    env.kubectl(&["scale", "deployment", "web", "--replicas=0"])
        .await
        .expect_ok();
    one_slice(&env, "web", 0, ready).await;
    env.finish().await;
}

#[tokio::test]
async fn a_service_without_a_selector_gets_no_slice_and_a_deleted_service_takes_its_own() {
    let env = TestEnv::new("slices_selectorless").await;
    env.apply_yaml(&format!(
        "{SITE}---\napiVersion: v1\nkind: Service\nmetadata: {{name: external}}\nspec:\n  ports: [{{port: 80}}]\n"
    ))
    .await
    .expect_ok();
    // Once the controller has written web's slice, it has seen both Services.
    one_slice(&env, "web", 2, ready).await;
    assert_eq!(slices_of(&env, "external").await, Vec::<Value>::new());
    env.kubectl(&["delete", "service", "web"]).await.expect_ok();
    env.wait_for("web's slices to go with it", DEADLINE, || async {
        slices_of(&env, "web").await.is_empty().then_some(())
    })
    .await;
    env.finish().await;
}

#[tokio::test]
async fn endpoint_slices_are_validated() {
    let env = TestEnv::new("slices_validated").await;
    let err = env
        .apply_yaml(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: bad}\nendpoints:\n- addresses: []\nports: [{name: http, port: 80}, {name: http, port: 81}]\n",
        )
        .await
        .expect_err();
    for expected in [
        "addressType: Required value",
        "endpoints[0].addresses: Required value",
        "ports[1].name: Duplicate value: \"http\"",
    ] {
        assert!(err.contains(expected), "{expected:?} not in {err}");
    }
    env.apply_yaml(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: manual, labels: {kubernetes.io/service-name: external}}\naddressType: IPv4\nendpoints:\n- addresses: [10.1.2.3]\nports: [{port: 80}]\n",
    )
    .await
    .expect_ok();
    // Defaults: a port's protocol and name.
    let slice = json_of(&env, &["get", "endpointslice", "manual", "-o", "json"]).await;
    assert_eq!(
        slice["ports"],
        json!([{"name": "", "port": 80, "protocol": "TCP"}])
    );
    let err = env
        .kubectl(&[
            "patch",
            "endpointslice",
            "manual",
            "--type=merge",
            "-p",
            r#"{"addressType":"FQDN"}"#,
        ])
        .await
        .expect_err();
    assert!(
        err.contains("addressType: Invalid value: null: field is immutable"),
        "{err}"
    );
    env.finish().await;
}
