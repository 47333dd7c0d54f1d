//! The examples as a user applies them with kubectl: every DemoWeb under `examples/invalid/` is
//! refused by the API server with the message its `# expect:` line documents (one clear line, no
//! "some validation rules were not checked" after it), and `kubectl apply -f examples/` applies the
//! whole directory, twice, without a warning, where the cluster serves Kong's CRDs (seed 004's
//! KongPlugin and KongConsumer are in it); where it does not, everything but those.

use std::path::PathBuf;

use demoweb_tests::harness::TestEnv;
use demoweb_tests::operator::{self, repo_root};

/// (file, its `# expect:` message) of every invalid DemoWeb example.
fn invalid_demowebs() -> Vec<(PathBuf, String)> {
    let dir = repo_root().join("examples/invalid");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("examples/invalid/ is readable") {
        let path = entry.expect("directory entry").path();
        let text = std::fs::read_to_string(&path).expect("readable");
        if !text.lines().any(|l| l == "kind: DemoWeb") {
            continue;
        }
        let expect = text
            .lines()
            .find_map(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{}: no `# expect:` line", path.display()));
        out.push((path, expect.to_owned()));
    }
    out.sort();
    out
}

#[tokio::test]
async fn invalid_demoweb_examples_are_refused_by_the_api_server_as_documented() {
    let env = TestEnv::new("invalid-examples").await;
    operator::install_crds(&env).await;
    let files = invalid_demowebs();
    assert!(files.len() >= 10, "invalid DemoWeb examples: {files:?}");
    for (path, expect) in &files {
        let file = path.to_str().expect("utf-8 path");
        for apply in [
            &["apply", "-f", file][..],
            &["apply", "--server-side", "-f", file],
        ] {
            let out = env.kubectl(apply).await;
            let err = out.expect_err();
            assert!(
                err.contains(expect.as_str()),
                "{}: `kubectl {}` was expected to say {expect:?}, the API server said:\n{err}",
                path.display(),
                apply.join(" ")
            );
            assert!(
                !err.contains("some validation rules were not checked"),
                "{}: a rule went unchecked; the API server said:\n{err}",
                path.display()
            );
        }
    }
    let stored = env.kubectl(&["get", "demowebs", "-o", "name"]).await;
    assert_eq!(stored.expect_ok().trim(), "", "nothing invalid was stored");
    env.finish().await;
}

#[tokio::test]
async fn kubectl_apply_f_examples_applies_every_site_twice_without_warnings() {
    let (env, op) = operator::setup("apply-examples").await;
    // demoweb-kong-allowlist.yaml carries Kong's KongPlugin and KongConsumer next to its DemoWeb:
    // they apply where the cluster serves Kong's CRDs, as a cluster running Kong does. The test's
    // own emulator gets them; a real cluster is left as it is (they are cluster-wide), and without
    // them kubectl applies everything else and names only Kong's kinds.
    if env.is_emulator() {
        env.install_crds(&demoweb_tests::kong::crds()).await;
    }
    apply_examples_twice(&env, &op).await;
    env.finish().await;
}

#[cfg_attr(
    all(real_cluster, not(cluster_wide)),
    ignore = "changes cluster-wide objects (installs Kong's KongPlugin, KongClusterPlugin and KongConsumer CRDs): runs only on a cluster the suite owns (DEMOWEB_TEST_CLUSTER_WIDE=1), one at a time"
)]
#[tokio::test]
async fn cluster_wide_kubectl_apply_f_examples_where_kong_is_served_exposes_seed_004() {
    let env = TestEnv::cluster_wide("apply-examples-kong").await;
    operator::install_crds(&env).await;
    env.install_crds(&demoweb_tests::kong::crds()).await;
    let op = operator::Operator::start(&env, &[]).await;
    apply_examples_twice(&env, &op).await;
    env.finish().await;
}

/// `kubectl apply -f examples/`, twice: every site applied, without a warning where Kong's CRDs
/// are served (and then seed 004 exposed with its basic-auth plugin after the allowlist), and
/// with only Kong's kinds named as not served where they are not.
async fn apply_examples_twice(env: &TestEnv, op: &operator::Operator) {
    let kong_served = env
        .kubectl(&[
            "get",
            "crd",
            "kongplugins.configuration.konghq.com",
            "kongconsumers.configuration.konghq.com",
        ])
        .await
        .success();
    let dir = repo_root().join("examples");
    let dir = dir.to_str().expect("utf-8 path");
    for round in ["first", "second"] {
        let out = env.kubectl(&["apply", "-f", dir]).await;
        let stdout = if kong_served {
            let stdout = out.expect_ok();
            assert_eq!(
                out.stderr.trim(),
                "",
                "the {round} `kubectl apply -f examples/` warned:\n{}",
                out.stderr
            );
            for kong in [
                "kongplugin.configuration.konghq.com/http-auth ",
                "kongconsumer.configuration.konghq.com/frontdoor ",
            ] {
                assert!(
                    stdout.contains(kong),
                    "{round} apply: {kong}missing from\n{stdout}"
                );
            }
            stdout
        } else {
            let unmapped = |l: &&str| {
                l.contains("configuration.konghq.com")
                    || l.trim() == "ensure CRDs are installed first"
            };
            assert!(
                !out.success()
                    && out
                        .stderr
                        .lines()
                        .filter(|l| !l.trim().is_empty())
                        .all(|l| unmapped(&l)),
                "the {round} `kubectl apply -f examples/` without Kong's CRDs said more than that Kong's kinds are not served:\n{}",
                out.stderr
            );
            out.stdout.clone()
        };
        for site in [
            "demoweb1",
            "docs-site",
            "frontdoor-site",
            "shop-front",
            "blog",
            "api-docs",
            "office-site",
        ] {
            assert!(
                stdout.contains(&format!("demoweb.baeke.info/{site} ")),
                "{round} apply: {site} missing from\n{stdout}"
            );
        }
    }
    operator::wait_condition(env, op, "demoweb1", "Ready", "True", "Reconciled").await;
    if kong_served {
        // Seed 004: basic auth next to the allowlist, both on the Kong route.
        operator::wait_object(
            env,
            op,
            "ingress",
            "frontdoor-site",
            "the Ingress with the allowlist plugin first, then seed 004's http-auth",
            |i| {
                i["metadata"]["annotations"]["konghq.com/plugins"]
                    == "frontdoor-site-allowlist,http-auth"
            },
        )
        .await;
    }
}
