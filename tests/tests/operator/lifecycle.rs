//! A DemoWeb's life: the seed example, changes to every field users change, deletion.

use serde_json::{Value, json};

use demoweb_tests::operator::*;

#[tokio::test(flavor = "multi_thread")]
async fn seed_example_gets_its_children_and_a_ready_status() {
    let (env, op) = setup("seed-example").await;
    env.apply_yaml(SEED).await.expect_ok();

    let dw = wait_condition(&env, &op, "demoweb1", "Ready", "True", "Reconciled").await;
    let uid = dw["metadata"]["uid"].as_str().expect("uid").to_owned();
    assert_eq!(dw["status"]["replicas"], 2);
    assert_eq!(dw["status"]["readyReplicas"], 2);
    assert_eq!(condition(&dw, "Stalled").map(|c| c.0), Some("False".into()));
    assert_eq!(
        condition(&dw, "Reconciling").map(|c| c.0),
        Some("False".into())
    );

    let d = get(&env, "deployment", "demoweb1")
        .await
        .expect("Deployment demoweb1");
    assert!(controlled_by(&d, &uid), "{d}");
    let labels = &d["metadata"]["labels"];
    assert_eq!(labels["app.kubernetes.io/name"], "demoweb");
    assert_eq!(labels["app.kubernetes.io/instance"], "demoweb1");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "demoweb-operator");
    assert_eq!(d["spec"]["replicas"], 2);
    let clone = args(&d, "git-clone");
    for arg in [
        "--repo=https://github.com/gbaeke/static-web.git",
        "--one-time",
        "--depth=1",
        "--root=/git",
        "--link=current",
    ] {
        assert!(
            clone.iter().any(|a| a == arg),
            "init container lacks {arg}: {clone:?}"
        );
    }
    assert!(
        container(&d, "git-sync").is_none(),
        "no sidecar without sync.period"
    );
    let web = container(&d, "web").expect("web container");
    assert!(
        web["image"]
            .as_str()
            .is_some_and(|i| i.starts_with("nginxinc/nginx-unprivileged:")),
        "{web}"
    );
    assert_eq!(web["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(web["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(
        web["securityContext"]["capabilities"]["drop"],
        json!(["ALL"])
    );
    assert_eq!(web["readinessProbe"]["httpGet"]["path"], "/healthz");
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert!(
        d["spec"]["template"]["metadata"]["annotations"]["demoweb.baeke.info/config-hash"]
            .is_string()
    );

    let cm = get(&env, "configmap", "demoweb1-nginx")
        .await
        .expect("ConfigMap");
    assert!(controlled_by(&cm, &uid));
    let conf = cm["data"]["nginx.conf"].as_str().expect("nginx.conf");
    assert!(
        conf.contains("root /git/current;") && conf.contains("listen 8080;"),
        "{conf}"
    );

    let svc = get(&env, "service", "demoweb1").await.expect("Service");
    assert!(controlled_by(&svc, &uid));
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert_eq!(svc["spec"]["ports"][0]["port"], 80);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "http");
    assert_eq!(
        svc["spec"]["selector"]["app.kubernetes.io/instance"],
        "demoweb1"
    );

    assert!(
        get(&env, "ingress", "demoweb1").await.is_none(),
        "no ingress asked for"
    );
    // A new site's first children are told by its status, not by an Event of their own; a child
    // put back after someone deleted it is told.
    let created = |events: &[(String, String, String)], what: &str| {
        events
            .iter()
            .any(|(t, r, m)| t == "Normal" && r == "Created" && m.contains(what))
    };
    let events = events_for(&env, "demoweb1").await;
    assert!(!created(&events, "Deployment demoweb1"), "{events:?}");
    env.kubectl(&["delete", "service", "demoweb1"])
        .await
        .expect_ok();
    let recreated = wait_object(
        &env,
        &op,
        "service",
        "demoweb1",
        "the Service put back",
        |s| s["metadata"]["uid"] != svc["metadata"]["uid"],
    )
    .await;
    assert!(controlled_by(&recreated, &uid));
    wait(
        &env,
        Some(&op),
        "a Created Event for the Service put back",
        std::time::Duration::from_secs(30),
        || async {
            let events = events_for(&env, "demoweb1").await;
            created(&events, "Service demoweb1").then_some(())
        },
    )
    .await;
    env.finish().await;
}

