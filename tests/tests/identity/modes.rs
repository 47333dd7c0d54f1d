//! Both modes and switching between them: labels, environment and the owned ServiceAccount follow
//! the mode, with nothing stale left behind.

use crate::support::{
    CLIENT, Crds, OTHER_CLIENT, Site, TENANT, binding_yaml, demoweb_yaml, env, identity_yaml,
    label, service_account,
};

const USE_LABEL: &str = "azure.workload.identity/use";
const CLIENT_ANNOTATION: &str = "azure.workload.identity/client-id";
const TENANT_ANNOTATION: &str = "azure.workload.identity/tenant-id";

#[cfg_attr(
    all(real_cluster, not(identity_crds = "ours")),
    ignore = "needs the cluster to serve this project's identity CRDs (declare them with DEMOWEB_TEST_IDENTITY_CRDS=ours)"
)]
#[tokio::test]
async fn switching_modes_switches_cleanly() {
    let site = Site::start("identity-modes", Crds::Ours).await;
    site.apply(&identity_yaml("demo-pod-id", CLIENT, Some(TENANT)))
        .await;
    site.apply(&binding_yaml("demo-binding", "demo-pod-id", "demo"))
        .await;

    // Back and forth twice: what one switch leaves behind shows on the next.
    for round in 1..=2 {
        // Workload identity: owned ServiceAccount, pods labelled and running under it.
        site.apply(&demoweb_yaml("site", "demo-binding", "WorkloadIdentity"))
            .await;
        let sa = site
            .object_where(
                "serviceaccount",
                "site",
                "the workload identity ServiceAccount",
                |_| true,
            )
            .await;
        assert_eq!(sa["metadata"]["annotations"][CLIENT_ANNOTATION], CLIENT);
        assert_eq!(sa["metadata"]["annotations"][TENANT_ANNOTATION], TENANT);
        assert!(
            sa["metadata"]["labels"][USE_LABEL].is_null(),
            "the use label belongs on the pods"
        );
        let owner = &sa["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "DemoWeb");
        assert_eq!(owner["name"], "site");
        assert_eq!(owner["controller"], true);
        let template = site
            .template_where("site", "pods under the ServiceAccount", |t| {
                service_account(t) == Some("site")
            })
            .await;
        assert_accounts_agree(&template, round);
        assert_eq!(label(&template, USE_LABEL), Some("true"), "round {round}");
        assert_eq!(label(&template, "aadpodidbinding"), None, "round {round}");
        assert_eq!(env(&template, "AZURE_CLIENT_ID"), Some(CLIENT));
        site.object_where(
            "demoweb",
            "site",
            "status.identity with the client id",
            |dw| {
                dw["status"]["identity"]["clientId"] == CLIENT
                    && dw["status"]["identity"]["mode"] == "WorkloadIdentity"
            },
        )
        .await;

        // Pod identity: label and env, pods back on the namespace's default account (under either
        // spelling of the field), and only then the ServiceAccount deleted.
        site.apply(&demoweb_yaml("site", "demo-binding", "PodIdentity"))
            .await;
        let template = site
            .template_where("site", "pods labelled for aad-pod-identity", |t| {
                label(t, "aadpodidbinding") == Some("demo")
            })
            .await;
        assert_eq!(
            label(&template, USE_LABEL),
            None,
            "stale workload identity label (round {round})"
        );
        assert_eq!(
            service_account(&template),
            None,
            "stale ServiceAccount reference (round {round}): {}",
            template["spec"]
        );
        assert_accounts_agree(&template, round);
        assert_eq!(env(&template, "AZURE_CLIENT_ID"), Some(CLIENT));
        site.gone("serviceaccount", "site").await;
        assert_eq!(
            service_account(&site.template("site").await),
            None,
            "the ServiceAccount went while the pods still used it (round {round})"
        );
    }

    // And back, with a changed client id on the way: the annotation and env follow it.
    site.apply(&identity_yaml("demo-pod-id", OTHER_CLIENT, None))
        .await;
    site.apply(&demoweb_yaml("site", "demo-binding", "WorkloadIdentity"))
        .await;
    let sa = site
        .object_where(
            "serviceaccount",
            "site",
            "the ServiceAccount on the new client id",
            |sa| sa["metadata"]["annotations"][CLIENT_ANNOTATION] == OTHER_CLIENT,
        )
        .await;
    assert!(
        sa["metadata"]["annotations"][TENANT_ANNOTATION].is_null(),
        "tenant annotation kept after the identity dropped tenantID"
    );
    let template = site
        .template_where("site", "pods on the new client id", |t| {
            env(t, "AZURE_CLIENT_ID") == Some(OTHER_CLIENT)
        })
        .await;
    assert_eq!(
        label(&template, "aadpodidbinding"),
        None,
        "stale aad-pod-identity label"
    );
    assert_eq!(service_account(&template), Some("site"));
    assert_accounts_agree(&template, 3);
    site.finish().await;
}

/// kube-apiserver keeps the deprecated `serviceAccount` equal to `serviceAccountName` in what it
/// serves; pods run under that one account.
fn assert_accounts_agree(template: &serde_json::Value, round: u32) {
    assert_eq!(
        template["spec"]["serviceAccount"], template["spec"]["serviceAccountName"],
        "serviceAccount and serviceAccountName disagree (round {round}): {}",
        template["spec"]
    );
}

#[cfg_attr(
    all(real_cluster, not(identity_crds = "ours")),
    ignore = "needs the cluster to serve this project's identity CRDs (declare them with DEMOWEB_TEST_IDENTITY_CRDS=ours)"
)]
#[tokio::test]
async fn pod_identity_is_the_default_mode() {
    let site = Site::start("identity-default-mode", Crds::Ours).await;
    site.apply(&identity_yaml("demo-pod-id", CLIENT, None))
        .await;
    site.apply(&binding_yaml("demo-binding", "demo-pod-id", "demo"))
        .await;
    site.apply(
        "apiVersion: baeke.info/v1\nkind: DemoWeb\nmetadata:\n  name: site\nspec:\n  gitrepo: https://github.com/gbaeke/static-web.git\n  identity:\n    binding: demo-binding\n",
    )
    .await;
    let template = site
        .template_where("site", "pods labelled aadpodidbinding: demo", |t| {
            label(t, "aadpodidbinding") == Some("demo")
        })
        .await;
    assert_eq!(env(&template, "AZURE_CLIENT_ID"), Some(CLIENT));
    assert_eq!(service_account(&template), None);
    assert!(site.get("serviceaccount", "site").await.is_none());
    site.finish().await;
}

