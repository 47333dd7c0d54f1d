//! Relations: a DemoWeb follows its binding and identity as they appear, change, disappear and
//! come back, and keeps its last good pods while a reference is broken.

use crate::support::{
    CLIENT, Crds, OTHER_CLIENT, Site, binding_yaml, demoweb_yaml, env, identity_yaml, label,
};

/// How soon an object that arrives after the DemoWeb naming it must be acted on.
const PROMPT: std::time::Duration = std::time::Duration::from_secs(10);

#[cfg_attr(
    all(real_cluster, not(identity_crds = "ours")),
    ignore = "needs the cluster to serve this project's identity CRDs (declare them with DEMOWEB_TEST_IDENTITY_CRDS=ours)"
)]
#[tokio::test]
async fn missing_references_then_created() {
    let site = Site::start("identity-missing", Crds::Ours).await;
    site.apply(&demoweb_yaml("site", "demo-binding", "PodIdentity"))
        .await;
    let message = site.stalled("site", "IdentityBindingNotFound").await;
    assert!(
        message.contains("\"demo-binding\"") && message.contains(site.ns()),
        "{message}"
    );

    // The binding arrives, naming an identity that does not exist yet: acted on within seconds
    // (GitOps applies in no fixed order; the stalled requeue alone would take 30 s).
    site.apply(&binding_yaml("demo-binding", "demo-pod-id", "demo"))
        .await;
    let arrived = std::time::Instant::now();
    let message = site.stalled("site", "IdentityNotFound").await;
    assert!(
        arrived.elapsed() < PROMPT,
        "the new binding was acted on only after {:?}",
        arrived.elapsed()
    );
    assert!(
        message.contains("\"demo-pod-id\"") && message.contains("\"demo-binding\""),
        "{message}"
    );
    let event = site
        .warning("AzureIdentityBinding", "demo-binding", "IdentityNotFound")
        .await;
    assert!(event.note.contains("\"demo-pod-id\""), "{}", event.note);

    // The identity arrives: everything resolves without touching the DemoWeb.
    site.apply(&identity_yaml("demo-pod-id", CLIENT, None))
        .await;
    let arrived = std::time::Instant::now();
    let template = site
        .template_where("site", "pods labelled aadpodidbinding: demo", |t| {
            label(t, "aadpodidbinding") == Some("demo")
        })
        .await;
    assert!(
        arrived.elapsed() < PROMPT,
        "the new identity was acted on only after {:?}",
        arrived.elapsed()
    );
    assert_eq!(env(&template, "AZURE_CLIENT_ID"), Some(CLIENT));
    site.not_stalled("site").await;
    site.event("AzureIdentityBinding", "demo-binding", "Normal", "Valid")
        .await;
    site.finish().await;
}

#[cfg_attr(
    all(real_cluster, not(identity_crds = "ours")),
    ignore = "needs the cluster to serve this project's identity CRDs (declare them with DEMOWEB_TEST_IDENTITY_CRDS=ours)"
)]
#[tokio::test]
async fn identity_changed_deleted_recreated() {
    let site = Site::start("identity-lifecycle", Crds::Ours).await;
    site.apply(&identity_yaml("demo-pod-id", CLIENT, None))
        .await;
    site.apply(&binding_yaml("demo-binding", "demo-pod-id", "demo"))
        .await;
    site.apply(&demoweb_yaml("site", "demo-binding", "PodIdentity"))
        .await;
    site.template_where("site", "pods on the first client id", |t| {
        env(t, "AZURE_CLIENT_ID") == Some(CLIENT)
    })
    .await;

    // Changed: the pods follow.
    site.apply(&identity_yaml("demo-pod-id", OTHER_CLIENT, None))
        .await;
    site.template_where("site", "pods on the changed client id", |t| {
        env(t, "AZURE_CLIENT_ID") == Some(OTHER_CLIENT)
    })
    .await;

    // Made invalid: the DemoWeb says why and keeps its last good pods.
    site.apply(&identity_yaml("demo-pod-id", "not-a-guid", None))
        .await;
    let message = site.stalled("site", "InvalidIdentity").await;
    assert!(
        message.contains("clientID \"not-a-guid\" is not a GUID"),
        "{message}"
    );
    assert_eq!(
        env(&site.template("site").await, "AZURE_CLIENT_ID"),
        Some(OTHER_CLIENT)
    );
    let event = site
        .warning("AzureIdentity", "demo-pod-id", "InvalidIdentity")
        .await;
    assert!(event.note.contains("not-a-guid"), "{}", event.note);

    // Deleted: IdentityNotFound, last good pods kept.
    site.delete("azureidentity", "demo-pod-id").await;
    site.stalled("site", "IdentityNotFound").await;
    assert_eq!(
        label(&site.template("site").await, "aadpodidbinding"),
        Some("demo")
    );

    // Recreated: resolved again.
    site.apply(&identity_yaml("demo-pod-id", CLIENT, None))
        .await;
    site.template_where("site", "pods back on the recreated identity", |t| {
        env(t, "AZURE_CLIENT_ID") == Some(CLIENT)
    })
    .await;
    site.not_stalled("site").await;
    site.finish().await;
}

#[cfg_attr(
    all(real_cluster, not(identity_crds = "ours")),
    ignore = "needs the cluster to serve this project's identity CRDs (declare them with DEMOWEB_TEST_IDENTITY_CRDS=ours)"
)]
#[tokio::test]
async fn only_the_users_of_a_binding_are_affected() {
    let site = Site::start("identity-relations", Crds::Ours).await;
    site.apply(&identity_yaml("id-a", CLIENT, None)).await;
    site.apply(&identity_yaml("id-b", OTHER_CLIENT, None)).await;
    site.apply(&binding_yaml("bind-a", "id-a", "a")).await;
    site.apply(&binding_yaml("bind-b", "id-b", "b")).await;
    site.apply(&demoweb_yaml("site-a", "bind-a", "PodIdentity"))
        .await;
    site.apply(&demoweb_yaml("site-b", "bind-b", "PodIdentity"))
        .await;
    for (dw, selector) in [("site-a", "a"), ("site-b", "b")] {
        site.template_where(dw, "pods labelled with the binding's selector", |t| {
            label(t, "aadpodidbinding") == Some(selector)
        })
        .await;
    }
    // Re-pointing bind-a at id-b with a new selector moves site-a only.
    site.apply(&binding_yaml("bind-a", "id-b", "a2")).await;
    site.template_where("site-a", "site-a on id-b with the new selector", |t| {
        label(t, "aadpodidbinding") == Some("a2") && env(t, "AZURE_CLIENT_ID") == Some(OTHER_CLIENT)
    })
    .await;
    let b = site.template("site-b").await;
    assert_eq!(label(&b, "aadpodidbinding"), Some("b"));
    assert_eq!(env(&b, "AZURE_CLIENT_ID"), Some(OTHER_CLIENT));
    site.finish().await;
}
