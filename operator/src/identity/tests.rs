//! Table-driven tests of resolution, the relation mappers, the pod and ServiceAccount builders and
//! the validation findings, over small YAML fixtures (the seeds' objects among them).

use demoweb_crd::conditions::reason;
use demoweb_crd::demoweb::IdentitySpec;
use demoweb_crd::{AzureIdentity, AzureIdentityBinding, DemoWeb, IdentityMode};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher;
use serde::de::DeserializeOwned;

use super::findings::{
    CrdVariant, DEPRECATED_KEY, Finding, INVALID_BINDING, Published, VALID, binding_findings,
    events_to_publish, identity_findings,
};
use super::workload::{CLIENT_ID_ANNOTATION, TENANT_ID_ANNOTATION, WORKLOAD_IDENTITY_USE_LABEL};
use super::*;

const CLIENT: &str = "c35040d0-f73c-4c4e-a376-9bb1c5532fda";
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const SUB: &str = "00000000-0000-0000-0000-000000000000";

/// seed 000 as written: capitalised keys and the SUBID placeholder.
const SEED_IDENTITY: &str = r#"
apiVersion: "aadpodidentity.k8s.io/v1"
kind: AzureIdentity
metadata: {name: aks-pod-id, namespace: ns}
spec:
  type: 0
  ResourceID: /subscriptions/SUBID/resourcegroups/RESOURCEGROUP/providers/Microsoft.ManagedIdentity/userAssignedIdentities/demo-pod-id
  ClientID: c35040d0-f73c-4c4e-a376-9bb1c5532fda
"#;
const SEED_BINDING: &str = r#"
apiVersion: "aadpodidentity.k8s.io/v1"
kind: AzureIdentityBinding
metadata: {name: aad-identity-binding, namespace: ns}
spec:
  AzureIdentity: aks-pod-id
  Selector: myapp
"#;

fn parse<K: DeserializeOwned>(yaml: &str) -> K {
    serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("fixture does not parse: {e}\n{yaml}"))
}

fn store<K>(objects: Vec<K>) -> Store<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    let (reader, mut writer) = reflector::store();
    writer.apply_watcher_event(&watcher::Event::Init);
    for obj in objects {
        writer.apply_watcher_event(&watcher::Event::InitApply(obj));
    }
    writer.apply_watcher_event(&watcher::Event::InitDone);
    reader
}

/// The seed identity with a real subscription id, in canonical or capitalised spelling.
fn identity(name: &str, ns: &str, client_key: &str, extra: &str) -> AzureIdentity {
    parse(&format!(
        "apiVersion: aadpodidentity.k8s.io/v1\nkind: AzureIdentity\nmetadata: {{name: {name}, namespace: {ns}, uid: uid-{name}, generation: 1}}\nspec:\n  type: 0\n  resourceID: /subscriptions/{SUB}/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}\n  {client_key}: {CLIENT}\n{extra}"
    ))
}

fn binding(name: &str, ns: &str, spec: &str) -> AzureIdentityBinding {
    parse(&format!(
        "apiVersion: aadpodidentity.k8s.io/v1\nkind: AzureIdentityBinding\nmetadata: {{name: {name}, namespace: {ns}, uid: uid-{name}, generation: 1}}\nspec: {spec}\n"
    ))
}

fn demoweb(name: &str, ns: &str, identity: Option<(&str, &str)>) -> DemoWeb {
    let identity = identity
        .map(|(binding, mode)| format!("  identity: {{binding: {binding}, mode: {mode}}}\n"))
        .unwrap_or_default();
    parse(&format!(
        "apiVersion: baeke.info/v1\nkind: DemoWeb\nmetadata: {{name: {name}, namespace: {ns}, uid: uid-{name}}}\nspec:\n  gitrepo: https://github.com/gbaeke/static-web.git\n{identity}"
    ))
}

