//! Pure validation of AzureIdentity and AzureIdentityBinding objects into the Events the identity
//! controller publishes, and the rule that publishes each finding once per change, not per resync.

use demoweb_crd::conditions::reason;
use demoweb_crd::validation::summarize;
use demoweb_crd::{AzureIdentity, AzureIdentityBinding};
use kube::ResourceExt;

use super::resolve::pruned_key_hint;

/// Event reason: a deprecated capitalised key is in use.
pub const DEPRECATED_KEY: &str = "DeprecatedKey";
/// Event reason: an AzureIdentityBinding is invalid.
pub const INVALID_BINDING: &str = "InvalidIdentityBinding";
/// Event reason: an object that had problems has none any more.
pub const VALID: &str = "Valid";

/// Event notes are limited to 1 KiB by the API server.
const MAX_NOTE_BYTES: usize = 1024;

/// Which variant of the aad-pod-identity CRDs the cluster serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrdVariant {
    /// This project's: capitalised aliases kept, status subresource.
    Ours,
    /// Upstream aad-pod-identity's: no aliases (the API server prunes them), no status subresource.
    Upstream,
}

/// One Event to publish about an identity object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    /// True for a Warning, false for a Normal event.
    pub warning: bool,
    pub reason: &'static str,
    pub note: String,
}

impl Finding {
    fn warning(reason: &'static str, note: String) -> Self {
        Self {
            warning: true,
            reason,
            note: truncate(note),
        }
    }
}

/// Problems with an AzureIdentity: invalid fields, then deprecated keys.
pub fn identity_findings(identity: &AzureIdentity, variant: CrdVariant) -> Vec<Finding> {
    let mut findings = Vec::new();
    if let Err(errors) = identity.spec.validate() {
        let hint = match variant {
            CrdVariant::Upstream => pruned_key_hint(&errors),
            CrdVariant::Ours => String::new(),
        };
        findings.push(Finding::warning(
            reason::INVALID_IDENTITY,
            format!(
                "AzureIdentity {:?} is invalid: {}{hint}",
                identity.name_any(),
                summarize(&errors)
            ),
        ));
    }
    if let Some(note) = deprecated_note(&identity.spec.deprecated_keys()) {
        findings.push(Finding::warning(DEPRECATED_KEY, note));
    }
    findings
}

/// Problems with an AzureIdentityBinding: invalid fields, a missing identity, deprecated keys.
/// `identity_exists` answers whether an AzureIdentity of that name is in the binding's namespace.
pub fn binding_findings(
    binding: &AzureIdentityBinding,
    variant: CrdVariant,
    identity_exists: impl Fn(&str) -> bool,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    match binding.spec.validate() {
        Err(errors) => {
            let hint = match variant {
                CrdVariant::Upstream => pruned_key_hint(&errors),
                CrdVariant::Ours => String::new(),
            };
            findings.push(Finding::warning(
                INVALID_BINDING,
                format!(
                    "AzureIdentityBinding {:?} is invalid: {}{hint}",
                    binding.name_any(),
                    summarize(&errors)
                ),
            ));
        }
        Ok(()) => {
            if let Some(identity) = binding
                .spec
                .azure_identity()
                .filter(|name| !identity_exists(name))
            {
                findings.push(Finding::warning(
                    reason::IDENTITY_NOT_FOUND,
                    format!(
                        "AzureIdentity {identity:?} named by spec.azureIdentity does not exist in namespace {:?}",
                        binding.namespace().unwrap_or_default()
                    ),
                ));
            }
        }
    }
    if let Some(note) = deprecated_note(&binding.spec.deprecated_keys()) {
        findings.push(Finding::warning(DEPRECATED_KEY, note));
    }
    findings
}

fn deprecated_note(keys: &[(&str, &str)]) -> Option<String> {
    if keys.is_empty() {
        return None;
    }
    let each = keys
        .iter()
        .map(|(old, canonical)| format!("spec.{old} is deprecated: use spec.{canonical}"))
        .collect::<Vec<_>>()
        .join("; ");
    Some(format!(
        "{each} (the capitalised spelling only works with this project's CRDs; upstream aad-pod-identity's CRD drops it)"
    ))
}

/// A fingerprint of a spec, for [`Published::spec`].
pub fn spec_fingerprint<S: serde::Serialize>(spec: &S) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(spec)
        .unwrap_or_default()
        .hash(&mut hasher);
    hasher.finish()
}

/// What the controller last published for one object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Published {
    /// A fingerprint of the spec it was published for. Not `metadata.generation`: without a
    /// status subresource (upstream's CRDs) a status write by aad-pod-identity bumps it too, and
    /// that is no reason to repeat a warning.
    pub spec: u64,
    pub findings: Vec<Finding>,
}

/// The Events to publish now, given what was published before for the same object (None: never).
///
/// An unchanged object publishes nothing, so resyncs and restarts of the watch stay quiet. A new
/// spec republishes every current finding (the user edited the object and it is still
/// wrong); otherwise only findings that appeared are published. An object whose problems are all
/// gone (deprecated keys aside, which do not stop it from working) gets one Normal `Valid` event.
pub fn events_to_publish(previous: Option<&Published>, current: &Published) -> Vec<Finding> {
    let Some(previous) = previous else {
        return current.findings.clone();
    };
    if previous == current {
        return Vec::new();
    }
    let mut events: Vec<Finding> = if previous.spec != current.spec {
        current.findings.clone()
    } else {
        current
            .findings
            .iter()
            .filter(|f| !previous.findings.contains(f))
            .cloned()
            .collect()
    };
    if has_problem(previous) && !has_problem(current) {
        events.push(Finding {
            warning: false,
            reason: VALID,
            note: "the problems reported earlier are fixed".to_owned(),
        });
    }
    events
}

fn has_problem(published: &Published) -> bool {
    published
        .findings
        .iter()
        .any(|f| f.warning && f.reason != DEPRECATED_KEY)
}

fn truncate(mut note: String) -> String {
    if note.len() > MAX_NOTE_BYTES {
        let mut end = MAX_NOTE_BYTES - 3;
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
        note.push_str("...");
    }
    note
}
