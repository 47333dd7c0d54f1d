//! A cluster with upstream aad-pod-identity's CRDs (no capitalised aliases, no status
//! subresource): canonical objects work in both modes; the seed's capitalised keys are refused by
//! strict validation and pruned otherwise, and the operator says what to rename.

use crate::support::{
    CLIENT, Crds, SEED, SUB, Site, TENANT, binding_yaml, demoweb_yaml, env, identity_yaml, label,
    service_account,
};

#[tokio::test]
async fn upstream_crds() {
    let site = Site::start("identity-upstream", Crds::Upstream).await;

    // Upstream's CRDs serve no status subresource.
    let resources = site
        .kubectl(&["get", "--raw", "/apis/aadpodidentity.k8s.io/v1"])
        .expect("discovery");
    assert!(resources.contains("\"azureidentities\""), "{resources}");
    assert!(!resources.contains("azureidentities/status"), "{resources}");

    // Canonical keys: both modes work as with this project's CRDs.
    site.apply(&identity_yaml("demo-pod-id", CLIENT, Some(TENANT)));
    site.apply(&binding_yaml("demo-binding", "demo-pod-id", "demo"));
    site.apply(&demoweb_yaml("pi-site", "demo-binding", "PodIdentity"));
    site.apply(&demoweb_yaml("wi-site", "demo-binding", "WorkloadIdentity"));
    let template = site
        .template_where("pi-site", "pod identity pods", |t| {
            label(t, "aadpodidbinding") == Some("demo")
        })
        .await;
    assert_eq!(env(&template, "AZURE_CLIENT_ID"), Some(CLIENT));
    site.template_where("wi-site", "workload identity pods", |t| {
        service_account(t) == Some("wi-site")
    })
    .await;
    let sa = site.get("serviceaccount", "wi-site").expect("ServiceAccount");
    assert_eq!(sa["metadata"]["annotations"]["azure.workload.identity/client-id"], CLIENT);

    // The seed as written: strict field validation (kubectl's default) refuses the unknown keys.
    let seed = SEED.replace("SUBID", SUB);
    let refused = site
        .try_apply(&seed, &[])
        .expect_err("upstream's schema has no ClientID");
    assert!(refused.contains("unknown field") && refused.contains("ClientID"), "{refused}");

    // Without validation the API server prunes them, and the operator names the fix.
    site.try_apply(&seed, &["--validate=false"])
        .expect("accepted with the unknown keys dropped");
    let stored = site.get("azureidentity", "aks-pod-id").expect("stored");
    assert!(stored["spec"]["ClientID"].is_null(), "ClientID was not pruned: {stored}");
    assert!(stored["spec"]["clientID"].is_null(), "{stored}");
    let event = site.warning("AzureIdentity", "aks-pod-id", "InvalidIdentity").await;
    assert!(event.note.contains("clientID is required"), "{}", event.note);
    assert!(event.note.contains("spell ResourceID as resourceID, ClientID as clientID"), "{}", event.note);
    let event = site
        .warning("AzureIdentityBinding", "aad-identity-binding", "InvalidIdentityBinding")
        .await;
    assert!(event.note.contains("spell AzureIdentity as azureIdentity, Selector as selector"), "{}", event.note);

    site.apply(&demoweb_yaml("seed-site", "aad-identity-binding", "PodIdentity"));
    let message = site.stalled("seed-site", "InvalidIdentity").await;
    assert!(message.contains("selector is required"), "{message}");
    assert!(message.contains("Selector as selector"), "{message}");

    // Renamed keys: resolved.
    let renamed = seed
        .replace("ResourceID:", "resourceID:")
        .replace("ClientID:", "clientID:")
        .replace("AzureIdentity: aks", "azureIdentity: aks")
        .replace("Selector:", "selector:");
    site.apply(&renamed);
    site.template_where("seed-site", "pods labelled aadpodidbinding: myapp", |t| {
        label(t, "aadpodidbinding") == Some("myapp")
    })
    .await;
}
