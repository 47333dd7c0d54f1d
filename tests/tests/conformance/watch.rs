//! Watches: resuming from a resourceVersion, 410 Gone, bookmarks, streaming lists, kube-rs watcher/reflector.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{PostParams, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::json;

use super::DEADLINE;
use demoweb_tests::harness::TestEnv;

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}})).unwrap()
}

#[tokio::test]
#[cfg_attr(
    real_cluster,
    ignore = "needs the emulator: a resource version compacted on demand (etcd's history is compacted every 5 minutes, so version 1 of a fresh cluster is still served)"
)]
async fn watch_from_a_too_old_version_is_410_gone() {
    let env = TestEnv::new("watch_gone").await;
    let api = env.api::<ConfigMap>();
    let mut stream = api
        .watch(&WatchParams::default(), "1")
        .await
        .unwrap()
        .boxed();
    let ev = tokio::time::timeout(DEADLINE, stream.next()).await.unwrap();
    match ev {
        Some(Ok(WatchEvent::Error(s))) => {
            assert_eq!(s.code, 410);
            assert_eq!(s.reason, "Expired");
            assert!(
                s.message.starts_with("too old resource version: 1 ("),
                "{}",
                s.message
            );
        }
        Some(Err(kube::Error::Api(s))) => assert_eq!(s.code, 410),
        other => panic!("expected 410 Gone, got {other:?}"),
    }
    env.finish().await;
}

#[tokio::test]
async fn watch_resumes_from_a_resource_version() {
    let env = TestEnv::new("watch_resume").await;
    let api = env.api::<ConfigMap>();
    let a = api.create(&PostParams::default(), &cm("a")).await.unwrap();
    api.create(&PostParams::default(), &cm("b")).await.unwrap();
    api.delete("a", &Default::default()).await.unwrap();
    let rv = a.metadata.resource_version.unwrap();
    let mut stream = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    let mut got = vec![];
    while got.len() < 2 {
        match tokio::time::timeout(DEADLINE, stream.try_next())
            .await
            .unwrap()
            .unwrap()
        {
            // A real cluster also publishes its own ConfigMaps (kube-root-ca.crt) in every namespace.
            Some(WatchEvent::Added(c) | WatchEvent::Deleted(c))
                if !matches!(c.metadata.name.as_deref(), Some("a" | "b")) => {}
            Some(WatchEvent::Added(c)) => got.push(format!("ADDED {}", c.metadata.name.unwrap())),
            Some(WatchEvent::Deleted(c)) => {
                assert_eq!(
                    c.metadata.name.as_deref(),
                    Some("a"),
                    "DELETED carries the last state"
                );
                got.push(format!("DELETED {}", c.metadata.name.unwrap()))
            }
            Some(WatchEvent::Bookmark(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(got, vec!["ADDED b", "DELETED a"]);
    env.finish().await;
}

#[tokio::test]
async fn kube_watcher_and_reflector_follow_changes() {
    let env = TestEnv::new("reflector").await;
    let api = env.api::<ConfigMap>();
    let (reader, writer) = reflector::store::<ConfigMap>();
    let stream = reflector(
        writer,
        watcher(api.clone(), watcher::Config::default().labels("r=1")),
    )
    .applied_objects();
    let task = tokio::spawn(stream.for_each(|_| async {}));
    let labelled: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "x", "labels": {"r": "1"}}})).unwrap();
    api.create(&PostParams::default(), &labelled).await.unwrap();
    api.create(&PostParams::default(), &cm("unlabelled"))
        .await
        .unwrap();
    env.wait_for("the reflector to hold x", DEADLINE, || async {
        (reader.state().len() == 1).then_some(())
    })
    .await;
    api.delete("x", &Default::default()).await.unwrap();
    env.wait_for("the reflector to drop x", DEADLINE, || async {
        reader.state().is_empty().then_some(())
    })
    .await;
    task.abort();
    env.finish().await;
}

#[tokio::test]
async fn streaming_lists_end_with_the_initial_events_bookmark() {
    let env = TestEnv::new("streaming_list").await;
    let api = env.api::<ConfigMap>();
    api.create(&PostParams::default(), &cm("s1")).await.unwrap();
    let (reader, writer) = reflector::store::<ConfigMap>();
    let stream = reflector(
        writer,
        watcher(api.clone(), watcher::Config::default().streaming_lists()),
    );
    let task = tokio::spawn(stream.for_each(|_| async {}));
    // The store is only marked ready once the initial-events-end bookmark arrived.
    tokio::time::timeout(DEADLINE, reader.wait_until_ready())
        .await
        .unwrap()
        .unwrap();
    assert!(
        reader
            .state()
            .iter()
            .any(|c| c.metadata.name.as_deref() == Some("s1"))
    );
    task.abort();
    env.finish().await;
}

#[cfg_attr(real_cluster, ignore = "needs the emulator: a short bookmark interval")]
#[tokio::test]
async fn watches_that_ask_get_periodic_bookmarks() {
    let opts = demoweb_tests::emulator::EmulatorOptions {
        bookmark_interval: std::time::Duration::from_millis(100),
        ..Default::default()
    };
    let env = TestEnv::with_options("bookmarks", opts).await;
    let api = env.api::<ConfigMap>();
    let c = api.create(&PostParams::default(), &cm("b")).await.unwrap();
    let rv = c.metadata.resource_version.unwrap();
    let mut stream = api
        .watch(
            &WatchParams {
                bookmarks: true,
                ..Default::default()
            },
            &rv,
        )
        .await
        .unwrap()
        .boxed();
    match tokio::time::timeout(DEADLINE, stream.try_next())
        .await
        .unwrap()
        .unwrap()
    {
        Some(WatchEvent::Bookmark(b)) => {
            assert!(b.metadata.resource_version.parse::<u64>().unwrap() >= rv.parse().unwrap())
        }
        other => panic!("expected a bookmark, got {other:?}"),
    }
    env.finish().await;
}

#[tokio::test]
async fn metadata_watchers_get_partial_objects() {
    let env = TestEnv::new("metadata_watch").await;
    let api = env.api::<ConfigMap>();
    let (reader, writer) = reflector::store();
    let meta: kube::Api<kube::core::PartialObjectMeta<ConfigMap>> =
        kube::Api::namespaced(env.client.clone(), &env.namespace);
    let stream = reflector(writer, watcher(meta, watcher::Config::default()));
    let task = tokio::spawn(stream.for_each(|_| async {}));
    let labelled: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "m", "labels": {"k": "v"}}, "data": {"big": "x"}}),
    )
    .unwrap();
    api.create(&PostParams::default(), &labelled).await.unwrap();
    let found = env
        .wait_for("the metadata of m", DEADLINE, || async {
            reader
                .state()
                .into_iter()
                .find(|o| o.metadata.name.as_deref() == Some("m"))
        })
        .await;
    assert_eq!(found.metadata.labels.as_ref().unwrap()["k"], "v");
    task.abort();
    env.finish().await;
}