fn spec(binding: &str, mode: IdentityMode) -> IdentitySpec {
    IdentitySpec {
        binding: binding.to_owned(),
        mode,
    }
}

/// Ok: (selector, client id, tenant id); Err: (reason, substrings of the message).
type Expected = Result<
    (&'static str, Option<&'static str>, Option<&'static str>),
    (&'static str, Vec<&'static str>),
>;

/// A case name, what the code found, and the (reason, substrings of the note) expected in order.
type FindingCase = (
    &'static str,
    Vec<Finding>,
    Vec<(&'static str, Vec<&'static str>)>,
);

#[test]
fn resolve_cases() {
    use IdentityMode::{PodIdentity as Pi, WorkloadIdentity as Wi};
    struct Case {
        name: &'static str,
        spec: IdentitySpec,
        bindings: Vec<AzureIdentityBinding>,
        identities: Vec<AzureIdentity>,
        expect: Expected,
    }
    let seed_identity_fixed: AzureIdentity = parse(&SEED_IDENTITY.replace("SUBID", SUB));
    let cases = vec![
        Case {
            name: "seed objects as written: placeholder subscription",
            spec: spec("aad-identity-binding", Pi),
            bindings: vec![parse(SEED_BINDING)],
            identities: vec![parse(SEED_IDENTITY)],
            expect: Err((
                reason::INVALID_IDENTITY,
                vec![
                    "AzureIdentity \"aks-pod-id\" (named by AzureIdentityBinding \"aad-identity-binding\") is invalid",
                    "\"SUBID\", which is not a GUID",
                ],
            )),
        },
        Case {
            name: "seed objects with a real subscription, capitalised keys",
            spec: spec("aad-identity-binding", Pi),
            bindings: vec![parse(SEED_BINDING)],
            identities: vec![seed_identity_fixed.clone()],
            expect: Ok(("myapp", Some(CLIENT), None)),
        },
        Case {
            name: "canonical keys, workload identity with tenant",
            spec: spec("b", Wi),
            bindings: vec![binding("b", "ns", "{azureIdentity: id, selector: sel}")],
            identities: vec![identity(
                "id",
                "ns",
                "clientID",
                &format!("  tenantID: {TENANT}\n"),
            )],
            expect: Ok(("sel", Some(CLIENT), Some(TENANT))),
        },
        Case {
            name: "missing binding",
            spec: spec("nope", Pi),
            bindings: vec![binding("b", "ns", "{azureIdentity: id, selector: sel}")],
            identities: vec![identity("id", "ns", "clientID", "")],
            expect: Err((
                reason::IDENTITY_BINDING_NOT_FOUND,
                vec![
                    "AzureIdentityBinding \"nope\"",
                    "does not exist in namespace \"ns\"",
                ],
            )),
        },
        Case {
            name: "binding in another namespace does not count",
            spec: spec("b", Pi),
            bindings: vec![binding("b", "other", "{azureIdentity: id, selector: sel}")],
            identities: vec![identity("id", "ns", "clientID", "")],
            expect: Err((reason::IDENTITY_BINDING_NOT_FOUND, vec!["\"b\""])),
        },
        Case {
            name: "missing identity",
            spec: spec("b", Wi),
            bindings: vec![binding("b", "ns", "{azureIdentity: gone, selector: sel}")],
            identities: vec![identity("gone", "other", "clientID", "")],
            expect: Err((
                reason::IDENTITY_NOT_FOUND,
                vec![
                    "AzureIdentity \"gone\" named by AzureIdentityBinding \"b\" does not exist in namespace \"ns\"",
                ],
            )),
        },
        Case {
            name: "binding without selector (as upstream's CRD leaves the seed's Selector)",
            spec: spec("b", Pi),
            bindings: vec![binding("b", "ns", "{azureIdentity: id}")],
            identities: vec![identity("id", "ns", "clientID", "")],
            expect: Err((
                reason::INVALID_IDENTITY,
                vec![
                    "AzureIdentityBinding \"b\" is invalid",
                    "selector is required",
                    "spell Selector as selector",
                ],
            )),
        },
        Case {
            name: "binding with both spellings",
            spec: spec("b", Pi),
            bindings: vec![binding(
                "b",
                "ns",
                "{azureIdentity: id, selector: a, Selector: b}",
            )],
            identities: vec![identity("id", "ns", "clientID", "")],
            expect: Err((
                reason::INVALID_IDENTITY,
                vec!["set selector or its deprecated spelling Selector, not both"],
            )),
        },
        Case {
            name: "client id not a GUID",
            spec: spec("b", Wi),
            bindings: vec![binding("b", "ns", "{azureIdentity: id, selector: sel}")],
            identities: vec![parse(
                &SEED_IDENTITY
                    .replace("SUBID", SUB)
                    .replace("aks-pod-id", "id")
                    .replace(CLIENT, "APP-ID"),
            )],
            expect: Err((
                reason::INVALID_IDENTITY,
                vec!["clientID \"APP-ID\" is not a GUID"],
            )),
        },
        Case {
            name: "client id pruned away",
            spec: spec("b", Pi),
            bindings: vec![binding("b", "ns", "{azureIdentity: id, selector: sel}")],
            identities: vec![identity("id", "ns", "unknownKey", "")],
            expect: Err((
                reason::INVALID_IDENTITY,
                vec!["clientID is required", "spell ClientID as clientID"],
            )),
        },
        Case {
            name: "service principal without tenant or secret",
            spec: spec("b", Pi),
            bindings: vec![binding("b", "ns", "{azureIdentity: id, selector: sel}")],
            identities: vec![parse(&format!(
                "apiVersion: aadpodidentity.k8s.io/v1\nkind: AzureIdentity\nmetadata: {{name: id, namespace: ns}}\nspec: {{type: 1, clientID: {CLIENT}}}\n"
            ))],
            expect: Err((
                reason::INVALID_IDENTITY,
                vec!["needs tenantID", "needs clientPassword"],
            )),
        },
    ];
    for case in cases {
        let bindings = store(case.bindings);
        let identities = store(case.identities);
        let got = resolve("ns", &case.spec, &bindings, &identities);
        match (got, case.expect) {
            (Ok(resolved), Ok((selector, client, tenant))) => {
                assert_eq!(resolved.mode, case.spec.mode, "{}", case.name);
                assert_eq!(resolved.binding, case.spec.binding, "{}", case.name);
                assert_eq!(resolved.selector, selector, "{}", case.name);
                assert_eq!(resolved.client_id.as_deref(), client, "{}", case.name);
                assert_eq!(resolved.tenant_id.as_deref(), tenant, "{}", case.name);
            }
            (Err(error), Err((reason, parts))) => {
                assert_eq!(error.reason(), reason, "{}: {error}", case.name);
                let message = error.to_string();
                for part in parts {
                    assert!(
                        message.contains(part),
                        "{}: {message:?} lacks {part:?}",
                        case.name
                    );
                }
            }
            (got, expect) => panic!("{}: got {got:?}, expected {expect:?}", case.name),
        }
    }
}

#[test]
fn resolved_names_the_identity() {
    let bindings = store(vec![parse::<AzureIdentityBinding>(SEED_BINDING)]);
    let identities = store(vec![parse::<AzureIdentity>(
        &SEED_IDENTITY.replace("SUBID", SUB),
    )]);
    let resolved = resolve(
        "ns",
        &spec("aad-identity-binding", IdentityMode::PodIdentity),
        &bindings,
        &identities,
    )
    .expect("resolves");
    assert_eq!(resolved.identity, "aks-pod-id");
}

fn names(refs: Vec<ObjectRef<DemoWeb>>) -> Vec<String> {
    refs.into_iter()
        .map(|r| format!("{}/{}", r.namespace.unwrap_or_default(), r.name))
        .collect()
}

#[test]
fn mappers() {
    let demowebs = store(vec![
        demoweb("a1", "a", Some(("b1", "PodIdentity"))),
        demoweb("a2", "a", Some(("b1", "WorkloadIdentity"))),
        demoweb("a3", "a", Some(("b2", "PodIdentity"))),
        demoweb("a4", "a", None),
        demoweb("x1", "x", Some(("b1", "PodIdentity"))),
        demoweb("a5", "a", Some(("b3", "PodIdentity"))),
    ]);
    let bindings = store(vec![
        binding("b1", "a", "{azureIdentity: id1, selector: s}"),
        binding("b2", "a", "{AzureIdentity: id1, Selector: s}"),
        binding("b3", "a", "{azureIdentity: id2, selector: s}"),
        binding("b1", "x", "{azureIdentity: id9, selector: s}"),
    ]);
    let cases: Vec<(&str, Vec<String>, Vec<&str>)> = vec![
        (
            "binding b1 in a",
            names(demowebs_for_binding(&binding("b1", "a", "{}"), &demowebs)),
            vec!["a/a1", "a/a2"],
        ),
        (
            "binding b1 in x",
            names(demowebs_for_binding(&binding("b1", "x", "{}"), &demowebs)),
            vec!["x/x1"],
        ),
        (
            "unused binding",
            names(demowebs_for_binding(&binding("b9", "a", "{}"), &demowebs)),
            vec![],
        ),
        (
            "identity id1 via b1 and the capitalised b2",
            names(demowebs_for_identity(
                &identity("id1", "a", "clientID", ""),
                &bindings,
                &demowebs,
            )),
            vec!["a/a1", "a/a2", "a/a3"],
        ),
        (
            "identity id2 via b3",
            names(demowebs_for_identity(
                &identity("id2", "a", "clientID", ""),
                &bindings,
                &demowebs,
            )),
            vec!["a/a5"],
        ),
        (
            "identity id1 in x: no binding there names it",
            names(demowebs_for_identity(
                &identity("id1", "x", "clientID", ""),
                &bindings,
                &demowebs,
            )),
            vec![],
        ),
        (
            "identity id9 in x via b1 in x",
            names(demowebs_for_identity(
                &identity("id9", "x", "clientID", ""),
                &bindings,
                &demowebs,
            )),
            vec!["x/x1"],
        ),
    ];
    for (name, got, want) in cases {
        assert_eq!(got, want, "{name}");
    }
}

fn resolved(mode: IdentityMode, client: Option<&str>, tenant: Option<&str>) -> ResolvedIdentity {
    ResolvedIdentity {
        mode,
        binding: "b".to_owned(),
        identity: "id".to_owned(),
        selector: "myapp".to_owned(),
        client_id: client.map(str::to_owned),
        tenant_id: tenant.map(str::to_owned),
    }
}

#[test]
fn pod_identity_cases() {
    use IdentityMode::{PodIdentity as Pi, WorkloadIdentity as Wi};
    let dw = demoweb("site", "ns", None);
    #[allow(clippy::type_complexity)]
    let cases: Vec<(
        ResolvedIdentity,
        Vec<(&str, &str)>,
        Vec<(&str, &str)>,
        Option<&str>,
    )> = vec![
        (
            resolved(Pi, Some(CLIENT), Some(TENANT)),
            vec![("aadpodidbinding", "myapp")],
            vec![("AZURE_CLIENT_ID", CLIENT)],
            None,
        ),
        (
            resolved(Pi, None, None),
            vec![("aadpodidbinding", "myapp")],
            vec![],
            None,
        ),
        (
            resolved(Wi, Some(CLIENT), None),
            vec![(WORKLOAD_IDENTITY_USE_LABEL, "true")],
            vec![("AZURE_CLIENT_ID", CLIENT)],
            Some("site"),
        ),
        (
            resolved(Wi, Some(CLIENT), Some(TENANT)),
            vec![(WORKLOAD_IDENTITY_USE_LABEL, "true")],
            vec![("AZURE_CLIENT_ID", CLIENT), ("AZURE_TENANT_ID", TENANT)],
            Some("site"),
        ),
    ];
    for (id, labels, env, sa) in cases {
        let got = pod_identity(&dw, &id);
        let got_labels: Vec<(&str, &str)> = got
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(got_labels, labels, "{id:?}");
        let got_env: Vec<(&str, &str)> = got
            .env
            .iter()
            .map(|e| (e.name.as_str(), e.value.as_deref().unwrap_or_default()))
            .collect();
        assert_eq!(got_env, env, "{id:?}");
        assert_eq!(got.service_account_name.as_deref(), sa, "{id:?}");
        // The template always names its account; outside WorkloadIdentity mode, the default.
        assert_eq!(got.pod_service_account(), sa.unwrap_or("default"), "{id:?}");
    }
    assert_eq!(PodIdentity::default().pod_service_account(), "default");
}

#[test]
fn a_service_account_is_in_use_until_the_deployment_has_rolled_off_it() {
    use k8s_openapi::api::apps::v1::Deployment;
    let deployment = |yaml: &str| -> Deployment { serde_yaml::from_str(yaml).unwrap() };
    // (case, Deployment, in use)
    let cases = [
        ("no Deployment", None, false),
        (
            "template names another account, rollout done",
            Some(
                "metadata: {generation: 3}\nspec: {selector: {}, template: {spec: {containers: [], serviceAccountName: default, serviceAccount: default}}}\nstatus: {observedGeneration: 3, replicas: 2, updatedReplicas: 2}",
            ),
            false,
        ),
        (
            "scaled to zero, rollout done",
            Some(
                "metadata: {generation: 3}\nspec: {selector: {}, template: {spec: {containers: []}}}\nstatus: {observedGeneration: 3}",
            ),
            false,
        ),
        (
            "template names it",
            Some(
                "metadata: {generation: 3}\nspec: {selector: {}, template: {spec: {containers: [], serviceAccountName: site}}}\nstatus: {observedGeneration: 3, replicas: 1, updatedReplicas: 1}",
            ),
            true,
        ),
        (
            "only the deprecated alias names it",
            Some(
                "metadata: {generation: 3}\nspec: {selector: {}, template: {spec: {containers: [], serviceAccount: site}}}\nstatus: {observedGeneration: 3, replicas: 1, updatedReplicas: 1}",
            ),
            true,
        ),
        (
            "new template not yet observed by the Deployment controller",
            Some(
                "metadata: {generation: 4}\nspec: {selector: {}, template: {spec: {containers: [], serviceAccountName: default}}}\nstatus: {observedGeneration: 3, replicas: 1, updatedReplicas: 1}",
            ),
            true,
        ),
        (
            "no status yet",
            Some(
                "metadata: {generation: 1}\nspec: {selector: {}, template: {spec: {containers: [], serviceAccountName: default}}}",
            ),
            true,
        ),
        (
            "old pods still terminating",
            Some(
                "metadata: {generation: 4}\nspec: {selector: {}, template: {spec: {containers: [], serviceAccountName: default}}}\nstatus: {observedGeneration: 4, replicas: 1, updatedReplicas: 1, terminatingReplicas: 1}",
            ),
            true,
        ),
        (
            "rollout in progress: old ReplicaSets still have pods",
            Some(
                "metadata: {generation: 4}\nspec: {selector: {}, template: {spec: {containers: [], serviceAccountName: default}}}\nstatus: {observedGeneration: 4, replicas: 3, updatedReplicas: 1}",
            ),
            true,
        ),
    ];
    for (case, yaml, in_use) in cases {
        let d = yaml.map(deployment);
        assert_eq!(
            deployment_uses_service_account(d.as_ref(), "site"),
            in_use,
            "{case}"
        );
    }
}

#[test]
fn service_account_cases() {
    use IdentityMode::{PodIdentity as Pi, WorkloadIdentity as Wi};
    let dw = demoweb("site", "ns", None);
    assert_eq!(
        desired_service_account(&dw, &resolved(Pi, Some(CLIENT), Some(TENANT))),
        None
    );

    let cases = [
        (
            resolved(Wi, Some(CLIENT), None),
            vec![(CLIENT_ID_ANNOTATION, CLIENT)],
        ),
        (
            resolved(Wi, Some(CLIENT), Some(TENANT)),
            vec![
                (CLIENT_ID_ANNOTATION, CLIENT),
                (TENANT_ID_ANNOTATION, TENANT),
            ],
        ),
    ];
    for (id, annotations) in cases {
        let sa =
            desired_service_account(&dw, &id).expect("workload identity wants a ServiceAccount");
        let meta = &sa.metadata;
        assert_eq!(meta.name.as_deref(), Some("site"));
        assert_eq!(meta.namespace.as_deref(), Some("ns"));
        let got: Vec<(&str, &str)> = meta
            .annotations
            .iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(got, annotations);
        let labels = meta.labels.clone().unwrap_or_default();
        assert_eq!(
            labels.get("app.kubernetes.io/instance").map(String::as_str),
            Some("site")
        );
        assert_eq!(
            labels
                .get("app.kubernetes.io/managed-by")
                .map(String::as_str),
            Some("demoweb-operator")
        );
        assert!(
            !labels.contains_key(WORKLOAD_IDENTITY_USE_LABEL),
            "the use label belongs on pods"
        );
        let owners = meta.owner_references.clone().unwrap_or_default();
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].kind, "DemoWeb");
        assert_eq!(owners[0].name, "site");
        assert_eq!(owners[0].uid, "uid-site");
        assert_eq!(owners[0].controller, Some(true));
    }
}

