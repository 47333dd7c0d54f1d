//! CustomResourceDefinition (apiextensions.k8s.io/v1); serving what a CRD defines is
//! `resources::from_crd` and the `schema` module.

use serde_json::Value;

use super::Kind;
use super::common::*;

pub const KIND: Kind = Kind {
    group: "apiextensions.k8s.io",
    kind: "CustomResourceDefinition",
    plural: "customresourcedefinitions",
    namespaced: false,
    short_names: &["crd", "crds"],
    categories: &["api-extensions"],
    status: true,
    generation: true,
    decode: roundtrip::<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>,
    columns: &[("Name", "string", 0), ("Created At", "date", 0)],
    cells,
    ..Kind::BASE
};

/// The cells of one row of `kubectl get`.
fn cells(o: &Value) -> Vec<Value> {
    let name = o["metadata"]["name"].clone();
    let created = &o["metadata"]["creationTimestamp"];
    vec![name, created.clone()]
}
