//! A cluster with upstream aad-pod-identity's CRDs (no capitalised aliases, no status
//! subresource): canonical objects work in both modes; the seed's capitalised keys are refused by
//! strict validation and pruned otherwise, and the operator says what to rename.

use crate::support::{
    CLIENT, Crds, SEED, SUB, Site, TENANT, binding_yaml, demoweb_yaml, env, identity_yaml, label,
    service_account,
};

#[cfg_attr(
    all(real_cluster, not(identity_crds = "upstream")),
    ignore = "needs the cluster to serve upstream's identity CRDs (declare them with DEMOWEB_TEST_IDENTITY_CRDS=upstream)"
)]
#[tokio::test]
async fn upstream_crds() {
    let site = Site::start("identity-upstream", Crds::Upstream).await;

    // Canonical keys: both modes work as with this project's CRDs.
    site.apply(&identity_yaml("demo-pod-id", CLIENT, Some(TENANT)))
        .await;
    site.apply(&binding_yaml("demo-binding", "demo-pod-id", "demo"))
        .await;
    site.apply(&demoweb_yaml("pi-site", "demo-binding", "PodIdentity"))
        .await;
    site.apply(&demoweb_yaml("wi-site", "demo-binding", "WorkloadIdentity"))
        .await;
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
    let sa = site
        .get("serviceaccount", "wi-site")
        .await
        .expect("ServiceAccount");
    assert_eq!(
        sa["metadata"]["annotations"]["azure.workload.identity/client-id"],
        CLIENT
    );

    // The seed as written: strict field validation (kubectl's default) refuses the unknown keys.
    let seed = SEED.replace("SUBID", SUB);
    let refused = site.try_apply(&seed, &[]).await.expect_err();
    assert!(
        refused.contains("unknown field") && refused.contains("ClientID"),
        "{refused}"
    );

    // Without validation the API server prunes them, and the operator names the fix.
    site.try_apply(&seed, &["--validate=false"])
        .await
        .expect_ok();
    let stored = site
        .get("azureidentity", "aks-pod-id")
        .await
        .expect("stored");
    assert!(
        stored["spec"]["ClientID"].is_null(),
        "ClientID was not pruned: {stored}"
    );
    assert!(stored["spec"]["clientID"].is_null(), "{stored}");
    let event = site
        .warning("AzureIdentity", "aks-pod-id", "InvalidIdentity")
        .await;
    assert!(
        event.note.contains("clientID is required"),
        "{}",
        event.note
    );
    assert!(
        event
            .note
            .contains("spell ResourceID as resourceID, ClientID as clientID"),
        "{}",
        event.note
    );
    let event = site
        .warning(
            "AzureIdentityBinding",
            "aad-identity-binding",
            "InvalidIdentityBinding",
        )
        .await;
    assert!(
        event
            .note
            .contains("spell AzureIdentity as azureIdentity, Selector as selector"),
        "{}",
        event.note
    );

    site.apply(&demoweb_yaml(
        "seed-site",
        "aad-identity-binding",
        "PodIdentity",
    ))
    .await;
    let message = site.stalled("seed-site", "InvalidIdentity").await;
    assert!(message.contains("selector is required"), "{message}");
    assert!(message.contains("Selector as selector"), "{message}");

    // Renamed keys: resolved.
    let renamed = seed
        .replace("ResourceID:", "resourceID:")
        .replace("ClientID:", "clientID:")
        .replace("AzureIdentity: aks", "azureIdentity: aks")
        .replace("Selector:", "selector:");
    site.apply(&renamed).await;
    site.template_where("seed-site", "pods labelled aadpodidbinding: myapp", |t| {
        label(t, "aadpodidbinding") == Some("myapp")
    })
    .await;
    site.finish().await;
}
