//! CustomResourceDefinitions: served at runtime, printer columns, validation, defaults, status, generation.

use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use super::{DEADLINE, api_code, api_message, dynamic, gadgets, widgets};
use demoweb_tests::harness::TestEnv;

fn widget(name: &str, spec: serde_json::Value) -> kube::api::DynamicObject {
    dynamic(
        json!({"apiVersion": "conformance.demoweb.test/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec}),
    )
}

#[tokio::test]
async fn kubectl_get_shows_the_printer_columns() {
    let env = TestEnv::new("printer_columns").await;
    let api = widgets(&env).await;
    api.create(
        &PostParams::default(),
        &widget("w1", json!({"size": 3, "color": "red", "note": "hello"})),
    )
    .await
    .unwrap();
    api.patch_status(
        "w1",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}})),
    )
    .await
    .unwrap();
    let out = env.kubectl(&["get", "wdg"]).await.expect_ok();
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        vec!["NAME", "SIZE", "COLOR", "READY", "AGE"],
        "{out}"
    );
    assert_eq!(&lines[1][..4], &["w1", "3", "red", "True"], "{out}");
    let wide = env
        .kubectl(&["get", "widgets", "-o", "wide"])
        .await
        .expect_ok();
    let lines: Vec<Vec<&str>> = wide
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        vec!["NAME", "SIZE", "COLOR", "READY", "NOTE", "AGE"],
        "{wide}"
    );
    assert_eq!(lines[1][4], "hello", "{wide}");
    // Discovery: short name, category and the status subresource.
    let res = env
        .kubectl(&[
            "api-resources",
            "--api-group=conformance.demoweb.test",
            "-o",
            "wide",
        ])
        .await
        .expect_ok();
    assert!(
        res.contains("wdg") && res.contains("demoweb-conformance"),
        "{res}"
    );
    let by_category = env
        .kubectl(&["get", "demoweb-conformance", "-o", "name"])
        .await
        .expect_ok();
    assert!(
        by_category.contains("widget.conformance.demoweb.test/w1"),
        "{by_category}"
    );
    env.finish().await;
}

#[tokio::test]
async fn schema_validation_answers_422_with_field_paths_and_cel_messages() {
    let env = TestEnv::new("crd_validation").await;
    let api = widgets(&env).await;
    let err = api
        .create(
            &PostParams::default(),
            &widget("big", json!({"size": 11, "color": "red"})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), Some(422));
    let msg = api_message(&err);
    assert!(
        msg.starts_with("Widget.conformance.demoweb.test \"big\" is invalid: "),
        "{msg}"
    );
    assert!(
        msg.contains(
            "spec.size: Invalid value: 11: spec.size in body should be less than or equal to 10"
        ),
        "{msg}"
    );
    let err = api
        .create(
            &PostParams::default(),
            &widget("b", json!({"size": 1, "color": "blue"})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), Some(422));
    assert!(
        api_message(&err).contains("blue widgets need a size above 2"),
        "{}",
        api_message(&err)
    );
    let out = env
        .apply_yaml("apiVersion: conformance.demoweb.test/v1\nkind: Widget\nmetadata: {name: nocolor}\nspec: {size: 2}\n")
        .await;
    let stderr = out.expect_err();
    assert!(stderr.contains("spec.color: Required value"), "{stderr}");
    env.finish().await;
}

#[tokio::test]
async fn defaults_and_pruning_apply_to_custom_resources() {
    let env = TestEnv::new("crd_defaults").await;
    let api = widgets(&env).await;
    let created = api
        .create(
            &PostParams::default(),
            &widget("w", json!({"color": "green", "unknown": "dropped"})),
        )
        .await
        .unwrap();
    assert_eq!(created.data["spec"], json!({"color": "green", "size": 1}));
    // kubectl asks for strict field validation: unknown fields are an error there.
    let out = env
        .apply_yaml("apiVersion: conformance.demoweb.test/v1\nkind: Widget\nmetadata: {name: w2}\nspec: {color: red, foo: 1}\n")
        .await;
    let stderr = out.expect_err();
    assert!(
        stderr.contains("strict decoding error: unknown field \"spec.foo\""),
        "{stderr}"
    );
    env.finish().await;
}

#[tokio::test]
async fn status_subresource_separates_spec_and_status() {
    let env = TestEnv::new("status_subresource").await;
    let api = widgets(&env).await;
    api.create(
        &PostParams::default(),
        &widget("w", json!({"color": "red"})),
    )
    .await
    .unwrap();
    // The main endpoint ignores status changes.
    let p = api
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"observedGeneration": 5}})),
        )
        .await
        .unwrap();
    assert!(p.data.get("status").is_none(), "{:?}", p.data);
    // /status ignores everything but status, and does not bump generation.
    let p = api
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 9}, "status": {"observedGeneration": 1}})),
        )
        .await
        .unwrap();
    assert_eq!(p.data["status"]["observedGeneration"], 1);
    assert_eq!(p.data["spec"]["size"], 1);
    assert_eq!(p.metadata.generation, Some(1));
    env.finish().await;
}

#[tokio::test]
async fn generation_changes_only_with_the_spec() {
    let env = TestEnv::new("generation").await;
    let api = widgets(&env).await;
    let w = api
        .create(
            &PostParams::default(),
            &widget("w", json!({"color": "red"})),
        )
        .await
        .unwrap();
    assert_eq!(w.metadata.generation, Some(1));
    let w = api
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}, "annotations": {"x": "y"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        w.metadata.generation,
        Some(1),
        "metadata changes keep the generation"
    );
    let w = api
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 4}})),
        )
        .await
        .unwrap();
    assert_eq!(w.metadata.generation, Some(2));
    let w = api
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"observedGeneration": 2}})),
        )
        .await
        .unwrap();
    assert_eq!(
        w.metadata.generation,
        Some(2),
        "status changes keep the generation"
    );

    // Without a status subresource, any change outside metadata counts.
    let g = gadgets(&env).await;
    let obj = dynamic(
        json!({"apiVersion": "conformance.demoweb.test/v1", "kind": "Gadget", "metadata": {"name": "g"}, "spec": {"a": 1}}),
    );
    g.create(&PostParams::default(), &obj).await.unwrap();
    let after = g
        .patch(
            "g",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"s": 1}})),
        )
        .await
        .unwrap();
    assert_eq!(after.metadata.generation, Some(2));
    assert_eq!(after.data["status"]["s"], 1);
    env.finish().await;
}

#[tokio::test]
async fn deleting_a_crd_removes_its_objects_and_its_api() {
    let env = TestEnv::new("crd_delete").await;
    let group = format!("{}.demoweb.test", env.namespace);
    let crd = format!(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {{name: things.{group}}}\nspec:\n  group: {group}\n  scope: Namespaced\n  names: {{kind: Thing, plural: things}}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema: {{openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}}}\n"
    );
    super::install_crd(&env, &crd, &format!("things.{group}")).await;
    env.apply_yaml(&format!(
        "apiVersion: {group}/v1\nkind: Thing\nmetadata: {{name: t1}}\n"
    ))
    .await
    .expect_ok();
    env.kubectl(&["delete", "crd", &format!("things.{group}")])
        .await
        .expect_ok();
    env.wait_for("the Thing API to be gone", DEADLINE, || async {
        let out = env.kubectl(&["get", &format!("things.{group}")]).await;
        (!out.success()
            && out
                .stderr
                .contains("the server doesn't have a resource type"))
        .then_some(())
    })
    .await;
    env.finish().await;
}
