//! The aad-pod-identity kinds `AzureIdentity` and `AzureIdentityBinding` (`aadpodidentity.k8s.io/v1`),
//! with upstream v1.8's field names and the seeds' capitalised keys as deprecated aliases.

// Printer columns repeat `type_ = "string"`, which the lint mistakes for a duplicated attribute.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::api::core::v1::SecretReference;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

pub(crate) const RESOURCE_ID_RULE: &str = "!(has(self.resourceID) && has(self.ResourceID))";
pub(crate) const CLIENT_ID_RULE: &str = "!(has(self.clientID) && has(self.ClientID))";
pub(crate) const AZURE_IDENTITY_RULE: &str =
    "!(has(self.azureIdentity) && has(self.AzureIdentity))";
pub(crate) const SELECTOR_RULE: &str = "!(has(self.selector) && has(self.Selector))";

/// An Azure identity (user-assigned managed identity or service principal) pods may use.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "aadpodidentity.k8s.io",
    version = "v1",
    kind = "AzureIdentity",
    // aadpodidentity.k8s.io is a protected *.k8s.io group: the API server requires this annotation.
    annotation("api-approved.kubernetes.io", "unapproved, aad-pod-identity compatible CRD"),
    plural = "azureidentities",
    singular = "azureidentity",
    namespaced,
    status = "AzureIdentityStatus",
    derive = "PartialEq",
    doc = "An Azure identity (user-assigned managed identity or service principal) that pods may use.",
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.type"),
    printcolumn(name = "ClientID", type_ = "string", json_path = ".spec.clientID"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new(RESOURCE_ID_RULE).message("set resourceID or its deprecated spelling ResourceID, not both"))]
#[x_kube(validation = Rule::new(CLIENT_ID_RULE).message("set clientID or its deprecated spelling ClientID, not both"))]
pub struct AzureIdentitySpec {
    /// 0: user-assigned managed identity, 1: service principal, 2: service principal with a certificate.
    #[serde(default, rename = "type")]
    #[schemars(range(min = 0, max = 2))]
    pub identity_type: i64,

    /// ARM resource ID of the user-assigned managed identity, e.g.
    /// /subscriptions/<subscription>/resourcegroups/<group>/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>.
    #[serde(
        default,
        rename = "resourceID",
        skip_serializing_if = "Option::is_none"
    )]
    pub resource_id: Option<String>,

    /// Deprecated spelling of resourceID.
    #[serde(
        default,
        rename = "ResourceID",
        skip_serializing_if = "Option::is_none"
    )]
    pub resource_id_deprecated: Option<String>,

    /// Client (application) ID of the managed identity or service principal.
    #[serde(default, rename = "clientID", skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,

    /// Deprecated spelling of clientID.
    #[serde(default, rename = "ClientID", skip_serializing_if = "Option::is_none")]
    pub client_id_deprecated: Option<String>,

    /// Secret holding the service principal's password or certificate (types 1 and 2).
    #[serde(
        default,
        rename = "clientPassword",
        skip_serializing_if = "Option::is_none"
    )]
    pub client_password: Option<SecretReference>,

    /// Azure AD tenant of the service principal.
    #[serde(default, rename = "tenantID", skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,

    /// Auxiliary tenants of the service principal.
    #[serde(
        default,
        rename = "auxiliaryTenantIDs",
        skip_serializing_if = "Option::is_none"
    )]
    pub auxiliary_tenant_ids: Option<Vec<String>>,

    /// Azure AD resource, for sovereign clouds.
    #[serde(
        default,
        rename = "adResourceID",
        skip_serializing_if = "Option::is_none"
    )]
    pub ad_resource_id: Option<String>,

    /// Azure AD endpoint, for sovereign clouds.
    #[serde(
        default,
        rename = "adEndpoint",
        skip_serializing_if = "Option::is_none"
    )]
    pub ad_endpoint: Option<String>,

    /// Replicas of the identity (used by aad-pod-identity in managed mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
}

/// Status of an AzureIdentity, as upstream defines it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct AzureIdentityStatus {
    /// Replicas available (set by aad-pod-identity).
    #[serde(
        default,
        rename = "availableReplicas",
        skip_serializing_if = "Option::is_none"
    )]
    pub available_replicas: Option<i32>,
}

/// The kind of Azure identity, from `spec.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdentityType {
    UserAssignedMsi,
    ServicePrincipal,
    ServicePrincipalCertificate,
}

