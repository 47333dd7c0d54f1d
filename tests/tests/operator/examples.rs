//! The examples as a user applies them with kubectl: every DemoWeb under `examples/invalid/` is
//! refused by the API server with the message its `# expect:` line documents (one clear line, no
//! "some validation rules were not checked" after it), and `kubectl apply -f examples/` applies the
//! whole directory, twice, without a warning.

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
    let dir = repo_root().join("examples");
    let dir = dir.to_str().expect("utf-8 path");
    for round in ["first", "second"] {
        let out = env.kubectl(&["apply", "-f", dir]).await;
        let stdout = out.expect_ok();
        assert_eq!(
            out.stderr.trim(),
            "",
            "the {round} `kubectl apply -f examples/` warned:\n{}",
            out.stderr
        );
        for site in [
            "demoweb1",
            "docs-site",
            "frontdoor-site",
            "shop-front",
            "blog",
            "api-docs",
        ] {
            assert!(
                stdout.contains(&format!("demoweb.baeke.info/{site} ")),
                "{round} apply: {site} missing from\n{stdout}"
            );
        }
    }
    operator::wait_condition(&env, &op, "demoweb1", "Ready", "True", "Reconciled").await;
    env.finish().await;
}
