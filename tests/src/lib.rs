//! Test support for demoweb-operator: the Kubernetes API emulator, the integration-test harness,
//! the benchmark and the playground.

pub use demoweb_emulator as emulator;
pub mod harness;
pub mod operator_process;
mod project_crds;
