//! Step 4 of reconcile: every child a valid spec asks for, built by the pure builders.

use demoweb_crd::DemoWeb;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;

use super::desired::{self, GitAuth};
use super::gather::Gathered;
use super::ingress::{self, IngressPlan};
use crate::identity::{self, ResolvedIdentity};

/// A spec we can build from.
pub(super) struct Valid {
    pub(super) auth: GitAuth,
    pub(super) identity: Option<ResolvedIdentity>,
}

/// Every child a valid spec asks for.
pub(super) struct Children {
    pub(super) service_account: Option<ServiceAccount>,
    pub(super) config_map: ConfigMap,
    pub(super) deployment: Deployment,
    pub(super) autoscaler: Option<HorizontalPodAutoscaler>,
    pub(super) disruption_budget: Option<PodDisruptionBudget>,
    pub(super) service: Service,
    pub(super) ingress: IngressPlan,
}

/// Step 4: pure.
pub(super) fn build(dw: &DemoWeb, valid: &Valid, found: &Gathered) -> Children {
    let pod_identity = valid
        .identity
        .as_ref()
        .map(|id| identity::pod_identity(dw, id))
        .unwrap_or_default();
    let service_account = valid
        .identity
        .as_ref()
        .and_then(|id| identity::desired_service_account(dw, id));
    Children {
        service_account,
        config_map: desired::desired_config_map(dw),
        deployment: desired::desired_deployment(dw, &valid.auth, &pod_identity),
        autoscaler: desired::desired_autoscaler(dw),
        disruption_budget: desired::desired_disruption_budget(dw),
        service: desired::desired_service(dw),
        ingress: ingress::plan_ingress(
            dw,
            &found.classes,
            &found.capabilities,
            found.kong_refusal.as_deref(),
        ),
    }
}
