//! The seed's AzureIdentity and AzureIdentityBinding exactly as written: capitalised keys accepted
//! with Warning Events naming the canonical keys; the SUBID placeholder reported, then fixed.

use crate::support::{CLIENT, Crds, SEED, SUB, Site, demoweb_yaml, env, label};

#[cfg_attr(
    all(real_cluster, not(identity_crds = "ours")),
    ignore = "needs the cluster to serve this project's identity CRDs (declare them with DEMOWEB_TEST_IDENTITY_CRDS=ours)"
)]
#[tokio::test]
async fn seed_objects_as_written() {
    let site = Site::start("identity-seed", Crds::Ours).await;
    site.apply(SEED).await;
    site.apply(&demoweb_yaml(
        "mymsi",
        "aad-identity-binding",
        "PodIdentity",
    ))
    .await;

    // The capitalised keys are stored as written.
    let identity = site
        .get("azureidentity", "aks-pod-id")
        .await
        .expect("identity stored");
    assert_eq!(identity["spec"]["ClientID"], CLIENT);

    // The placeholder subscription makes the identity invalid, and the DemoWeb says so.
    let message = site.stalled("mymsi", "InvalidIdentity").await;
    assert!(
        message.contains("\"SUBID\", which is not a GUID"),
        "{message}"
    );
    assert!(
        message.contains("aks-pod-id") && message.contains("aad-identity-binding"),
        "{message}"
    );
    let invalid = site
        .warning("AzureIdentity", "aks-pod-id", "InvalidIdentity")
        .await;
    assert!(invalid.note.contains("SUBID"), "{}", invalid.note);

    let deprecated = site
        .warning("AzureIdentity", "aks-pod-id", "DeprecatedKey")
        .await;
    assert!(
        deprecated.note.contains("use spec.resourceID")
            && deprecated.note.contains("use spec.clientID"),
        "{}",
        deprecated.note
    );
    let deprecated = site
        .warning(
            "AzureIdentityBinding",
            "aad-identity-binding",
            "DeprecatedKey",
        )
        .await;
    assert!(
        deprecated.note.contains("use spec.azureIdentity")
            && deprecated.note.contains("use spec.selector"),
        "{}",
        deprecated.note
    );

    // Filling in the subscription (keys still capitalised) resolves the identity.
    site.apply(&SEED.replace("SUBID", SUB)).await;
    let template = site
        .template_where("mymsi", "pods labelled aadpodidbinding: myapp", |t| {
            label(t, "aadpodidbinding") == Some("myapp")
        })
        .await;
    assert_eq!(env(&template, "AZURE_CLIENT_ID"), Some(CLIENT));
    site.not_stalled("mymsi").await;
    site.event("AzureIdentity", "aks-pod-id", "Normal", "Valid")
        .await;

    // The binding did not change: its warning was published once, not on every pass.
    assert_eq!(
        site.times_published(
            "AzureIdentityBinding",
            "aad-identity-binding",
            "DeprecatedKey"
        )
        .await,
        1
    );
    site.finish().await;
}
