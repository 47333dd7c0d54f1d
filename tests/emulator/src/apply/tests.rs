//! Server-side apply and update tracking, as a kube-apiserver user observes them.

use serde_json::{Value, json};

use super::*;
use crate::kinds::merge_schema as builtin_schema;

const T1: &str = "2026-01-01T00:00:00Z";
const T2: &str = "2026-01-01T00:01:00Z";

fn yaml(s: &str) -> Value {
    serde_yaml::from_str(s).expect("fixture parses")
}

fn applier(name: &str) -> Manager<'_> {
    Manager {
        name,
        operation: Operation::Apply,
        subresource: None,
        api_version: "apps/v1",
        time: T2,
    }
}

fn updater(name: &str) -> Manager<'_> {
    Manager {
        operation: Operation::Update,
        time: T1,
        ..applier(name)
    }
}

fn deploy_schema() -> Value {
    builtin_schema("apps", "v1", "Deployment").unwrap()
}

fn deployment(spec: &str) -> Value {
    let mut d = yaml(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: default\n",
    );
    d["spec"] = yaml(spec);
    d
}

/// The managedFields entries of an object, by (manager, operation).
fn entry<'v>(obj: &'v Value, manager: &str, operation: &str) -> Option<&'v Value> {
    obj["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|e| e["manager"] == manager && e["operation"] == operation)
}

fn fields<'v>(obj: &'v Value, manager: &str, operation: &str) -> &'v Value {
    &entry(obj, manager, operation)
        .unwrap_or_else(|| panic!("no {operation} entry for {manager} in {obj:#}"))["fieldsV1"]
}

fn apply(live: Option<&Value>, config: &Value, who: &str, force: bool) -> Outcome {
    server_side_apply(live, config, &applier(who), force, &deploy_schema())
        .unwrap_or_else(|e| panic!("apply by {who} failed: {e}"))
}

const WEB: &str = r#"
replicas: 2
selector: {matchLabels: {app: web}}
template:
  metadata: {labels: {app: web}}
  spec:
    containers:
    - name: web
      image: nginx:1
      ports: [{containerPort: 80}]
"#;

#[test]
fn apply_creates_the_object_and_records_fields_like_kube_apiserver() {
    let config = deployment(WEB);
    let out = apply(None, &config, "kubectl", false);
    assert!(out.changed);
    let mut without = out.object.clone();
    without["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("managedFields");
    assert_eq!(without, config);
    assert_eq!(
        out.object["metadata"]["managedFields"],
        json!([{
            "manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1", "time": T2,
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:template": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {
                        ".": {}, "f:image": {}, "f:name": {},
                        "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}},
                    }}},
                },
            }},
        }])
    );
}

#[test]
fn reapplying_the_same_configuration_is_a_noop() {
    let config = deployment(WEB);
    let first = apply(None, &config, "kubectl", false).object;
    let again = server_side_apply(
        Some(&first),
        &config,
        &Manager {
            time: "2026-02-02T00:00:00Z",
            ..applier("kubectl")
        },
        false,
        &deploy_schema(),
    )
    .unwrap();
    assert!(!again.changed, "a no-op apply must not be stored");
    assert_eq!(again.object, first, "not even the entry's time moves");
}

