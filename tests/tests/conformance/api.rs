//! Core API semantics through kube-rs: conflicts, not-found texts, generateName, selectors, paging.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use super::{api_code, api_message};
use demoweb_tests::harness::TestEnv;

fn cm(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}),
    )
    .unwrap()
}

#[tokio::test]
async fn stale_update_is_a_409_with_the_real_message() {
    let env = TestEnv::new("stale_update").await;
    let api = env.api::<ConfigMap>();
    let created = api
        .create(&PostParams::default(), &cm("c", json!({})))
        .await
        .unwrap();
    let mut first = created.clone();
    first.data = Some([("k".to_string(), "1".to_string())].into());
    api.replace("c", &PostParams::default(), &first)
        .await
        .unwrap();
    let mut stale = created;
    stale.data = Some([("k".to_string(), "2".to_string())].into());
    let err = api
        .replace("c", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), Some(409));
    assert_eq!(
        api_message(&err),
        "Operation cannot be fulfilled on configmaps \"c\": the object has been modified; please apply your changes to the latest version and try again"
    );
    env.finish().await;
}

#[tokio::test]
async fn create_twice_is_already_exists_and_missing_is_not_found() {
    let env = TestEnv::new("already_exists").await;
    let api = env.api::<ConfigMap>();
    api.create(&PostParams::default(), &cm("c", json!({})))
        .await
        .unwrap();
    let err = api
        .create(&PostParams::default(), &cm("c", json!({})))
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), Some(409));
    assert_eq!(api_message(&err), "configmaps \"c\" already exists");
    let err = api.get("nope").await.unwrap_err();
    assert_eq!(api_code(&err), Some(404));
    assert_eq!(api_message(&err), "configmaps \"nope\" not found");
    let out = env.kubectl(&["get", "deployment", "nope"]).await;
    assert!(
        out.expect_err()
            .contains("deployments.apps \"nope\" not found"),
        "{}",
        out.stderr
    );
    env.finish().await;
}

#[tokio::test]
async fn objects_in_a_missing_namespace_are_not_found() {
    let env = TestEnv::new("missing_namespace").await;
    let api: kube::Api<ConfigMap> =
        kube::Api::namespaced(env.client.clone(), "no-such-namespace-x1");
    let err = api
        .create(&PostParams::default(), &cm("c", json!({})))
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), Some(404));
    assert_eq!(
        api_message(&err),
        "namespaces \"no-such-namespace-x1\" not found"
    );
    env.finish().await;
}

#[tokio::test]
async fn generate_name_gets_a_random_suffix() {
    let env = TestEnv::new("generate_name").await;
    let api = env.api::<ConfigMap>();
    let obj: ConfigMap =
        serde_json::from_value(json!({"metadata": {"generateName": "gen-"}})).unwrap();
    let a = api.create(&PostParams::default(), &obj).await.unwrap();
    let b = api.create(&PostParams::default(), &obj).await.unwrap();
    let (a, b) = (a.metadata.name.unwrap(), b.metadata.name.unwrap());
    assert!(a.starts_with("gen-") && a.len() == 9, "{a}");
    assert_ne!(a, b);
    env.finish().await;
}

#[tokio::test]
async fn metadata_is_set_by_the_server() {
    let env = TestEnv::new("server_metadata").await;
    let api = env.api::<ConfigMap>();
    let a = api
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    let b = api
        .create(&PostParams::default(), &cm("b", json!({})))
        .await
        .unwrap();
    let rv = |c: &ConfigMap| {
        c.metadata
            .resource_version
            .clone()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert!(rv(&b) > rv(&a), "resourceVersions increase");
    assert_eq!(a.metadata.uid.as_ref().map(String::len), Some(36));
    assert!(a.metadata.creation_timestamp.is_some());
    assert_eq!(a.metadata.generation, None, "ConfigMaps have no generation");
    // A no-op update keeps the resourceVersion.
    let same = api.replace("a", &PostParams::default(), &a).await.unwrap();
    assert_eq!(same.metadata.resource_version, a.metadata.resource_version);
    env.finish().await;
}

#[tokio::test]
async fn label_selectors_equality_and_set_based() {
    let env = TestEnv::new("label_selectors").await;
    let api = env.api::<ConfigMap>();
    for (n, l) in [
        ("a", json!({"app": "web", "tier": "front"})),
        ("b", json!({"app": "web", "tier": "back"})),
        ("c", json!({"app": "db"})),
    ] {
        api.create(&PostParams::default(), &cm(n, l)).await.unwrap();
    }
    let names = |sel: &'static str| {
        let api = api.clone();
        async move {
            let mut v: Vec<String> = api
                .list(&ListParams::default().labels(sel))
                .await
                .unwrap()
                .items
                .into_iter()
                .filter_map(|c| c.metadata.name)
                // A cluster's own ConfigMap, created in every namespace (on a real cluster, eventually).
                .filter(|n| n != "kube-root-ca.crt")
                .collect();
            v.sort();
            v.join(",")
        }
    };
    assert_eq!(names("app=web").await, "a,b");
    assert_eq!(names("app!=web").await, "c");
    assert_eq!(names("tier in (front,side)").await, "a");
    assert_eq!(names("tier notin (front),app").await, "b,c");
    assert_eq!(names("!tier,app").await, "c");
    assert_eq!(names("tier").await, "a,b");
    let out = env
        .kubectl(&["get", "cm", "-l", "app=web,tier=back", "-o", "name"])
        .await
        .expect_ok();
    assert_eq!(out.trim(), "configmap/b");
    env.finish().await;
}

