//! Azure identities for DemoWeb pods: resolves `spec.identity` through an AzureIdentityBinding to an
//! AzureIdentity, builds what each identity mode adds to the pods, maps identity objects to the
//! DemoWebs that use them, and validates identity objects into Events.
//!
//! # The two modes
//!
//! A DemoWeb's `spec.identity.binding` names an AzureIdentityBinding in its namespace, and the
//! binding's `azureIdentity` names an AzureIdentity there. `spec.identity.mode` decides how the pods
//! obtain that identity:
//!
//! - **`PodIdentity`** (aad-pod-identity, archived in 2023): the pod template gets the label
//!   `aadpodidbinding: <binding.selector>` and `AZURE_CLIENT_ID` from the identity. aad-pod-identity's
//!   MIC assigns the identity to the node and its NMI answers the pods' token requests to the
//!   instance metadata endpoint; both must run in the cluster, this operator does not replace them.
//! - **`WorkloadIdentity`** (Azure Workload Identity, the successor): the operator owns a
//!   ServiceAccount named like the DemoWeb, annotated `azure.workload.identity/client-id` (and
//!   `azure.workload.identity/tenant-id` when the identity has `tenantID`); the pods run under it
//!   and are labelled `azure.workload.identity/use: "true"`, which the workload identity webhook
//!   selects to project a federated token and inject `AZURE_*` variables. Azure AD trusts the token
//!   through a federated identity credential whose subject is
//!   `system:serviceaccount:<namespace>:<demoweb name>`.
//!
//! Switching modes swaps the label set, the environment and the ServiceAccount: [`pod_identity`]
//! returns only the current mode's labels, and [`desired_service_account`] returns None in
//! PodIdentity mode so the DemoWeb controller deletes the ServiceAccount it owned — once
//! [`deployment_uses_service_account`] says the Deployment's pods have left it. The pod template
//! always names its account (`default` outside WorkloadIdentity mode);
//! [`PodIdentity::pod_service_account`] explains why leaving the field out would keep the old
//! account on a real API server.
//!
//! # Capitalised keys and the two CRD variants
//!
//! The seeds write `ResourceID`, `ClientID`, `AzureIdentity` and `Selector`. This project's CRDs
//! accept them as deprecated aliases; [`run`] publishes a Warning Event naming the canonical key.
//! Upstream aad-pod-identity's v1 CRDs have a structural schema without those keys and without
//! `x-kubernetes-preserve-unknown-fields`, so the API server prunes them (and `kubectl apply`, which
//! asks for strict field validation, rejects the manifest). The object then lacks the field, and
//! the resulting "is required" messages carry a hint to spell the key in lower camel case. Upstream's
//! CRDs have no status subresource; nothing here writes identity status, so both variants work.

pub mod controller;
pub mod findings;
pub mod relations;
pub mod resolve;
pub mod workload;

pub use controller::{crd_variant, run};
pub use findings::CrdVariant;
pub use relations::{demowebs_for_binding, demowebs_for_identity};
pub use resolve::{ResolveError, ResolvedIdentity, resolve};
pub use workload::{
    PodIdentity, deployment_uses_service_account, desired_service_account, pod_identity,
};

#[cfg(test)]
mod tests;