#[test]
fn fields_dropped_from_the_configuration() {
    let base = deployment(
        "replicas: 2\nminReadySeconds: 5\ntemplate:\n  metadata:\n    labels: {app: web, tier: fe}\n",
    );
    let owned_by_a = apply(None, &base, "a", false).object;
    // b applies minReadySeconds with the same value: shared ownership, no conflict.
    let shared = apply(
        Some(&owned_by_a),
        &deployment("minReadySeconds: 5"),
        "b",
        false,
    )
    .object;
    assert_eq!(
        fields(&shared, "b", "Apply"),
        &json!({"f:spec": {"f:minReadySeconds": {}}})
    );
    assert!(fields(&shared, "a", "Apply")["f:spec"]["f:minReadySeconds"].is_object());

    // a drops replicas (removed), minReadySeconds (co-owned: stays) and one label (removed).
    let dropped = apply(
        Some(&shared),
        &deployment("template:\n  metadata:\n    labels: {app: web}\n"),
        "a",
        false,
    );
    assert!(dropped.changed);
    let spec = &dropped.object["spec"];
    assert!(spec.get("replicas").is_none(), "{spec:#}");
    assert_eq!(spec["minReadySeconds"], 5);
    assert_eq!(
        spec["template"]["metadata"]["labels"],
        json!({"app": "web"})
    );
    assert_eq!(
        fields(&dropped.object, "a", "Apply"),
        &json!({"f:spec": {"f:template": {"f:metadata": {"f:labels": {"f:app": {}}}}}})
    );
}

#[test]
fn conflicts_shared_ownership_and_force() {
    let live_by_csa = track_update(
        None,
        deployment("replicas: 1\nminReadySeconds: 3\nrevisionHistoryLimit: 4"),
        &updater("kubectl-client-side-apply"),
        &deploy_schema(),
    );
    let live_two_managers = {
        let other = Manager {
            name: "hpa",
            ..updater("hpa")
        };
        let mut next = live_by_csa.clone();
        next["spec"]["paused"] = json!(false);
        track_update(Some(&live_by_csa), next, &other, &deploy_schema())
    };
    struct Case {
        name: &'static str,
        live: Value,
        config: &'static str,
        force: bool,
        /// Ok(csa's fields after) or Err(message)
        want: Result<Value, &'static str>,
    }
    let cases = [
        Case {
            name: "different value conflicts",
            live: live_by_csa.clone(),
            config: "replicas: 2",
            force: false,
            want: Err(
                r#"Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas"#,
            ),
        },
        Case {
            name: "equal value is shared",
            live: live_by_csa.clone(),
            config: "replicas: 1",
            force: false,
            want: Ok(
                json!({"f:spec": {"f:minReadySeconds": {}, "f:replicas": {}, "f:revisionHistoryLimit": {}}}),
            ),
        },
        Case {
            name: "force takes ownership",
            live: live_by_csa.clone(),
            config: "replicas: 2",
            force: true,
            want: Ok(json!({"f:spec": {"f:minReadySeconds": {}, "f:revisionHistoryLimit": {}}})),
        },
        Case {
            name: "several conflicts, several managers",
            live: live_two_managers,
            config: "replicas: 2\nminReadySeconds: 4\npaused: true",
            force: false,
            want: Err(concat!(
                "Apply failed with 3 conflicts: conflicts with \"hpa\" using apps/v1:\n",
                "- .spec.paused\n",
                "conflicts with \"kubectl-client-side-apply\" using apps/v1:\n",
                "- .spec.minReadySeconds\n",
                "- .spec.replicas"
            )),
        },
    ];
    for case in cases {
        let got = server_side_apply(
            Some(&case.live),
            &deployment(case.config),
            &applier("kubectl"),
            case.force,
            &deploy_schema(),
        );
        match (got, case.want) {
            (Ok(out), Ok(want)) => {
                assert_eq!(
                    fields(&out.object, "kubectl-client-side-apply", "Update"),
                    &want,
                    "{}",
                    case.name
                );
                assert!(
                    fields(&out.object, "kubectl", "Apply")["f:spec"]["f:replicas"].is_object(),
                    "{}",
                    case.name
                );
            }
            (Err(e), Err(want)) => {
                assert_eq!(e.to_string(), want, "{}", case.name);
                assert_eq!(e.status_code(), 409);
            }
            (got, want) => panic!("{}: got {got:?}, want {want:?}", case.name),
        }
    }
}

