//! How the operator talks to the API server: over HTTPS it offers HTTP/2, so its watches and every
//! request it has in flight share one connection, and a burst of new DemoWebs opens no
//! connection; `--http2=false` falls back to HTTP/1.1, a connection per request in flight.

use std::collections::BTreeMap;

use demoweb_tests::emulator::{Connection, EmulatorOptions};
use demoweb_tests::harness::TestEnv;
use demoweb_tests::operator::*;

const BURST: usize = 40;

/// Requests the operator sent over each connection so far.
fn requests_by_connection(env: &TestEnv) -> BTreeMap<Connection, u64> {
    env.emulator()
        .request_counts()
        .connections()
        .into_iter()
        .filter(|(c, _)| c.agent == "demoweb-operator")
        .collect()
}

/// The connections that carried requests between `before` and `after`.
fn used_between(
    before: &BTreeMap<Connection, u64>,
    after: &BTreeMap<Connection, u64>,
) -> Vec<Connection> {
    after
        .iter()
        .filter(|(c, n)| before.get(*c).is_none_or(|b| b < *n))
        .map(|(c, _)| c.clone())
        .collect()
}

/// Applies `BURST` DemoWebs named `<prefix>-<i>` at once and waits for each to be Ready; returns
/// the connections that carried the operator's requests meanwhile, and those it opened.
async fn burst(env: &TestEnv, op: &Operator, prefix: &str) -> (Vec<Connection>, Vec<Connection>) {
    let before = requests_by_connection(env);
    let yaml: String = (0..BURST)
        .map(|i| {
            format!(
                "apiVersion: baeke.info/v1\nkind: DemoWeb\nmetadata: {{name: {prefix}-{i}}}\nspec: {{gitrepo: https://github.com/gbaeke/static-web.git}}\n---\n"
            )
        })
        .collect();
    env.apply_yaml(&yaml).await.expect_ok();
    for i in 0..BURST {
        wait_condition(
            env,
            op,
            &format!("{prefix}-{i}"),
            "Ready",
            "True",
            "Reconciled",
        )
        .await;
    }
    let after = requests_by_connection(env);
    let opened = after
        .keys()
        .filter(|c| !before.contains_key(*c))
        .cloned()
        .collect();
    (used_between(&before, &after), opened)
}

#[cfg_attr(
    real_cluster,
    ignore = "needs the emulator: counting the operator's connections"
)]
#[tokio::test(flavor = "multi_thread")]
async fn over_https_the_operators_requests_share_one_http2_connection() {
    // kube-apiserver always serves HTTPS and offers HTTP/2 in the handshake; so does the
    // emulator when it serves TLS (with a bearer token, as kubectl asks for one over HTTPS).
    let env = TestEnv::with_options(
        "http2",
        EmulatorOptions {
            tls: true,
            token: Some(format!("http2-{:016x}", rand::random::<u64>())),
            ..EmulatorOptions::default()
        },
    )
    .await;
    install_crds(&env).await;

    let op = Operator::start(&env, &["--max-concurrent-reconciles=8"]).await;
    // The first burst after the start: the watches are open, the pool has its connection.
    burst(&env, &op, "first").await;
    let (used, opened) = burst(&env, &op, "h2").await;
    assert!(
        !used.is_empty() && used.iter().all(|c| c.version == "HTTP/2.0"),
        "the operator's requests came over HTTP/1.1 or not at all: {used:?}"
    );
    assert_eq!(
        used.len(),
        1,
        "a burst of {BURST} DemoWebs, 8 applied at once, went over more than one connection: {used:?}"
    );
    assert!(
        opened.is_empty(),
        "the burst opened connections the operator did not hold before: {opened:?}"
    );
    drop(op);

    // Without HTTP/2 the requests in flight need connections of their own.
    let op = Operator::start(&env, &["--max-concurrent-reconciles=8", "--http2=false"]).await;
    let (used, _) = burst(&env, &op, "h1").await;
    assert!(
        !used.is_empty() && used.iter().all(|c| c.version == "HTTP/1.1"),
        "--http2=false spoke HTTP/2, or sent nothing: {used:?}"
    );
    assert!(
        used.len() > 1,
        "over HTTP/1.1 a burst of {BURST} DemoWebs, 8 applied at once, should need more than one connection: {used:?}"
    );
}
