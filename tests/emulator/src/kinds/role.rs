//! Role (rbac.authorization.k8s.io/v1); what the four RBAC kinds share is in [`super::rbac`].

use k8s_openapi::api::rbac::v1::Role;
use serde_json::{Value, json};

use super::super::apply::fragment::*;
use super::{Kind, rbac};

pub const KIND: Kind = Kind {
    group: rbac::GROUP,
    kind: "Role",
    plural: "roles",
    decode: rbac::decode::<Role>,
    defaults: rbac::defaults::<Role>,
    check_name: rbac::check_name,
    validate: rbac::validate::<Role>,
    validate_update: rbac::validate_update::<Role>,
    merge: Some(merge),
    ..Kind::BASE
};

/// The merge schema (list types, merge keys, patch strategies) of the Go type.
/// rbac/v1: every list is `+listType=atomic` without a patch strategy, down to a rule's verbs;
/// `roleRef` is a required value struct.
fn merge() -> Value {
    object(json!({"rules": atomic_list()}))
}