#[test]
fn conflict_causes_read_like_kube_apiserver() {
    let live = track_update(
        None,
        deployment("replicas: 1"),
        &updater("kubectl-client-side-apply"),
        &deploy_schema(),
    );
    let err = server_side_apply(
        Some(&live),
        &deployment("replicas: 3"),
        &applier("kubectl"),
        false,
        &deploy_schema(),
    )
    .unwrap_err();
    assert_eq!(err.reason(), "Conflict");
    assert_eq!(
        err.causes(),
        vec![json!({
            "type": "FieldManagerConflict",
            "message": "conflict with \"kubectl-client-side-apply\" using apps/v1",
            "field": ".spec.replicas",
        })]
    );
}

#[test]
fn each_manager_owns_its_own_container() {
    let a = deployment("template:\n  spec:\n    containers:\n    - {name: web, image: nginx:1}\n");
    let b =
        deployment("template:\n  spec:\n    containers:\n    - {name: sidecar, image: sync:4}\n");
    let live = apply(None, &a, "a", false).object;
    let live = apply(Some(&live), &b, "b", false).object;
    let names = |o: &Value| -> Vec<String> {
        o["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&live), ["web", "sidecar"]);
    assert_eq!(
        fields(&live, "b", "Apply"),
        &json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {
            "k:{\"name\":\"sidecar\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}})
    );
    // a changes its image: b's container is untouched, no conflict.
    let a2 = deployment("template:\n  spec:\n    containers:\n    - {name: web, image: nginx:2}\n");
    let live = apply(Some(&live), &a2, "a", false).object;
    assert_eq!(names(&live), ["web", "sidecar"]);
    assert_eq!(
        live["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:2"
    );
    // b stops applying its container: it goes, a's stays.
    let live = apply(Some(&live), &deployment("replicas: 1"), "b", false).object;
    assert_eq!(names(&live), ["web"]);
    // b changing a's image conflicts on exactly that field.
    let err = server_side_apply(
        Some(&live),
        &deployment("template:\n  spec:\n    containers:\n    - {name: web, image: evil}\n"),
        &applier("b"),
        false,
        &deploy_schema(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "a": .spec.template.spec.containers[name="web"].image"#
    );
}

#[test]
fn owner_references_by_uid_finalizers_by_value_labels_by_key() {
    let schema = builtin_schema("", "v1", "ConfigMap").unwrap();
    let cm = |meta: &str| {
        let mut o = yaml("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n");
        for (k, v) in yaml(meta).as_object().unwrap() {
            o["metadata"][k] = v.clone();
        }
        o
    };
    let v1 = |name| Manager {
        api_version: "v1",
        ..applier(name)
    };
    let a = cm(
        r#"{labels: {a: "1"}, finalizers: [x], ownerReferences: [{apiVersion: v1, kind: Pod, name: p1, uid: u1}]}"#,
    );
    let b = cm(
        r#"{labels: {b: "2"}, finalizers: [y], ownerReferences: [{apiVersion: v1, kind: Pod, name: p2, uid: u2}]}"#,
    );
    let live = server_side_apply(None, &a, &v1("a"), false, &schema)
        .unwrap()
        .object;
    let live = server_side_apply(Some(&live), &b, &v1("b"), false, &schema)
        .unwrap()
        .object;
    assert_eq!(live["metadata"]["labels"], json!({"a": "1", "b": "2"}));
    assert_eq!(live["metadata"]["finalizers"], json!(["x", "y"]));
    assert_eq!(
        live["metadata"]["ownerReferences"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        fields(&live, "b", "Apply"),
        &json!({"f:metadata": {
            "f:finalizers": {"v:\"y\"": {}},
            "f:labels": {"f:b": {}},
            "f:ownerReferences": {"k:{\"uid\":\"u2\"}": {".": {}, "f:apiVersion": {}, "f:kind": {}, "f:name": {}, "f:uid": {}}},
        }})
    );
    // a lets go of everything it applied: only b's items remain.
    let live = server_side_apply(Some(&live), &cm("{}"), &v1("a"), false, &schema)
        .unwrap()
        .object;
    assert_eq!(live["metadata"]["labels"], json!({"b": "2"}));
    assert_eq!(live["metadata"]["finalizers"], json!(["y"]));
    assert_eq!(live["metadata"]["ownerReferences"][0]["uid"], "u2");
    assert!(
        entry(&live, "a", "Apply").is_none(),
        "an empty entry is dropped"
    );
}

#[test]
fn status_writes_get_their_own_entries() {
    let live = apply(None, &deployment("replicas: 1"), "op", false).object;
    let mut with_status = live.clone();
    with_status["status"] =
        json!({"replicas": 1, "conditions": [{"type": "Available", "status": "True"}]});
    let status_writer = Manager {
        subresource: Some("status"),
        ..updater("kube-controller-manager")
    };
    let after = track_update(Some(&live), with_status, &status_writer, &deploy_schema());
    let e = entry(&after, "kube-controller-manager", "Update").unwrap();
    assert_eq!(e["subresource"], "status");
    assert_eq!(
        e["fieldsV1"],
        json!({"f:status": {"f:conditions": {".": {}, "k:{\"type\":\"Available\"}": {".": {}, "f:status": {}, "f:type": {}}}, "f:replicas": {}}})
    );
    assert_eq!(
        fields(&after, "op", "Apply"),
        &json!({"f:spec": {"f:replicas": {}}})
    );
    // Apply entries sort before Update entries.
    assert_eq!(after["metadata"]["managedFields"][0]["operation"], "Apply");

    let status_applier = Manager {
        subresource: Some("status"),
        ..applier("op")
    };
    let mut cfg = deployment("replicas: 1");
    cfg.as_object_mut().unwrap().remove("spec");
    cfg["status"] = json!({"replicas": 5});
    let err = server_side_apply(Some(&after), &cfg, &status_applier, false, &deploy_schema())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "kube-controller-manager" with subresource "status" using apps/v1: .status.replicas"#
    );
}

#[test]
fn updates_take_changed_fields_and_record_them_like_kube_apiserver() {
    let schema = deploy_schema();
    let created = track_update(
        None,
        deployment(
            "replicas: 1\ntemplate:\n  metadata:\n    labels: {app: web}\n  spec:\n    containers:\n    - {name: web, image: nginx:1}\n",
        ),
        &updater("kubectl-create"),
        &schema,
    );
    assert_eq!(
        created["metadata"]["managedFields"],
        json!([{
            "manager": "kubectl-create", "operation": "Update", "apiVersion": "apps/v1", "time": T1,
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {
                "f:replicas": {},
                "f:template": {
                    "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}}},
                },
            }},
        }])
    );
    let mut edited = created.clone();
    edited["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
    edited["spec"].as_object_mut().unwrap().remove("replicas");
    let edit = Manager {
        time: T2,
        ..updater("kubectl-edit")
    };
    let after = track_update(Some(&created), edited, &edit, &schema);
    assert_eq!(
        fields(&after, "kubectl-edit", "Update"),
        &json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {"f:image": {}}}}}}})
    );
    assert_eq!(
        fields(&after, "kubectl-create", "Update"),
        &json!({"f:spec": {"f:template": {
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:name": {}}}},
        }}})
    );
    // A write that changes nothing leaves the records alone (no time bump).
    let same = track_update(
        Some(&after),
        after.clone(),
        &Manager {
            time: "2030-01-01T00:00:00Z",
            ..updater("kubectl-edit")
        },
        &schema,
    );
    assert_eq!(same, after);
}

