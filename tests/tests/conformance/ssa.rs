//! Server-side apply as controllers use it: idempotent re-applies, status through /status, and the
//! project's own CRDs served by the emulator.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use serde_json::json;

use super::{api_code, api_message, dynamic, widgets};
use demoweb_tests::harness::TestEnv;

fn deployment() -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 8080, "name": "http"}],
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}}}]}}}
    })
}

/// An applied configuration may leave `metadata.name` out when it updates an object (the URL
/// names it), but not when it creates one, and it may not name another object.
#[tokio::test]
async fn an_applied_configuration_needs_no_name_to_update() {
    let env = TestEnv::new("ssa_name_from_url").await;
    let pp = PatchParams::apply("conformance-controller");
    let api = env.api::<ConfigMap>();
    let config = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "1"}});
    let err = api
        .patch("named-by-url", &pp, &Patch::Apply(&config))
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), Some(400));
    assert_eq!(
        api_message(&err),
        "the name of the object (named-by-url based on URL) was undeterminable: name must be provided"
    );
    let named = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "named-by-url"}, "data": {"k": "1"}});
    api.patch("named-by-url", &pp, &Patch::Apply(&named))
        .await
        .unwrap();
    let config = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "2"}});
    let updated = api
        .patch("named-by-url", &pp, &Patch::Apply(&config))
        .await
        .unwrap();
    assert_eq!(updated.data.unwrap()["k"], "2");
    let other = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "other"}});
    let err = api
        .patch("named-by-url", &pp, &Patch::Apply(&other))
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), Some(400));
    assert_eq!(
        api_message(&err),
        "the name of the object (other) does not match the name on the URL (named-by-url)"
    );
    env.finish().await;
}

/// A resourceVersion in an applied configuration is a precondition on the live object: an apply
/// that finds no object creates it whatever resourceVersion the configuration carries, and one
/// that finds the object at another version is refused and changes nothing. A uid is a
/// precondition too, which no absent object meets. (The operator creates children with a
/// resourceVersion no object is at: a create that never takes over an existing object.)
#[tokio::test]
async fn a_resource_version_in_an_applied_configuration_is_a_precondition() {
    let env = TestEnv::new("ssa_rv_precondition").await;
    let pp = PatchParams::apply("conformance-controller").force();
    let config_maps = env.api::<ConfigMap>();
    let config = |data: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "create-only", "resourceVersion": "1"}, "data": {"k": data}})
    };
    let created = config_maps
        .patch("create-only", &pp, &Patch::Apply(&config("first")))
        .await
        .expect("an apply that finds nothing creates, whatever its resourceVersion");
    let version = created.metadata.resource_version.clone().unwrap();
    assert_ne!(version, "1", "the server gives the version");
    assert_eq!(created.data.unwrap()["k"], "first");

    let err = config_maps
        .patch("create-only", &pp, &Patch::Apply(&config("second")))
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), Some(409));
    assert_eq!(
        api_message(&err),
        "Operation cannot be fulfilled on configmaps \"create-only\": the object has been modified; please apply your changes to the latest version and try again"
    );
    let live = config_maps.get("create-only").await.unwrap();
    assert_eq!(live.metadata.resource_version.unwrap(), version);
    assert_eq!(
        live.data.unwrap()["k"],
        "first",
        "the refused apply changed nothing"
    );

    let with_uid = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "absent", "uid": "6f1d7a9e-0000-4000-8000-000000000001"}, "data": {"k": "v"}});
    let err = config_maps
        .patch("absent", &pp, &Patch::Apply(&with_uid))
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), Some(409));
    assert_eq!(
        api_message(&err),
        "Operation cannot be fulfilled on configmaps \"absent\": uid mismatch: the provided object specified uid 6f1d7a9e-0000-4000-8000-000000000001, and no existing object was found"
    );
    assert!(config_maps.get_opt("absent").await.unwrap().is_none());
    env.finish().await;
}

