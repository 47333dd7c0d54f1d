//! Integration tests of the real `demoweb-operator` binary against the API emulator (or a real
//! cluster through `DEMOWEB_TEST_KUBECONFIG`), driven with kubectl the way a user would.

#[path = "operator/support.rs"]
mod support;

#[path = "operator/lifecycle.rs"]
mod lifecycle;

#[path = "operator/safety.rs"]
mod safety;

#[path = "operator/reliability.rs"]
mod reliability;

#[path = "operator/observability.rs"]
mod observability;

#[path = "operator/rbac.rs"]
mod rbac;

#[path = "operator/allowlist.rs"]
mod allowlist;
#[path = "operator/availability.rs"]
mod availability;

#[path = "operator/incluster.rs"]
mod incluster;
