//! Safety: drift is repaired, other people's objects are never touched, bad input keeps the last
//! good children and says why.

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn hand_edits_and_deletes_are_repaired() {
    let (env, op) = setup("drift").await;
    env.apply_yaml(SEED).await.expect_ok();
    wait_condition(&env, &op, "demoweb1", "Ready", "True", "Reconciled").await;

    merge_patch(&env, "deployment", "demoweb1", r#"{"spec":{"replicas":5}}"#).await;
    wait_object(
        &env,
        &op,
        "deployment",
        "demoweb1",
        "replicas restored to 2",
        |d| d["spec"]["replicas"] == 2,
    )
    .await;

    merge_patch(
        &env,
        "configmap",
        "demoweb1-nginx",
        r#"{"data":{"nginx.conf":"events {}"}}"#,
    )
    .await;
    wait_object(
        &env,
        &op,
        "configmap",
        "demoweb1-nginx",
        "config restored",
        |cm| {
            cm["data"]["nginx.conf"]
                .as_str()
                .is_some_and(|c| c.contains("listen 8080;"))
        },
    )
    .await;

    env.kubectl(&["delete", "service", "demoweb1"])
        .await
        .expect_ok();
    wait_object(&env, &op, "service", "demoweb1", "recreated", |s| {
        s["spec"]["ports"][0]["port"] == 80
    })
    .await;
    env.finish().await;
}

const FOREIGN: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: demoweb1
  labels: {app: mine}
spec:
  replicas: 1
  selector: {matchLabels: {app: mine}}
  template:
    metadata: {labels: {app: mine}}
    spec:
      containers:
      - name: app
        image: example.com/mine:1
";

#[tokio::test(flavor = "multi_thread")]
async fn foreign_deployment_is_never_touched() {
    let (env, op) = setup("name-clash").await;
    env.apply_yaml(FOREIGN).await.expect_ok();
    let before = get(&env, "deployment", "demoweb1")
        .await
        .expect("foreign Deployment");
    env.apply_yaml(SEED).await.expect_ok();

    let dw = wait_condition(&env, &op, "demoweb1", "Stalled", "True", "NameConflict").await;
    let (_, _, message) = condition(&dw, "Stalled").expect("Stalled");
    assert!(message.contains("Deployment demoweb1"), "{message}");
    assert!(
        message.contains("kubectl"),
        "names the other manager: {message}"
    );
    assert_eq!(condition(&dw, "Ready").map(|c| c.0), Some("False".into()));

    // The other children are still ours and present; the clash is left alone.
    wait_object(&env, &op, "configmap", "demoweb1-nginx", "created", |_| {
        true
    })
    .await;
    let after = get(&env, "deployment", "demoweb1")
        .await
        .expect("still there");
    assert_eq!(
        after["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
    assert!(
        after["metadata"]["ownerReferences"].is_null(),
        "not adopted: {after}"
    );
    let events = events_for(&env, "demoweb1").await;
    assert!(
        events
            .iter()
            .any(|(t, r, _)| t == "Warning" && r == "NameConflict"),
        "{events:?}"
    );

    // Once the user removes their Deployment, ours takes its place.
    env.kubectl(&["delete", "deployment", "demoweb1"])
        .await
        .expect_ok();
    wait_condition(&env, &op, "demoweb1", "Ready", "True", "Reconciled").await;
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_ingress_class_with_allowlist_fails_closed() {
    let (env, op) = setup("fail-closed").await;
    env.apply_yaml(
        "apiVersion: baeke.info/v1
kind: DemoWeb
metadata:
  name: closed
spec:
  gitrepo: https://github.com/gbaeke/static-web.git
  ingress:
    host: closed.example.com
    className: mystery
    allowedSourceRanges: [203.0.113.7/32]
",
    )
    .await
    .expect_ok();
    let dw = wait_condition(
        &env,
        &op,
        "closed",
        "Stalled",
        "True",
        "UnsupportedIngressClass",
    )
    .await;
    let (_, _, message) = condition(&dw, "Stalled").expect("Stalled");
    assert!(
        message.contains("mystery") && message.contains("ingress-nginx"),
        "{message}"
    );
    assert!(
        get(&env, "ingress", "closed").await.is_none(),
        "never exposed without its allowlist"
    );
    // The site itself still runs.
    wait_object(&env, &op, "deployment", "closed", "created", |_| true).await;

    // An Ingress from the last good spec stays when the class becomes unknown.
    merge_patch(
        &env,
        "demoweb",
        "closed",
        r#"{"spec":{"ingress":{"className":"nginx"}}}"#,
    )
    .await;
    wait_object(&env, &op, "ingress", "closed", "restricted", |i| {
        i["metadata"]["annotations"]["nginx.ingress.kubernetes.io/whitelist-source-range"]
            == "203.0.113.7/32"
    })
    .await;
    merge_patch(
        &env,
        "demoweb",
        "closed",
        r#"{"spec":{"ingress":{"className":"mystery"}}}"#,
    )
    .await;
    wait_condition(
        &env,
        &op,
        "closed",
        "Stalled",
        "True",
        "UnsupportedIngressClass",
    )
    .await;
    let ing = get(&env, "ingress", "closed")
        .await
        .expect("last good Ingress kept");
    assert_eq!(ing["spec"]["ingressClassName"], "nginx");
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_credentials_keep_the_last_good_children() {
    let (env, op) = setup("bad-input").await;
    env.apply_yaml(SEED).await.expect_ok();
    wait_condition(&env, &op, "demoweb1", "Ready", "True", "Reconciled").await;
    let good = get(&env, "deployment", "demoweb1")
        .await
        .expect("Deployment");

    merge_patch(
        &env,
        "demoweb",
        "demoweb1",
        r#"{"spec":{"replicas":4,"credentials":{"secretName":"site-creds"}}}"#,
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
    let (_, _, message) = condition(&dw, "Ready").expect("Ready");
    assert!(message.contains("site-creds"), "{message}");
    let kept = get(&env, "deployment", "demoweb1")
        .await
        .expect("Deployment kept");
    assert_eq!(kept["spec"], good["spec"], "last good Deployment untouched");
    let events = events_for(&env, "demoweb1").await;
    assert!(
        events.iter().any(|(t, r, m)| t == "Warning"
            && r == "CredentialsNotFound"
            && m.contains("site-creds")),
        "{events:?}"
    );

    // The user creates the Secret: the operator continues.
    env.apply_yaml(
        "apiVersion: v1
kind: Secret
metadata:
  name: site-creds
stringData:
  username: me
  password: token
",
    )
    .await
    .expect_ok();
    let d = wait_object(
        &env,
        &op,
        "deployment",
        "demoweb1",
        "credentials mounted",
        |d| d["spec"]["replicas"] == 4,
    )
    .await;
    assert!(
        args(&d, "git-clone")
            .iter()
            .any(|a| a == "--password-file=/etc/git-secret/password"),
        "{d}"
    );
    wait_condition(&env, &op, "demoweb1", "Ready", "True", "Reconciled").await;
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kopf_deployment_is_removed_only_when_ours() {
    // The user switches from the Kopf operator: its DemoWeb and adopted Deployment exist
    // before this operator starts.
    let env = demoweb_tests::harness::TestEnv::new("kopf-leftovers").await;
    install_crds(&env).await;
    env.apply_yaml(SEED).await.expect_ok();
    let dw = get(&env, "demoweb", "demoweb1").await.expect("DemoWeb");
    let uid = dw["metadata"]["uid"].as_str().expect("uid");
    // What kopf.adopt() leaves: a controller reference to the DemoWeb.
    let adopted = format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: demoweb1-deployment
  ownerReferences:
  - {{apiVersion: baeke.info/v1, kind: DemoWeb, name: demoweb1, uid: {uid}, controller: true, blockOwnerDeletion: true}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: demoweb1}}}}
  template:
    metadata: {{labels: {{app: demoweb1}}}}
    spec:
      containers:
      - {{name: nginx, image: nginx}}
"
    );
    env.apply_yaml(&adopted).await.expect_ok();
    // A second site whose `-deployment` name is taken by someone else's Deployment.
    env.apply_yaml(&SEED.replace("name: demoweb1", "name: demoweb2"))
        .await
        .expect_ok();
    let foreign = FOREIGN.replace("name: demoweb1\n", "name: demoweb2-deployment\n");
    env.apply_yaml(&foreign).await.expect_ok();

    let op = Operator::start(&env, &[]).await;
    wait_gone(&env, &op, "deployment", "demoweb1-deployment").await;
    wait_condition(&env, &op, "demoweb2", "Ready", "True", "Reconciled").await;
    assert!(
        get(&env, "deployment", "demoweb2-deployment")
            .await
            .is_some(),
        "a Deployment the DemoWeb does not control was deleted"
    );
    env.finish().await;
}

/// The DemoWeb CRD with the spec's schema switched off, as an old or hand-made CRD might be.
fn permissive_crd() -> String {
    let path = repo_root().join("charts/demoweb-operator/crds/demowebs.baeke.info.yaml");
    let text = std::fs::read_to_string(path).expect("chart CRD");
    let mut docs = demoweb_crd::yaml::documents(&text).expect("CRD YAML");
    let mut crd = docs.remove(0);
    let schema = &mut crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    schema["properties"]["spec"] =
        serde_json::json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
    if let Some(schema) = schema.as_object_mut() {
        schema.remove("x-kubernetes-validations");
    }
    serde_json::to_string(&crd).expect("JSON")
}

/// A fresh environment whose DemoWeb CRD validates nothing (emulator only: on a real cluster the
/// shared CRD must not be replaced, so this returns None after saying why).
pub async fn env_with_permissive_crd(test: &str) -> Option<demoweb_tests::harness::TestEnv> {
    let env = demoweb_tests::harness::TestEnv::new(test).await;
    if env
        .emulator_or_skip("replacing the DemoWeb CRD with one that validates nothing")
        .is_none()
    {
        env.finish().await;
        return None;
    }
    env.apply_yaml(&permissive_crd()).await.expect_ok();
    wait(
        &env,
        None,
        "the permissive CRD to be served",
        DEADLINE,
        || async {
            env.kubectl(&["get", "demowebs"])
                .await
                .success()
                .then_some(())
        },
    )
    .await;
    Some(env)
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_spec_past_the_schema_keeps_the_last_good_children() {
    let Some(env) = env_with_permissive_crd("past-the-schema").await else {
        return;
    };
    let op = Operator::start(&env, &[]).await;
    env.apply_yaml(SEED).await.expect_ok();
    wait_condition(&env, &op, "demoweb1", "Ready", "True", "Reconciled").await;
    let good = get(&env, "deployment", "demoweb1")
        .await
        .expect("Deployment");

    merge_patch(
        &env,
        "demoweb",
        "demoweb1",
        r#"{"spec":{"gitrepo":"--upload-pack=touch /tmp/pwned","replicas":3}}"#,
    )
    .await;
    let dw = wait_condition(&env, &op, "demoweb1", "Stalled", "True", "InvalidSpec").await;
    let (_, _, message) = condition(&dw, "Stalled").expect("Stalled");
    assert!(message.contains("spec.gitrepo"), "{message}");
    let kept = get(&env, "deployment", "demoweb1")
        .await
        .expect("Deployment kept");
    assert_eq!(
        kept["spec"], good["spec"],
        "the last good Deployment is untouched"
    );

    merge_patch(
        &env,
        "demoweb",
        "demoweb1",
        r#"{"spec":{"gitrepo":"https://github.com/gbaeke/static-web.git"}}"#,
    )
    .await;
    wait_object(
        &env,
        &op,
        "deployment",
        "demoweb1",
        "the fixed spec applied",
        |d| d["spec"]["replicas"] == 3,
    )
    .await;
    wait_condition(&env, &op, "demoweb1", "Ready", "True", "Reconciled").await;
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unreadable_demoweb_does_not_stall_the_others() {
    let Some(env) = env_with_permissive_crd("unreadable").await else {
        return;
    };
    env.apply_yaml(
        "apiVersion: baeke.info/v1
kind: DemoWeb
metadata: {name: broken}
spec: {replicas: two, gitrepo: https://github.com/gbaeke/static-web.git}
",
    )
    .await
    .expect_ok();
    let op = Operator::start(&env, &[]).await;
    env.apply_yaml(SEED).await.expect_ok();
    wait_condition(&env, &op, "demoweb1", "Ready", "True", "Reconciled").await;
    let events = wait(
        &env,
        Some(&op),
        "a Warning about the unreadable DemoWeb",
        DEADLINE,
        || async {
            let events = events_for(&env, "broken").await;
            events
                .iter()
                .any(|(t, r, m)| t == "Warning" && r == "InvalidSpec" && m.contains("cannot read"))
                .then_some(events)
        },
    )
    .await;
    assert!(!events.is_empty());
    assert!(get(&env, "deployment", "broken").await.is_none());
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_annotations_past_the_schema_are_left_off_the_ingress() {
    let Some(env) = env_with_permissive_crd("refused-past-the-schema").await else {
        return;
    };
    let op = Operator::start(&env, &[]).await;
    env.apply_yaml(
        "apiVersion: baeke.info/v1
kind: DemoWeb
metadata: {name: apim}
spec:
  gitrepo: https://github.com/gbaeke/static-web.git
  ingress:
    host: apim.example.com
    className: nginx
    allowedSourceRanges: [203.0.113.7/32]
    annotations:
      nginx.ingress.kubernetes.io/server-snippet: 'location /open { return 200; }'
      nginx.ingress.kubernetes.io/auth-url: http://elsewhere.example.com/
      nginx.ingress.kubernetes.io/proxy-body-size: 1m
",
    )
    .await
    .expect_ok();
    let dw = wait_condition(&env, &op, "apim", "Stalled", "True", "AnnotationsRefused").await;
    let (_, _, message) = condition(&dw, "Stalled").expect("Stalled");
    for key in [
        "nginx.ingress.kubernetes.io/server-snippet",
        "nginx.ingress.kubernetes.io/auth-url",
    ] {
        assert!(message.contains(key), "{message}");
    }
    // The site keeps serving, with its allowlist and without the dangerous part.
    let ing = wait_object(&env, &op, "ingress", "apim", "applied", |_| true).await;
    let annotations = &ing["metadata"]["annotations"];
    assert_eq!(
        annotations["nginx.ingress.kubernetes.io/whitelist-source-range"],
        "203.0.113.7/32"
    );
    assert_eq!(
        annotations["nginx.ingress.kubernetes.io/proxy-body-size"],
        "1m"
    );
    assert!(annotations["nginx.ingress.kubernetes.io/server-snippet"].is_null());
    assert!(annotations["nginx.ingress.kubernetes.io/auth-url"].is_null());
    wait_object(&env, &op, "deployment", "apim", "created", |_| true).await;
    wait(
        &env,
        Some(&op),
        "a Warning Event naming the refused annotations",
        DEADLINE,
        || async {
            events_for(&env, "apim")
                .await
                .iter()
                .any(|(t, r, m)| {
                    t == "Warning"
                        && r == "AnnotationsRefused"
                        && m.contains("nginx.ingress.kubernetes.io/server-snippet")
                })
                .then_some(())
        },
    )
    .await;

    // Removing them clears the condition.
    merge_patch(
        &env,
        "demoweb",
        "apim",
        r#"{"spec":{"ingress":{"annotations":{"nginx.ingress.kubernetes.io/server-snippet":null,"nginx.ingress.kubernetes.io/auth-url":null}}}}"#,
    )
    .await;
    wait_object(&env, &op, "demoweb", "apim", "no longer stalled", |dw| {
        condition(dw, "Stalled").is_some_and(|(s, _, _)| s == "False")
            && dw["status"]["observedGeneration"] == dw["metadata"]["generation"]
    })
    .await;
    env.finish().await;
}
