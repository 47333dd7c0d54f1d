//! Deletion: finalizers, propagation policies, garbage collection, namespace termination.

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use super::{DEADLINE, api_code};
use demoweb_tests::harness::TestEnv;

async fn owner_and_dependents(env: &TestEnv, block: bool) -> String {
    let api = env.api::<ConfigMap>();
    let owner: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "owner"}})).unwrap();
    let owner = api.create(&PostParams::default(), &owner).await.unwrap();
    let uid = owner.metadata.uid.unwrap();
    for name in ["dep-a", "dep-b"] {
        let dep: ConfigMap = serde_json::from_value(json!({"metadata": {"name": name, "ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid, "blockOwnerDeletion": block, "controller": true}
        ]}}))
        .unwrap();
        api.create(&PostParams::default(), &dep).await.unwrap();
    }
    uid
}

async fn exists(api: &Api<ConfigMap>, name: &str) -> bool {
    api.get_opt(name).await.unwrap().is_some()
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let env = TestEnv::new("finalizers").await;
    let api = env.api::<ConfigMap>();
    let c: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "f", "finalizers": ["demoweb.test/hold"]}}),
    )
    .unwrap();
    api.create(&PostParams::default(), &c).await.unwrap();
    let res = api.delete("f", &DeleteParams::default()).await.unwrap();
    assert!(
        res.is_left(),
        "deletion is pending while a finalizer remains"
    );
    let held = api.get("f").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    // No new finalizers on an object being deleted.
    let err = api
        .patch(
            "f",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["demoweb.test/hold", "x/y"]}})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), Some(422));
    api.patch(
        "f",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    env.wait_for("f to be gone", DEADLINE, || async {
        (!exists(&api, "f").await).then_some(())
    })
    .await;
    env.finish().await;
}

#[tokio::test]
async fn background_deletion_collects_dependents() {
    let env = TestEnv::new("gc_background").await;
    let api = env.api::<ConfigMap>();
    owner_and_dependents(&env, false).await;
    env.kubectl(&["delete", "configmap", "owner"])
        .await
        .expect_ok();
    env.wait_for("dependents to be collected", DEADLINE, || async {
        (!exists(&api, "dep-a").await && !exists(&api, "dep-b").await).then_some(())
    })
    .await;
    env.finish().await;
}

#[tokio::test]
async fn foreground_cascade_deletes_dependents_before_the_owner() {
    let env = TestEnv::new("gc_foreground").await;
    let api = env.api::<ConfigMap>();
    owner_and_dependents(&env, true).await;
    // A finalizer on one dependent keeps the owner waiting in foregroundDeletion.
    api.patch(
        "dep-a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": ["demoweb.test/hold"]}})),
    )
    .await
    .unwrap();
    env.kubectl(&[
        "delete",
        "configmap",
        "owner",
        "--cascade=foreground",
        "--wait=false",
    ])
    .await
    .expect_ok();
    env.wait_for("owner to wait for its dependents", DEADLINE, || async {
        let o = api.get_opt("owner").await.unwrap()?;
        let fins = o.metadata.finalizers.unwrap_or_default();
        (fins.contains(&"foregroundDeletion".to_string()) && !exists(&api, "dep-b").await)
            .then_some(())
    })
    .await;
    assert!(exists(&api, "owner").await);
    api.patch(
        "dep-a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    env.wait_for("owner and dependents to be gone", DEADLINE, || async {
        (!exists(&api, "owner").await && !exists(&api, "dep-a").await).then_some(())
    })
    .await;
    env.finish().await;
}

#[tokio::test]
async fn kubectl_foreground_delete_waits_for_dependents() {
    let env = TestEnv::new("kubectl_foreground").await;
    let api = env.api::<ConfigMap>();
    owner_and_dependents(&env, true).await;
    // dep-a is held by a finalizer, so a foreground deletion cannot finish until it is released.
    api.patch(
        "dep-a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": ["demoweb.test/hold"]}})),
    )
    .await
    .unwrap();
    let delete = {
        let kubeconfig = env.kubeconfig_path.clone();
        let namespace = env.namespace.clone();
        let kubectl = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
        tokio::process::Command::new(kubectl)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["-n", &namespace, "delete", "configmap", "owner"])
            .args(["--cascade=foreground", "--timeout=120s"])
            .kill_on_drop(true)
            .output()
    };
    let mut delete = Box::pin(delete);
    // The free dependent goes first, the held one is marked for deletion...
    env.wait_for(
        "dep-b gone and dep-a marked for deletion",
        DEADLINE,
        || async {
            let held = api.get_opt("dep-a").await.unwrap()?;
            (held.metadata.deletion_timestamp.is_some() && !exists(&api, "dep-b").await)
                .then_some(())
        },
    )
    .await;
    // ...and the owner waits for it, in foreground deletion, with kubectl still waiting.
    let owner = api.get("owner").await.expect("the owner waits for dep-a");
    assert!(owner.metadata.deletion_timestamp.is_some());
    assert!(
        owner
            .metadata
            .finalizers
            .iter()
            .flatten()
            .any(|f| f == "foregroundDeletion"),
        "{:?}",
        owner.metadata.finalizers
    );
    assert!(
        futures::poll!(delete.as_mut()).is_pending(),
        "kubectl returned before the dependents were gone"
    );
    api.patch(
        "dep-a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    let out = tokio::time::timeout(DEADLINE, delete)
        .await
        .expect("kubectl finishes once the dependents are gone")
        .expect("kubectl ran");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!exists(&api, "owner").await);
    assert!(!exists(&api, "dep-a").await);
    env.finish().await;
}