#[test]
fn managed_fields_sent_by_clients() {
    let schema = deploy_schema();
    let live = apply(None, &deployment("replicas: 1"), "a", false).object;
    let with_mf = |mf: Value| {
        let mut o = live.clone();
        o["metadata"]["managedFields"] = mf;
        o
    };
    let cases = [
        ("[{}] clears the records", json!([{}]), None),
        ("[] keeps them", json!([]), Some("a")),
        ("absent keeps them", Value::Null, Some("a")),
        (
            "a valid list replaces them",
            json!([{"manager": "x", "operation": "Update", "apiVersion": "apps/v1",
                    "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]),
            Some("x"),
        ),
    ];
    for (name, mf, owner) in cases {
        let out = track_update(Some(&live), with_mf(mf), &updater("u"), &schema);
        let managers: Vec<&str> = out["metadata"]["managedFields"]
            .as_array()
            .map(|a| a.iter().map(|e| e["manager"].as_str().unwrap()).collect())
            .unwrap_or_default();
        assert_eq!(managers, owner.into_iter().collect::<Vec<_>>(), "{name}");
    }

    let bad = [
        (
            "managedFields in an apply",
            with_mf(json!([])),
            "metadata.managedFields must be nil",
        ),
        (
            "wrong apiVersion",
            {
                let mut d = deployment("replicas: 1");
                d["apiVersion"] = json!("apps/v1beta1");
                d
            },
            "Incorrect version specified in apply patch. Specified patch version: apps/v1beta1, expected: apps/v1",
        ),
    ];
    for (name, config, want) in bad {
        let err =
            server_side_apply(Some(&live), &config, &applier("a"), false, &schema).unwrap_err();
        assert_eq!(err.status_code(), 400, "{name}");
        assert_eq!(err.to_string(), want, "{name}");
    }
    let dup = deployment("template:\n  spec:\n    containers: [{name: a}, {name: a}]\n");
    let err = server_side_apply(Some(&live), &dup, &applier("a"), false, &schema).unwrap_err();
    assert_eq!(err.status_code(), 422);
    assert!(
        err.to_string()
            .contains("duplicate entries for key [name=\"a\"]"),
        "{err}"
    );
}

#[test]
fn custom_resources_use_their_own_schema() {
    let schema = crd_schema(&yaml(
        r#"
type: object
properties:
  spec:
    type: object
    properties:
      replicas: {type: integer}
      tags: {type: array, items: {type: string}}
  status:
    type: object
    properties:
      conditions:
        type: array
        x-kubernetes-list-type: map
        x-kubernetes-list-map-keys: [type]
        items: {type: object}
"#,
    ));
    let v1 = |name| Manager {
        api_version: "baeke.info/v1",
        ..applier(name)
    };
    let cr = |spec: &str| {
        let mut o = yaml("apiVersion: baeke.info/v1\nkind: DemoWeb\nmetadata: {name: d}\n");
        o["spec"] = yaml(spec);
        o
    };
    let live = server_side_apply(
        None,
        &cr("{replicas: 1, tags: [a, b]}"),
        &v1("x"),
        false,
        &schema,
    )
    .unwrap()
    .object;
    assert_eq!(
        fields(&live, "x", "Apply"),
        &json!({"f:spec": {"f:replicas": {}, "f:tags": {}}}),
        "a list without x-kubernetes-list-type is atomic"
    );
    let err =
        server_side_apply(Some(&live), &cr("{tags: [a]}"), &v1("y"), false, &schema).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "x": .spec.tags"#
    );
    // Created through the API (Update), a custom resource's spec is recorded as a whole too.
    let created = track_update(
        None,
        cr("{replicas: 1}"),
        &updater("kubectl-create"),
        &schema,
    );
    assert_eq!(
        fields(&created, "kubectl-create", "Update"),
        &json!({"f:spec": {".": {}, "f:replicas": {}}})
    );
}

#[test]
fn kubectl_takes_over_from_client_side_apply_without_conflicts() {
    let schema = deploy_schema();
    let csa_config = deployment("replicas: 1\nminReadySeconds: 2");
    let mut created = csa_config.clone();
    created["metadata"]["annotations"] =
        json!({"kubectl.kubernetes.io/last-applied-configuration": format!("{csa_config}\n")});
    let live = track_update(
        None,
        created,
        &updater("kubectl-client-side-apply"),
        &schema,
    );
    let scaled = {
        let mut next = live.clone();
        next["spec"]["minReadySeconds"] = json!(9);
        track_update(Some(&live), next, &updater("tuner"), &schema)
    };
    struct Case {
        name: &'static str,
        live: Value,
        manager: &'static str,
        want_error: Option<&'static str>,
    }
    let cases = [
        Case {
            name: "kubectl upgrades fields that still match last-applied",
            live: live.clone(),
            manager: "kubectl",
            want_error: None,
        },
        Case {
            name: "another manager name gets the conflict",
            live: live.clone(),
            manager: "my-tool",
            want_error: Some(concat!(
                "Apply failed with 2 conflicts: conflicts with \"kubectl-client-side-apply\" using apps/v1:\n",
                "- .spec.minReadySeconds\n",
                "- .spec.replicas"
            )),
        },
        Case {
            name: "fields someone else changed since still conflict",
            live: scaled,
            manager: "kubectl",
            want_error: Some(
                r#"Apply failed with 1 conflict: conflict with "tuner" using apps/v1: .spec.minReadySeconds"#,
            ),
        },
    ];
    let new_config = deployment("replicas: 2\nminReadySeconds: 3");
    for case in cases {
        let got = server_side_apply(
            Some(&case.live),
            &new_config,
            &applier(case.manager),
            false,
            &schema,
        );
        match (got, case.want_error) {
            (Ok(out), None) => {
                assert_eq!(out.object["spec"]["replicas"], 2, "{}", case.name);
                assert!(
                    entry(&out.object, "kubectl-client-side-apply", "Update")
                        .is_some_and(|e| e["fieldsV1"]["f:spec"].get("f:replicas").is_none()),
                    "{}",
                    case.name
                );
                assert_eq!(
                    out.object["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
                    format!("{new_config}\n"),
                    "{}: kubectl keeps the annotation in step",
                    case.name
                );
            }
            (Err(e), Some(want)) => assert_eq!(e.to_string(), want, "{}", case.name),
            (got, want) => panic!("{}: got {got:?}, want {want:?}", case.name),
        }
    }
}

#[test]
fn update_entries_are_capped_at_ten() {
    let schema = builtin_schema("", "v1", "ConfigMap").unwrap();
    let mut live: Option<Value> = None;
    let times: Vec<String> = (0..12)
        .map(|i| format!("2026-01-01T00:{i:02}:00Z"))
        .collect();
    for (i, time) in times.iter().enumerate() {
        let mut next = live
            .clone()
            .unwrap_or_else(|| yaml("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"));
        next["data"][format!("k{i}")] = json!("v");
        let name = format!("writer-{i:02}");
        let who = Manager {
            name: &name,
            operation: Operation::Update,
            subresource: None,
            api_version: "v1",
            time,
        };
        live = Some(track_update(live.as_ref(), next, &who, &schema));
    }
    let live = live.unwrap();
    let entries = live["metadata"]["managedFields"].as_array().unwrap();
    assert_eq!(entries.len(), 10);
    let ancient = entry(&live, "ancient-changes", "Update").expect("oldest folded together");
    assert_eq!(
        ancient["fieldsV1"],
        json!({"f:data": {".": {}, "f:k0": {}, "f:k1": {}, "f:k2": {}}})
    );
    assert!(entry(&live, "writer-00", "Update").is_none());
    assert!(entry(&live, "writer-11", "Update").is_some());
}

#[test]
fn pruning_follows_item_ownership() {
    let schema = deploy_schema();
    let a = deployment(
        "replicas: 1\ntemplate:\n  spec:\n    containers:\n    - {name: web, image: nginx:1}\n    - {name: side, image: s:1}\n",
    );
    let live = apply(None, &a, "a", false).object;
    // Another writer edits a field inside a's container and shares replicas by writing it equal.
    let mut edited = live.clone();
    edited["spec"]["template"]["spec"]["containers"][1]["image"] = json!("s:2");
    let live = track_update(Some(&live), edited, &updater("kubectl-set"), &schema);
    assert_eq!(
        fields(&live, "kubectl-set", "Update"),
        &json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"side\"}": {"f:image": {}}}}}}})
    );
    let live = apply(Some(&live), &deployment("replicas: 1"), "b", false).object;

    // a drops the sidecar and replicas: the item goes although kubectl-set owns a field in it,
    // replicas stays because b owns it too.
    let out = apply(
        Some(&live),
        &deployment("template:\n  spec:\n    containers:\n    - {name: web, image: nginx:1}\n"),
        "a",
        false,
    )
    .object;
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"name": "web", "image": "nginx:1"}])
    );
    assert_eq!(out["spec"]["replicas"], 1);
    assert!(
        entry(&out, "kubectl-set", "Update").is_none(),
        "a removed item leaves every set"
    );
}

