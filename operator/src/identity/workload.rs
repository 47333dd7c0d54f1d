//! Pure builders for what a resolved identity adds to a DemoWeb's children: the pod template's
//! labels, environment and ServiceAccount, and the ServiceAccount itself in WorkloadIdentity mode.

use std::collections::BTreeMap;

use demoweb_crd::{DemoWeb, IdentityMode};
use k8s_openapi::api::apps::v1::Deployment;
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

/// The ServiceAccount every namespace has; pods that name no other account run under it.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// What the identity adds to the Deployment's pod template.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodIdentity {
    /// Labels to add to the pod template (never to the Deployment's selector).
    pub labels: BTreeMap<String, String>,
    /// Environment variables for the web container.
    pub env: Vec<EnvVar>,
    /// The DemoWeb's own ServiceAccount, in WorkloadIdentity mode; None means the namespace's
    /// `default`, which the pod template still names: see [`PodIdentity::pod_service_account`].
    pub service_account_name: Option<String>,
}

impl PodIdentity {
    /// The `serviceAccountName` the pod template states: the DemoWeb's own account in
    /// WorkloadIdentity mode, else the namespace's `default`. Always stated, never left out.
    ///
    /// Why not leave the field out outside WorkloadIdentity mode: the pod spec's deprecated
    /// `serviceAccount` is an alias that kube-apiserver keeps equal to `serviceAccountName` on every
    /// write. Decoding a v1 PodSpec takes `serviceAccountName`, or `serviceAccount` when the name
    /// is empty; encoding writes that one value back to both fields. Under server-side apply we own
    /// `serviceAccountName` (it is in our applied configuration) but not `serviceAccount`, which the
    /// server filled in and nobody applied. When a later configuration drops `serviceAccountName`,
    /// the apply removes only that field; the merged object still carries `serviceAccount: <old
    /// account>`, and the decode restores `serviceAccountName` from it. The old account stays in the
    /// template, and once we delete that ServiceAccount the new ReplicaSet cannot create pods.
    /// Applying `serviceAccount` as well (owning both, to drop both) would work only while no
    /// other manager co-owns it (a `kubectl set serviceaccount`, a webhook), and applying empty
    /// strings is stored as absent, so the live object would never match what we apply.
    /// A non-empty `serviceAccountName` always wins over the alias, so stating the account
    /// explicitly switches cleanly whoever owns the deprecated field. `default` is what the
    /// ServiceAccount admission plugin assigns to pods that name none, so pods run as before.
    pub fn pod_service_account(&self) -> String {
        self.service_account_name
            .clone()
            .unwrap_or_else(|| DEFAULT_SERVICE_ACCOUNT.to_owned())
    }
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

/// Whether `deployment` (the live one, as the API server returned or serves it) may still run pods
/// under the ServiceAccount `name`, so that deleting the account now could strand them.
///
/// The rule: an owned ServiceAccount is deleted only once the Deployment neither names it in its
/// pod template (under either spelling of the field) nor may still have pods from an earlier
/// template. The live template is what counts, not the desired one: a write may not have happened
/// yet, may have failed, or may have been changed by the server. And the template alone is not
/// enough during a rollout: the old ReplicaSets keep pods under the old account (whose tokens the
/// kubelet keeps refreshing, and which the old ReplicaSet recreates when one dies) until the new
/// ReplicaSet has replaced them. So the account is in use until the Deployment controller has
/// observed the current generation and every pod it counts is an updated one
/// (`status.replicas == status.updatedReplicas`, and none terminating). A rollout that never
/// completes keeps the account, which is right: its old pods still serve and still need it.
pub fn deployment_uses_service_account(deployment: Option<&Deployment>, name: &str) -> bool {
    let Some(deployment) = deployment else {
        return false;
    };
    let pod = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref());
    let named = pod.is_some_and(|p| {
        p.service_account_name.as_deref() == Some(name)
            || p.service_account.as_deref() == Some(name)
    });
    let status = deployment.status.clone().unwrap_or_default();
    let observed = match (deployment.metadata.generation, status.observed_generation) {
        (Some(generation), Some(observed)) => observed >= generation,
        (Some(_), None) => false,
        (None, _) => true,
    };
    // `terminatingReplicas` is reported where the API server has it (1.33 and later, beta): pods
    // still shutting down run under their account until they exit.
    let old_pods = status.replicas.unwrap_or(0) > status.updated_replicas.unwrap_or(0)
        || status.terminating_replicas.unwrap_or(0) > 0;
    named || !observed || old_pods
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
