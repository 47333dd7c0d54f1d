//! The allowlist holds: refused annotations, dialects whose API is missing, and objects that
//! arrive after the DemoWeb (a CRD, an IngressClass, a Secret) — as a user sees them through
//! kubectl. Cluster-scoped objects these tests create (IngressClasses, the Middleware CRD) get
//! names no other test uses, or are removed again by a guard, so the tests run against a shared
//! real cluster in any order.

use std::time::Duration;

use serde_json::Value;

use demoweb_tests::harness::TestEnv;
use demoweb_tests::kong::{self, KONG_CLUSTER_PLUGIN_CRD, KONG_PLUGIN_CRD};
use demoweb_tests::operator::*;

/// How soon a change of a referenced object must be acted on.
const PROMPT: Duration = Duration::from_secs(10);

/// Deletes cluster-scoped objects a test created, also when the test fails.
struct ClusterScoped {
    kubeconfig: std::path::PathBuf,
    objects: Vec<String>,
}

impl ClusterScoped {
    fn new(env: &TestEnv) -> Self {
        Self {
            kubeconfig: env.kubeconfig_path.clone(),
            objects: Vec::new(),
        }
    }

    fn track(&mut self, kind_and_name: &str) {
        self.objects.push(kind_and_name.to_owned());
    }
}

