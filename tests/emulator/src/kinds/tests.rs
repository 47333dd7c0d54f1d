//! The built-in kinds' decoding, defaulting and validation against what a real cluster does.

use serde_json::{Value, json};

use super::common::*;
use super::*;

#[test]
fn deployment_defaults_match_a_real_cluster() {
    let mut d = json!({"spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}],
            "readinessProbe": {"httpGet": {"path": "/", "port": 80}}}],
            "volumes": [{"name": "c", "configMap": {"name": "x"}}, {"name": "e", "emptyDir": {}}]}}}});
    (deployment::KIND.defaults)(&mut d);
    let s = &d["spec"];
    assert_eq!(s["replicas"], 1);
    assert_eq!(
        s["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
    );
    assert_eq!(s["revisionHistoryLimit"], 10);
    assert_eq!(s["progressDeadlineSeconds"], 600);
    let p = &s["template"]["spec"];
    assert_eq!(p["restartPolicy"], "Always");
    assert_eq!(p["dnsPolicy"], "ClusterFirst");
    assert_eq!(p["schedulerName"], "default-scheduler");
    assert_eq!(p["securityContext"], json!({}));
    assert_eq!(p["terminationGracePeriodSeconds"], 30);
    let c = &p["containers"][0];
    assert_eq!(c["imagePullPolicy"], "IfNotPresent");
    assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(c["terminationMessagePolicy"], "File");
    assert_eq!(c["ports"][0]["protocol"], "TCP");
    assert_eq!(
        c["readinessProbe"],
        json!({"httpGet": {"path": "/", "port": 80, "scheme": "HTTP"}, "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
    );
    assert_eq!(p["volumes"][0]["configMap"]["defaultMode"], 420);
    assert_eq!(p["volumes"][1]["emptyDir"], json!({}));
}

#[test]
fn service_account_alias_is_kept_in_step_like_the_v1_conversion() {
    let deployment = |pod: Value| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"template": {"metadata": {"annotations": {"a": "b", "pod.beta.kubernetes.io/init-containers": "[]"}},
                "spec": pod}}})
    };
    let pod = |pod: Value| {
        let (out, unknown) = decode(&deployment::KIND, &deployment(pod)).unwrap();
        assert!(unknown.is_empty(), "{unknown:?}");
        assert_eq!(
            out["spec"]["template"]["metadata"]["annotations"],
            json!({"a": "b"})
        );
        let spec = &out["spec"]["template"]["spec"];
        (
            spec.get("serviceAccountName").cloned(),
            spec.get("serviceAccount").cloned(),
        )
    };
    let both = |name: &str| (Some(json!(name)), Some(json!(name)));
    let c = json!([{"name": "c", "image": "i"}]);
    assert_eq!(
        pod(json!({"containers": c, "serviceAccountName": "a"})),
        both("a")
    );
    assert_eq!(
        pod(json!({"containers": c, "serviceAccount": "old"})),
        both("old")
    );
    assert_eq!(
        pod(json!({"containers": c, "serviceAccountName": "a", "serviceAccount": "old"})),
        both("a")
    );
    assert_eq!(
        pod(json!({"containers": c, "serviceAccountName": "", "serviceAccount": "old"})),
        both("old")
    );
    assert_eq!(
        pod(json!({"containers": c, "serviceAccountName": null, "serviceAccount": "old"})),
        both("old")
    );
    assert_eq!(
        pod(json!({"containers": c, "serviceAccountName": "", "serviceAccount": ""})),
        (None, None)
    );
    assert_eq!(pod(json!({"containers": c})), (None, None));
}

#[test]
fn image_pull_policy_follows_the_tag() {
    for (image, want) in [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("nginx:1.27", "IfNotPresent"),
        ("localhost:5000/nginx", "Always"),
        ("localhost:5000/nginx:1", "IfNotPresent"),
        ("nginx@sha256:abc", "IfNotPresent"),
    ] {
        let mut c = json!({"image": image});
        default_container(&mut c);
        assert_eq!(c["imagePullPolicy"], want, "{image}");
    }
}