#[tokio::test]
async fn reapplying_the_same_configuration_writes_nothing() {
    let env = TestEnv::new("ssa_idempotent").await;
    let pp = PatchParams::apply("conformance-controller");
    let deployments = env.api::<Deployment>();
    let first = deployments
        .patch("web", &pp, &Patch::Apply(deployment()))
        .await
        .unwrap();
    // A Deployment controller keeps writing the status (so the resourceVersion moves on a real
    // cluster); a no-op apply leaves the spec's generation and this manager's entry untouched.
    let again = deployments
        .patch("web", &pp, &Patch::Apply(deployment()))
        .await
        .unwrap();
    assert_eq!(again.metadata.generation, first.metadata.generation);
    let entry = |d: &Deployment| {
        d.metadata
            .managed_fields
            .iter()
            .flatten()
            .find(|m| {
                m.manager.as_deref() == Some("conformance-controller") && m.subresource.is_none()
            })
            .map(|m| (m.time.clone(), m.fields_v1.clone()))
            .expect("the manager's entry")
    };
    assert_eq!(entry(&again), entry(&first), "no write on a re-apply");

    // Nothing else writes a ConfigMap: a no-op apply keeps its resourceVersion.
    let config_maps = env.api::<ConfigMap>();
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web"},
        "data": {"site": "on"}});
    let first = config_maps
        .patch("web", &pp, &Patch::Apply(&cm))
        .await
        .unwrap();
    let again = config_maps
        .patch("web", &pp, &Patch::Apply(&cm))
        .await
        .unwrap();
    assert_eq!(
        again.metadata.resource_version, first.metadata.resource_version,
        "no write on a re-apply"
    );

    let services = env.api::<Service>();
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}});
    let first = services
        .patch("web", &pp, &Patch::Apply(&svc))
        .await
        .unwrap();
    let again = services
        .patch("web", &pp, &Patch::Apply(&svc))
        .await
        .unwrap();
    assert_eq!(
        again.metadata.resource_version,
        first.metadata.resource_version
    );
    assert_eq!(
        again.spec.unwrap().cluster_ip,
        first.spec.unwrap().cluster_ip,
        "the allocated clusterIP stays"
    );
    env.finish().await;
}

#[tokio::test]
async fn a_field_a_manager_stops_applying_is_removed() {
    let env = TestEnv::new("ssa_removal").await;
    let pp = PatchParams::apply("conformance-controller");
    let api = env.api::<k8s_openapi::api::core::v1::ConfigMap>();
    api.patch("c", &pp, &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}})))
        .await
        .unwrap();
    let c = api
        .patch("c", &pp, &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}})))
        .await
        .unwrap();
    assert_eq!(c.data.unwrap().keys().collect::<Vec<_>>(), vec!["a"]);
    env.finish().await;
}

