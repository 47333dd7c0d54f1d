//! Patch and server-side apply semantics: JSON merge patch, JSON patch, strategic merge patch,
//! and managed fields (field ownership, conflicts, removal of fields a manager stops applying).
//!
//! Every function is pure: objects in, object out. The HTTP layer decides what to store.

use serde_json::Value;

/// A patch document that cannot be applied; the HTTP layer answers 422 (or 400 for undecodable input).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PatchError(pub String);

/// One field another manager owns with a different value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The manager that owns the field, e.g. `kubectl-client-side-apply`.
    pub manager: String,
    /// The field in kube-apiserver's notation, e.g. `.spec.replicas` or `.spec.containers[name="web"].image`.
    pub field: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// 409 Conflict; the message lists the conflicts the way kube-apiserver does.
    #[error("Apply failed with {} conflict(s)", .0.len())]
    Conflicts(Vec<Conflict>),
    /// 422 / 400: the apply configuration itself is unusable.
    #[error("{0}")]
    Invalid(String),
}

/// Whether a managedFields entry records an apply or an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// RFC 3339 timestamp recorded in the entry.
    pub time: &'a str,
}
