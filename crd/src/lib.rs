//! API types of demoweb-operator: the `DemoWeb` custom resource and the aad-pod-identity kinds
//! `AzureIdentity` and `AzureIdentityBinding`, their CRDs, and the validation the operator shares
//! with the CRD schemas.

pub mod annotations;
pub mod azure_identity;
pub mod conditions;
pub mod demoweb;
pub mod validation;
pub mod yaml;

pub use azure_identity::{
    AzureIdentity, AzureIdentityBinding, AzureIdentityBindingSpec, AzureIdentitySpec, IdentityType,
};
pub use demoweb::{DemoWeb, DemoWebSpec, DemoWebStatus, IdentityMode};
pub use validation::FieldError;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The CRD this project always installs.
pub fn demoweb_crd() -> CustomResourceDefinition {
    DemoWeb::crd()
}

/// The aad-pod-identity CRDs, in this project's variant (with a status subresource and the seeds'
/// capitalised keys as deprecated aliases). Clusters may carry upstream's variant instead.
pub fn identity_crds() -> Vec<CustomResourceDefinition> {
    vec![AzureIdentity::crd(), AzureIdentityBinding::crd()]
}

/// Every CRD, in the order `demoweb-operator crd` prints them.
pub fn all_crds() -> Vec<CustomResourceDefinition> {
    let mut crds = vec![demoweb_crd()];
    crds.extend(identity_crds());
    crds
}
