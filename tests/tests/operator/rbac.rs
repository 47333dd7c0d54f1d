//! The chart's RBAC grants every request the operator makes: the operator runs through every kind
//! of child (allowlist objects of two dialects, a ServiceAccount, a credentials Secret, an
//! autoscaler and a disruption budget, leader election) and the emulator's per-client request counters are checked against the chart's rules.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::lifecycle::install_allowlist_apis;
use demoweb_tests::emulator::Access;
use demoweb_tests::harness::TestEnv;
use demoweb_tests::operator::{
    Operator, install_crds, merge_patch, repo_root, wait_condition, wait_gone, wait_object,
};

/// Where a chart rule applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    /// A ClusterRole: every namespace and cluster-scoped kinds.
    Cluster,
    /// A Role: requests inside its namespace only.
    Namespace,
}

/// One (group, resource, verb) a chart role grants, and where.
#[derive(Debug, PartialEq, Eq)]
struct Grant {
    scope: Scope,
    group: String,
    resource: String,
    verb: String,
}

/// What the chart's roles grant when the operator watches one namespace (`watchNamespace` set:
/// the main role is then a Role in that namespace, as the template says). The test's operator
/// watches one namespace and holds its Lease there, so every Role's namespace is that one.
fn granted() -> Vec<Grant> {
    let path = repo_root().join("charts/demoweb-operator/templates/rbac.yaml");
    let text = std::fs::read_to_string(&path).expect("the chart's rbac.yaml");
    let mut out = Vec::new();
    // Template directives stand only in metadata; each role's rules block is plain YAML.
    for doc in text.split("\n---") {
        let Some((head, rules)) = doc.split_once("\nrules:\n") else {
            continue;
        };
        let kind = head
            .lines()
            .find_map(|l| l.strip_prefix("kind: "))
            .expect("a role has a kind")
            .trim();
        let scope = match kind {
            "ClusterRole" => Scope::Cluster,
            "Role" => Scope::Namespace,
            // `ternary "Role" "ClusterRole" (ne .Values.watchNamespace "")`, with a watchNamespace.
            "{{ $kind }}" => Scope::Namespace,
            other => panic!("unexpected role kind {other:?} in {}", path.display()),
        };
        let rules: Vec<Value> = demoweb_crd::yaml::from_str(rules).expect("rules parse as YAML");
        for rule in rules {
            let strings = |key: &str| -> Vec<String> {
                rule[key]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            };
            for group in strings("apiGroups") {
                for resource in strings("resources") {
                    for verb in strings("verbs") {
                        out.push(Grant {
                            scope,
                            group: group.clone(),
                            resource: resource.clone(),
                            verb,
                        });
                    }
                }
            }
        }
    }
    assert!(!out.is_empty(), "no rules found in {}", path.display());
    out
}

/// The RBAC verbs a request needs: a server-side apply may create the object, so it needs both.
fn rbac_verbs(verb: &str) -> Vec<&str> {
    match verb {
        "apply" => vec!["patch", "create"],
        other => vec![other],
    }
}

/// Whether a rule grants the request: same group, resource and verb, and a scope that covers it
/// (a request without a namespace — cluster-scoped kind or across namespaces — needs a ClusterRole).
fn grants(grant: &Grant, access: &Access, verb: &str) -> bool {
    grant.group == access.group
        && grant.resource == access.resource
        && grant.verb == verb
        && (grant.scope == Scope::Cluster || access.namespace.is_some())
}

#[cfg_attr(
    real_cluster,
    ignore = "needs the emulator: counting the operator's requests per client"
)]
#[tokio::test(flavor = "multi_thread")]
async fn chart_rbac_covers_every_request_the_operator_makes() {
    let env = TestEnv::new("rbac").await;
    let emulator = env.emulator();
    install_crds(&env).await;
    let identity_crds = repo_root().join("charts/demoweb-operator/files/aadpodidentity-crds.yaml");
    env.kubectl(&["apply", "-f", identity_crds.to_str().expect("utf-8 path")])
        .await
        .expect_ok();
    install_allowlist_apis(&env).await;
    // Kong's cluster plugins too: the operator then watches them (cluster-wide, read only).
    env.install_crds(&[demoweb_tests::kong::crd(
        demoweb_tests::kong::KONG_CLUSTER_PLUGIN_CRD,
    )])
    .await;
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

    let used: BTreeSet<Access> = emulator
        .request_counts()
        .accesses()
        .into_iter()
        .filter(|a| a.agent == "demoweb-operator")
        .collect();
    for expected in [
        ("apps", "deployments", "apply"),
        ("coordination.k8s.io", "leases", "create"),
        ("", "serviceaccounts", "delete"),
        ("networking.k8s.io", "ingressclasses", "list"),
        ("autoscaling", "horizontalpodautoscalers", "delete"),
        ("policy", "poddisruptionbudgets", "delete"),
        ("configuration.konghq.com", "kongclusterplugins", "list"),
    ] {
        assert!(
            used.iter()
                .any(|a| (a.group.as_str(), a.resource.as_str(), a.verb.as_str()) == expected),
            "the operator's requests were not told apart by User-Agent (expected {expected:?} among {used:?})"
        );
    }
    let granted = granted();
    let missing: Vec<String> = used
        .iter()
        .flat_map(|access| {
            rbac_verbs(&access.verb)
                .into_iter()
                .filter(|verb| !granted.iter().any(|g| grants(g, access, verb)))
                .map(move |verb| {
                    format!(
                        "{verb} {}.{} {}",
                        access.resource,
                        if access.group.is_empty() {
                            "core"
                        } else {
                            &access.group
                        },
                        match &access.namespace {
                            Some(ns) => format!("in namespace {ns}"),
                            None => "cluster-wide".to_owned(),
                        }
                    )
                })
        })
        .collect();
    assert!(
        missing.is_empty(),
        "charts/demoweb-operator/templates/rbac.yaml does not grant what the operator used: {missing:?}"
    );
    // The check itself tells group and scope apart.
    let list_classes = Access {
        agent: "demoweb-operator".into(),
        group: "networking.k8s.io".into(),
        resource: "ingressclasses".into(),
        verb: "list".into(),
        namespace: None,
    };
    let as_role = Grant {
        scope: Scope::Namespace,
        group: "networking.k8s.io".into(),
        resource: "ingressclasses".into(),
        verb: "list".into(),
    };
    assert!(!grants(&as_role, &list_classes, "list"));
    let other_group = Grant {
        scope: Scope::Cluster,
        group: "extensions".into(),
        ..as_role
    };
    assert!(!grants(&other_group, &list_classes, "list"));
    drop(op);
    env.finish().await;
}
