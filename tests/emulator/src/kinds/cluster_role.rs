//! ClusterRole (rbac.authorization.k8s.io/v1); what the four RBAC kinds share is in
//! [`super::rbac`].

use serde_json::{Value, json};

use super::super::apply::fragment::*;
use super::super::errors::FieldError;
use super::common::roundtrip;
use super::{Kind, rbac};

pub const KIND: Kind = Kind {
    group: rbac::GROUP,
    kind: "ClusterRole",
    plural: "clusterroles",
    namespaced: false,
    decode,
    defaults,
    check_name: rbac::check_name,
    validate,
    validate_update,
    merge: Some(merge),
    ..Kind::BASE
};

/// The Go type's round trip, with the fields it holds as plain strings filled in first.
fn decode(obj: &Value) -> Result<Value, String> {
    let mut obj = obj.clone();
    rbac::fill_required("ClusterRole", &mut obj);
    roundtrip::<k8s_openapi::api::rbac::v1::ClusterRole>(&obj)
}

fn defaults(obj: &mut Value) {
    rbac::apply_defaults("ClusterRole", obj);
}

fn validate(obj: &Value, errs: &mut Vec<FieldError>) {
    errs.extend(rbac::validate("ClusterRole", obj));
}

fn validate_update(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    errs.extend(rbac::validate_update("ClusterRole", old, new));
}

/// The merge schema (list types, merge keys, patch strategies) of the Go type.
fn merge() -> Value {
    object(json!({
        "rules": atomic_list(),
        "aggregationRule": object(json!({"clusterRoleSelectors": atomic_list()})),
    }))
}
