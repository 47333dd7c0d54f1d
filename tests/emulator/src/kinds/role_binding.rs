//! RoleBinding (rbac.authorization.k8s.io/v1); what the four RBAC kinds share is in
//! [`super::rbac`].

use k8s_openapi::api::rbac::v1::RoleBinding;
use serde_json::{Value, json};

use super::super::apply::fragment::*;
use super::{Kind, rbac};

pub const KIND: Kind = Kind {
    group: rbac::GROUP,
    kind: "RoleBinding",
    plural: "rolebindings",
    decode: rbac::decode::<RoleBinding>,
    defaults: rbac::defaults::<RoleBinding>,
    check_name: rbac::check_name,
    validate: rbac::validate::<RoleBinding>,
    validate_update: rbac::validate_update::<RoleBinding>,
    merge: Some(merge),
    ..Kind::BASE
};

/// The merge schema (list types, merge keys, patch strategies) of the Go type.
fn merge() -> Value {
    object(json!({"subjects": atomic_list(), "roleRef": present(object(json!({})))}))
}
