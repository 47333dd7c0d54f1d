//! ClusterRoleBinding (rbac.authorization.k8s.io/v1); what the four RBAC kinds share is in
//! [`super::rbac`].

use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use serde_json::{Value, json};

use super::super::apply::fragment::*;
use super::{Kind, rbac};

pub const KIND: Kind = Kind {
    group: rbac::GROUP,
    kind: "ClusterRoleBinding",
    plural: "clusterrolebindings",
    namespaced: false,
    decode: rbac::decode::<ClusterRoleBinding>,
    defaults: rbac::defaults::<ClusterRoleBinding>,
    check_name: rbac::check_name,
    validate: rbac::validate::<ClusterRoleBinding>,
    validate_update: rbac::validate_update::<ClusterRoleBinding>,
    merge: Some(merge),
    ..Kind::BASE
};

/// The merge schema (list types, merge keys, patch strategies) of the Go type.
fn merge() -> Value {
    object(json!({"subjects": atomic_list(), "roleRef": present(object(json!({})))}))
}
