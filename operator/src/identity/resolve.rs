//! Resolution of a DemoWeb's `spec.identity` through its AzureIdentityBinding to an AzureIdentity,
//! from the controller's reflector stores, into the values the pod template and ServiceAccount need.

use std::fmt;

use demoweb_crd::conditions::reason;
use demoweb_crd::demoweb::IdentitySpec;
use demoweb_crd::validation::summarize;
use demoweb_crd::{AzureIdentity, AzureIdentityBinding, FieldError, IdentityMode};
use kube::runtime::reflector::{ObjectRef, Store};

/// A DemoWeb's identity, dereferenced and validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedIdentity {
    pub mode: IdentityMode,
    /// Name of the AzureIdentityBinding.
    pub binding: String,
    /// Name of the AzureIdentity the binding names.
    pub identity: String,
    /// The binding's selector: the pods' `aadpodidbinding` label in PodIdentity mode.
    pub selector: String,
    pub client_id: Option<String>,
    pub tenant_id: Option<String>,
}

/// Why a DemoWeb's identity cannot be resolved. Every variant needs user action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResolveError {
    /// `spec.identity.binding` names no AzureIdentityBinding in the namespace.
    BindingNotFound { namespace: String, binding: String },
    /// The binding's `azureIdentity` names no AzureIdentity in the namespace.
    IdentityNotFound {
        namespace: String,
        binding: String,
        identity: String,
    },
    /// The binding itself is invalid (no identity, no selector, both spellings of a key).
    InvalidBinding {
        namespace: String,
        binding: String,
        errors: Vec<FieldError>,
    },
    /// The identity is invalid (ARM ID, GUIDs, fields its type needs).
    InvalidIdentity {
        namespace: String,
        binding: String,
        identity: String,
        errors: Vec<FieldError>,
    },
}

impl ResolveError {
    /// The condition reason for a DemoWeb whose identity failed this way.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::BindingNotFound { .. } => reason::IDENTITY_BINDING_NOT_FOUND,
            Self::IdentityNotFound { .. } => reason::IDENTITY_NOT_FOUND,
            Self::InvalidBinding { .. } | Self::InvalidIdentity { .. } => reason::INVALID_IDENTITY,
        }
    }
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BindingNotFound { namespace, binding } => write!(
                f,
                "AzureIdentityBinding {binding:?} named by spec.identity.binding does not exist in namespace {namespace:?}"
            ),
            Self::IdentityNotFound {
                namespace,
                binding,
                identity,
            } => write!(
                f,
                "AzureIdentity {identity:?} named by AzureIdentityBinding {binding:?} does not exist in namespace {namespace:?}"
            ),
            Self::InvalidBinding {
                binding, errors, ..
            } => write!(
                f,
                "AzureIdentityBinding {binding:?} is invalid: {}{}",
                summarize(errors),
                pruned_key_hint(errors)
            ),
            Self::InvalidIdentity {
                binding,
                identity,
                errors,
                ..
            } => write!(
                f,
                "AzureIdentity {identity:?} (named by AzureIdentityBinding {binding:?}) is invalid: {}{}",
                summarize(errors),
                pruned_key_hint(errors)
            ),
        }
    }
}

impl std::error::Error for ResolveError {}

/// Dereferences `spec` (of a DemoWeb in `namespace`) through the stores and validates both objects.
///
/// Checks in the order a user would fix things: the binding exists, is valid, its identity exists
/// and is valid. WorkloadIdentity needs nothing beyond what validation already demands (a clientID).
pub fn resolve(
    namespace: &str,
    spec: &IdentitySpec,
    bindings: &Store<AzureIdentityBinding>,
    identities: &Store<AzureIdentity>,
) -> Result<ResolvedIdentity, ResolveError> {
    let binding_name = spec.binding.as_str();
    let binding = bindings
        .get(&ObjectRef::new(binding_name).within(namespace))
        .ok_or_else(|| ResolveError::BindingNotFound {
            namespace: namespace.to_owned(),
            binding: binding_name.to_owned(),
        })?;
    let invalid_binding = |errors| ResolveError::InvalidBinding {
        namespace: namespace.to_owned(),
        binding: binding_name.to_owned(),
        errors,
    };
    binding.spec.validate().map_err(invalid_binding)?;
    let (Some(identity_name), Some(selector)) =
        (binding.spec.azure_identity(), binding.spec.selector())
    else {
        // validate() reports both as required; this keeps the unreachable case an error, not a panic.
        return Err(invalid_binding(Vec::new()));
    };
    let identity = identities
        .get(&ObjectRef::new(identity_name).within(namespace))
        .ok_or_else(|| ResolveError::IdentityNotFound {
            namespace: namespace.to_owned(),
            binding: binding_name.to_owned(),
            identity: identity_name.to_owned(),
        })?;
    identity
        .spec
        .validate()
        .map_err(|errors| ResolveError::InvalidIdentity {
            namespace: namespace.to_owned(),
            binding: binding_name.to_owned(),
            identity: identity_name.to_owned(),
            errors,
        })?;
    Ok(ResolvedIdentity {
        mode: spec.mode,
        binding: binding_name.to_owned(),
        identity: identity_name.to_owned(),
        selector: selector.to_owned(),
        client_id: identity.spec.client_id().map(str::to_owned),
        tenant_id: identity.spec.tenant_id.clone(),
    })
}

/// Canonical keys whose capitalised spelling the seeds use, with that spelling.
const ALIASED_KEYS: &[(&str, &str)] = &[
    ("spec.resourceID", "ResourceID"),
    ("spec.clientID", "ClientID"),
    ("spec.azureIdentity", "AzureIdentity"),
    ("spec.selector", "Selector"),
];

/// A hint for the one mistake that is invisible in the stored object: a CRD without the
/// capitalised aliases (upstream aad-pod-identity's) prunes `ClientID` & co., so the field then
/// reads as missing although the manifest set it. Empty when no aliased field is missing.
pub fn pruned_key_hint(errors: &[FieldError]) -> String {
    let missing: Vec<(&str, &str)> = ALIASED_KEYS
        .iter()
        .copied()
        .filter(|(field, _)| {
            errors.iter().any(|e| {
                e.field == *field && (e.message.contains("required") || e.message.contains("needs"))
            })
        })
        .collect();
    if missing.is_empty() {
        return String::new();
    }
    let spelled = missing
        .iter()
        .map(|(field, alias)| format!("{alias} as {}", field.trim_start_matches("spec.")))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        " (if the manifest sets it with a capitalised key, the cluster's CRD dropped it: upstream aad-pod-identity's CRD prunes unknown keys, so spell {spelled})"
    )
}
