//! Safety: drift is repaired, other people's objects are never touched, bad input keeps the last
//! good children and says why.

use demoweb_tests::harness::TestEnv;
use serde_json::Value;

use demoweb_tests::operator::*;

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
    // Untouched by the operator: its spec, labels and annotations as the user wrote them, and no
    // field managed by the operator. (Not the resourceVersion: on a real cluster the Deployment
    // controller writes the user's Deployment's status and its revision annotation.)
    for field in [
        &["metadata", "generation"][..],
        &["metadata", "labels"],
        &["spec"],
    ] {
        let at = |v: &serde_json::Value| field.iter().fold(v.clone(), |v, k| v[k].clone());
        assert_eq!(at(&after), at(&before), "{field:?} changed: {after}");
    }
    for (key, value) in before["metadata"]["annotations"]
        .as_object()
        .into_iter()
        .flatten()
    {
        assert_eq!(
            &after["metadata"]["annotations"][key], value,
            "annotation {key} changed: {after}"
        );
    }
    assert!(
        after["metadata"]["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|m| m["manager"] != "demoweb-operator"),
        "the operator wrote to it: {after}"
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
    let events = events_for(&env, "closed").await;
    assert!(
        events.iter().any(|(t, r, m)| t == "Warning"
            && r == "UnsupportedIngressClass"
            && m.contains("mystery")),
        "a Warning Event says why: {events:?}"
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
    env.apply_yaml(CREDENTIALS_SECRET).await.expect_ok();
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
    // What Kopf writes on every DemoWeb its create handler handled.
    for dw in ["demoweb1", "demoweb2"] {
        env.kubectl(&[
            "annotate",
            "demoweb",
            dw,
            r#"kopf.zalando.org/last-handled-configuration={"spec":{"replicas":2}}"#,
        ])
        .await
        .expect_ok();
    }

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

/// A child an older release made (another name, a kind this release still owns, the DemoWeb's
/// controller reference and the operator's labels) is collected by the reconcile its creation
/// triggers; a look-alike without the controller reference, or without the operator's
/// `managed-by` label, is never touched.
#[tokio::test(flavor = "multi_thread")]
async fn children_an_older_release_left_are_swept_and_look_alikes_kept() {
    let (env, op) = setup("inventory-sweep").await;
    env.apply_yaml(SEED).await.expect_ok();
    let dw = wait_condition(&env, &op, "demoweb1", "Ready", "True", "Reconciled").await;
    let uid = dw["metadata"]["uid"].as_str().expect("uid");
    let owner = |controller: bool| {
        format!(
            "ownerReferences:\n  - {{apiVersion: baeke.info/v1, kind: DemoWeb, name: demoweb1, uid: {uid}, controller: {controller}, blockOwnerDeletion: true}}"
        )
    };
    let labels = |managed: bool| {
        let by = if managed {
            "app.kubernetes.io/managed-by: demoweb-operator, "
        } else {
            ""
        };
        format!(
            "labels: {{{by}app.kubernetes.io/name: demoweb, app.kubernetes.io/instance: demoweb1}}"
        )
    };
    let config_map = |name: &str, controller: bool, managed: bool| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  {}\n  {}\ndata: {{old: release}}\n",
            labels(managed),
            owner(controller)
        )
    };
    // The look-alikes go first, so the reconciles below see them.
    let look_alikes = [
        ("demoweb1-not-controlled", false, true),
        ("demoweb1-not-labelled", true, false),
    ];
    for (name, controller, managed) in look_alikes {
        env.apply_yaml(&config_map(name, controller, managed))
            .await
            .expect_ok();
    }
    let before: Vec<Value> =
        futures::future::join_all(look_alikes.map(|(name, _, _)| get(&env, "configmap", name)))
            .await
            .into_iter()
            .map(|c| c.expect("look-alike"))
            .collect();

    // What an older release named differently: a ConfigMap and a Service.
    env.apply_yaml(&config_map("demoweb1-old-nginx", true, true))
        .await
        .expect_ok();
    env.apply_yaml(&format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: demoweb1-old\n  {}\n  {}\nspec:\n  selector: {{app.kubernetes.io/instance: demoweb1}}\n  ports: [{{port: 80, targetPort: 8080}}]\n",
        labels(true),
        owner(true)
    ))
    .await
    .expect_ok();
    wait_gone(&env, &op, "configmap", "demoweb1-old-nginx").await;
    wait_gone(&env, &op, "service", "demoweb1-old").await;
    let events = events_for(&env, "demoweb1").await;
    assert!(
        events.iter().any(|(t, r, m)| t == "Normal"
            && r == "Deleted"
            && m.contains("ConfigMap demoweb1-old-nginx")),
        "{events:?}"
    );

    // A reconcile of a changed spec sweeps nothing more.
    merge_patch(&env, "demoweb", "demoweb1", r#"{"spec":{"replicas":3}}"#).await;
    wait_object(
        &env,
        &op,
        "demoweb",
        "demoweb1",
        "the change reported",
        |dw| dw["status"]["observedGeneration"] == dw["metadata"]["generation"],
    )
    .await;
    for ((name, _, _), before) in look_alikes.iter().zip(before) {
        let now = get(&env, "configmap", name)
            .await
            .unwrap_or_else(|| panic!("the look-alike {name} was deleted"));
        assert_eq!(
            now["metadata"]["resourceVersion"], before["metadata"]["resourceVersion"],
            "the look-alike {name} was written"
        );
        assert!(now["metadata"]["deletionTimestamp"].is_null(), "{now}");
    }
    for (kind, name) in [
        ("deployment", "demoweb1"),
        ("configmap", "demoweb1-nginx"),
        ("service", "demoweb1"),
    ] {
        assert!(
            get(&env, kind, name).await.is_some(),
            "the wanted {kind} {name} is gone"
        );
    }
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

/// A fresh environment whose DemoWeb CRD validates nothing (on a real cluster only one the suite
/// owns: the CRD is cluster-wide, and the next cluster-wide test puts the project's back). The
/// CRD is created anew, as an apply over the live one would merge the old schema into it.
pub async fn env_with_permissive_crd(test: &str) -> TestEnv {
    let env = TestEnv::cluster_wide(test).await;
    env.remove_crd("demowebs.baeke.info").await;
    env.kubectl_with_stdin(&["create", "-f", "-"], Some(&permissive_crd()))
        .await
        .expect_ok();
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
    env
}

#[cfg_attr(
    all(real_cluster, not(cluster_wide)),
    ignore = "changes cluster-wide objects (replacing the cluster-wide DemoWeb CRD with one that validates nothing): runs only on a cluster the suite owns (DEMOWEB_TEST_CLUSTER_WIDE=1), one at a time"
)]
#[tokio::test(flavor = "multi_thread")]
async fn cluster_wide_invalid_spec_past_the_schema_keeps_the_last_good_children() {
    let env = env_with_permissive_crd("past-the-schema").await;
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

#[cfg_attr(
    all(real_cluster, not(cluster_wide)),
    ignore = "changes cluster-wide objects (replacing the cluster-wide DemoWeb CRD with one that validates nothing): runs only on a cluster the suite owns (DEMOWEB_TEST_CLUSTER_WIDE=1), one at a time"
)]
#[tokio::test(flavor = "multi_thread")]
async fn cluster_wide_unreadable_demoweb_does_not_stall_the_others() {
    let env = env_with_permissive_crd("unreadable").await;
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

/// A DemoWeb whose child `kind`/`name` is already taken by an object created with kubectl.
struct Clash {
    demoweb: &'static str,
    /// The kind as kubectl and the operator's messages spell it.
    kind: &'static str,
    name: String,
    foreign: String,
    spec: &'static str,
}

fn clash(
    demoweb: &'static str,
    kind: &'static str,
    name: &str,
    body: &str,
    spec: &'static str,
) -> Clash {
    let api_version = match kind {
        "Ingress" => "networking.k8s.io/v1",
        "Middleware" => "traefik.io/v1alpha1",
        _ => "v1",
    };
    Clash {
        demoweb,
        kind,
        name: name.to_owned(),
        foreign: format!(
            "apiVersion: {api_version}\nkind: {kind}\nmetadata: {{name: {name}, labels: {{owner: someone-else}}}}\n{body}"
        ),
        spec,
    }
}

/// Applies each foreign object, then its DemoWeb, and checks that the operator stalls with
/// NameConflict, says which object and who manages it, leaves the object exactly as it was, and
/// takes the name once the user deletes the object.
async fn check_clashes(env: &TestEnv, op: &Operator, clashes: &[Clash]) {
    for c in clashes {
        env.apply_yaml(&c.foreign).await.expect_ok();
    }
    let mut before = Vec::new();
    for c in clashes {
        before.push(get(env, c.kind, &c.name).await.expect("foreign object"));
        env.apply_yaml(&format!(
            "apiVersion: baeke.info/v1\nkind: DemoWeb\nmetadata: {{name: {}}}\nspec:\n  gitrepo: https://github.com/gbaeke/static-web.git\n{}",
            c.demoweb, c.spec
        ))
        .await
        .expect_ok();
    }
    for (c, before) in clashes.iter().zip(&before) {
        let dw = wait_condition(env, op, c.demoweb, "Stalled", "True", "NameConflict").await;
        let (_, _, message) = condition(&dw, "Stalled").expect("Stalled");
        assert!(
            message.contains(&format!("{} {}", c.kind, c.name)) && message.contains("kubectl"),
            "names the object and its manager: {message}"
        );
        assert_eq!(condition(&dw, "Ready").map(|c| c.0), Some("False".into()));
        let after = get(env, c.kind, &c.name).await.expect("still there");
        assert_eq!(
            after["metadata"]["resourceVersion"], before["metadata"]["resourceVersion"],
            "{} {} untouched: {after}",
            c.kind, c.name
        );
        assert!(
            after["metadata"]["ownerReferences"].is_null(),
            "not adopted: {after}"
        );
        if c.kind == "Middleware" {
            // Never exposed without its allowlist: no Ingress while the allowlist is not ours.
            assert!(get(env, "ingress", c.demoweb).await.is_none());
        }
        let events = events_for(env, c.demoweb).await;
        assert!(
            events
                .iter()
                .any(|(t, r, m)| t == "Warning" && r == "NameConflict" && m.contains(&c.name)),
            "{events:?}"
        );
    }
    for c in clashes {
        env.kubectl(&["delete", c.kind, &c.name]).await.expect_ok();
    }
    for c in clashes {
        wait_condition(env, op, c.demoweb, "Ready", "True", "Reconciled").await;
        let ours = get(env, c.kind, &c.name).await.expect("the operator's own");
        let uid = get(env, "demoweb", c.demoweb).await.expect("DemoWeb")["metadata"]["uid"]
            .as_str()
            .expect("uid")
            .to_owned();
        assert!(controlled_by(&ours, &uid), "{ours}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn foreign_config_map_service_and_ingress_are_never_touched() {
    let (env, op) = setup("name-clash-kinds").await;
    let clashes = [
        clash(
            "cm-clash",
            "ConfigMap",
            "cm-clash-nginx",
            "data: {mine: \"yes\"}\n",
            "",
        ),
        clash(
            "svc-clash",
            "Service",
            "svc-clash",
            "spec: {selector: {app: mine}, ports: [{port: 8080}]}\n",
            "",
        ),
        clash(
            "ing-clash",
            "Ingress",
            "ing-clash",
            "spec: {rules: [{host: mine.example.com}]}\n",
            "  ingress: {host: ing-clash.example.com}\n",
        ),
    ];
    check_clashes(&env, &op, &clashes).await;
    env.finish().await;
}

#[cfg_attr(
    all(real_cluster, not(cluster_wide)),
    ignore = "changes cluster-wide objects (installs Traefik's Middleware CRD and a default IngressClass, cluster-wide): runs only on a cluster the suite owns (DEMOWEB_TEST_CLUSTER_WIDE=1), one at a time"
)]
#[tokio::test(flavor = "multi_thread")]
async fn cluster_wide_foreign_allowlist_object_is_never_touched() {
    let env = TestEnv::cluster_wide("name-clash-allowlist").await;
    install_crds(&env).await;
    crate::lifecycle::install_allowlist_apis(&env).await;
    wait(&env, None, "Middlewares to be served", DEADLINE, || async {
        env.kubectl(&["get", "middlewares"])
            .await
            .success()
            .then_some(())
    })
    .await;
    let op = Operator::start(&env, &[]).await;
    let clashes = [clash(
        "mw-clash",
        "Middleware",
        "mw-clash-allowlist",
        "spec: {ipAllowList: {sourceRange: [0.0.0.0/0]}}\n",
        "  ingress: {host: mw.example.com, className: traefik, allowedSourceRanges: [10.0.0.0/8]}\n",
    )];
    env.apply_yaml(
        "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: traefik}\nspec: {controller: traefik.io/ingress-controller}\n",
    )
    .await
    .expect_ok();
    check_clashes(&env, &op, &clashes).await;
    wait_object(
        &env,
        &op,
        "ingress",
        "mw-clash",
        "exposed with its allowlist",
        |_| true,
    )
    .await;
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
async fn foreign_service_account_is_never_touched() {
    let env = TestEnv::new("name-clash-sa").await;
    install_crds(&env).await;
    serve_identity_crds(&env, None).await;
    env.apply_yaml(
        "apiVersion: aadpodidentity.k8s.io/v1
kind: AzureIdentity
metadata: {name: sa-id}
spec:
  type: 0
  resourceID: /subscriptions/6f1c2a4e-0d3b-4e8f-9a51-2b7c8d9e0f11/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/sa-id
  clientID: c35040d0-f73c-4c4e-a376-9bb1c5532fda
---
apiVersion: aadpodidentity.k8s.io/v1
kind: AzureIdentityBinding
metadata: {name: sa-binding}
spec: {azureIdentity: sa-id, selector: sa}
",
    )
    .await
    .expect_ok();
    let op = Operator::start(&env, &[]).await;
    let clashes = [clash(
        "sa-clash",
        "ServiceAccount",
        "sa-clash",
        "",
        "  identity: {binding: sa-binding, mode: WorkloadIdentity}\n",
    )];
    check_clashes(&env, &op, &clashes).await;
    // Once the name is ours, the status names the ServiceAccount the pods run under.
    let dw = wait_object(
        &env,
        &op,
        "demoweb",
        "sa-clash",
        "the ServiceAccount in the status",
        |dw| dw["status"]["identity"]["serviceAccountName"] == "sa-clash",
    )
    .await;
    assert_eq!(
        dw["status"]["identity"]["clientId"], "c35040d0-f73c-4c4e-a376-9bb1c5532fda",
        "{dw}"
    );
    let d = get(&env, "deployment", "sa-clash")
        .await
        .expect("Deployment");
    assert_eq!(
        d["spec"]["template"]["spec"]["serviceAccountName"],
        "sa-clash"
    );
    env.finish().await;
}

#[cfg_attr(
    all(real_cluster, not(cluster_wide)),
    ignore = "changes cluster-wide objects (replacing the cluster-wide DemoWeb CRD with one that validates nothing): runs only on a cluster the suite owns (DEMOWEB_TEST_CLUSTER_WIDE=1), one at a time"
)]
#[tokio::test(flavor = "multi_thread")]
async fn cluster_wide_refused_annotations_past_the_schema_are_left_off_the_ingress() {
    let env = env_with_permissive_crd("refused-past-the-schema").await;
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
      nginx.ingress.kubernetes.io/satisfy: any
      nginx.ingress.kubernetes.io/auth-url: http://auth.example.com/
      nginx.ingress.kubernetes.io/proxy-body-size: 1m
",
    )
    .await
    .expect_ok();
    let dw = wait_condition(&env, &op, "apim", "Stalled", "True", "AnnotationsRefused").await;
    let (_, _, message) = condition(&dw, "Stalled").expect("Stalled");
    for key in [
        "nginx.ingress.kubernetes.io/server-snippet",
        "nginx.ingress.kubernetes.io/satisfy",
    ] {
        assert!(message.contains(key), "{message}");
    }
    // External auth is a reviewed key: it may stand next to the allowlist (with satisfy: all).
    assert!(!message.contains("auth-url"), "{message}");
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
    assert!(annotations["nginx.ingress.kubernetes.io/satisfy"].is_null());
    assert_eq!(
        annotations["nginx.ingress.kubernetes.io/auth-url"],
        "http://auth.example.com/"
    );
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
        r#"{"spec":{"ingress":{"annotations":{"nginx.ingress.kubernetes.io/server-snippet":null,"nginx.ingress.kubernetes.io/satisfy":null}}}}"#,
    )
    .await;
    wait_object(&env, &op, "demoweb", "apim", "no longer stalled", |dw| {
        condition(dw, "Stalled").is_some_and(|(s, _, _)| s == "False")
            && dw["status"]["observedGeneration"] == dw["metadata"]["generation"]
    })
    .await;
    env.finish().await;
}
