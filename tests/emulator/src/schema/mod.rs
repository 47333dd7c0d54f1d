//! CustomResourceDefinition schemas: structural validation with kube-apiserver's error messages,
//! pruning of unknown fields, defaulting, and CEL `x-kubernetes-validations`.
//!
//! The server calls, in this order, what kube-apiserver's apiextensions does:
//! - on CRD create/update: [`validate_crd`] / [`validate_crd_update`] (names, versions, columns,
//!   subresources, API approval, and every schema: structural, defaults, CEL rules compiled and
//!   costed), then [`StructuralSchema::new`] per version (`new_at` names the path when versions
//!   differ). On failure: 422 with [`status_message`]`("CustomResourceDefinition.apiextensions.k8s.io", ...)`.
//! - on a custom resource write: [`StructuralSchema::unknown_fields`] (for `fieldValidation`
//!   `Strict`/`Warn`), [`StructuralSchema::prune`], [`StructuralSchema::apply_defaults`], then
//!   [`StructuralSchema::validate`] (with the stored object on update; or
//!   [`StructuralSchema::validate_with_warnings`] to also get ratcheted rule failures), and on
//!   failure a 422 whose message is [`status_message`]`("<Kind>.<group>", name, &errors)` and whose
//!   `details.causes` are [`status_causes`]. Generate `metadata.name` from `generateName` before
//!   validating: root rules may read `self.metadata.name`.
//!
//! ```text
//! let schema = StructuralSchema::new(&crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])?;
//! schema.prune(&mut obj);
//! schema.apply_defaults(&mut obj);
//! let errors = schema.validate(&obj, old.as_ref());
//! if !errors.is_empty() {
//!     // 422: status_message("DemoWeb.baeke.info", name, &errors), status_causes(&errors)
//! }
//! ```
//!
//! The modules, from the bottom up (each imports only those below it):
//! - vocabulary: `error` (field errors and their messages), `format` (string formats),
//!   `library` (Kubernetes CEL functions), `rule` (a compiled CEL rule, CEL names of properties);
//! - data: `node`, the compiled schema tree;
//! - passes over a `&Node`: `prune`, `default`, `cost` (CEL cost estimate), `cel` (compiling and
//!   evaluating rules), `validate` (OpenAPI keywords, list types, then `cel`);
//! - building: `compile` turns an `openAPIV3Schema` into a `Node`, running `cel`, `cost`, `prune`
//!   and `validate` on the way (defaults must survive them); `crd` checks a whole CRD;
//! - entry points: this module.

mod cel;
mod compile;
mod cost;
mod crd;
mod default;
mod error;
mod format;
pub(crate) mod library;
mod node;
mod prune;
mod rule;
mod validate;

#[cfg(test)]
mod tests;

pub use crd::{validate_crd, validate_crd_update};
pub use error::{ErrorKind, FieldError, status_causes, status_message};

use node::Node;
use serde_json::Value;

/// How server-side apply merges a value, from the schema's `x-kubernetes-list-type`,
/// `x-kubernetes-list-map-keys` and `x-kubernetes-map-type` (structured-merge-diff's defaults:
/// lists atomic, objects granular).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Topology {
    /// Replaced as a whole, owned by one manager.
    Atomic,
    /// A list of scalars merged as a set.
    Set,
    /// A list of objects merged by these key fields.
    Map(Vec<String>),
    /// An object (or map) merged field by field.
    Granular,
}

/// A CRD version's `openAPIV3Schema`, checked and compiled, ready to prune, default and validate.
#[derive(Debug)]
pub struct StructuralSchema {
    root: Node,
    /// Whether any `x-kubernetes-validations` rule exists (the real server has no CEL
    /// validator otherwise).
    has_rules: bool,
}

impl StructuralSchema {
    /// Checks and compiles a schema, reporting problems under `spec.validation.openAPIV3Schema`
    /// (where kube-apiserver reports them when all versions share one schema).
    pub fn new(openapi_v3_schema: &Value) -> Result<Self, Vec<FieldError>> {
        Self::new_at(openapi_v3_schema, "spec.validation.openAPIV3Schema")
    }