#[test]
fn client_side_apply_round_trip() {
    // What `kubectl apply` (client-side) sends for a built-in kind: a create, then a strategic
    // merge patch with directives, recorded under kubectl-client-side-apply.
    let schema = deploy_schema();
    let csa = Manager {
        time: T1,
        ..updater("kubectl-client-side-apply")
    };
    let created = track_update(
        None,
        deployment(
            r#"
replicas: 1
template:
  spec:
    containers:
    - name: web
      image: nginx:1
      env: [{name: A, value: "1"}, {name: B, value: "2"}]
"#,
        ),
        &csa,
        &schema,
    );
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "web"}],
        "containers": [{
            "name": "web",
            "image": "nginx:2",
            "$setElementOrder/env": [{"name": "A"}],
            "env": [{"$patch": "delete", "name": "B"}],
        }],
    }}}});
    let patched = strategic_merge_patch(&created, &patch, &schema).unwrap();
    let stored = track_update(Some(&created), patched, &csa, &schema);
    assert_eq!(
        stored["spec"]["template"]["spec"]["containers"],
        json!([{"name": "web", "image": "nginx:2", "env": [{"name": "A", "value": "1"}]}])
    );
    assert_eq!(
        fields(&stored, "kubectl-client-side-apply", "Update"),
        &json!({"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
            "k:{\"name\":\"web\"}": {".": {}, "f:env": {".": {}, "k:{\"name\":\"A\"}": {".": {}, "f:name": {}, "f:value": {}}},
                                     "f:image": {}, "f:name": {}}}}}}})
    );
    assert_eq!(
        stored["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn reapply_over_server_defaults_is_a_noop() {
    let config = deployment(WEB);
    let mut stored = apply(None, &config, "kubectl", false).object;
    // What the server's defaulting adds after the apply; nobody owns it.
    let web = &mut stored["spec"]["template"]["spec"]["containers"][0];
    web["ports"][0]["protocol"] = json!("TCP");
    web["imagePullPolicy"] = json!("IfNotPresent");
    stored["spec"]["revisionHistoryLimit"] = json!(10);
    let again = apply(Some(&stored), &config, "kubectl", false);
    assert!(!again.changed, "{:#}", again.object);
    assert_eq!(again.object, stored);

    // Dropping the port list from the configuration removes it, defaulted content included:
    // nothing under it is owned any more (structured-merge-diff treats the named field as owned).
    let without_port = deployment(
        "replicas: 2\nselector: {matchLabels: {app: web}}\ntemplate:\n  metadata: {labels: {app: web}}\n  spec:\n    containers:\n    - {name: web, image: nginx:1}\n",
    );
    let out = apply(Some(&stored), &without_port, "kubectl", false);
    let web = &out.object["spec"]["template"]["spec"]["containers"][0];
    assert!(web.get("ports").is_none(), "{web:#}");
    assert_eq!(
        web["imagePullPolicy"], "IfNotPresent",
        "unowned fields stay"
    );
}

/// `kube-apiserver`'s ScaleHandler cases: who owns a Deployment's replicas after a write through
/// its Scale subresource.
#[test]
fn scale_writes_move_replicas_ownership_like_the_scale_handler() {
    let e = |manager: &str, op: &str, av: &str, sub: Option<&str>, fields: Value| {
        let mut v = json!({"manager": manager, "operation": op, "apiVersion": av,
            "fieldsType": "FieldsV1", "fieldsV1": fields});
        if let Some(s) = sub {
            v["subresource"] = json!(s);
        }
        v
    };
    let both = json!({"f:spec": {"f:replicas": {}, "f:selector": {}}});
    let selector = json!({"f:spec": {"f:selector": {}}});
    let replicas = json!({"f:spec": {"f:replicas": {}}});
    struct Case {
        name: &'static str,
        parent: Value,
        scale: Value,
        want: Value,
    }
    let cases = [
        Case {
            name: "an update through scale takes replicas from an applier",
            parent: json!([e("test", "Apply", "apps/v1", None, both.clone())]),
            scale: json!([e(
                "scale",
                "Update",
                "autoscaling/v1",
                Some("scale"),
                replicas.clone()
            )]),
            want: json!([
                e("test", "Apply", "apps/v1", None, selector.clone()),
                e(
                    "scale",
                    "Update",
                    "apps/v1",
                    Some("scale"),
                    replicas.clone()
                ),
            ]),
        },
        Case {
            name: "an applier that still owns the Scale's replicas keeps them",
            parent: json!([e("test", "Apply", "apps/v1", None, both.clone())]),
            scale: json!([
                e("test", "Apply", "autoscaling/v1", None, replicas.clone()),
                e(
                    "test",
                    "Apply",
                    "autoscaling/v1",
                    Some("scale"),
                    replicas.clone()
                ),
            ]),
            want: json!([
                e("test", "Apply", "apps/v1", None, both.clone()),
                e("test", "Apply", "apps/v1", Some("scale"), replicas.clone()),
            ]),
        },
        Case {
            name: "an updater's entry is matched with its apiVersion",
            parent: json!([e("test", "Update", "apps/v1", None, both)]),
            scale: json!([e(
                "test",
                "Update",
                "autoscaling/v1",
                Some("scale"),
                replicas.clone()
            )]),
            want: json!([
                e("test", "Update", "apps/v1", None, selector.clone()),
                e("test", "Update", "apps/v1", Some("scale"), replicas.clone()),
            ]),
        },
        Case {
            name: "status-only writes own nothing in the parent",
            parent: json!([e("test", "Apply", "apps/v1", None, selector.clone())]),
            scale: json!([e(
                "scale",
                "Update",
                "autoscaling/v1",
                Some("scale"),
                json!({"f:status": {"f:replicas": {}}})
            )]),
            want: json!([e("test", "Apply", "apps/v1", None, selector)]),
        },
    ];
    for case in cases {
        let got = scale_to_parent(&case.parent, &case.scale, "apps/v1", &["spec", "replicas"]);
        assert_eq!(got, case.want, "{}", case.name);
    }
    let parent = json!([
        e(
            "op",
            "Apply",
            "apps/v1",
            None,
            json!({"f:spec": {"f:replicas": {}, "f:template": {}}})
        ),
        e("old", "Apply", "apps/v2", None, replicas.clone()),
        e(
            "editor",
            "Update",
            "apps/v1",
            None,
            json!({"f:spec": {"f:paused": {}}})
        ),
    ]);
    assert_eq!(
        scale_entries(&parent, "apps/v1", &["spec", "replicas"]),
        json!([e("op", "Apply", "autoscaling/v1", None, replicas)]),
        "only the owners of replicas in the served version are carried to the Scale"
    );
}
