//! ClusterRole (rbac.authorization.k8s.io/v1); what the four RBAC kinds share is in
//! [`super::rbac`].

use k8s_openapi::api::rbac::v1::ClusterRole;
use serde_json::{Value, json};

use super::super::apply::fragment::*;
use super::{Kind, rbac};

pub const KIND: Kind = Kind {
    group: rbac::GROUP,
    kind: "ClusterRole",
    plural: "clusterroles",
    namespaced: false,
    decode: rbac::decode::<ClusterRole>,
    defaults: rbac::defaults::<ClusterRole>,
    check_name: rbac::check_name,
    validate: rbac::validate::<ClusterRole>,
    validate_update: rbac::validate_update::<ClusterRole>,
    merge: Some(merge),
    ..Kind::BASE
};

/// The merge schema (list types, merge keys, patch strategies) of the Go type.
fn merge() -> Value {
    object(json!({
        "rules": atomic_list(),
        "aggregationRule": object(json!({"clusterRoleSelectors": atomic_list()})),
    }))
}
