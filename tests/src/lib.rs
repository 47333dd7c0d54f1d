//! Test support for demoweb-operator: the Kubernetes API emulator, the integration-test harness,
//! the operator launcher and what the operator tests read, for the tests, the benchmark and the playground.

pub use demoweb_emulator as emulator;
pub mod cluster;
pub mod flux;
pub mod gobuild;
pub mod harness;
pub mod helm;
pub mod kong;
pub mod kstatus;
pub mod operator;
pub mod operator_process;
mod project_crds;
pub mod traefik;