fn notes(findings: &[Finding]) -> Vec<(&'static str, &str)> {
    findings
        .iter()
        .map(|f| (f.reason, f.note.as_str()))
        .collect()
}

#[test]
fn identity_findings_cases() {
    let seed: AzureIdentity = parse(SEED_IDENTITY);
    let fixed: AzureIdentity = parse(&SEED_IDENTITY.replace("SUBID", SUB));
    let canonical = identity("id", "ns", "clientID", "");
    let pruned = identity("id", "ns", "unknownKey", "");
    let cases: Vec<FindingCase> = vec![
        (
            "seed as written",
            identity_findings(&seed, CrdVariant::Ours),
            vec![
                (
                    reason::INVALID_IDENTITY,
                    vec![
                        "AzureIdentity \"aks-pod-id\" is invalid",
                        "\"SUBID\", which is not a GUID",
                    ],
                ),
                (
                    DEPRECATED_KEY,
                    vec![
                        "spec.ResourceID is deprecated: use spec.resourceID",
                        "spec.ClientID is deprecated: use spec.clientID",
                    ],
                ),
            ],
        ),
        (
            "seed with a real subscription",
            identity_findings(&fixed, CrdVariant::Ours),
            vec![(
                DEPRECATED_KEY,
                vec!["use spec.resourceID", "use spec.clientID"],
            )],
        ),
        (
            "canonical",
            identity_findings(&canonical, CrdVariant::Ours),
            vec![],
        ),
        (
            "pruned on upstream's CRD: hint",
            identity_findings(&pruned, CrdVariant::Upstream),
            vec![(
                reason::INVALID_IDENTITY,
                vec!["clientID is required", "spell ClientID as clientID"],
            )],
        ),
    ];
    for (name, got, want) in cases {
        let got = notes(&got);
        assert_eq!(got.len(), want.len(), "{name}: {got:?}");
        for ((reason, note), (want_reason, parts)) in got.iter().zip(want) {
            assert_eq!(*reason, want_reason, "{name}");
            for part in parts {
                assert!(note.contains(part), "{name}: {note:?} lacks {part:?}");
            }
        }
    }
    // Our CRD keeps capitalised keys, so a missing field there was never written: no hint.
    let ours = identity_findings(&pruned, CrdVariant::Ours);
    assert!(!ours[0].note.contains("capitalised"), "{:?}", ours[0].note);
}