#[test]
fn service_defaults_and_allocation() {
    let mut s = json!({"spec": {"ports": [{"port": 80}]}});
    (service::KIND.defaults)(&mut s);
    (service::KIND.allocate.unwrap())(&mut s, &mut || "10.96.0.10".into(), &mut || 30000);
    assert_eq!(
        s["spec"],
        json!({"type": "ClusterIP", "sessionAffinity": "None", "internalTrafficPolicy": "Cluster",
            "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}], "clusterIP": "10.96.0.10",
            "clusterIPs": ["10.96.0.10"], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"})
    );
}

#[test]
fn labels_are_checked_like_object_meta() {
    let errs = check_labels(
        &json!({"ok": "v", "app.kubernetes.io/name": "web", "bad key": "x", "k": "-bad", "long": "a".repeat(64), "Bad_Prefix/x": "y"}),
        "metadata.labels",
    );
    let texts: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert_eq!(texts.len(), 4, "{texts:?}");
    assert!(texts[0].starts_with("metadata.labels: Invalid value: \"Bad_Prefix/x\": prefix part a lowercase RFC 1123 subdomain"));
    assert!(
        texts[1]
            .starts_with("metadata.labels: Invalid value: \"bad key\": name part must consist of")
    );
    assert!(texts[2].starts_with(
        "metadata.labels: Invalid value: \"-bad\": a valid label must be an empty string"
    ));
    assert_eq!(
        texts[3],
        format!(
            "metadata.labels: Invalid value: \"{}\": must be no more than 63 characters",
            "a".repeat(64)
        )
    );
}

#[test]
fn names_are_checked_per_kind() {
    // Kubernetes 1.37: a Service's name is a DNS-1123 label.
    assert!(check_name(Some(&service::KIND), "1web").is_none());
    assert!(check_name(Some(&service::KIND), "web.site").is_some());
    assert!(check_name(Some(&deployment::KIND), "1web").is_none());
    assert!(check_name(Some(&deployment::KIND), "Web").is_some());
    assert!(check_name(Some(&namespace::KIND), "a.b").is_some());
}

#[test]
fn unknown_fields_are_reported_with_their_path() {
    let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
        "spec": {"foo": 1, "template": {"spec": {"containers": [{"name": "a", "image": "b", "bar": 2}]}}}});
    let (_, unknown) = decode(&deployment::KIND, &d).unwrap();
    assert_eq!(
        unknown,
        vec!["spec.foo", "spec.template.spec.containers[0].bar"]
    );
}

#[test]
fn durations_read_like_kubectl() {
    for (secs, want) in [
        (0, "0s"),
        (59, "59s"),
        (119, "119s"),
        (120, "2m"),
        (190, "3m10s"),
        (600, "10m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 600, "3h10m"),
        (10 * 3600, "10h"),
        (50 * 3600, "2d2h"),
        (30 * 86400, "30d"),
        (-5, "<invalid>"),
    ] {
        assert_eq!(human_duration(secs), want, "{secs}");
    }
}

#[test]
fn endpoint_slices_are_validated_like_kube_apiserver() {
    let k = KINDS.iter().find(|k| k.kind == "EndpointSlice").unwrap();
    let check = |o: serde_json::Value| {
        let mut errs = vec![];
        (k.validate)(&o, &mut errs);
        errs.iter().map(ToString::to_string).collect::<Vec<_>>()
    };
    assert_eq!(
        check(json!({"addressType": "IPv4", "endpoints": [
            {"addresses": ["10.0.0.1"]},
            {"addresses": ["127.0.0.1", "fe80::1", "nope"]},
        ]})),
        [
            "endpoints[1].addresses[0]: Invalid value: \"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)",
            "endpoints[1].addresses[1]: Invalid value: \"fe80::1\": must be a valid IPv4 address",
            "endpoints[1].addresses[2]: Invalid value: \"nope\": must be a valid IPv4 address",
        ]
    );
    assert_eq!(
        check(
            json!({"addressType": "IP", "endpoints": [], "ports": [{"name": "A", "protocol": "TCP"}]})
        ),
        [
            "addressType: Unsupported value: \"IP\": supported values: \"FQDN\", \"IPv4\", \"IPv6\"",
            "ports[0].name: Invalid value: \"A\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
        ]
    );
    let mut errs = vec![];
    (k.validate_update)(
        &json!({"addressType": "IPv4"}),
        &json!({"addressType": "IPv6"}),
        &mut errs,
    );
    assert_eq!(
        errs[0].to_string(),
        "addressType: Invalid value: null: field is immutable"
    );
}
