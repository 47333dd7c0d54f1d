//! The emulator's conformance suite: each behaviour of kube-apiserver the project relies on, pinned the
//! way a user observes it (kubectl, kube-rs). Runs against a real cluster when DEMOWEB_TEST_KUBECONFIG is set.

mod alerts;
mod api;
mod builtins;
mod chart;
mod crd;
mod delete;
mod endpointslices;
mod faults;
mod helm;
mod kubectl;
mod rbac;
mod ssa;
mod verdicts;
mod watch;
mod workloads;

use std::time::Duration;

use demoweb_tests::harness::TestEnv;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};

/// How long anything a controller does may take (generous for real clusters).
pub const DEADLINE: Duration = Duration::from_secs(60);

pub const WIDGET_GROUP: &str = "conformance.demoweb.test";

/// A small CRD with a status subresource, printer columns, defaults, bounds and a CEL rule.
pub const WIDGET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.conformance.demoweb.test
spec:
  group: conformance.demoweb.test
  scope: Namespaced
  names:
    kind: Widget
    plural: widgets
    singular: widget
    shortNames: [wdg]
    categories: [demoweb-conformance]
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Color, type: string, jsonPath: .spec.color}
    - {name: Ready, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].status'}
    - {name: Note, type: string, jsonPath: .spec.note, priority: 1}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [color]
            x-kubernetes-validations:
            - rule: "self.color != 'blue' || self.size > 2"
              message: blue widgets need a size above 2
            properties:
              size: {type: integer, minimum: 0, maximum: 10, default: 1}
              color: {type: string, enum: [red, green, blue]}
              note: {type: string}
              tags:
                type: array
                items: {type: string}
          status:
            type: object
            properties:
              observedGeneration: {type: integer}
              conditions:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [type]
                items:
                  type: object
                  required: [type, status]
                  properties:
                    type: {type: string}
                    status: {type: string}
                    reason: {type: string}
"#;

/// A CRD without a status subresource: every non-metadata change bumps generation.
pub const GADGET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.conformance.demoweb.test
spec:
  group: conformance.demoweb.test
  scope: Namespaced
  names: {kind: Gadget, plural: gadgets, singular: gadget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#;

/// Installs a CRD (idempotent, shared across tests on a real cluster) and waits until it is served.
pub async fn install_crd(env: &TestEnv, yaml: &str, name: &str) {
    env.apply_yaml(yaml).await.expect_ok();
    env.kubectl(&[
        "wait",
        "--for=condition=Established",
        &format!("crd/{name}"),
        "--timeout=60s",
    ])
    .await
    .expect_ok();
    // Discovery may lag establishment on a real cluster; wait until the resource is listable.
    let plural = name.split('.').next().unwrap_or_default().to_string();
    env.wait_for(&format!("{plural} to be served"), DEADLINE, || async {
        env.kubectl(&["get", &plural]).await.success().then_some(())
    })
    .await;
}

pub async fn widgets(env: &TestEnv) -> Api<DynamicObject> {
    install_crd(env, WIDGET_CRD, "widgets.conformance.demoweb.test").await;
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(WIDGET_GROUP, "v1", "Widget"),
        "widgets",
    );
    Api::namespaced_with(env.client.clone(), &env.namespace, &ar)
}

pub async fn gadgets(env: &TestEnv) -> Api<DynamicObject> {
    install_crd(env, GADGET_CRD, "gadgets.conformance.demoweb.test").await;
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(WIDGET_GROUP, "v1", "Gadget"),
        "gadgets",
    );
    Api::namespaced_with(env.client.clone(), &env.namespace, &ar)
}

/// A DynamicObject from JSON.
pub fn dynamic(v: serde_json::Value) -> DynamicObject {
    serde_json::from_value(v).expect("valid object")
}

/// The kube::Error's API status code, if it is one.
pub fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

pub fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}