impl Drop for ClusterScoped {
    fn drop(&mut self) {
        let kubectl = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
        for object in &self.objects {
            let _ = std::process::Command::new(&kubectl)
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .args(["delete", object, "--ignore-not-found", "--wait=false"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

fn annotation(obj: &Value, key: &str) -> Option<String> {
    obj["metadata"]["annotations"][key]
        .as_str()
        .map(str::to_owned)
}

/// Waits, at most [`PROMPT`], for `check` to pass.
async fn promptly<F, Fut>(env: &TestEnv, op: &Operator, what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<()>>,
{
    wait(
        env,
        Some(op),
        &format!("{what} (within {PROMPT:?})"),
        PROMPT,
        check,
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn every_refused_annotation_family_is_refused_with_its_message() {
    let env = TestEnv::new("refused-annotations").await;
    install_crds(&env).await;
    let demoweb = |name: &str, ranges: &str, key: &str, value: &str| {
        format!(
            "apiVersion: baeke.info/v1
kind: DemoWeb
metadata: {{name: {name}}}
spec:
  gitrepo: https://github.com/gbaeke/static-web.git
  ingress:
    host: {name}.example.com
    className: nginx
    allowedSourceRanges: {ranges}
    annotations: {{\"{key}\": \"{value}\"}}
"
        )
    };
    // (key, refused only next to an allowlist, what kubectl must say)
    let families = [
        (
            "nginx.ingress.kubernetes.io/server-snippet",
            false,
            "must not inject ingress-controller configuration",
        ),
        (
            "nginx.org/location-snippets",
            false,
            "must not inject ingress-controller configuration",
        ),
        ("haproxy.org/deny-list", false, "must not set source ranges"),
        (
            "nginx.ingress.kubernetes.io/auth-tls-verify-client",
            true,
            "may configure authentication only with the reviewed keys",
        ),
        (
            "haproxy.org/src-ip-header",
            true,
            "must not take the client address from a request header",
        ),
        (
            "nginx.ingress.kubernetes.io/permanent-redirect",
            true,
            "must not redirect requests",
        ),
        (
            "nginx.ingress.kubernetes.io/canary",
            true,
            "must not route requests around the allowlist",
        ),
        (
            "nginx.ingress.kubernetes.io/ssl-passthrough",
            true,
            "must not route requests around the allowlist",
        ),
    ];
    for (i, (key, only_with_allowlist, message)) in families.iter().enumerate() {
        let name = format!("refused{i}");
        let err = env
            .apply_yaml(&demoweb(&name, "[203.0.113.7/32]", key, "x"))
            .await
            .expect_err();
        assert!(err.contains(message), "{key}: {err}");
        let without = env.apply_yaml(&demoweb(&name, "[]", key, "x")).await;
        if *only_with_allowlist {
            without.expect_ok();
            env.kubectl(&["delete", "demoweb", &name]).await.expect_ok();
        } else {
            assert!(without.expect_err().contains(message), "{key}");
        }
    }
    // Nothing of it was stored.
    let out = env
        .kubectl(&["get", "demowebs", "-o", "name"])
        .await
        .expect_ok();
    assert_eq!(out.trim(), "", "refused DemoWebs were stored: {out}");
    env.finish().await;
}

#[cfg_attr(
    all(real_cluster, not(cluster_wide)),
    ignore = "changes cluster-wide objects (installs and removes Traefik's cluster-wide Middleware CRDs, which a real cluster's Traefik may rely on): runs only on a cluster the suite owns (DEMOWEB_TEST_CLUSTER_WIDE=1), one at a time"
)]
#[tokio::test(flavor = "multi_thread")]
async fn cluster_wide_traefik_without_its_middleware_api_fails_closed_and_follows_the_crd() {
    let env = TestEnv::cluster_wide("traefik-crd").await;
    install_crds(&env).await;
    let mut cleanup = ClusterScoped::new(&env);
    let class = format!("traefik-{}", env.namespace);
    cleanup.track(&format!("ingressclass/{class}"));
    env.apply_yaml(&format!(
        "apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {{name: {class}}}
spec: {{controller: traefik.io/ingress-controller}}
---
apiVersion: baeke.info/v1
kind: DemoWeb
metadata: {{name: edge}}
spec:
  gitrepo: https://github.com/gbaeke/static-web.git
  ingress:
    host: edge.example.com
    className: {class}
    allowedSourceRanges: [203.0.113.7/32]
"
    ))
    .await
    .expect_ok();
    let op = Operator::start(&env, &[]).await;

    // Traefik 2+ ignores the Traefik 1 annotation: without the Middleware API nothing is exposed.
    let dw = wait_condition(&env, &op, "edge", "Stalled", "True", "AllowlistApiMissing").await;
    let (_, _, message) = condition(&dw, "Stalled").expect("Stalled");
    assert!(
        message.contains("middlewares.traefik.io") && message.contains("install"),
        "{message}"
    );
    assert!(
        get(&env, "ingress", "edge").await.is_none(),
        "exposed without an allowlist"
    );
    wait_object(
        &env,
        &op,
        "deployment",
        "edge",
        "the site itself runs",
        |_| true,
    )
    .await;

    // The CRD arrives: Middleware and Ingress within seconds.
    cleanup.track("crd/middlewares.traefik.io");
    env.apply_yaml(crate::lifecycle::TRAEFIK_MIDDLEWARE_CRD)
        .await
        .expect_ok();
    env.kubectl(&[
        "wait",
        "--for=condition=Established",
        "crd/middlewares.traefik.io",
        "--timeout=60s",
    ])
    .await
    .expect_ok();
    let reference = format!("{}-edge-allowlist@kubernetescrd", env.namespace);
    promptly(&env, &op, "the Middleware and the Ingress", || async {
        let mw = get(&env, "middlewares.traefik.io", "edge-allowlist").await?;
        let ing = get(&env, "ingress", "edge").await?;
        (mw["spec"]["ipAllowList"]["sourceRange"][0] == "203.0.113.7/32"
            && annotation(&ing, "traefik.ingress.kubernetes.io/router.middlewares").as_deref()
                == Some(reference.as_str())
            && annotation(&ing, "traefik.ingress.kubernetes.io/whitelist-source-range").is_none())
        .then_some(())
    })
    .await;
    wait_object(&env, &op, "demoweb", "edge", "no longer stalled", |dw| {
        condition(dw, "Stalled").is_some_and(|(s, _, _)| s == "False")
    })
    .await;

    // The CRD goes: the Ingress goes too, within seconds.
    env.kubectl(&["delete", "crd", "middlewares.traefik.io", "--wait=false"])
        .await
        .expect_ok();
    promptly(&env, &op, "the Ingress withdrawn", || async {
        let dw = get(&env, "demoweb", "edge").await?;
        let stalled = condition(&dw, "Stalled")
            .is_some_and(|(s, r, _)| s == "True" && r == "AllowlistApiMissing");
        (stalled && get(&env, "ingress", "edge").await.is_none()).then_some(())
    })
    .await;
    drop(cleanup);
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn late_secret_and_ingress_class_are_acted_on_within_seconds() {
    let env = TestEnv::new("late-references").await;
    install_crds(&env).await;
    let op = Operator::start(&env, &[]).await;
    let mut cleanup = ClusterScoped::new(&env);
    let class = format!("public-{}", env.namespace);
    cleanup.track(&format!("ingressclass/{class}"));
    env.apply_yaml(&format!(
        "apiVersion: baeke.info/v1
kind: DemoWeb
metadata: {{name: private}}
spec:
  gitrepo: https://github.com/example/private.git
  credentials: {{secretName: git-creds}}
  ingress:
    host: private.example.com
    className: {class}
    allowedSourceRanges: [203.0.113.7/32]
"
    ))
    .await
    .expect_ok();
    wait_condition(
        &env,
        &op,
        "private",
        "Stalled",
        "True",
        "CredentialsNotFound",
    )
    .await;
    assert!(get(&env, "deployment", "private").await.is_none());

    // The Secret arrives (GitOps applies in no fixed order): children within seconds.
    env.apply_yaml(
        "apiVersion: v1
kind: Secret
metadata: {name: git-creds}
stringData: {username: site, password: secret}
",
    )
    .await
    .expect_ok();
    promptly(&env, &op, "the Deployment", || async {
        get(&env, "deployment", "private").await.map(|_| ())
    })
    .await;
    // The class is still unknown: the site runs, unexposed.
    wait_condition(
        &env,
        &op,
        "private",
        "Stalled",
        "True",
        "UnsupportedIngressClass",
    )
    .await;
    assert!(get(&env, "ingress", "private").await.is_none());

    // The IngressClass arrives: the Ingress, with its allowlist, within seconds.
    env.apply_yaml(&format!(
        "apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {{name: {class}}}
spec: {{controller: k8s.io/ingress-nginx}}
"
    ))
    .await
    .expect_ok();
    promptly(&env, &op, "the Ingress", || async {
        let ing = get(&env, "ingress", "private").await?;
        (annotation(&ing, "nginx.ingress.kubernetes.io/whitelist-source-range").as_deref()
            == Some("203.0.113.7/32"))
        .then_some(())
    })
    .await;
    drop(cleanup);
    env.finish().await;
}

/// A fresh environment whose cluster serves the project's CRDs and Kong's KongPlugin.
async fn env_with_kong_plugins(test: &str) -> TestEnv {
    let env = TestEnv::cluster_wide(test).await;
    install_crds(&env).await;
    env.install_crds(&[kong::crd(KONG_PLUGIN_CRD)]).await;
    env
}

/// A DemoWeb of class `kong` with an allowlist, naming `plugins` in konghq.com/plugins.
fn kong_site(name: &str, plugins: &str) -> String {
    format!(
        "apiVersion: baeke.info/v1
kind: DemoWeb
metadata: {{name: {name}}}
spec:
  gitrepo: https://github.com/gbaeke/static-web.git
  ingress:
    host: {name}.example.com
    className: kong
    allowedSourceRanges: [147.243.0.0/16]
    annotations: {{konghq.com/plugins: \"{plugins}\"}}
"
    )
}

fn kong_plugin(kind: &str, name: &str, plugin: &str) -> String {
    format!(
        "apiVersion: configuration.konghq.com/v1
kind: {kind}
metadata: {{name: {name}}}
plugin: {plugin}
config: {{hide_credentials: true}}
"
    )
}

/// Waits until the DemoWeb is Stalled for a Kong plugin with a message containing every `words`,
/// with no Ingress of ours.
async fn wait_kong_refused(env: &TestEnv, op: &Operator, name: &str, words: &[&str]) {
    promptly(env, op, &format!("{name} refused: {words:?}"), || async {
        let dw = get(env, "demoweb", name).await?;
        let refused = condition(&dw, "Stalled").is_some_and(|(s, r, m)| {
            s == "True" && r == "KongPluginRefused" && words.iter().all(|w| m.contains(w))
        });
        (refused && get(env, "ingress", name).await.is_none()).then_some(())
    })
    .await;
}

/// Waits until the Ingress lists the operator's plugin first and then `user`, and the allowlist
/// plugin is there.
async fn wait_kong_exposed(env: &TestEnv, op: &Operator, name: &str, user: &str) {
    let expected = format!("{name}-allowlist,{user}");
    promptly(
        env,
        op,
        &format!("{name} exposed with {expected}"),
        || async {
            let ing = get(env, "ingress", name).await?;
            let plugin = get(env, "kongplugins", &format!("{name}-allowlist")).await?;
            let dw = get(env, "demoweb", name).await?;
            (annotation(&ing, "konghq.com/plugins").as_deref() == Some(expected.as_str())
                && plugin["plugin"] == "ip-restriction"
                && plugin["config"]["allow"][0] == "147.243.0.0/16"
                && condition(&dw, "Stalled").is_some_and(|(s, _, _)| s == "False"))
            .then_some(())
        },
    )
    .await;
}

#[cfg_attr(
    all(real_cluster, not(cluster_wide)),
    ignore = "changes cluster-wide objects (installs Kong's KongPlugin CRD, which a real cluster's Kong relies on): runs only on a cluster the suite owns (DEMOWEB_TEST_CLUSTER_WIDE=1), one at a time"
)]
#[tokio::test(flavor = "multi_thread")]
async fn cluster_wide_seed_004_basic_auth_next_to_the_allowlist_follows_the_plugin() {
    let env = env_with_kong_plugins("kong-auth").await;
    let op = Operator::start(&env, &[]).await;

    // Named before it exists (GitOps applies in no fixed order): the site runs, unexposed.
    env.apply_yaml(&kong_site("api", "http-auth"))
        .await
        .expect_ok();
    wait_kong_refused(&env, &op, "api", &["\"http-auth\"", "does not exist"]).await;
    wait_object(
        &env,
        &op,
        "deployment",
        "api",
        "the site itself runs",
        |_| true,
    )
    .await;
    let events = events_for(&env, "api").await;
    assert!(
        events
            .iter()
            .any(|(t, r, m)| t == "Warning" && r == "KongPluginRefused" && m.contains("http-auth")),
        "{events:?}"
    );

    // Seed 004's pair: basic-auth next to the operator's ip-restriction, exposed within seconds.
    env.apply_yaml(&kong_plugin("KongPlugin", "http-auth", "basic-auth"))
        .await
        .expect_ok();
    wait_kong_exposed(&env, &op, "api", "http-auth").await;

    // The plugin turns into code: the Ingress is withdrawn within seconds.
    env.apply_yaml(&kong_plugin("KongPlugin", "http-auth", "pre-function"))
        .await
        .expect_ok();
    wait_kong_refused(&env, &op, "api", &["\"http-auth\"", "pre-function", "code"]).await;

    // Fixed: exposed again; deleted: withdrawn again.
    env.apply_yaml(&kong_plugin("KongPlugin", "http-auth", "basic-auth"))
        .await
        .expect_ok();
    wait_kong_exposed(&env, &op, "api", "http-auth").await;
    env.kubectl(&["delete", "kongplugin", "http-auth"])
        .await
        .expect_ok();
    wait_kong_refused(&env, &op, "api", &["\"http-auth\"", "does not exist"]).await;
    env.finish().await;
}

#[cfg_attr(
    all(real_cluster, not(cluster_wide)),
    ignore = "changes cluster-wide objects (installs Kong's KongPlugin CRD, which a real cluster's Kong relies on): runs only on a cluster the suite owns (DEMOWEB_TEST_CLUSTER_WIDE=1), one at a time"
)]
#[tokio::test(flavor = "multi_thread")]
async fn cluster_wide_an_ip_restriction_plugin_next_to_the_allowlist_is_refused() {
    let env = env_with_kong_plugins("kong-ip-restriction").await;
    env.apply_yaml(&kong_plugin("KongPlugin", "open-up", "ip-restriction"))
        .await
        .expect_ok();
    env.apply_yaml(&kong_site("rogue", "open-up"))
        .await
        .expect_ok();
    let op = Operator::start(&env, &[]).await;
    wait_kong_refused(
        &env,
        &op,
        "rogue",
        &["\"open-up\"", "ip-restriction", "replace"],
    )
    .await;
    // Nothing was exposed at any point, and the operator's own plugin was not written either.
    assert!(get(&env, "kongplugins", "rogue-allowlist").await.is_none());
    // Without the allowlist the plugin list is the user's business.
    merge_patch(
        &env,
        "demoweb",
        "rogue",
        r#"{"spec":{"ingress":{"allowedSourceRanges":null}}}"#,
    )
    .await;
    promptly(&env, &op, "the Ingress without an allowlist", || async {
        let ing = get(&env, "ingress", "rogue").await?;
        (annotation(&ing, "konghq.com/plugins").as_deref() == Some("open-up")).then_some(())
    })
    .await;
    env.finish().await;
}

#[cfg_attr(
    all(real_cluster, not(cluster_wide)),
    ignore = "changes cluster-wide objects (installs and removes Kong's KongPlugin and KongClusterPlugin CRDs, which a real cluster's Kong relies on): runs only on a cluster the suite owns (DEMOWEB_TEST_CLUSTER_WIDE=1), one at a time"
)]
#[tokio::test(flavor = "multi_thread")]
async fn cluster_wide_kong_cluster_plugins_are_read_once_their_api_is_served() {
    let env = env_with_kong_plugins("kong-cluster-plugins").await;
    let mut cleanup = ClusterScoped::new(&env);
    let name = format!("auth-{}", env.namespace);
    let op = Operator::start(&env, &[]).await;

    // No KongClusterPlugin API: a name that is not a KongPlugin cannot be resolved.
    env.apply_yaml(&kong_site("shared", &name))
        .await
        .expect_ok();
    wait_kong_refused(
        &env,
        &op,
        "shared",
        &[&format!("\"{name}\""), "does not exist"],
    )
    .await;

    // The API arrives, then the plugin: exposed within seconds.
    cleanup.track("crd/kongclusterplugins.configuration.konghq.com");
    env.install_crds(&[kong::crd(KONG_CLUSTER_PLUGIN_CRD)])
        .await;
    cleanup.track(&format!("kongclusterplugin/{name}"));
    env.apply_yaml(&kong_plugin("KongClusterPlugin", &name, "key-auth"))
        .await
        .expect_ok();
    wait_kong_exposed(&env, &op, "shared", &name).await;

    // A KongPlugin of the namespace goes first, as in Kong: one of a refused type withdraws.
    env.apply_yaml(&kong_plugin("KongPlugin", &name, "post-function"))
        .await
        .expect_ok();
    wait_kong_refused(&env, &op, "shared", &["KongPlugin", "post-function"]).await;
    env.kubectl(&["delete", "kongplugin", &name])
        .await
        .expect_ok();
    wait_kong_exposed(&env, &op, "shared", &name).await;

    // The API goes: what it held can no longer be checked, so the Ingress goes too.
    env.kubectl(&[
        "delete",
        "crd",
        "kongclusterplugins.configuration.konghq.com",
        "--wait=false",
    ])
    .await
    .expect_ok();
    wait_kong_refused(&env, &op, "shared", &["does not exist"]).await;
    drop(cleanup);
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ingress_nginx_basic_auth_next_to_the_allowlist() {
    let env = TestEnv::new("nginx-auth").await;
    install_crds(&env).await;
    let op = Operator::start(&env, &[]).await;
    let site = |satisfy: &str| {
        format!(
            "apiVersion: baeke.info/v1
kind: DemoWeb
metadata: {{name: office}}
spec:
  gitrepo: https://github.com/gbaeke/static-web.git
  ingress:
    host: office.example.com
    className: nginx
    allowedSourceRanges: [203.0.113.0/24]
    annotations:
      nginx.ingress.kubernetes.io/auth-type: basic
      nginx.ingress.kubernetes.io/auth-secret: office-htpasswd
      nginx.ingress.kubernetes.io/auth-realm: Office only
{satisfy}"
        )
    };
    // `satisfy: any` would make the password alone enough: refused, nothing stored.
    let err = env
        .apply_yaml(&site("      nginx.ingress.kubernetes.io/satisfy: any\n"))
        .await
        .expect_err();
    assert!(err.contains("satisfy only as"), "{err}");
    assert!(get(&env, "demoweb", "office").await.is_none());

    // Basic auth, with `satisfy: all` spelled out: both on the Ingress, next to the allowlist.
    env.apply_yaml(&site("      nginx.ingress.kubernetes.io/satisfy: all\n"))
        .await
        .expect_ok();
    promptly(
        &env,
        &op,
        "the Ingress with basic auth and the allowlist",
        || async {
            let ing = get(&env, "ingress", "office").await?;
            let has = |k: &str, v: &str| annotation(&ing, k).as_deref() == Some(v);
            (has(
                "nginx.ingress.kubernetes.io/whitelist-source-range",
                "203.0.113.0/24",
            ) && has("nginx.ingress.kubernetes.io/auth-type", "basic")
                && has("nginx.ingress.kubernetes.io/auth-secret", "office-htpasswd")
                && has("nginx.ingress.kubernetes.io/auth-realm", "Office only")
                && has("nginx.ingress.kubernetes.io/satisfy", "all"))
            .then_some(())
        },
    )
    .await;
    wait_object(
        &env,
        &op,
        "demoweb",
        "office",
        "not stalled, with its URL",
        |dw| {
            condition(dw, "Stalled").is_some_and(|(s, _, _)| s == "False")
                && dw["status"]["url"] == "http://office.example.com/"
        },
    )
    .await;
    env.finish().await;
}
