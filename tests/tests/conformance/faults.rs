//! Fault injection, auth and request counters (emulator only: these tests skip on a real cluster).

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ListParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;

use super::{DEADLINE, api_code};
use demoweb_tests::emulator::{Emulator, EmulatorOptions, ErrorRule};
use demoweb_tests::harness::TestEnv;

/// A client that reports errors as they come instead of retrying 429/503 like kube's default.
fn raw_client(emu: &demoweb_tests::emulator::EmulatorHandle) -> kube::Client {
    let mut config = kube::Config::new(emu.url().parse().unwrap());
    config.default_retry = false;
    kube::Client::try_from(config).unwrap()
}

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}})).unwrap()
}

#[cfg_attr(real_cluster, ignore = "needs the emulator: error injection")]
#[tokio::test]
async fn injected_errors_match_verb_and_resource() {
    let env = TestEnv::new("fault_errors").await;
    let emu = env.emulator();
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(raw_client(emu), &env.namespace);
    emu.faults().inject(
        ErrorRule::new(503)
            .verb("list")
            .resource("configmaps")
            .times(2),
    );
    emu.faults().inject(
        ErrorRule::new(429)
            .verb("create")
            .name("busy")
            .retry_after(7),
    );
    for _ in 0..2 {
        assert_eq!(
            api_code(&api.list(&ListParams::default()).await.unwrap_err()),
            Some(503)
        );
    }
    api.list(&ListParams::default()).await.unwrap();
    api.create(&PostParams::default(), &cm("fine"))
        .await
        .unwrap();
    let err = api
        .create(&PostParams::default(), &cm("busy"))
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), Some(429));
    emu.faults().clear();
    api.create(&PostParams::default(), &cm("busy"))
        .await
        .unwrap();
    env.finish().await;
}

#[cfg_attr(real_cluster, ignore = "needs the emulator: outages")]
#[tokio::test]
async fn outage_and_recovery() {
    let env = TestEnv::new("fault_outage").await;
    let emu = env.emulator();
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(raw_client(emu), &env.namespace);
    emu.faults().set_outage(true);
    assert_eq!(api_code(&api.get("x").await.unwrap_err()), Some(503));
    emu.faults().set_outage(false);
    api.create(&PostParams::default(), &cm("x")).await.unwrap();
    env.finish().await;
}

#[cfg_attr(real_cluster, ignore = "needs the emulator: latency")]
#[tokio::test]
async fn latency_is_added_to_requests() {
    let env = TestEnv::new("fault_latency").await;
    let emu = env.emulator();
    emu.faults().set_latency(Duration::from_millis(300));
    let start = std::time::Instant::now();
    env.api::<ConfigMap>()
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(start.elapsed() >= Duration::from_millis(300));
    env.finish().await;
}

#[cfg_attr(real_cluster, ignore = "needs the emulator: cutting watches")]
#[tokio::test]
async fn watchers_recover_from_cut_streams_and_forced_410() {
    let env = TestEnv::new("fault_watch").await;
    let emu = env.emulator();
    let api = env.api::<ConfigMap>();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    // Counts the watcher's (re)lists: each starts with an Init event.
    let lists = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stream = watcher(api.clone(), watcher::Config::default());
    let task = tokio::spawn(stream.for_each({
        let lists = lists.clone();
        move |event| {
            match event {
                Ok(watcher::Event::Init) => {
                    lists.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                    let _ = tx.send(o.metadata.name.unwrap_or_default());
                }
                _ => {}
            }
            async {}
        }
    }));
    let mut wait_name = async |name: &str| {
        tokio::time::timeout(DEADLINE, async {
            while let Some(n) = rx.recv().await {
                if n == name {
                    return;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("watcher saw {name}"));
    };
    api.create(&PostParams::default(), &cm("before"))
        .await
        .unwrap();
    wait_name("before").await;
    let counted = |verb: &str| {
        emu.request_counts()
            .snapshot()
            .get(&(verb.into(), "configmaps".into()))
            .copied()
            .unwrap_or(0)
    };
    let count = || counted("watch");
    env.wait_for("the watcher to watch", DEADLINE, || async {
        (count() > 0).then_some(())
    })
    .await;
    let watches = count();
    let (server_lists, client_lists) = (
        counted("list"),
        lists.load(std::sync::atomic::Ordering::SeqCst),
    );
    assert_eq!(client_lists, 1, "one initial list");
    emu.faults().expire_next_watch();
    emu.faults().cut_watches();
    api.create(&PostParams::default(), &cm("after"))
        .await
        .unwrap();
    wait_name("after").await;
    // "after" may arrive through a relist (after the forced 410) before the next watch starts.
    env.wait_for("the watcher to watch again", DEADLINE, || async {
        (count() > watches).then_some(())
    })
    .await;
    // The 410 made the watcher list again (a cut alone only resumes the watch).
    env.wait_for("the watcher to relist after 410 Gone", DEADLINE, || async {
        (lists.load(std::sync::atomic::Ordering::SeqCst) > client_lists
            && counted("list") > server_lists)
            .then_some(())
    })
    .await;
    task.abort();
    env.finish().await;
}

/// kube-rs sends the token over plain HTTP; kubectl (client-go) never sends credentials over
/// `http://` (kubernetes/kubectl#744), so token auth is for kube clients only.
#[tokio::test]
async fn bearer_token_is_required_when_configured() {
    let emu = Emulator::start(EmulatorOptions {
        token: Some("s3cret".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    // The handle's own client carries the token.
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(emu.client(), "default");
    api.list(&ListParams::default()).await.unwrap();
    let anonymous = kube::Client::try_from(kube::Config::new(emu.url().parse().unwrap())).unwrap();
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(anonymous, "default");
    assert_eq!(
        api_code(&api.list(&ListParams::default()).await.unwrap_err()),
        Some(401)
    );
    emu.shutdown().await;
}

#[cfg_attr(real_cluster, ignore = "needs the emulator: request counters")]
#[tokio::test]
async fn requests_are_counted_by_verb_and_resource() {
    let env = TestEnv::new("request_counts").await;
    let emu = env.emulator();
    emu.request_counts().reset();
    let api = env.api::<ConfigMap>();
    api.create(&PostParams::default(), &cm("a")).await.unwrap();
    api.get("a").await.unwrap();
    api.list(&ListParams::default()).await.unwrap();
    api.list(&ListParams::default()).await.unwrap();
    let counts = emu.request_counts().snapshot();
    let n = |verb: &str| {
        counts
            .get(&(verb.to_string(), "configmaps".to_string()))
            .copied()
            .unwrap_or(0)
    };
    assert_eq!((n("create"), n("get"), n("list"), n("watch")), (1, 1, 2, 0));
    env.finish().await;
}

#[tokio::test]
async fn the_emulator_binary_serves_and_writes_its_kubeconfig() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_emulator"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !kubeconfig.exists() {
        assert!(start.elapsed() < DEADLINE, "no kubeconfig written");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let out =
        tokio::process::Command::new(std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into()))
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["get", "namespace", "default", "-o", "name"])
            .output()
            .await
            .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "namespace/default",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    child.kill().await.unwrap();
}
