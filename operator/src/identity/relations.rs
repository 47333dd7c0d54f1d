//! Mappers from an AzureIdentityBinding or AzureIdentity to the DemoWebs that use it, over the
//! controller's reflector stores, so a change re-reconciles exactly those DemoWebs.

use std::collections::BTreeSet;

use demoweb_crd::{AzureIdentity, AzureIdentityBinding, DemoWeb};
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

/// DemoWebs in the binding's namespace whose `spec.identity.binding` names it.
pub fn demowebs_for_binding(
    binding: &AzureIdentityBinding,
    demowebs: &Store<DemoWeb>,
) -> Vec<ObjectRef<DemoWeb>> {
    let namespace = binding.namespace();
    let name = binding.name_any();
    demowebs_using(namespace.as_deref(), &BTreeSet::from([name]), demowebs)
}

/// DemoWebs that use the identity through any binding in its namespace that names it (by either
/// spelling of `azureIdentity`).
pub fn demowebs_for_identity(
    identity: &AzureIdentity,
    bindings: &Store<AzureIdentityBinding>,
    demowebs: &Store<DemoWeb>,
) -> Vec<ObjectRef<DemoWeb>> {
    let namespace = identity.namespace();
    let name = identity.name_any();
    let naming: BTreeSet<String> = bindings
        .state()
        .iter()
        .filter(|b| b.namespace() == namespace && b.spec.azure_identity() == Some(name.as_str()))
        .map(|b| b.name_any())
        .collect();
    if naming.is_empty() {
        return Vec::new();
    }
    demowebs_using(namespace.as_deref(), &naming, demowebs)
}

fn demowebs_using(
    namespace: Option<&str>,
    binding_names: &BTreeSet<String>,
    demowebs: &Store<DemoWeb>,
) -> Vec<ObjectRef<DemoWeb>> {
    let mut refs: Vec<ObjectRef<DemoWeb>> = demowebs
        .state()
        .iter()
        .filter(|dw| dw.namespace().as_deref() == namespace)
        .filter(|dw| {
            dw.spec
                .identity
                .as_ref()
                .is_some_and(|id| binding_names.contains(&id.binding))
        })
        .map(|dw| ObjectRef::from_obj(dw.as_ref()))
        .collect();
    // Store order is a hash map's; sorting keeps the result deterministic for tests and logs.
    refs.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    refs
}