#[cfg_attr(
    all(real_cluster, not(identity_crds = "ours")),
    ignore = "needs the cluster to serve this project's identity CRDs (declare them with DEMOWEB_TEST_IDENTITY_CRDS=ours)"
)]
#[tokio::test]
async fn workload_identity_keeps_its_service_account_while_the_identity_is_missing() {
    let site = Site::start("identity-wi-missing", Crds::Ours).await;
    site.apply(&identity_yaml("demo-pod-id", CLIENT, None))
        .await;
    site.apply(&binding_yaml("demo-binding", "demo-pod-id", "demo"))
        .await;
    site.apply(&demoweb_yaml("site", "demo-binding", "WorkloadIdentity"))
        .await;
    site.template_where("site", "pods under the ServiceAccount", |t| {
        service_account(t) == Some("site")
    })
    .await;

    site.delete("azureidentity", "demo-pod-id").await;
    site.stalled("site", "IdentityNotFound").await;
    let sa = site
        .get("serviceaccount", "site")
        .await
        .expect("the last good ServiceAccount is kept");
    assert_eq!(sa["metadata"]["annotations"][CLIENT_ANNOTATION], CLIENT);
    assert_eq!(service_account(&site.template("site").await), Some("site"));

    site.apply(&identity_yaml("demo-pod-id", OTHER_CLIENT, None))
        .await;
    site.object_where(
        "serviceaccount",
        "site",
        "the ServiceAccount on the recreated identity",
        |sa| sa["metadata"]["annotations"][CLIENT_ANNOTATION] == OTHER_CLIENT,
    )
    .await;
    site.not_stalled("site").await;
    site.finish().await;
}
