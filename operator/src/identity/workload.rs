//! Pure builders for what a resolved identity adds to a DemoWeb's children: the pod template's
//! labels, environment and ServiceAccount, and the ServiceAccount itself in WorkloadIdentity mode.

use std::collections::BTreeMap;

use demoweb_crd::{DemoWeb, IdentityMode};
use k8s_openapi::api::core::v1::{EnvVar, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Resource, ResourceExt};

use super::ResolvedIdentity;

/// Pod label aad-pod-identity's NMI matches against `AzureIdentityBinding.spec.selector`.
pub const POD_IDENTITY_LABEL: &str = "aadpodidbinding";
/// Pod label that makes the Azure Workload Identity webhook mutate a pod (webhook v1.0 and later).
pub const WORKLOAD_IDENTITY_USE_LABEL: &str = "azure.workload.identity/use";
/// ServiceAccount annotation the webhook turns into the pod's `AZURE_CLIENT_ID`.
pub const CLIENT_ID_ANNOTATION: &str = "azure.workload.identity/client-id";
/// ServiceAccount annotation the webhook turns into the pod's `AZURE_TENANT_ID` (else its default).
pub const TENANT_ID_ANNOTATION: &str = "azure.workload.identity/tenant-id";
/// Environment variable the Azure SDKs read to pick the identity.
pub const CLIENT_ID_ENV: &str = "AZURE_CLIENT_ID";
/// Environment variable the Azure SDKs read for the tenant (workload identity).
pub const TENANT_ID_ENV: &str = "AZURE_TENANT_ID";

/// What the identity adds to the Deployment's pod template.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodIdentity {
    /// Labels to add to the pod template (never to the Deployment's selector).
    pub labels: BTreeMap<String, String>,
    /// Environment variables for the web container.
    pub env: Vec<EnvVar>,
    /// `spec.serviceAccountName` of the pod template; None leaves the namespace's default.
    pub service_account_name: Option<String>,
}

/// The pod-template changes for `id`.
///
/// PodIdentity: label `aadpodidbinding: <selector>` and `AZURE_CLIENT_ID` when the identity has one.
/// WorkloadIdentity: label `azure.workload.identity/use: "true"`, the DemoWeb's own ServiceAccount,
/// and `AZURE_CLIENT_ID` / `AZURE_TENANT_ID` with the values the ServiceAccount is annotated with.
/// The webhook injects those variables as well; setting them in the template too keeps what the
/// application reads the same in both modes and, above all, changes the pod template when the
/// identity's client id changes, so the Deployment rolls and the webhook re-injects with the new
/// annotation (it only mutates pods when they are created).
pub fn pod_identity(dw: &DemoWeb, id: &ResolvedIdentity) -> PodIdentity {
    let mut env = Vec::new();
    if let Some(client_id) = &id.client_id {
        env.push(env_var(CLIENT_ID_ENV, client_id));
    }
    match id.mode {
        IdentityMode::PodIdentity => PodIdentity {
            labels: BTreeMap::from([(POD_IDENTITY_LABEL.to_owned(), id.selector.clone())]),
            env,
            service_account_name: None,
        },
        IdentityMode::WorkloadIdentity => {
            if let Some(tenant_id) = &id.tenant_id {
                env.push(env_var(TENANT_ID_ENV, tenant_id));
            }
            PodIdentity {
                labels: BTreeMap::from([(
                    WORKLOAD_IDENTITY_USE_LABEL.to_owned(),
                    "true".to_owned(),
                )]),
                env,
                service_account_name: Some(service_account_name(dw)),
            }
        }
    }
}

/// The ServiceAccount the pods run under in WorkloadIdentity mode; None in PodIdentity mode, so
/// the DemoWeb controller deletes one it created earlier.
///
/// The `azure.workload.identity/use` label goes on the pods, not here: webhook v1.0 and later
/// select pods by it (the pre-1.0 webhook of seed 002 looked at the ServiceAccount instead).
pub fn desired_service_account(dw: &DemoWeb, id: &ResolvedIdentity) -> Option<ServiceAccount> {
    if id.mode != IdentityMode::WorkloadIdentity {
        return None;
    }
    let mut annotations = BTreeMap::new();
    if let Some(client_id) = &id.client_id {
        annotations.insert(CLIENT_ID_ANNOTATION.to_owned(), client_id.clone());
    }
    if let Some(tenant_id) = &id.tenant_id {
        annotations.insert(TENANT_ID_ANNOTATION.to_owned(), tenant_id.clone());
    }
    Some(ServiceAccount {
        metadata: ObjectMeta {
            name: Some(service_account_name(dw)),
            namespace: dw.namespace(),
            labels: Some(labels(dw)),
            annotations: Some(annotations),
            owner_references: dw.controller_owner_ref(&()).map(|owner| vec![owner]),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    })
}

/// The ServiceAccount's name: the DemoWeb's, so the federated credential's subject is
/// `system:serviceaccount:<namespace>:<demoweb name>`.
pub fn service_account_name(dw: &DemoWeb) -> String {
    dw.name_any()
}

// The recommended app.kubernetes.io labels; the DemoWeb controller's children carry the same set.
fn labels(dw: &DemoWeb) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "demoweb".to_owned()),
        ("app.kubernetes.io/instance".to_owned(), dw.name_any()),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            "demoweb-operator".to_owned(),
        ),
    ])
}

fn env_var(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        value_from: None,
    }
}
