//! Placeholder for the identity module (branch identity): the signatures the DemoWeb controller
//! codes against. The identity helper's version replaces this file at merge.

use std::collections::BTreeMap;

use demoweb_crd::demoweb::IdentitySpec;
use demoweb_crd::{AzureIdentity, AzureIdentityBinding, DemoWeb, IdentityMode};
use k8s_openapi::api::core::v1::{EnvVar, ServiceAccount};
use kube::runtime::reflector::{ObjectRef, Store};

/// The identity a DemoWeb's pods run under, resolved from its binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedIdentity {
    pub mode: IdentityMode,
    pub binding: String,
    pub identity: String,
    pub selector: String,
    pub client_id: Option<String>,
    pub tenant_id: Option<String>,
}

/// Why an identity could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("AzureIdentityBinding {0:?} not found")]
    BindingNotFound(String),
    #[error("AzureIdentity {0:?} not found")]
    IdentityNotFound(String),
    #[error("AzureIdentityBinding {0:?} is invalid")]
    InvalidBinding(String),
    #[error("AzureIdentity {0:?} is invalid")]
    InvalidIdentity(String),
}

impl ResolveError {
    pub fn reason(&self) -> &'static str {
        use demoweb_crd::conditions::reason;
        match self {
            Self::BindingNotFound(_) => reason::IDENTITY_BINDING_NOT_FOUND,
            Self::IdentityNotFound(_) => reason::IDENTITY_NOT_FOUND,
            Self::InvalidBinding(_) | Self::InvalidIdentity(_) => reason::INVALID_IDENTITY,
        }
    }
}

/// What the pod template gets from the identity.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodIdentity {
    pub labels: BTreeMap<String, String>,
    pub env: Vec<EnvVar>,
    pub service_account_name: Option<String>,
}

pub fn resolve(
    _namespace: &str,
    spec: &IdentitySpec,
    _bindings: &Store<AzureIdentityBinding>,
    _identities: &Store<AzureIdentity>,
) -> Result<ResolvedIdentity, ResolveError> {
    Err(ResolveError::BindingNotFound(spec.binding.clone()))
}

pub fn demowebs_for_binding(
    _binding: &AzureIdentityBinding,
    _demowebs: &Store<DemoWeb>,
) -> Vec<ObjectRef<DemoWeb>> {
    Vec::new()
}

pub fn demowebs_for_identity(
    _identity: &AzureIdentity,
    _bindings: &Store<AzureIdentityBinding>,
    _demowebs: &Store<DemoWeb>,
) -> Vec<ObjectRef<DemoWeb>> {
    Vec::new()
}

pub fn desired_service_account(_dw: &DemoWeb, _id: &ResolvedIdentity) -> Option<ServiceAccount> {
    None
}

pub fn pod_identity(_id: &ResolvedIdentity) -> PodIdentity {
    PodIdentity::default()
}

/// Validates AzureIdentity and AzureIdentityBinding objects and reports problems as Events.
pub async fn run_identity_controller(_client: kube::Client, _namespace: Option<String>) {}
