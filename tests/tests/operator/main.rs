//! Integration tests of the real `demoweb-operator` binary against the API emulator (or a real
//! cluster through `DEMOWEB_TEST_KUBECONFIG`), driven with kubectl the way a user would.

mod allowlist;
mod availability;
mod diagnosis;
mod examples;
mod flux;
mod incluster;
mod lifecycle;
mod observability;
mod rbac;
mod reliability;
mod safety;
mod traefik;
mod transport;
