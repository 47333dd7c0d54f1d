//! Test support for demoweb-operator: the Kubernetes API emulator, the integration-test harness,
//! the benchmark and the playground.

pub mod emulator;
pub mod harness;
pub mod operator_process;
mod project_crds;