#[test]
fn binding_findings_cases() {
    let seed: AzureIdentityBinding = parse(SEED_BINDING);
    let exists = |name: &str| name == "aks-pod-id";
    let cases: Vec<FindingCase> = vec![
        (
            "seed, identity present",
            binding_findings(&seed, CrdVariant::Ours, exists),
            vec![(
                DEPRECATED_KEY,
                vec![
                    "spec.AzureIdentity is deprecated: use spec.azureIdentity",
                    "spec.Selector is deprecated: use spec.selector",
                ],
            )],
        ),
        (
            "seed, identity missing",
            binding_findings(&seed, CrdVariant::Ours, |_: &str| false),
            vec![
                (
                    reason::IDENTITY_NOT_FOUND,
                    vec![
                        "AzureIdentity \"aks-pod-id\" named by spec.azureIdentity does not exist in namespace \"ns\"",
                    ],
                ),
                (DEPRECATED_KEY, vec!["use spec.azureIdentity"]),
            ],
        ),
        (
            "upstream pruned both keys",
            binding_findings(&binding("b", "ns", "{}"), CrdVariant::Upstream, exists),
            vec![(
                INVALID_BINDING,
                vec![
                    "azureIdentity is required",
                    "selector is required",
                    "spell AzureIdentity as azureIdentity, Selector as selector",
                ],
            )],
        ),
        (
            "bad selector",
            binding_findings(
                &binding("b", "ns", "{azureIdentity: aks-pod-id, selector: 'my app'}"),
                CrdVariant::Ours,
                exists,
            ),
            vec![(
                INVALID_BINDING,
                vec!["\"my app\" is not a valid label value"],
            )],
        ),
        (
            "valid",
            binding_findings(
                &binding("b", "ns", "{azureIdentity: aks-pod-id, selector: myapp}"),
                CrdVariant::Ours,
                exists,
            ),
            vec![],
        ),
    ];
    for (name, got, want) in cases {
        let got = notes(&got);
        assert_eq!(got.len(), want.len(), "{name}: {got:?}");
        for ((reason, note), (want_reason, parts)) in got.iter().zip(want) {
            assert_eq!(*reason, want_reason, "{name}");
            for part in parts {
                assert!(note.contains(part), "{name}: {note:?} lacks {part:?}");
            }
        }
    }
}