impl AzureIdentitySpec {
    /// The identity's kind, or None for a number outside 0..=2.
    pub fn kind(&self) -> Option<IdentityType> {
        match self.identity_type {
            0 => Some(IdentityType::UserAssignedMsi),
            1 => Some(IdentityType::ServicePrincipal),
            2 => Some(IdentityType::ServicePrincipalCertificate),
            _ => None,
        }
    }

    /// The resource ID, whichever spelling set it.
    pub fn resource_id(&self) -> Option<&str> {
        self.resource_id
            .as_deref()
            .or(self.resource_id_deprecated.as_deref())
    }

    /// The client ID, whichever spelling set it.
    pub fn client_id(&self) -> Option<&str> {
        self.client_id
            .as_deref()
            .or(self.client_id_deprecated.as_deref())
    }

    /// Deprecated keys in use, each with its canonical spelling.
    pub fn deprecated_keys(&self) -> Vec<(&'static str, &'static str)> {
        let mut keys = Vec::new();
        if self.resource_id_deprecated.is_some() {
            keys.push(("ResourceID", "resourceID"));
        }
        if self.client_id_deprecated.is_some() {
            keys.push(("ClientID", "clientID"));
        }
        keys
    }
}

/// Binds an AzureIdentity to the pods labelled `aadpodidbinding: <selector>`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "aadpodidentity.k8s.io",
    version = "v1",
    kind = "AzureIdentityBinding",
    // aadpodidentity.k8s.io is a protected *.k8s.io group: the API server requires this annotation.
    annotation("api-approved.kubernetes.io", "unapproved, aad-pod-identity compatible CRD"),
    plural = "azureidentitybindings",
    singular = "azureidentitybinding",
    namespaced,
    status = "AzureIdentityBindingStatus",
    derive = "PartialEq",
    doc = "Binds an AzureIdentity to the pods labelled aadpodidbinding: <selector>.",
    printcolumn(
        name = "AzureIdentity",
        type_ = "string",
        json_path = ".spec.azureIdentity"
    ),
    printcolumn(name = "Selector", type_ = "string", json_path = ".spec.selector"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new(AZURE_IDENTITY_RULE).message("set azureIdentity or its deprecated spelling AzureIdentity, not both"))]
#[x_kube(validation = Rule::new(SELECTOR_RULE).message("set selector or its deprecated spelling Selector, not both"))]
pub struct AzureIdentityBindingSpec {
    /// Name of the AzureIdentity in the same namespace.
    #[serde(
        default,
        rename = "azureIdentity",
        skip_serializing_if = "Option::is_none"
    )]
    pub azure_identity: Option<String>,

    /// Deprecated spelling of azureIdentity.
    #[serde(
        default,
        rename = "AzureIdentity",
        skip_serializing_if = "Option::is_none"
    )]
    pub azure_identity_deprecated: Option<String>,

    /// Value of the pods' `aadpodidbinding` label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,

    /// Deprecated spelling of selector.
    #[serde(default, rename = "Selector", skip_serializing_if = "Option::is_none")]
    pub selector_deprecated: Option<String>,

    /// Preference among several bindings matching the same pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
}

/// Status of an AzureIdentityBinding, as upstream defines it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct AzureIdentityBindingStatus {
    /// Replicas available (set by aad-pod-identity).
    #[serde(
        default,
        rename = "availableReplicas",
        skip_serializing_if = "Option::is_none"
    )]
    pub available_replicas: Option<i32>,
}

impl AzureIdentityBindingSpec {
    /// The identity's name, whichever spelling set it.
    pub fn azure_identity(&self) -> Option<&str> {
        self.azure_identity
            .as_deref()
            .or(self.azure_identity_deprecated.as_deref())
    }

    /// The selector, whichever spelling set it.
    pub fn selector(&self) -> Option<&str> {
        self.selector
            .as_deref()
            .or(self.selector_deprecated.as_deref())
    }

    /// Deprecated keys in use, each with its canonical spelling.
    pub fn deprecated_keys(&self) -> Vec<(&'static str, &'static str)> {
        let mut keys = Vec::new();
        if self.azure_identity_deprecated.is_some() {
            keys.push(("AzureIdentity", "azureIdentity"));
        }
        if self.selector_deprecated.is_some() {
            keys.push(("Selector", "selector"));
        }
        keys
    }
}
