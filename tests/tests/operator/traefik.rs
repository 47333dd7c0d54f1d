//! The allowlist enforced by the real Traefik v3 (`demoweb_tests::traefik`), not only written: a
//! request from an allowed source address passes, one from another address is refused, and without
//! the Middleware API the route is gone, never open. The site has no pods, so Traefik answers 503
//! itself past the allowlist (`allowEmptyServices`) and never connects to a kwok pod address.

use std::net::Ipv4Addr;
use std::time::Duration;

use demoweb_tests::harness::{TestEnv, poll};
use demoweb_tests::operator::*;
use demoweb_tests::traefik::{self, Traefik};

/// How long Traefik may take to see an object change (its providers watch, then rebuild routes).
const TRAEFIK_SEES: Duration = Duration::from_secs(60);
const ALLOWED: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const REFUSED: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const HOST: &str = "enforced.example.com";

/// Polls `check` until it returns `Some`; on timeout panics with Traefik's and the operator's logs.
async fn until<T, F, Fut>(
    env: &TestEnv,
    op: &Operator,
    traefik: &Traefik,
    what: &str,
    check: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    if let Some(v) = poll(TRAEFIK_SEES, check).await {
        return v;
    }
    let tail = |log: String| {
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    };
    panic!(
        "timed out after {TRAEFIK_SEES:?} waiting for {what}\n--- namespace {} ---\n{}\n--- operator log (tail) ---\n{}\n--- traefik log (tail) ---\n{}",
        env.namespace,
        env.dump().await,
        tail(op.logs()),
        tail(traefik.logs())
    );
}

/// The status of `GET /` to the site from `source`, panicking when no HTTP answer comes.
async fn status_from(traefik: &Traefik, source: Ipv4Addr) -> u16 {
    match traefik.request_from(source, HOST, "/").await {
        Ok((code, _)) => code,
        Err(e) => panic!("{e}\n--- traefik log ---\n{}", traefik.logs()),
    }
}

#[cfg_attr(
    all(real_cluster, not(cluster_wide)),
    ignore = "changes cluster-wide objects (installs and removes Traefik's CRDs, which a real cluster's Traefik relies on): runs only on a cluster the suite owns (DEMOWEB_TEST_CLUSTER_WIDE=1), one at a time"
)]
#[cfg_attr(
    all(no_go, any(not(real_cluster), cluster_wide)),
    ignore = "Traefik is built from its Go module (tests/cluster/traefik): `go` was not on the PATH when the tests were built"
)]
#[tokio::test(flavor = "multi_thread")]
async fn cluster_wide_traefik_enforces_the_allowlist_and_without_its_middleware_the_route_is_gone()
{
    let env = TestEnv::cluster_wide("traefik-enforces").await;
    install_crds(&env).await;
    let traefik_crds = traefik::crds().unwrap_or_else(|e| panic!("Traefik's CRDs: {e}"));
    assert!(
        traefik_crds
            .iter()
            .any(|c| c.metadata.name.as_deref() == Some("middlewares.traefik.io")),
        "Traefik {} defines no Middleware CRD",
        traefik::PINNED_TRAEFIK
    );
    env.install_crds(&traefik_crds).await;
    let class = format!("traefik-{}", env.namespace);
    let _class_guard = DeleteOnDrop {
        kubeconfig: env.kubeconfig_path.clone(),
        object: format!("ingressclass/{class}"),
    };
    env.apply_yaml(&format!(
        "apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {{name: {class}}}
spec: {{controller: traefik.io/ingress-controller}}
---
apiVersion: baeke.info/v1
kind: DemoWeb
metadata: {{name: enforced}}
spec:
  gitrepo: https://github.com/gbaeke/static-web.git
  replicas: 0
  ingress:
    host: {HOST}
    className: {class}
    allowedSourceRanges: [{ALLOWED}/32]
"
    ))
    .await
    .expect_ok();
    let op = Operator::start(&env, &[]).await;
    let reference = format!("{}-enforced-allowlist@kubernetescrd", env.namespace);
    wait_object(
        &env,
        &op,
        "ingress",
        "enforced",
        "refers to its Middleware",
        |ing| {
            ing["metadata"]["annotations"]["traefik.ingress.kubernetes.io/router.middlewares"]
                == reference.as_str()
        },
    )
    .await;

    let traefik = Traefik::start(&env.kubeconfig_path, &env.namespace, env.dir())
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // Until Traefik has the route, the site is not found; never is it open to the refused address.
    until(
        &env,
        &op,
        &traefik,
        "127.0.0.1 to pass the allowlist",
        || async {
            let refused = status_from(&traefik, REFUSED).await;
            assert!(
                refused == 403 || refused == 404,
                "127.0.0.2 got {refused} before 127.0.0.1 was let through"
            );
            (status_from(&traefik, ALLOWED).await == 503).then_some(())
        },
    )
    .await;
    let (code, body) = traefik
        .request_from(REFUSED, HOST, "/")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((code, body.trim()), (403, "Forbidden"), "from 127.0.0.2");

    // What Traefik made of the objects: the router uses the Middleware, and the service it routes
    // to has no server, so Traefik connects to no pod or node address.
    let routers = traefik.api("/api/http/routers").await.expect("routers");
    let router = routers
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["rule"].as_str().is_some_and(|rule| rule.contains(HOST)))
        .unwrap_or_else(|| panic!("no router for {HOST}: {routers}"));
    assert_eq!(
        router["middlewares"],
        serde_json::json!([reference]),
        "{router}"
    );
    let service = router["service"].as_str().expect("router's service");
    let service = traefik
        .api(&format!("/api/http/services/{service}@kubernetes"))
        .await
        .expect("the router's service");
    assert!(
        service["loadBalancer"]["servers"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "Traefik was given servers to proxy to: {service}"
    );

    // The Middleware API goes: the route goes with it (404), and is never open on the way.
    env.remove_crd("middlewares.traefik.io").await;
    until(&env, &op, &traefik, "the route to be gone", || async {
        let refused = status_from(&traefik, REFUSED).await;
        assert!(
            refused == 403 || refused == 404,
            "127.0.0.2 got {refused} once the Middleware CRD was removed"
        );
        (status_from(&traefik, ALLOWED).await == 404).then_some(())
    })
    .await;
    assert_eq!(status_from(&traefik, REFUSED).await, 404);
    wait_condition(
        &env,
        &op,
        "enforced",
        "Stalled",
        "True",
        "AllowlistApiMissing",
    )
    .await;
    assert!(
        get(&env, "ingress", "enforced").await.is_none(),
        "the Ingress outlived the Middleware API"
    );
    drop(traefik);
    // Traefik's other CRDs go too, so that the cluster is left as the next test expects it.
    for crd in &traefik_crds {
        env.remove_crd(crd.metadata.name.as_deref().unwrap_or_default())
            .await;
    }
    env.finish().await;
}

/// Deletes a cluster-scoped object the test created, also when the test fails.
struct DeleteOnDrop {
    kubeconfig: std::path::PathBuf,
    object: String,
}

impl Drop for DeleteOnDrop {
    fn drop(&mut self) {
        let kubectl = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
        let _ = std::process::Command::new(kubectl)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["delete", &self.object, "--ignore-not-found", "--wait=false"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}