#[tokio::test]
async fn orphan_deletion_keeps_dependents_without_owner_references() {
    let env = TestEnv::new("gc_orphan").await;
    let api = env.api::<ConfigMap>();
    owner_and_dependents(&env, true).await;
    env.kubectl(&["delete", "configmap", "owner", "--cascade=orphan"])
        .await
        .expect_ok();
    env.wait_for("owner gone", DEADLINE, || async {
        (!exists(&api, "owner").await).then_some(())
    })
    .await;
    for name in ["dep-a", "dep-b"] {
        let d = env
            .wait_for("owner references removed", DEADLINE, || async {
                let d = api.get(name).await.unwrap();
                d.metadata
                    .owner_references
                    .as_ref()
                    .is_none_or(|r| r.is_empty())
                    .then_some(d)
            })
            .await;
        assert!(d.metadata.deletion_timestamp.is_none());
    }
    env.finish().await;
}

#[tokio::test]
async fn dependents_of_a_missing_owner_are_collected() {
    let env = TestEnv::new("gc_dangling").await;
    let api = env.api::<ConfigMap>();
    let dep: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "orphaned", "ownerReferences": [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "ghost", "uid": "0c0ffee0-0000-4000-8000-000000000000"}
    ]}}))
    .unwrap();
    api.create(&PostParams::default(), &dep).await.unwrap();
    env.wait_for(
        "the dependent of a missing owner to go",
        DEADLINE,
        || async { (!exists(&api, "orphaned").await).then_some(()) },
    )
    .await;
    env.finish().await;
}

#[tokio::test]
async fn deleting_a_namespace_deletes_its_contents() {
    let env = TestEnv::new("namespace_delete").await;
    let name = format!("{}-x", env.namespace);
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(env.client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &name);
    let c: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "inside"}})).unwrap();
    api.create(&PostParams::default(), &c).await.unwrap();
    let held: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "held", "finalizers": ["demoweb.test/hold"]}}),
    )
    .unwrap();
    api.create(&PostParams::default(), &held).await.unwrap();
    Api::<Namespace>::all(env.client.clone())
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    let ns = Api::<Namespace>::all(env.client.clone())
        .get_opt(&name)
        .await
        .unwrap();
    let ns = ns.expect("a finalizer holds the namespace in Terminating");
    assert_eq!(
        ns.status.and_then(|s| s.phase).as_deref(),
        Some("Terminating")
    );
    // Nothing new may be created in a terminating namespace.
    let c2: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "late"}})).unwrap();
    let refused = api
        .create(&PostParams::default(), &c2)
        .await
        .expect_err("created in a terminating namespace");
    assert_eq!(api_code(&refused), Some(403), "{refused}");
    assert!(
        refused
            .to_string()
            .contains("because it is being terminated"),
        "{refused}"
    );
    // Its contents go; the held object is marked and waits for its finalizer.
    env.wait_for(
        "the namespace's contents to be deleted",
        DEADLINE,
        || async {
            let held = api.get_opt("held").await.unwrap()?;
            (held.metadata.deletion_timestamp.is_some()
                && api.get_opt("inside").await.unwrap().is_none())
            .then_some(())
        },
    )
    .await;
    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    env.wait_for("namespace gone", DEADLINE, || async {
        Api::<Namespace>::all(env.client.clone())
            .get_opt(&name)
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    env.finish().await;
}

#[tokio::test]
async fn a_finalizer_keeps_its_namespace_terminating() {
    let env = TestEnv::new("namespace_finalizer").await;
    let name = format!("{}-f", env.namespace);
    let namespaces = Api::<Namespace>::all(env.client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &name);
    let held: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "held", "finalizers": ["demoweb.test/hold"]}}),
    )
    .unwrap();
    api.create(&PostParams::default(), &held).await.unwrap();
    namespaces
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    env.wait_for(
        "the held object to be marked for deletion",
        DEADLINE,
        || async {
            api.get("held")
                .await
                .ok()?
                .metadata
                .deletion_timestamp
                .map(|_| ())
        },
    )
    .await;
    let ns = namespaces.get(&name).await.unwrap();
    assert_eq!(
        ns.status.and_then(|s| s.phase).as_deref(),
        Some("Terminating")
    );
    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    env.wait_for("namespace gone", DEADLINE, || async {
        namespaces
            .get_opt(&name)
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    env.finish().await;
}
