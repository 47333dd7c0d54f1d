//! Role (rbac.authorization.k8s.io/v1); what the four RBAC kinds share is in [`super::rbac`].

use serde_json::{Value, json};

use super::super::apply::fragment::*;
use super::super::errors::FieldError;
use super::common::roundtrip;
use super::{Kind, rbac};

pub const KIND: Kind = Kind {
    group: rbac::GROUP,
    kind: "Role",
    plural: "roles",
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
    rbac::fill_required("Role", &mut obj);
    roundtrip::<k8s_openapi::api::rbac::v1::Role>(&obj)
}

fn defaults(obj: &mut Value) {
    rbac::apply_defaults("Role", obj);
}

fn validate(obj: &Value, errs: &mut Vec<FieldError>) {
    errs.extend(rbac::validate("Role", obj));
}

fn validate_update(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    errs.extend(rbac::validate_update("Role", old, new));
}

/// The merge schema (list types, merge keys, patch strategies) of the Go type.
/// rbac/v1: every list is `+listType=atomic` without a patch strategy, down to a rule's verbs;
/// `roleRef` is a required value struct.
fn merge() -> Value {
    object(json!({"rules": atomic_list()}))
}