fn ingress_annotation(ing: &Value, key: &str) -> Option<String> {
    ing["metadata"]["annotations"][key]
        .as_str()
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread")]
async fn spec_changes_propagate() {
    let (env, op) = setup("spec-changes").await;
    env.apply_yaml(SEED).await.expect_ok();
    wait_condition(&env, &op, "demoweb1", "Ready", "True", "Reconciled").await;

    // Scale.
    merge_patch(&env, "demoweb", "demoweb1", r#"{"spec":{"replicas":3}}"#).await;
    wait_object(&env, &op, "deployment", "demoweb1", "3 replicas", |d| {
        d["spec"]["replicas"] == 3
    })
    .await;
    let dw = wait_condition(&env, &op, "demoweb1", "Ready", "True", "Reconciled").await;
    assert_eq!(dw["status"]["readyReplicas"], 3);
    let events = events_for(&env, "demoweb1").await;
    assert!(
        events
            .iter()
            .any(|(t, r, m)| t == "Normal" && r == "Updated" && m.contains("Deployment demoweb1")),
        "{events:?}"
    );

    // Repository, ref and path.
    let before = get(&env, "deployment", "demoweb1")
        .await
        .expect("Deployment");
    let hash = |d: &Value| {
        d["spec"]["template"]["metadata"]["annotations"]["demoweb.baeke.info/config-hash"].clone()
    };
    merge_patch(
        &env,
        "demoweb",
        "demoweb1",
        r#"{"spec":{"gitrepo":"https://github.com/gbaeke/other-site.git","ref":"v2","path":"public","sync":{"period":"60s"}}}"#,
    )
    .await;
    let d = wait_object(
        &env,
        &op,
        "deployment",
        "demoweb1",
        "the new repository",
        |d| {
            args(d, "git-clone")
                .iter()
                .any(|a| a == "--repo=https://github.com/gbaeke/other-site.git")
        },
    )
    .await;
    assert!(args(&d, "git-clone").iter().any(|a| a == "--ref=v2"));
    assert!(
        args(&d, "git-sync").iter().any(|a| a == "--period=60s"),
        "sidecar"
    );
    assert_ne!(hash(&d), hash(&before), "a new path rolls the pods");
    let cm = get(&env, "configmap", "demoweb1-nginx")
        .await
        .expect("ConfigMap");
    assert!(
        cm["data"]["nginx.conf"]
            .as_str()
            .unwrap_or_default()
            .contains("root /git/current/public;")
    );

    // Back to a repository that exists (the seed's, pinned to a commit), so that the site becomes
    // ready again on a real cluster too, where pods of a missing repository never would.
    merge_patch(
        &env,
        "demoweb",
        "demoweb1",
        r#"{"spec":{"gitrepo":"https://github.com/gbaeke/static-web.git","ref":"52dd35ff7d7f5830c5aa4bd3cf2dff9c96a846b6","path":null,"sync":null}}"#,
    )
    .await;
    let d = wait_object(
        &env,
        &op,
        "deployment",
        "demoweb1",
        "the pinned commit",
        |d| {
            args(d, "git-clone")
                .iter()
                .any(|a| a == "--ref=52dd35ff7d7f5830c5aa4bd3cf2dff9c96a846b6")
        },
    )
    .await;
    assert!(
        container(&d, "git-sync").is_none(),
        "no sidecar without sync"
    );
    wait_condition(&env, &op, "demoweb1", "Ready", "True", "Reconciled").await;

    // Add an ingress with an allowlist for ingress-nginx.
    merge_patch(
        &env,
        "demoweb",
        "demoweb1",
        r#"{"spec":{"ingress":{"host":"www.example.com","className":"nginx","allowedSourceRanges":["203.0.113.7/32"],"annotations":{"example.com/team":"web"}}}}"#,
    )
    .await;
    let ing = wait_object(&env, &op, "ingress", "demoweb1", "the allowlist", |i| {
        ingress_annotation(i, "nginx.ingress.kubernetes.io/whitelist-source-range").as_deref()
            == Some("203.0.113.7/32")
    })
    .await;
    assert_eq!(ing["spec"]["ingressClassName"], "nginx");
    assert_eq!(ing["spec"]["rules"][0]["host"], "www.example.com");
    let path = &ing["spec"]["rules"][0]["http"]["paths"][0];
    assert_eq!(path["pathType"], "Prefix");
    assert_eq!(path["backend"]["service"]["name"], "demoweb1");
    assert_eq!(
        ingress_annotation(&ing, "example.com/team").as_deref(),
        Some("web")
    );
    let dw = wait_condition(&env, &op, "demoweb1", "Ready", "True", "Reconciled").await;
    assert_eq!(dw["status"]["url"], "http://www.example.com/");

    // Change, then drop the allowlist.
    merge_patch(
        &env,
        "demoweb",
        "demoweb1",
        r#"{"spec":{"ingress":{"allowedSourceRanges":["203.0.113.0/24","2001:db8::/48"]}}}"#,
    )
    .await;
    wait_object(&env, &op, "ingress", "demoweb1", "the new ranges", |i| {
        ingress_annotation(i, "nginx.ingress.kubernetes.io/whitelist-source-range").as_deref()
            == Some("203.0.113.0/24,2001:db8::/48")
    })
    .await;
    merge_patch(
        &env,
        "demoweb",
        "demoweb1",
        r#"{"spec":{"ingress":{"allowedSourceRanges":null}}}"#,
    )
    .await;
    wait_object(&env, &op, "ingress", "demoweb1", "no allowlist", |i| {
        ingress_annotation(i, "nginx.ingress.kubernetes.io/whitelist-source-range").is_none()
    })
    .await;

    // Remove the ingress.
    merge_patch(&env, "demoweb", "demoweb1", r#"{"spec":{"ingress":null}}"#).await;
    wait_gone(&env, &op, "ingress", "demoweb1").await;
    wait(
        &env,
        Some(&op),
        "a Deleted Event for the Ingress",
        DEADLINE,
        || async {
            events_for(&env, "demoweb1")
                .await
                .iter()
                .any(|(t, r, m)| t == "Normal" && r == "Deleted" && m.contains("Ingress demoweb1"))
                .then_some(())
        },
    )
    .await;
    wait_object(&env, &op, "demoweb", "demoweb1", "no URL", |dw| {
        dw["status"]["url"].is_null()
    })
    .await;
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_the_demoweb_removes_its_children() {
    let (env, op) = setup("delete-demoweb").await;
    env.apply_yaml(SEED).await.expect_ok();
    merge_patch(
        &env,
        "demoweb",
        "demoweb1",
        r#"{"spec":{"ingress":{"host":"www.example.com"}}}"#,
    )
    .await;
    wait_object(&env, &op, "ingress", "demoweb1", "created", |_| true).await;
    env.kubectl(&["delete", "demoweb", "demoweb1"])
        .await
        .expect_ok();
    for (kind, name) in [
        ("deployment", "demoweb1"),
        ("configmap", "demoweb1-nginx"),
        ("service", "demoweb1"),
        ("ingress", "demoweb1"),
    ] {
        wait_gone(&env, &op, kind, name).await;
    }
    env.finish().await;
}

/// Deleting many DemoWebs at once, or the namespace that holds them, is routine: the operator
/// logs no warning per DemoWeb (their children's deletion events arrive after the DemoWebs are
/// gone, which is expected, not an error).
#[tokio::test(flavor = "multi_thread")]
async fn mass_deletes_log_no_warning_per_demoweb() {
    let (env, op) = setup("mass-delete").await;
    let names: Vec<String> = (1..=6).map(|i| format!("site{i}")).collect();
    for name in &names {
        env.apply_yaml(&SEED.replace("demoweb1", name))
            .await
            .expect_ok();
    }
    for name in &names {
        wait_condition(&env, &op, name, "Ready", "True", "Reconciled").await;
    }
    // Half of them with one command, then the namespace with the rest.
    env.kubectl(&["delete", "demoweb", "site1", "site2", "site3"])
        .await
        .expect_ok();
    for name in &names[..3] {
        wait_gone(&env, &op, "deployment", name).await;
    }
    env.kubectl(&["delete", "namespace", &env.namespace, "--wait=false"])
        .await
        .expect_ok();
    wait(
        &env,
        Some(&op),
        "the namespace to be gone",
        DEADLINE,
        || async {
            let out = env
                .kubectl(&["get", "namespace", &env.namespace, "-o", "name"])
                .await;
            (!out.success()).then_some(())
        },
    )
    .await;
    let logs = op.logs();
    let warnings: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("\"level\":\"WARN\""))
        .filter(|line| {
            line.contains("not found in local store")
                || names.iter().any(|n| line.contains(n.as_str()))
        })
        .collect();
    assert!(
        warnings.is_empty(),
        "warnings about deleted DemoWebs:\n{}",
        warnings.join("\n")
    );
    env.finish().await;
}

/// Holds the namespace's pods back from becoming ready, or lets them go: the emulator's Deployment
/// simulation is switched; on a real cluster a ResourceQuota of no pods keeps the ReplicaSet from
/// creating any (kube-apiserver refuses them), and deleting it lets the ReplicaSet controller
/// create them on its next retry.
async fn hold_pods_back(env: &demoweb_tests::harness::TestEnv, hold: bool) {
    if let Some(emulator) = &env.emulator {
        emulator.set_deployments_ready(!hold);
    } else if hold {
        no_pods_quota(env).await;
    } else {
        env.kubectl(&["delete", "resourcequota", "no-pods"])
            .await
            .expect_ok();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn status_follows_the_rollout() {
    let (env, op) = setup("rollout").await;
    hold_pods_back(&env, true).await;
    env.apply_yaml(SEED).await.expect_ok();
    if env.is_emulator() {
        // First the Deployment controller has to observe the Deployment, then its pods count.
        let dw = wait_object(
            &env,
            &op,
            "demoweb",
            "demoweb1",
            "Reconciling while the replicas are not ready",
            |dw| {
                condition(dw, "Reconciling").is_some_and(|(s, r, m)| {
                    s == "True" && r == "Progressing" && m.contains("of 2 replicas ready")
                })
            },
        )
        .await;
        let (ready, reason, _) = condition(&dw, "Ready").expect("Ready");
        assert_eq!(
            (ready.as_str(), reason.as_str()),
            ("False", "WaitingForReplicas")
        );
        assert_eq!(condition(&dw, "Stalled").map(|c| c.0), Some("False".into()));
    } else {
        // The quota that holds the pods back is what the Deployment reports, and the status names it.
        wait_object(
            &env,
            &op,
            "demoweb",
            "demoweb1",
            "Ready=False naming the quota",
            |dw| {
                condition(dw, "Ready").is_some_and(|(s, r, m)| {
                    s == "False" && r == "ReplicaFailure" && m.contains("exceeded quota")
                })
            },
        )
        .await;
    }

    hold_pods_back(&env, false).await;
    let dw = wait_condition(&env, &op, "demoweb1", "Ready", "True", "Reconciled").await;
    assert_eq!(dw["status"]["readyReplicas"], 2);
    assert_eq!(
        condition(&dw, "Reconciling").map(|c| c.0),
        Some("False".into())
    );
    env.finish().await;
}

/// The status is the operator's to write: one edited by someone else is put right at once, well
/// before the next full resync (five minutes by default).
#[tokio::test(flavor = "multi_thread")]
async fn a_status_edited_by_someone_else_is_put_right() {
    let (env, op) = setup("status-edit").await;
    env.apply_yaml(SEED).await.expect_ok();
    let before = wait_condition(&env, &op, "demoweb1", "Ready", "True", "Reconciled").await;

    let edited = env
        .patch_status(
            "demoweb",
            "demoweb1",
            r#"{"status":{"readyReplicas":0,"conditions":[]}}"#,
        )
        .await
        .expect_ok();
    let edited: Value = serde_json::from_str(&edited).expect("kubectl printed JSON");
    assert_eq!(
        edited["status"]["readyReplicas"], 0,
        "the edit took: {edited}"
    );

    let after = wait_condition(&env, &op, "demoweb1", "Ready", "True", "Reconciled").await;
    assert_eq!(after["status"]["readyReplicas"], 2);
    assert_eq!(
        after["status"]["observedGeneration"],
        before["status"]["observedGeneration"]
    );
    env.finish().await;
}

/// Traefik's Middleware CRD (group traefik.io, Traefik v3's `ipAllowList`).
pub const TRAEFIK_MIDDLEWARE_CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: middlewares.traefik.io}
spec:
  group: traefik.io
  names: {kind: Middleware, listKind: MiddlewareList, plural: middlewares, singular: middleware}
  scope: Namespaced
  versions:
  - name: v1alpha1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              ipAllowList:
                type: object
                properties:
                  sourceRange: {type: array, items: {type: string}}
                  ipStrategy: {type: object, x-kubernetes-preserve-unknown-fields: true}
";

/// A default IngressClass for ingress-nginx.
const DEFAULT_INGRESS_CLASS: &str = "apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: public
  annotations: {ingressclass.kubernetes.io/is-default-class: \"true\"}
spec: {controller: k8s.io/ingress-nginx}
";

/// Installs Traefik's Middleware and Kong's KongPlugin CRDs, and a default IngressClass for ingress-nginx.
pub async fn install_allowlist_apis(env: &demoweb_tests::harness::TestEnv) {
    for yaml in [
        TRAEFIK_MIDDLEWARE_CRD,
        demoweb_tests::kong::KONG_PLUGIN_CRD,
        DEFAULT_INGRESS_CLASS,
    ] {
        env.apply_yaml(yaml).await.expect_ok();
    }
}

#[cfg_attr(
    all(real_cluster, not(cluster_wide)),
    ignore = "changes cluster-wide objects (installing Traefik's and Kong's CRDs and a default IngressClass): runs only on a cluster the suite owns (DEMOWEB_TEST_CLUSTER_WIDE=1), one at a time"
)]
#[tokio::test(flavor = "multi_thread")]
async fn cluster_wide_allowlists_follow_the_ingress_controller() {
    let env = demoweb_tests::harness::TestEnv::cluster_wide("dialects").await;
    install_crds(&env).await;
    install_allowlist_apis(&env).await;
    let op = Operator::start(&env, &[]).await;
    let ns = env.namespace.clone();

    // Traefik v3: a Middleware, referenced before the user's own middlewares.
    env.apply_yaml(
        "apiVersion: baeke.info/v1
kind: DemoWeb
metadata: {name: edge}
spec:
  gitrepo: https://github.com/gbaeke/static-web.git
  ingress:
    host: edge.example.com
    className: traefik
    allowedSourceRanges: [10.0.0.0/8]
    annotations: {traefik.ingress.kubernetes.io/router.middlewares: other-auth@kubernetescrd}
",
    )
    .await
    .expect_ok();
    let mw = wait_object(
        &env,
        &op,
        "middlewares.traefik.io",
        "edge-allowlist",
        "the allowlist",
        |m| m["spec"]["ipAllowList"]["sourceRange"] == json!(["10.0.0.0/8"]),
    )
    .await;
    let dw = get(&env, "demoweb", "edge").await.expect("DemoWeb");
    assert!(controlled_by(
        &mw,
        dw["metadata"]["uid"].as_str().unwrap_or_default()
    ));
    // The allowlist runs first: nothing the user chains can answer before it.
    let expected = format!("{ns}-edge-allowlist@kubernetescrd,other-auth@kubernetescrd");
    wait_object(
        &env,
        &op,
        "ingress",
        "edge",
        "the middleware reference",
        |i| {
            ingress_annotation(i, "traefik.ingress.kubernetes.io/router.middlewares").as_deref()
                == Some(expected.as_str())
        },
    )
    .await;

    // Kong: a KongPlugin instead; the Middleware goes.
    merge_patch(
        &env,
        "demoweb",
        "edge",
        r#"{"spec":{"ingress":{"className":"kong"}}}"#,
    )
    .await;
    let plugin = wait_object(
        &env,
        &op,
        "kongplugins",
        "edge-allowlist",
        "the plugin",
        |p| p["plugin"] == "ip-restriction",
    )
    .await;
    assert_eq!(plugin["config"]["allow"], json!(["10.0.0.0/8"]));
    wait_object(&env, &op, "ingress", "edge", "the plugin reference", |i| {
        ingress_annotation(i, "konghq.com/plugins").as_deref() == Some("edge-allowlist")
    })
    .await;
    wait_gone(&env, &op, "middlewares.traefik.io", "edge-allowlist").await;

    // No className: the default IngressClass (ingress-nginx) decides.
    merge_patch(
        &env,
        "demoweb",
        "edge",
        r#"{"spec":{"ingress":{"className":null}}}"#,
    )
    .await;
    wait_object(
        &env,
        &op,
        "ingress",
        "edge",
        "the ingress-nginx annotation",
        |i| {
            ingress_annotation(i, "nginx.ingress.kubernetes.io/whitelist-source-range").as_deref()
                == Some("10.0.0.0/8")
        },
    )
    .await;
    wait_gone(&env, &op, "kongplugins", "edge-allowlist").await;

    merge_patch(&env, "demoweb", "edge", r#"{"spec":{"ingress":null}}"#).await;
    wait_gone(&env, &op, "ingress", "edge").await;
    env.finish().await;
}

#[cfg_attr(
    all(real_cluster, not(cluster_wide)),
    ignore = "changes cluster-wide objects (an operator watching every namespace of a shared cluster would reconcile other tests' and users' DemoWebs): runs only on a cluster the suite owns (DEMOWEB_TEST_CLUSTER_WIDE=1), one at a time"
)]
#[tokio::test(flavor = "multi_thread")]
async fn cluster_wide_watching_all_namespaces_as_the_chart_does() {
    let env = demoweb_tests::harness::TestEnv::cluster_wide("all-namespaces").await;
    install_crds(&env).await;
    let other = format!("{}-b", env.namespace);
    env.kubectl(&["create", "namespace", &other])
        .await
        .expect_ok();
    let op = Operator::start_all_namespaces(&env, &[]).await;
    env.apply_yaml(SEED).await.expect_ok();
    env.kubectl_with_stdin(&["apply", "-n", &other, "-f", "-"], Some(SEED))
        .await
        .expect_ok();
    wait_condition(&env, &op, "demoweb1", "Ready", "True", "Reconciled").await;
    let dw = wait(
        &env,
        Some(&op),
        "the DemoWeb of the other namespace to be Ready",
        DEADLINE,
        || async {
            let out = env
                .kubectl(&["get", "demoweb", "demoweb1", "-n", &other, "-o", "json"])
                .await;
            let dw: Value = serde_json::from_str(&out.stdout).ok()?;
            condition(&dw, "Ready")
                .is_some_and(|(s, _, _)| s == "True")
                .then_some(dw)
        },
    )
    .await;
    assert_eq!(dw["metadata"]["namespace"], other.as_str());
    let uid = dw["metadata"]["uid"].as_str().expect("uid");
    let out = env
        .kubectl(&["get", "deployment", "demoweb1", "-n", &other, "-o", "json"])
        .await
        .expect_ok();
    let d: Value = serde_json::from_str(&out).expect("JSON");
    assert!(controlled_by(&d, uid), "{d}");
    env.kubectl(&["delete", "namespace", &other, "--wait=false"])
        .await
        .expect_ok();
    env.finish().await;
}
