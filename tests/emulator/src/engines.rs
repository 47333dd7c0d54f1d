//! The one place the HTTP layer calls the pure patch/apply and CRD-schema engines, so their
//! signatures meet the server's needs here and nowhere else.

use serde_json::Value;

use super::apply::{self, Manager};
use super::errors::ApiError;
use super::kinds;
use super::schema;

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

/// The owners of a scalable object's replicas as its Scale subresource sees them.
pub fn scale_entries(parent: &Value, parent_version: &str, replicas: &[&str]) -> Value {
    apply::scale_entries(parent, parent_version, replicas)
}

/// The parent's managedFields after a write through its Scale subresource.
pub fn scale_to_parent(
    parent: &Value,
    scale: &Value,
    parent_version: &str,
    replicas: &[&str],
) -> Value {
    apply::scale_to_parent(parent, scale, parent_version, replicas)
}

/// Merge information for a built-in kind, as the patch engines need it.
pub fn builtin_schema(group: &str, version: &str, kind: &str) -> Option<Value> {
    kinds::merge_schema(group, version, kind)
}

/// Merge information for a CRD version from its openAPIV3Schema.
pub fn crd_merge_schema(raw: &Value) -> Value {
    apply::crd_schema(raw)
}

/// A CRD version's schema, compiled once per request.
pub struct CrdSchema(schema::StructuralSchema);

impl CrdSchema {
    pub fn new(raw: &Value) -> Result<Self, String> {
        schema::StructuralSchema::new(raw)
            .map(CrdSchema)
            .map_err(|errs| {
                errs.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
    }

    /// The fields pruning would drop, as dotted paths (for `fieldValidation`).
    pub fn unknown_fields(&self, obj: &Value) -> Vec<String> {
        self.0.unknown_fields(obj)
    }

    pub fn prune(&self, obj: &mut Value) {
        self.0.prune(obj)
    }

    pub fn apply_defaults(&self, obj: &mut Value) {
        self.0.apply_defaults(obj)
    }

    /// 422 when the object does not satisfy the schema (structural checks and CEL rules);
    /// otherwise the warnings of ratcheted rules. `kind` is the qualified kind (`Kind.group`).
    pub fn validate(
        &self,
        kind: &str,
        name: &str,
        obj: &Value,
        old: Option<&Value>,
    ) -> Result<Vec<String>, ApiError> {
        let (errors, warnings) = self.0.validate_with_warnings(obj, old);
        if errors.is_empty() {
            return Ok(warnings.iter().map(ToString::to_string).collect());
        }
        Err(invalid(kind, name, &errors))
    }
}

fn invalid(kind: &str, name: &str, errors: &[schema::FieldError]) -> ApiError {
    let (k, group) = kind.split_once('.').unwrap_or((kind, ""));
    ApiError::new(422, "Invalid", schema::status_message(kind, name, errors)).with_details(
        serde_json::json!({
            "name": name, "group": group, "kind": k, "causes": schema::status_causes(errors),
        }),
    )
}

/// Problems with a CRD itself, worded like kube-apiserver's 422 for CustomResourceDefinitions.
pub fn validate_crd(crd: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    let errors = schema::validate_crd_update(crd, old);
    if errors.is_empty() {
        return Ok(());
    }
    let name = crd["metadata"]["name"].as_str().unwrap_or_default();
    Err(invalid(
        "CustomResourceDefinition.apiextensions.k8s.io",
        name,
        &errors,
    ))
}