#[test]
fn events_once_per_change() {
    let bad = Finding {
        warning: true,
        reason: reason::INVALID_IDENTITY,
        note: "bad".to_owned(),
    };
    let old = Finding {
        warning: true,
        reason: DEPRECATED_KEY,
        note: "old".to_owned(),
    };
    let state = |spec: u64, findings: Vec<Finding>| Published { spec, findings };
    let cases = vec![
        ("first sight, clean", None, state(1, vec![]), vec![]),
        (
            "first sight, problems",
            None,
            state(1, vec![bad.clone(), old.clone()]),
            vec![bad.reason, old.reason],
        ),
        (
            "resync, unchanged",
            Some(state(1, vec![bad.clone()])),
            state(1, vec![bad.clone()]),
            vec![],
        ),
        (
            "new problem, same spec",
            Some(state(1, vec![old.clone()])),
            state(1, vec![bad.clone(), old.clone()]),
            vec![bad.reason],
        ),
        (
            "edited, still wrong",
            Some(state(1, vec![bad.clone()])),
            state(2, vec![bad.clone()]),
            vec![bad.reason],
        ),
        (
            "fixed",
            Some(state(1, vec![bad.clone()])),
            state(2, vec![]),
            vec![VALID],
        ),
        (
            "fixed, deprecated keys remain",
            Some(state(1, vec![bad.clone(), old.clone()])),
            state(2, vec![old.clone()]),
            vec![old.reason, VALID],
        ),
        (
            "only deprecated keys dropped",
            Some(state(1, vec![old.clone()])),
            state(2, vec![]),
            vec![],
        ),
        (
            "edited, was and is clean",
            Some(state(1, vec![])),
            state(2, vec![]),
            vec![],
        ),
        (
            "the problem fixed, deprecated keys remain, same spec",
            Some(state(1, vec![bad.clone(), old.clone()])),
            state(1, vec![old.clone()]),
            vec![VALID],
        ),
    ];
    for (name, previous, current, want) in cases {
        let got: Vec<&str> = events_to_publish(previous.as_ref(), &current)
            .iter()
            .map(|f| f.reason)
            .collect();
        assert_eq!(got, want, "{name}");
    }
    let valid = events_to_publish(Some(&state(1, vec![bad])), &state(2, vec![]));
    assert!(!valid[0].warning, "a fixed object gets a Normal event");
}