#[tokio::test]
async fn field_selectors_on_name_and_unsupported_fields() {
    let env = TestEnv::new("field_selectors").await;
    let api = env.api::<ConfigMap>();
    api.create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    api.create(&PostParams::default(), &cm("b", json!({})))
        .await
        .unwrap();
    let l = api
        .list(&ListParams::default().fields("metadata.name=b"))
        .await
        .unwrap();
    assert_eq!(l.items.len(), 1);
    assert_eq!(l.items[0].metadata.name.as_deref(), Some("b"));
    let err = api
        .list(&ListParams::default().fields("data.k=v"))
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), Some(400));
    // ConfigMaps have no field selectors but name and namespace: apimachinery's default
    // conversion refuses the rest (kinds with more, and custom resources, say "field label not
    // supported").
    assert_eq!(
        api_message(&err),
        "\"data.k\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
    );
    env.finish().await;
}

#[tokio::test]
async fn list_pages_with_limit_and_continue() {
    let env = TestEnv::new("list_paging").await;
    let api = env.api::<ConfigMap>();
    for i in 0..7 {
        api.create(
            &PostParams::default(),
            &cm(&format!("p{i}"), json!({"paged": "yes"})),
        )
        .await
        .unwrap();
    }
    let lp = ListParams::default().labels("paged=yes").limit(3);
    let first = api.list(&lp).await.unwrap();
    assert_eq!(first.items.len(), 3);
    let token = first.metadata.continue_.clone().expect("a continue token");
    // Objects created after the first page do not show up in later pages: one consistent snapshot.
    api.create(&PostParams::default(), &cm("p9", json!({"paged": "yes"})))
        .await
        .unwrap();
    let second = api.list(&lp.clone().continue_token(&token)).await.unwrap();
    let third = api
        .list(
            &lp.clone()
                .continue_token(second.metadata.continue_.as_deref().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(third.items.len(), 1);
    assert!(
        third
            .metadata
            .continue_
            .as_deref()
            .unwrap_or_default()
            .is_empty()
    );
    let all: Vec<String> = [first, second, third]
        .into_iter()
        .flat_map(|l| l.items)
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(all, vec!["p0", "p1", "p2", "p3", "p4", "p5", "p6"]);
    env.finish().await;
}

#[tokio::test]
async fn merge_and_json_patches() {
    let env = TestEnv::new("patches").await;
    let api = env.api::<ConfigMap>();
    api.create(&PostParams::default(), &cm("c", json!({"a": "1"})))
        .await
        .unwrap();
    let p = api
        .patch(
            "c",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"k": null, "n": "2"}})),
        )
        .await
        .unwrap();
    assert_eq!(p.data, Some([("n".to_string(), "2".to_string())].into()));
    env.kubectl(&[
        "patch",
        "cm",
        "c",
        "--type=json",
        "-p",
        r#"[{"op": "replace", "path": "/metadata/labels/a", "value": "3"}]"#,
    ])
    .await
    .expect_ok();
    assert_eq!(
        api.get("c").await.unwrap().metadata.labels.unwrap()["a"],
        "3"
    );
    env.finish().await;
}

#[tokio::test]
async fn dry_run_validates_without_storing() {
    let env = TestEnv::new("dry_run").await;
    let api = env.api::<ConfigMap>();
    let out = api
        .create(
            &PostParams {
                dry_run: true,
                ..Default::default()
            },
            &cm("d", json!({})),
        )
        .await
        .unwrap();
    assert_eq!(out.metadata.name.as_deref(), Some("d"));
    assert_eq!(api_code(&api.get("d").await.unwrap_err()), Some(404));
    env.finish().await;
}

