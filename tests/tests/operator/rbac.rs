//! The chart's RBAC grants every request the operator makes: the operator runs through every kind
//! of child (allowlist objects of two dialects, a ServiceAccount, a credentials Secret, an
//! autoscaler and a disruption budget, leader election) and the emulator's per-client request counters are checked against the chart's rules.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::lifecycle::MIDDLEWARE_CRD;
use crate::support::{
    Operator, install_crds, merge_patch, repo_root, wait_condition, wait_gone, wait_object,
};
use demoweb_tests::harness::TestEnv;

/// (resource, verb) pairs the chart's Role/ClusterRole grants.
fn granted() -> BTreeSet<(String, String)> {
    let path = repo_root().join("charts/demoweb-operator/templates/rbac.yaml");
    let text = std::fs::read_to_string(&path).expect("the chart's rbac.yaml");
    // Template directives stand only in metadata; each Role's rules block is plain YAML.
    let rules: Vec<Value> = text
        .split("\n---")
        .filter_map(|doc| doc.split_once("\nrules:\n").map(|(_, rules)| rules))
        .flat_map(|rules| {
            demoweb_crd::yaml::from_str::<Vec<Value>>(rules).expect("rules parse as YAML")
        })
        .collect();
    assert!(!rules.is_empty(), "no rules found in {}", path.display());
    let mut out = BTreeSet::new();
    for rule in rules {
        let strings = |key: &str| -> Vec<String> {
            rule[key]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        };
        for resource in strings("resources") {
            for verb in strings("verbs") {
                out.insert((resource.clone(), verb));
            }
        }
    }
    out
}

/// The RBAC verbs a request needs: a server-side apply may create the object, so it needs both.
fn rbac_verbs(verb: &str) -> Vec<&str> {
    match verb {
        "apply" => vec!["patch", "create"],
        other => vec![other],
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn chart_rbac_covers_every_request_the_operator_makes() {
    let env = TestEnv::new("rbac").await;
    let Some(emulator) = env.emulator_or_skip("counting the operator's requests per client") else {
        env.finish().await;
        return;
    };
    install_crds(&env).await;
    let identity_crds = repo_root().join("charts/demoweb-operator/files/aadpodidentity-crds.yaml");
    env.kubectl(&["apply", "-f", identity_crds.to_str().expect("utf-8 path")])
        .await
        .expect_ok();
    env.apply_yaml(MIDDLEWARE_CRD).await.expect_ok();
    let ns = env.namespace.clone();
    let op = Operator::start(
        &env,
        &["--leader-election=true", &format!("--lease-namespace={ns}")],
    )
    .await;

    env.apply_yaml(
        "apiVersion: v1
kind: Secret
metadata: {name: git-creds}
stringData: {username: site, password: secret}
---
apiVersion: aadpodidentity.k8s.io/v1
kind: AzureIdentity
metadata: {name: site-id}
spec:
  type: 0
  resourceID: /subscriptions/6f1c2a4e-0d3b-4e8f-9a51-2b7c8d9e0f11/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/site-id
  clientID: c35040d0-f73c-4c4e-a376-9bb1c5532fda
---
apiVersion: aadpodidentity.k8s.io/v1
kind: AzureIdentityBinding
metadata: {name: site-binding}
spec: {azureIdentity: site-id, selector: site}
---
apiVersion: baeke.info/v1
kind: DemoWeb
metadata: {name: traefik-site}
spec:
  gitrepo: https://github.com/example/private.git
  credentials: {secretName: git-creds}
  ingress: {host: a.example.com, className: traefik, allowedSourceRanges: [10.0.0.0/8]}
---
apiVersion: baeke.info/v1
kind: DemoWeb
metadata: {name: kong-site}
spec:
  gitrepo: https://github.com/gbaeke/static-web.git
  ingress: {host: b.example.com, className: kong, allowedSourceRanges: [10.0.0.0/8]}
  identity: {binding: site-binding, mode: WorkloadIdentity}
  autoscaling: {minReplicas: 2, maxReplicas: 4}
",
    )
    .await
    .expect_ok();
    for name in ["traefik-site", "kong-site"] {
        wait_condition(&env, &op, name, "Ready", "True", "Reconciled").await;
    }
    wait_object(
        &env,
        &op,
        "kongplugins",
        "kong-site-allowlist",
        "the KongPlugin",
        |_| true,
    )
    .await;

    for (kind, what) in [
        ("horizontalpodautoscalers", "the HorizontalPodAutoscaler"),
        ("poddisruptionbudgets", "the PodDisruptionBudget"),
    ] {
        wait_object(&env, &op, kind, "kong-site", what, |_| true).await;
    }

    // Children the DemoWeb stops wanting are deleted by the operator itself.
    merge_patch(
        &env,
        "demoweb",
        "kong-site",
        r#"{"spec":{"ingress":null,"identity":{"mode":"PodIdentity"},"autoscaling":null}}"#,
    )
    .await;
    wait_gone(&env, &op, "horizontalpodautoscaler", "kong-site").await;
    wait_gone(&env, &op, "poddisruptionbudget", "kong-site").await;
    wait_gone(&env, &op, "serviceaccount", "kong-site").await;
    wait_gone(&env, &op, "kongplugins", "kong-site-allowlist").await;
    wait_gone(&env, &op, "ingress", "kong-site").await;

    let used: BTreeSet<(String, String)> = emulator
        .request_counts()
        .by_agent()
        .into_keys()
        .filter(|(agent, _, _)| agent == "demoweb-operator")
        // Discovery paths (`/apis/...`) are open to every authenticated user (system:discovery).
        .filter(|(_, _, resource)| !resource.starts_with('/'))
        .map(|(_, verb, resource)| (resource, verb))
        .collect();
    for expected in [
        ("deployments", "apply"),
        ("leases", "create"),
        ("serviceaccounts", "delete"),
        ("horizontalpodautoscalers", "delete"),
        ("poddisruptionbudgets", "delete"),
    ] {
        assert!(
            used.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "the operator's requests were not told apart by User-Agent (expected {expected:?} among {used:?})"
        );
    }
    let granted = granted();
    let missing: Vec<String> = used
        .iter()
        .flat_map(|(resource, verb)| {
            rbac_verbs(verb)
                .into_iter()
                .filter(|v| !granted.contains(&(resource.clone(), (*v).to_owned())))
                .map(move |v| format!("{v} {resource}"))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "charts/demoweb-operator/templates/rbac.yaml does not grant what the operator used: {missing:?}"
    );
    drop(op);
    env.finish().await;
}