/// The upstream-shaped fixture the integration tests install must differ from this project's
/// CRDs exactly where upstream's do: no capitalised aliases, no status subresource.
#[test]
fn upstream_fixture_matches_our_crds_but_for_aliases_and_status() {
    use std::collections::BTreeSet;

    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/upstream-aadpodidentity-crds.yaml"
    );
    let text = std::fs::read_to_string(path).expect("fixture readable");
    let upstream: Vec<serde_json::Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|doc| serde::Deserialize::deserialize(doc).expect("fixture parses"))
        .collect();
    let ours: Vec<serde_json::Value> = demoweb_crd::identity_crds()
        .into_iter()
        .map(|crd| serde_json::to_value(crd).expect("CRD serialises"))
        .collect();
    let spec_keys = |crd: &serde_json::Value| -> BTreeSet<String> {
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    };
    let aliases = ["ResourceID", "ClientID", "AzureIdentity", "Selector"];
    assert_eq!(upstream.len(), ours.len());
    for ours in &ours {
        let name = &ours["metadata"]["name"];
        let theirs = upstream
            .iter()
            .find(|crd| &crd["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("fixture lacks {name}"));
        let mut expected = spec_keys(ours);
        expected.retain(|k| !aliases.contains(&k.as_str()));
        let mut got = spec_keys(theirs);
        got.remove("metadata"); // upstream's generated schema carries an unused spec.metadata
        assert_eq!(got, expected, "{name}");
        assert!(
            !ours["spec"]["versions"][0]["subresources"]["status"].is_null(),
            "{name}: ours has a status subresource"
        );
        assert!(
            theirs["spec"]["versions"][0]["subresources"]["status"].is_null(),
            "{name}: upstream's has none"
        );
        assert_eq!(
            theirs["spec"]["versions"][0]["additionalPrinterColumns"],
            ours["spec"]["versions"][0]["additionalPrinterColumns"]
                .as_array()
                .map(|cols| cols
                    .iter()
                    .map(|c| serde_json::json!({"name": c["name"], "type": c["type"], "jsonPath": c["jsonPath"]}))
                    .collect::<Vec<_>>())
                .map(serde_json::Value::from)
                .unwrap_or_default(),
            "{name}: printer columns as upstream"
        );
    }
}

#[test]
fn spec_fingerprint_tells_edits_apart() {
    use super::findings::spec_fingerprint;

    let fingerprint =
        |key: &str, extra: &str| spec_fingerprint(&identity("id", "ns", key, extra).spec);
    assert_eq!(fingerprint("clientID", ""), fingerprint("clientID", ""));
    assert_ne!(fingerprint("clientID", ""), fingerprint("ClientID", ""));
    assert_ne!(
        fingerprint("clientID", ""),
        fingerprint("clientID", &format!("  tenantID: {TENANT}\n"))
    );
}