#[tokio::test]
async fn events_from_events_k8s_io_show_in_kubectl_describe() {
    let env = TestEnv::new("events").await;
    let api = env.api::<ConfigMap>();
    let c = api
        .create(&PostParams::default(), &cm("described", json!({})))
        .await
        .unwrap();
    let ev: k8s_openapi::api::events::v1::Event = serde_json::from_value(json!({
        "metadata": {"name": "described.1"},
        "eventTime": "2024-01-01T00:00:00.000000Z",
        "reportingController": "demoweb.test/conformance",
        "reportingInstance": "conformance-1",
        "action": "Testing",
        "reason": "Conformed",
        "type": "Normal",
        "note": "the emulator keeps events",
        "regarding": {"apiVersion": "v1", "kind": "ConfigMap", "name": "described", "namespace": env.namespace, "uid": c.metadata.uid},
    }))
    .unwrap();
    env.api::<k8s_openapi::api::events::v1::Event>()
        .create(&PostParams::default(), &ev)
        .await
        .unwrap();
    // The same event through the core API, as kubectl reads it.
    let core = env
        .api::<k8s_openapi::api::core::v1::Event>()
        .get("described.1")
        .await
        .unwrap();
    assert_eq!(core.message.as_deref(), Some("the emulator keeps events"));
    assert_eq!(core.involved_object.name.as_deref(), Some("described"));
    // And back through events.k8s.io, as it was written.
    let back = env
        .api::<k8s_openapi::api::events::v1::Event>()
        .get("described.1")
        .await
        .unwrap();
    assert_eq!(back.note.as_deref(), Some("the emulator keeps events"));
    assert_eq!(
        back.regarding.and_then(|r| r.name).as_deref(),
        Some("described")
    );
    let out = env
        .kubectl(&["describe", "configmap", "described"])
        .await
        .expect_ok();
    assert!(
        out.contains("Conformed") && out.contains("the emulator keeps events"),
        "{out}"
    );
    env.finish().await;
}

#[tokio::test]
async fn kube_event_recorder_creates_and_updates_a_series() {
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let env = TestEnv::new("event_recorder").await;
    let api = env.api::<ConfigMap>();
    let c = api
        .create(&PostParams::default(), &cm("recorded", json!({})))
        .await
        .unwrap();
    let recorder = Recorder::new(
        env.client.clone(),
        Reporter {
            controller: "demoweb-conformance".into(),
            instance: Some("i-1".into()),
        },
    );
    let reference = kube::Resource::object_ref(&c, &());
    let ev = Event {
        type_: EventType::Warning,
        reason: "Repeated".into(),
        note: Some("happens twice".into()),
        action: "Testing".into(),
        secondary: None,
    };
    recorder.publish(&ev, &reference).await.unwrap();
    recorder.publish(&ev, &reference).await.unwrap();
    let events = env
        .api::<k8s_openapi::api::events::v1::Event>()
        .list(&ListParams::default())
        .await
        .unwrap();
    let ours: Vec<_> = events
        .items
        .iter()
        .filter(|e| e.reason.as_deref() == Some("Repeated"))
        .collect();
    assert_eq!(ours.len(), 1, "one event with a series");
    assert_eq!(ours[0].series.as_ref().map(|s| s.count), Some(2));
    let out = env
        .kubectl(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=recorded",
        ])
        .await
        .expect_ok();
    assert!(
        out.contains("Repeated") && out.contains("happens twice"),
        "{out}"
    );
    env.finish().await;
}

#[cfg_attr(
    real_cluster,
    ignore = "needs the emulator: expiring continue tokens on demand"
)]
#[tokio::test]
async fn an_expired_continue_token_is_410_gone() {
    let env = TestEnv::new("continue_expired").await;
    let api = env.api::<ConfigMap>();
    for i in 0..2 {
        api.create(
            &PostParams::default(),
            &cm(&format!("e{i}"), json!({"exp": "y"})),
        )
        .await
        .unwrap();
    }
    let lp = ListParams::default().labels("exp=y").limit(1);
    let token = api.list(&lp).await.unwrap().metadata.continue_.unwrap();
    // Many later paged lists push the first snapshot out, like an etcd compaction would.
    for _ in 0..80 {
        api.list(&lp).await.unwrap();
    }
    let err = api
        .list(&lp.clone().continue_token(&token))
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), Some(410));
    assert!(
        api_message(&err).starts_with("The provided continue parameter is too old"),
        "{}",
        api_message(&err)
    );
    env.finish().await;
}
