//! The shared vocabulary of every controller: the operator's one manager name, the
//! `app.kubernetes.io/*` labels and selector, child metadata and the applied-hash annotation.

use std::collections::BTreeMap;

use demoweb_crd::DemoWeb;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Resource, ResourceExt};
use sha2::{Digest, Sha256};

// A macro so that `concat!` can derive the other names from it at compile time.
macro_rules! manager {
    () => {
        "demoweb-operator"
    };
}

/// The operator's one name: field manager of every write, `managed-by` label, Event reporter.
pub const MANAGER: &str = manager!();
/// The field manager that co-owns a Deployment's `spec.replicas` while the count is handed over
/// to the HorizontalPodAutoscaler (see `write::writer::Writer::hand_over`).
pub const HANDOVER_MANAGER: &str = concat!(manager!(), "-handover");

/// Annotation on every child: the hash of the desired object last applied (see `apply.rs`).
pub const APPLIED_HASH_ANNOTATION: &str = "demoweb.baeke.info/applied-hash";

pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
pub const APP_NAME: &str = "demoweb";

/// Labels that select a DemoWeb's pods. Immutable once the Deployment exists, so they carry no
/// component or version.
pub fn selector_labels(dw: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAME.to_owned(), APP_NAME.to_owned()),
        (LABEL_INSTANCE.to_owned(), dw.to_owned()),
    ])
}

/// The one labels helper: every child carries these.
pub fn labels(dw: &str, component: &str) -> BTreeMap<String, String> {
    let mut labels = selector_labels(dw);
    labels.insert(LABEL_MANAGED_BY.to_owned(), MANAGER.to_owned());
    labels.insert(LABEL_COMPONENT.to_owned(), component.to_owned());
    labels
}

/// Label selector for the watches on children: only what this operator manages.
pub fn managed_selector() -> String {
    format!("{LABEL_MANAGED_BY}={MANAGER}")
}

/// Metadata of a child: name, namespace, labels and the controller owner reference.
pub fn child_meta(dw: &DemoWeb, name: String, component: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: dw.namespace(),
        labels: Some(labels(&dw.name_any(), component)),
        owner_references: dw.controller_owner_ref(&()).map(|r| vec![r]),
        ..ObjectMeta::default()
    }
}

/// First 16 hex digits of the SHA-256 of `text`: short enough for an annotation, long enough to
/// never collide between two versions of one object.
pub fn short_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    format!("{digest:x}")[..16].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handover_manager_is_derived_from_the_one_name() {
        assert_eq!(HANDOVER_MANAGER, "demoweb-operator-handover");
    }
}