    /// As [`StructuralSchema::new`], reporting problems under `path`
    /// (e.g. `spec.versions[1].schema.openAPIV3Schema`).
    pub fn new_at(openapi_v3_schema: &Value, path: &str) -> Result<Self, Vec<FieldError>> {
        let compiled = compile::schema(openapi_v3_schema, path)?;
        Ok(StructuralSchema {
            root: compiled.root,
            has_rules: compiled.has_rules,
        })
    }

    /// The merge topology of the value at `path` (field names and map keys; any segment steps
    /// into a list's items, e.g. `["status", "conditions"]` or `["spec", "ports", "0"]`), or
    /// `None` when the schema does not describe it (unknown or preserved fields).
    pub fn topology(&self, path: &[&str]) -> Option<Topology> {
        let mut node = &self.root;
        for seg in path {
            node = if let Some(child) = node.properties.get(*seg) {
                child
            } else if let Some(add) = &node.additional {
                add
            } else if let Some(items) = &node.items {
                items
            } else {
                return None;
            };
        }
        Some(match node.ty.as_deref() {
            Some("array") => match node.list_type.as_deref() {
                Some("set") => Topology::Set,
                Some("map") => Topology::Map(node.list_map_keys.clone()),
                _ => Topology::Atomic,
            },
            Some("object") if node.map_type.as_deref() == Some("atomic") => Topology::Atomic,
            Some("object") => Topology::Granular,
            None if node.preserve_unknown => Topology::Granular,
            _ => Topology::Atomic,
        })
    }

    /// Drops every field the schema does not specify. `apiVersion`, `kind` and `metadata` are
    /// kept at the root and in embedded resources, and `metadata` keeps only `ObjectMeta` fields.
    pub fn prune(&self, obj: &mut Value) {
        prune::prune(&self.root, obj, true);
    }

    /// Applies `default`s wherever the parent exists, and replaces or drops `null`s in fields
    /// that are not `nullable`.
    pub fn apply_defaults(&self, obj: &mut Value) {
        default::apply(&self.root, obj);
    }

    /// Validates an object (already pruned and defaulted) against the schema and its CEL rules.
    /// `old` is the stored object on update: transition rules (`oldSelf`) compare against it, and
    /// values equal to their old counterpart are not re-validated (validation ratcheting, on by
    /// default since Kubernetes 1.30), so an object stored under a looser schema stays updatable.
    pub fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        self.validate_with_warnings(obj, old).0
    }

    /// As [`StructuralSchema::validate`], also returning the failures of CEL rules that were
    /// ratcheted on update: kube-apiserver accepts the object and sends each as a `Warning`
    /// header (`299 - "<error>"`), which kubectl prints as `Warning: <error>`.
    pub fn validate_with_warnings(
        &self,
        obj: &Value,
        old: Option<&Value>,
    ) -> (Vec<FieldError>, Vec<FieldError>) {
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        validate::openapi(&self.root, obj, old, "", &mut errors);
        validate::list_types(&self.root, obj, old, "", &mut errors);
        if !self.has_rules {
            return (errors, warnings);
        }
        // Like kube-apiserver, CEL rules do not run on an object with a missing, mistyped,
        // oversized or unsupported value; a field-less error says so instead.
        let blocking = errors.iter().any(|e| {
            matches!(
                e.kind,
                ErrorKind::NotSupported
                    | ErrorKind::Required
                    | ErrorKind::TooLong
                    | ErrorKind::TooMany
                    | ErrorKind::TypeInvalid
            )
        });
        if blocking {
            errors.push(FieldError::invalid(
                "<nil>",
                Value::Null,
                "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
            ));
        } else {
            validate::rules(&self.root, obj, old, false, "", &mut errors, &mut warnings);
        }
        (errors, warnings)
    }

    /// The fields [`StructuralSchema::prune`] would drop, as dotted paths (`spec.colour`,
    /// `spec.items[0].x`, `metadata.foo`). With `fieldValidation=Strict` (kubectl's default)
    /// kube-apiserver refuses such an object with 400 BadRequest:
    /// `<Kind> in version "<v>" cannot be handled as a <Kind>: strict decoding error: unknown
    /// field "spec.colour", unknown field "spec.x"`; with `Warn` it sends one
    /// `unknown field "spec.colour"` warning per field and prunes.
    pub fn unknown_fields(&self, obj: &Value) -> Vec<String> {
        let mut out = Vec::new();
        prune::unknown(&self.root, obj, true, "", &mut out);
        out
    }
}