#[tokio::test]
async fn status_is_applied_through_the_status_subresource() {
    let env = TestEnv::new("ssa_status").await;
    let api = widgets(&env).await;
    let pp = PatchParams::apply("conformance-controller").force();
    let w = json!({"apiVersion": "conformance.demoweb.test/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"color": "red"}});
    api.patch("w", &pp, &Patch::Apply(&w)).await.unwrap();
    let status = json!({"apiVersion": "conformance.demoweb.test/v1", "kind": "Widget", "metadata": {"name": "w"},
        "status": {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True"}]}});
    let after = api
        .patch_status("w", &pp, &Patch::Apply(&status))
        .await
        .unwrap();
    assert_eq!(after.data["status"]["conditions"][0]["status"], "True");
    assert_eq!(after.metadata.generation, Some(1));
    let again = api
        .patch_status("w", &pp, &Patch::Apply(&status))
        .await
        .unwrap();
    assert_eq!(
        again.metadata.resource_version, after.metadata.resource_version,
        "an unchanged status writes nothing"
    );
    // Re-applying the spec leaves the status alone.
    let after_spec = api.patch("w", &pp, &Patch::Apply(&w)).await.unwrap();
    assert_eq!(after_spec.data["status"]["conditions"][0]["type"], "Ready");
    let table = env.kubectl(&["get", "widget", "w"]).await.expect_ok();
    assert!(
        table
            .lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .any(|c| c == "True"),
        "{table}"
    );
    env.finish().await;
}

#[cfg_attr(
    all(real_cluster, not(cluster_wide)),
    ignore = "changes cluster-wide objects (installs the cluster-wide identity CRDs, which on a real cluster are the cluster's): runs only on a cluster the suite owns (DEMOWEB_TEST_CLUSTER_WIDE=1), one at a time"
)]
#[tokio::test]
async fn cluster_wide_the_project_crds_are_accepted_and_served() {
    let env = TestEnv::cluster_wide("project_crds").await;
    env.install_crds(&demoweb_crd::all_crds()).await;
    // Installing again (as every test on a shared cluster may) changes nothing.
    env.install_crds(&demoweb_crd::all_crds()).await;
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("baeke.info", "v1", "DemoWeb"),
        "demowebs",
    );
    let api: Api<DynamicObject> = Api::namespaced_with(env.client.clone(), &env.namespace, &ar);
    let seed = dynamic(
        json!({"apiVersion": "baeke.info/v1", "kind": "DemoWeb", "metadata": {"name": "web"},
        "spec": {"replicas": 1, "gitrepo": "https://github.com/gbaeke/static-web.git"}}),
    );
    api.create(&PostParams::default(), &seed).await.unwrap();
    let out = env.kubectl(&["get", "dweb"]).await.expect_ok();
    assert!(out.starts_with("NAME"), "{out}");
    assert!(
        out.lines().nth(1).is_some_and(|l| l.starts_with("web ")),
        "{out}"
    );
    env.finish().await;
}

/// Owners of `spec.replicas`, by manager name.
fn replicas_owners(d: &Deployment) -> Vec<String> {
    let mut owners: Vec<String> = d
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|e| {
            e.fields_v1
                .as_ref()
                .is_some_and(|f| f.0["f:spec"].get("f:replicas").is_some())
        })
        .filter_map(|e| e.manager.clone())
        .collect();
    owners.sort();
    owners
}

#[tokio::test]
async fn scale_subresource_writes_track_replicas_ownership() {
    let env = TestEnv::new("ssa_scale").await;
    let deployments = env.api::<Deployment>();
    let applier = PatchParams::apply("apply-test");
    deployments
        .patch("web", &applier, &Patch::Apply(deployment()))
        .await
        .unwrap();
    let scale_path = format!(
        "/apis/apps/v1/namespaces/{}/deployments/web/scale",
        env.namespace
    );

    // An update through /scale (what `kubectl scale` and the autoscaler do) takes the field.
    deployments
        .patch_scale(
            "web",
            &PatchParams {
                field_manager: Some("scaler".into()),
                ..PatchParams::default()
            },
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
    let d = deployments.get("web").await.unwrap();
    assert_eq!(d.spec.as_ref().unwrap().replicas, Some(5));
    assert_eq!(replicas_owners(&d), ["scaler"]);
    let entry = d
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .find(|e| e.manager.as_deref() == Some("scaler"))
        .unwrap();
    assert_eq!(
        (
            entry.operation.as_deref(),
            entry.api_version.as_deref(),
            entry.subresource.as_deref()
        ),
        (Some("Update"), Some("apps/v1"), Some("scale"))
    );

    // The original applier now conflicts on replicas; forcing takes it back.
    let err = deployments
        .patch("web", &applier, &Patch::Apply(deployment()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 409 && s.message.contains("scaler")),
        "{err}"
    );
    let d = deployments
        .patch("web", &applier.clone().force(), &Patch::Apply(deployment()))
        .await
        .unwrap();
    assert_eq!(d.spec.as_ref().unwrap().replicas, Some(2));
    assert_eq!(replicas_owners(&d), ["apply-test"]);

    // Applying the same count through /scale shares the field; a different one conflicts.
    let scale_apply = |n: i64| {
        json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
            "metadata": {"name": "web", "namespace": env.namespace}, "spec": {"replicas": n}})
    };
    let sharer = PatchParams::apply("co-owner");
    let client = env.client.clone();
    let apply_scale = |body: serde_json::Value, pp: PatchParams| {
        let client = client.clone();
        let path = scale_path.clone();
        async move {
            let req = http::Request::patch(format!(
                "{path}?fieldManager={}{}",
                pp.field_manager.unwrap_or_default(),
                if pp.force { "&force=true" } else { "" }
            ))
            .header("Content-Type", "application/apply-patch+yaml")
            .body(serde_json::to_vec(&body).unwrap())
            .unwrap();
            client.request::<serde_json::Value>(req).await
        }
    };
    apply_scale(scale_apply(2), sharer.clone()).await.unwrap();
    let d = deployments.get("web").await.unwrap();
    assert_eq!(replicas_owners(&d), ["apply-test", "co-owner"]);
    let err = apply_scale(scale_apply(7), PatchParams::apply("other"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 409),
        "{err}"
    );
    env.finish().await;
}
