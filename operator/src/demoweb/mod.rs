//! The DemoWeb controller: wiring of watches and stores, and reconcile as a pipeline
//! identify → gather → validate → build → apply → status → requeue.
//!
//! Where things live: `controller.rs` wires the watches, stores and mappers; `reconcile.rs` is the
//! pipeline; `gather.rs` reads what a DemoWeb references; `children.rs` assembles the children
//! from the pure builders in `desired.rs` (Deployment, ConfigMap, Service, PDB, HPA) and
//! `ingress.rs` (Ingress and allowlist dialects), with `kong.rs` checking the Kong plugins a
//! DemoWeb names next to its allowlist; `apply.rs` applies them; `sweep.rs` deletes the
//! children a reconcile did not apply; `status.rs` computes the status; `context.rs` is what every reconcile shares.
//!
//! What a reconcile guarantees, whatever triggered it:
//! - children (ServiceAccount for WorkloadIdentity, ConfigMap, Deployment, HorizontalPodAutoscaler,
//!   PodDisruptionBudget, Service, allowlist object, Ingress) are server-side applied in that order, each only when the live object lacks
//!   a wanted field or carries an older applied-hash — so an unchanged DemoWeb costs no writes;
//! - an object of a child's name that this DemoWeb does not control is never written, adopted or
//!   deleted (NameConflict); an allowlist that cannot be expressed creates no Ingress
//!   (UnsupportedIngressClass), and one whose API is missing also withdraws the existing one
//!   (AllowlistApiMissing), as does a Kong plugin named next to the allowlist that is missing or
//!   could widen access (KongPluginRefused, `kong.rs`); refused annotations never reach the
//!   Ingress (AnnotationsRefused);
//!   an invalid spec, a missing Secret or an unresolvable identity applies nothing at all, so
//!   the last good children keep serving;
//! - what decides a plan is watched: IngressClasses, the CRDs of the allowlist APIs, Kong plugins
//!   (their types, while their CRDs are served), credentials Secrets (metadata only), identity
//!   bindings and identities re-queue exactly the DemoWebs that use them;
//! - children this DemoWeb controls (controller reference and `managed-by` label) that the
//!   reconcile did not apply are deleted by one sweep (`sweep.rs`), whatever their name — a
//!   child an older release named otherwise too; likewise the seed Kopf operator's
//!   `<name>-deployment`; a ServiceAccount only once the live Deployment's pods no longer use it,
//!   so no order of writes can leave a rollout on a deleted account;
//! - while the site autoscales, the Deployment's replica count is the autoscaler's: our apply
//!   leaves `spec.replicas` out, after handing the field over (see `hand_over_replicas`), so
//!   neither a reconcile nor a resync resets a scaled Deployment;
//! - status is computed from what was applied and written only when it differs.
//!
//! API errors are returned to the runtime, which backs off per object (`error_policy`).

pub mod apply;
pub mod children;
pub mod context;
pub mod controller;
pub mod desired;
pub mod diagnosis;
pub mod error;
pub mod gather;
pub mod ingress;
pub mod kong;
pub mod pods;
pub mod reconcile;
pub mod status;
pub mod sweep;

pub use controller::{ControllerConfig, run};
pub use reconcile::{error_policy, reconcile};
