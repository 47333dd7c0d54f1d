//! Patch and server-side apply semantics: JSON merge patch, JSON patch, strategic merge patch,
//! and managed fields (field ownership, conflicts, removal of fields a manager stops applying).
//!
//! Every function is pure: objects in, object out. The HTTP layer decides what to store.
//!
//! How the server uses it, per request:
//! - `PATCH` merge / JSON / strategic: [`merge_patch`], [`json_patch`] or [`strategic_merge_patch`]
//!   (with [`builtin_schema`]; kube-apiserver answers 415 to strategic patches of custom resources),
//!   then defaulting/validation, then [`track_update`].
//! - `POST` / `PUT`: [`track_update`] with `live` None for a create.
//! - `PATCH` apply: [`server_side_apply`], then defaulting/validation; store only when
//!   [`Outcome::changed`].
//! - The schema is [`builtin_schema`] for built-in kinds and [`crd_schema`] of the served version's
//!   `openAPIV3Schema` for custom resources.
//!
//! Defaulting belongs after these calls: on create/update the defaulted fields then belong to the
//! writer (as in kube-apiserver, which defaults while decoding), after an apply they belong to
//! nobody. The server strips what an endpoint may not change (status on the main resource, all but
//! status on `/status`) before calling, and passes `subresource` accordingly.
//!
//! No-op detection relies on JSON equality: keep numbers as parsed (an integer turned into a float
//! by a later step would make every re-apply look like a change).
//!
//! Not modelled, knowingly: conversion of entries recorded under another apiVersion (they are used
//! as they are); re-shaping entries when a CRD's list or map types change; a `null` in an applied
//! configuration removes the field even where structured-merge-diff would keep a granular map's
//! live entries; Go's HTML escaping in the JSON of the last-applied annotation; numeric (rather
//! than textual) ordering of `k:` keys inside one fieldsV1 object (JSON objects are unordered).

mod fieldset;
mod managed;
mod patch;
mod schema;
mod walk;

#[cfg(test)]
mod tests;

use serde_json::{Value, json};

pub use managed::{scale_entries, scale_to_parent, server_side_apply, track_update};
pub use patch::{json_patch, merge_patch, strategic_merge_patch};
pub use schema::{builtin_schema, crd_schema};

/// The pieces built-in kinds' merge schemas are made of (see `kinds`).
pub mod fragment {
    pub use super::schema::{
        atomic_list, atomic_map, by_name, conditions, container, keyed_list, object, object_meta,
        pod_spec, present, spec_status, string_map,
    };
}

/// A patch document that cannot be applied; the HTTP layer answers 422 (or 400 for undecodable input).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PatchError(pub String);

/// One field another manager owns with a different value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The manager that owns the field, e.g. `kubectl-client-side-apply`.
    pub manager: String,
    /// How that manager wrote the field.
    pub operation: Operation,
    /// The apiVersion recorded in that manager's entry.
    pub api_version: String,
    /// The subresource of that manager's entry, e.g. `Some("status")`.
    pub subresource: Option<String>,
    /// The field in kube-apiserver's notation, e.g. `.spec.replicas` or `.spec.containers[name="web"].image`.
    pub field: String,
}

impl Conflict {
    /// The manager as kube-apiserver names it in messages: `"kubectl" using apps/v1`.
    fn describe_manager(&self) -> String {
        let mut out = serde_json::to_string(&self.manager).unwrap_or_default();
        if let Some(sub) = &self.subresource {
            out.push_str(&format!(" with subresource {sub:?}"));
        }
        if self.operation == Operation::Update {
            out.push_str(&format!(" using {}", self.api_version));
        }
        out
    }

    /// Managers sort like kube-apiserver's manager identifiers; a manager's fields keep the order
    /// they were found in (the field set's order), so callers sort stably by this key.
    fn sort_key(&self) -> (String, Operation, String, Option<String>) {
        (
            self.manager.clone(),
            self.operation,
            self.api_version.clone(),
            self.subresource.clone(),
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// 409 Conflict; the message lists the conflicts the way kube-apiserver does.
    #[error("{}", conflict_message(.0))]
    Conflicts(Vec<Conflict>),
    /// 422 Invalid: the apply configuration does not fit the schema (e.g. duplicate list keys).
    #[error("{0}")]
    Invalid(String),
    /// 400 BadRequest: the apply configuration itself is unusable (wrong apiVersion, managedFields set).
    #[error("{0}")]
    BadRequest(String),
}

fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [c] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            c.describe_manager(),
            c.field
        );
    }
    let mut sorted: Vec<&Conflict> = conflicts.iter().collect();
    sorted.sort_by_key(|c| c.sort_key());
    let mut lines = Vec::new();
    let mut current: Option<String> = None;
    for c in sorted {
        let who = c.describe_manager();
        if current.as_ref() != Some(&who) {
            lines.push(format!("conflicts with {who}:"));
            current = Some(who);
        }
        lines.push(format!("- {}", c.field));
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

impl ApplyError {
    /// The HTTP status code kube-apiserver answers with.
    pub fn status_code(&self) -> u16 {
        match self {
            ApplyError::Conflicts(_) => 409,
            ApplyError::Invalid(_) => 422,
            ApplyError::BadRequest(_) => 400,
        }
    }

    /// The Status `reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            ApplyError::Conflicts(_) => "Conflict",
            ApplyError::Invalid(_) => "Invalid",
            ApplyError::BadRequest(_) => "BadRequest",
        }
    }

    /// The Status `details.causes`: one `FieldManagerConflict` per conflicting field.
    pub fn causes(&self) -> Vec<Value> {
        let ApplyError::Conflicts(conflicts) = self else {
            return Vec::new();
        };
        let mut sorted: Vec<&Conflict> = conflicts.iter().collect();
        sorted.sort_by_key(|c| c.sort_key());
        sorted
            .into_iter()
            .map(|c| {
                json!({
                    "type": "FieldManagerConflict",
                    "message": format!("conflict with {}", c.describe_manager()),
                    "field": c.field,
                })
            })
            .collect()
    }
}

/// Whether a managedFields entry records an apply or an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operation {
    Apply,
    Update,
}

/// Who is writing, as recorded in `metadata.managedFields`.
#[derive(Debug, Clone)]
pub struct Manager<'a> {
    pub name: &'a str,
    pub operation: Operation,
    /// `Some("status")` for writes through the status subresource.
    pub subresource: Option<&'a str>,
    /// The apiVersion the request used, recorded in the entry.
    pub api_version: &'a str,
    /// RFC 3339 timestamp recorded in the entry (kube-apiserver uses whole seconds, `...Z`).
    pub time: &'a str,
}

/// The result of a server-side apply.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The object to store, `metadata.managedFields` included.
    pub object: Value,
    /// False when `object` equals the live object: kube-apiserver then writes nothing and keeps
    /// the resourceVersion (a re-apply of the same configuration is such a no-op).
    pub changed: bool,
}
