//! Built-in kinds: the defaults and validation a real cluster applies, and simulated Deployment status.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service};
use kube::api::PostParams;
use serde_json::json;

use super::{DEADLINE, api_code, api_message};
use demoweb_tests::harness::TestEnv;

#[tokio::test]
async fn deployment_defaults_match_a_real_cluster() {
    let env = TestEnv::new("deployment_defaults").await;
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}],
                "readinessProbe": {"httpGet": {"path": "/", "port": 80}}}],
                "volumes": [{"name": "c", "configMap": {"name": "x"}}]}}}
    }))
    .unwrap();
    let d = serde_json::to_value(
        env.api::<Deployment>()
            .create(&PostParams::default(), &d)
            .await
            .unwrap(),
    )
    .unwrap();
    let s = &d["spec"];
    assert_eq!(s["replicas"], 1);
    assert_eq!(s["revisionHistoryLimit"], 10);
    assert_eq!(s["progressDeadlineSeconds"], 600);
    assert_eq!(
        s["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
    );
    let p = &s["template"]["spec"];
    assert_eq!(p["restartPolicy"], "Always");
    assert_eq!(p["dnsPolicy"], "ClusterFirst");
    assert_eq!(p["schedulerName"], "default-scheduler");
    assert_eq!(p["securityContext"], json!({}));
    assert_eq!(p["terminationGracePeriodSeconds"], 30);
    assert_eq!(p["volumes"][0]["configMap"]["defaultMode"], 420);
    let c = &p["containers"][0];
    assert_eq!(c["imagePullPolicy"], "IfNotPresent");
    assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(c["terminationMessagePolicy"], "File");
    assert_eq!(c["ports"][0]["protocol"], "TCP");
    assert_eq!(c["readinessProbe"]["httpGet"]["scheme"], "HTTP");
    assert_eq!(c["readinessProbe"]["timeoutSeconds"], 1);
    assert_eq!(c["readinessProbe"]["periodSeconds"], 10);
    assert_eq!(c["readinessProbe"]["successThreshold"], 1);
    assert_eq!(c["readinessProbe"]["failureThreshold"], 3);
    assert_eq!(d["metadata"]["generation"], 1);
    env.finish().await;
}

#[tokio::test]
async fn service_defaults_match_a_real_cluster() {
    let env = TestEnv::new("service_defaults").await;
    let s: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]}
    }))
    .unwrap();
    let s = serde_json::to_value(
        env.api::<Service>()
            .create(&PostParams::default(), &s)
            .await
            .unwrap(),
    )
    .unwrap();
    let spec = &s["spec"];
    assert_eq!(spec["type"], "ClusterIP");
    assert_eq!(spec["sessionAffinity"], "None");
    assert_eq!(spec["internalTrafficPolicy"], "Cluster");
    assert_eq!(spec["ipFamilyPolicy"], "SingleStack");
    assert_eq!(spec["ipFamilies"], json!(["IPv4"]));
    let ip = spec["clusterIP"].as_str().unwrap();
    assert!(ip.parse::<std::net::Ipv4Addr>().is_ok(), "{ip}");
    assert_eq!(spec["clusterIPs"], json!([ip]));
    assert_eq!(
        spec["ports"][0],
        json!({"name": "http", "port": 80, "protocol": "TCP", "targetPort": 80})
    );
    let out = env.kubectl(&["get", "svc", "web"]).await.expect_ok();
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        vec![
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ]
    );
    assert!(out.contains("80/TCP"), "{out}");
    env.finish().await;
}

/// Service names are DNS-1123 labels from Kubernetes 1.36 on (RelaxedServiceNameValidation, GA
/// in 1.37), DNS-1035 labels before: a leading digit is what tells them apart.
#[tokio::test]
async fn service_names_are_dns_labels() {
    let env = TestEnv::new("service_names").await;
    let minor: u32 = env
        .client
        .apiserver_version()
        .await
        .unwrap()
        .minor
        .trim_end_matches('+')
        .parse()
        .unwrap();
    let service = |name: &str| -> Service {
        serde_json::from_value(
            json!({"metadata": {"name": name}, "spec": {"ports": [{"port": 80}]}}),
        )
        .unwrap()
    };
    let api = env.api::<Service>();
    let leading_digit = api.create(&PostParams::default(), &service("1web")).await;
    if minor >= 36 {
        leading_digit.expect("a DNS-1123 label is a valid Service name");
    } else {
        let err = leading_digit.unwrap_err();
        assert_eq!(api_code(&err), Some(422));
        assert!(
            api_message(&err).starts_with("Service \"1web\" is invalid: metadata.name: Invalid value: \"1web\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character"),
            "{}",
            api_message(&err)
        );
    }
    let err = api
        .create(&PostParams::default(), &service("web_site"))
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), Some(422));
    let label = if minor >= 36 {
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"
    } else {
        "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character"
    };
    assert!(
        api_message(&err).starts_with(&format!(
            "Service \"web_site\" is invalid: metadata.name: Invalid value: \"web_site\": {label}"
        )),
        "{}",
        api_message(&err)
    );
    env.finish().await;
}

#[tokio::test]
async fn deployment_selector_must_match_the_template() {
    let env = TestEnv::new("deployment_selector").await;
    let out = env
        .apply_yaml("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  selector: {matchLabels: {app: a}}\n  template:\n    metadata: {labels: {app: b}}\n    spec: {containers: [{name: c, image: nginx}]}\n")
        .await;
    let stderr = out.expect_err();
    // kubectl rewords the 422 as `The Deployment "d" is invalid: ...` from the Status details.
    assert!(
        stderr.contains("The Deployment \"d\" is invalid"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "spec.template.metadata.labels: Invalid value: {\"app\":\"b\"}: `selector` does not match template `labels`"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("`selector` does not match template `labels`"),
        "{stderr}"
    );
    env.finish().await;
}

#[tokio::test]
async fn unknown_fields_in_built_ins_are_rejected_by_kubectl() {
    let env = TestEnv::new("strict_builtin").await;
    let out = env
        .apply_yaml("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\nfoo: 1\n")
        .await;
    let stderr = out.expect_err();
    assert!(
        stderr.contains("strict decoding error: unknown field \"foo\""),
        "{stderr}"
    );
    let out = env
        .kubectl_with_stdin(
            &["apply", "--validate=warn", "-f", "-"],
            Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\nfoo: 1\n"),
        )
        .await;
    out.expect_ok();
    assert!(
        out.stderr.contains("unknown field \"foo\""),
        "{}",
        out.stderr
    );
    env.finish().await;
}

#[tokio::test]
async fn secret_string_data_is_encoded_and_type_defaults_to_opaque() {
    let env = TestEnv::new("secret_defaults").await;
    let s: Secret =
        serde_json::from_value(json!({"metadata": {"name": "s"}, "stringData": {"user": "admin"}}))
            .unwrap();
    let s = env
        .api::<Secret>()
        .create(&PostParams::default(), &s)
        .await
        .unwrap();
    assert_eq!(s.type_.as_deref(), Some("Opaque"));
    assert_eq!(s.data.unwrap()["user"].0, b"admin".to_vec());
    assert!(s.string_data.is_none());
    env.finish().await;
}

#[tokio::test]
async fn deployment_status_reports_ready_replicas() {
    let env = TestEnv::new("deployment_status").await;
    env.apply_yaml("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: d}}\n  template:\n    metadata: {labels: {app: d}}\n    spec: {containers: [{name: c, image: registry.k8s.io/pause:3.10}]}\n")
        .await
        .expect_ok();
    let api = env.api::<Deployment>();
    let d = env
        .wait_for("two ready replicas", DEADLINE, || async {
            let d = api.get("d").await.unwrap();
            let s = d.status.clone()?;
            (s.ready_replicas == Some(2) && s.observed_generation == Some(1)).then_some(d)
        })
        .await;
    let s = d.status.unwrap();
    assert_eq!(
        (s.replicas, s.updated_replicas, s.available_replicas),
        (Some(2), Some(2), Some(2))
    );
    let conds = s.conditions.unwrap();
    let available = conds.iter().find(|c| c.type_ == "Available").unwrap();
    assert_eq!(
        (available.status.as_str(), available.reason.as_deref()),
        ("True", Some("MinimumReplicasAvailable"))
    );
    env.finish().await;
}

#[cfg_attr(real_cluster, ignore = "needs the emulator: switching pod readiness")]
#[tokio::test]
async fn deployment_status_stays_unready_when_pods_are_not_ready() {
    let env = TestEnv::new("deployment_unready").await;
    let emu = env.emulator();
    emu.set_deployments_ready(false);
    env.apply_yaml("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  selector: {matchLabels: {app: d}}\n  template:\n    metadata: {labels: {app: d}}\n    spec: {containers: [{name: c, image: nginx}]}\n")
        .await
        .expect_ok();
    let api = env.api::<Deployment>();
    env.wait_for("status observed", DEADLINE, || async {
        let s = api.get("d").await.unwrap().status?;
        (s.observed_generation == Some(1) && s.ready_replicas.is_none()).then_some(())
    })
    .await;
    emu.set_deployments_ready(true);
    env.wait_for("ready after the switch", DEADLINE, || async {
        (api.get("d").await.unwrap().status?.ready_replicas == Some(1)).then_some(())
    })
    .await;
    env.finish().await;
}

#[tokio::test]
async fn deployment_selectors_are_immutable() {
    let env = TestEnv::new("immutable_selector").await;
    let yaml = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  selector: {matchLabels: {app: d}}\n  template:\n    metadata: {labels: {app: d, v: '1'}}\n    spec: {containers: [{name: c, image: nginx}]}\n";
    env.apply_yaml(yaml).await.expect_ok();
    let changed = yaml.replace("matchLabels: {app: d}", "matchLabels: {app: d, v: '1'}");
    let stderr = env.apply_yaml(&changed).await.expect_err();
    assert!(
        stderr.contains(
            "spec.selector: Invalid value: {\"matchLabels\":{\"app\":\"d\",\"v\":\"1\"}}: field is immutable"
        ),
        "{stderr}"
    );
    env.finish().await;
}

#[tokio::test]
async fn ingress_paths_need_a_path_type() {
    let env = TestEnv::new("ingress_path_type").await;
    let ingress = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web}\nspec:\n  rules:\n  - host: web.example.com\n    http:\n      paths:\n      - path: /\n        backend: {service: {name: web, port: {number: 80}}}\n";
    let stderr = env.apply_yaml(ingress).await.expect_err();
    assert!(
        stderr.contains(
            "spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified"
        ),
        "{stderr}"
    );
    // With a class named (a cluster's default IngressClass would otherwise fill it in).
    let fixed = ingress
        .replace(
            "      - path: /\n",
            "      - path: /\n        pathType: Prefix\n",
        )
        .replace("spec:\n", "spec:\n  ingressClassName: conformance\n");
    env.apply_yaml(&fixed).await.expect_ok();
    let out = env.kubectl(&["get", "ingress", "web"]).await.expect_ok();
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..2], &["web", "conformance"], "{out}");
    assert!(row.contains(&"web.example.com"), "{out}");
    env.finish().await;
}

#[tokio::test]
async fn node_port_services_get_a_port_from_the_range() {
    let env = TestEnv::new("node_port").await;
    let s: Service = serde_json::from_value(json!({"metadata": {"name": "np"},
        "spec": {"type": "NodePort", "selector": {"app": "x"}, "ports": [{"port": 80}]}}))
    .unwrap();
    let s = env
        .api::<Service>()
        .create(&PostParams::default(), &s)
        .await
        .unwrap();
    let spec = s.spec.unwrap();
    let port = spec.ports.unwrap()[0].node_port.unwrap();
    assert!((30000..=32767).contains(&port), "{port}");
    assert_eq!(spec.external_traffic_policy.as_deref(), Some("Cluster"));
    env.finish().await;
}

#[tokio::test]
async fn disruption_budgets_and_autoscalers_as_kubectl_shows_them() {
    let env = TestEnv::new("pdb_hpa").await;
    env.apply_yaml(
        r#"apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: web
spec:
  maxUnavailable: 1
  selector:
    matchLabels:
      app: web
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: web
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: web
  maxReplicas: 5
"#,
    )
    .await
    .expect_ok();

    // Defaults: one replica at least, CPU at 80% when no metric is named.
    let hpa: serde_json::Value = serde_json::from_str(
        &env.kubectl(&["get", "hpa", "web", "-o", "json"])
            .await
            .expect_ok(),
    )
    .unwrap();
    assert_eq!(hpa["spec"]["minReplicas"], 1);
    assert_eq!(
        hpa["spec"]["metrics"],
        json!([{"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": 80}}}])
    );

    let table = env.kubectl(&["get", "pdb,hpa"]).await.expect_ok();
    let lines: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(
        lines.iter().any(|l| l[..]
            == [
                "NAME",
                "MIN",
                "AVAILABLE",
                "MAX",
                "UNAVAILABLE",
                "ALLOWED",
                "DISRUPTIONS",
                "AGE"
            ]),
        "{table}"
    );
    assert!(
        lines.iter().any(|l| l.len() >= 4
            && l[0] == "poddisruptionbudget.policy/web"
            && l[1..4] == ["N/A", "1", "0"]),
        "{table}"
    );
    assert!(
        lines.iter().any(|l| l[..]
            == [
                "NAME",
                "REFERENCE",
                "TARGETS",
                "MINPODS",
                "MAXPODS",
                "REPLICAS",
                "AGE"
            ]),
        "{table}"
    );
    assert!(
        lines.iter().any(|l| l.len() >= 2
            && l[0] == "horizontalpodautoscaler.autoscaling/web"
            && l[1] == "Deployment/web"),
        "{table}"
    );

    // The validation that matters.
    let err = env
        .apply_yaml(
            r#"apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: upside-down
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 4
  maxReplicas: 2
"#,
        )
        .await
        .expect_err();
    assert!(
        err.contains(
            "spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`"
        ),
        "{err}"
    );
    let err = env
        .apply_yaml(
            r#"apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: both
spec:
  minAvailable: 1
  maxUnavailable: 1
"#,
        )
        .await
        .expect_err();
    assert!(
        err.contains("minAvailable and maxUnavailable cannot be both set"),
        "{err}"
    );
    env.finish().await;
}

/// `serviceAccount` is the pod spec's deprecated alias of `serviceAccountName`: the API server
/// serves both with one value, and a write that leaves `serviceAccountName` out keeps the account
/// the alias still names. A user sees that through any verb.
#[tokio::test]
async fn deprecated_service_account_alias_follows_service_account_name() {
    let env = TestEnv::new("sa_alias").await;
    let deployment = |pod_extra: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: d}}\nspec:\n  selector: {{matchLabels: {{app: d}}}}\n  template:\n    metadata: {{labels: {{app: d}}}}\n    spec:\n      containers: [{{name: c, image: registry.k8s.io/pause:3.10}}]\n{pod_extra}"
        )
    };
    // Created with the deprecated field only: both come back.
    ssa(&env, &deployment("      serviceAccount: legacy\n")).await;
    assert_eq!(accounts(&env).await, "legacy/legacy");

    // The current field wins over a stale alias.
    ssa(&env, &deployment("      serviceAccountName: web\n")).await;
    assert_eq!(accounts(&env).await, "web/web");

    // Applying without serviceAccountName does not clear it: the alias, owned by nobody, keeps it.
    ssa(&env, &deployment("")).await;
    assert_eq!(accounts(&env).await, "web/web");

    // Stating another account replaces both.
    ssa(&env, &deployment("      serviceAccountName: default\n")).await;
    assert_eq!(accounts(&env).await, "default/default");

    // A merge patch nulling only serviceAccountName keeps the account; nulling both clears it.
    env.kubectl(&[
        "patch",
        "deployment",
        "d",
        "--type=merge",
        "-p",
        r#"{"spec":{"template":{"spec":{"serviceAccountName":null}}}}"#,
    ])
    .await
    .expect_ok();
    assert_eq!(accounts(&env).await, "default/default");
    env.kubectl(&[
        "patch",
        "deployment",
        "d",
        "--type=merge",
        "-p",
        r#"{"spec":{"template":{"spec":{"serviceAccountName":null,"serviceAccount":null}}}}"#,
    ])
    .await
    .expect_ok();
    assert_eq!(accounts(&env).await, "/");

    // A JSON patch that sets only the alias: the alias becomes the account.
    env.kubectl(&[
        "patch",
        "deployment",
        "d",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/spec/template/spec/serviceAccount","value":"legacy"}]"#,
    ])
    .await
    .expect_ok();
    assert_eq!(accounts(&env).await, "legacy/legacy");
    env.finish().await;
}

/// The pod template's `serviceAccountName/serviceAccount`, as kubectl shows them.
async fn accounts(env: &TestEnv) -> String {
    env.kubectl(&[
        "get",
        "deployment",
        "d",
        "-o",
        "jsonpath={.spec.template.spec.serviceAccountName}/{.spec.template.spec.serviceAccount}",
    ])
    .await
    .expect_ok()
    .trim()
    .to_owned()
}

async fn ssa(env: &TestEnv, yaml: &str) {
    env.kubectl_with_stdin(
        &[
            "apply",
            "--server-side",
            "--field-manager=sa-test",
            "-f",
            "-",
        ],
        Some(yaml),
    )
    .await
    .expect_ok();
}

/// The HorizontalPodAutoscaler keeps its target within its bounds even without metrics, writing
/// the count through the scale subresource as kube-controller-manager.
#[tokio::test]
async fn autoscaler_brings_its_target_into_bounds() {
    let env = TestEnv::new("hpa_bounds").await;
    env.apply_yaml(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "nginx:1.27", resources: {requests: {cpu: 50m}}}]
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: web
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 3
  maxReplicas: 5
"#,
    )
    .await
    .expect_ok();
    let deployments = env.api::<Deployment>();
    let scaled = env
        .wait_for(
            "the autoscaler to raise the Deployment to minReplicas",
            DEADLINE,
            || async {
                let d = deployments.get("web").await.ok()?;
                (d.spec.as_ref()?.replicas == Some(3)).then_some(d)
            },
        )
        .await;
    let owner = scaled
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .find(|e| {
            e.fields_v1
                .as_ref()
                .is_some_and(|f| f.0["f:spec"].get("f:replicas").is_some())
        })
        .expect("an owner of spec.replicas");
    assert_eq!(
        (owner.operation.as_deref(), owner.subresource.as_deref()),
        (Some("Update"), Some("scale")),
        "{owner:?}"
    );
    env.wait_for("the autoscaler's status", DEADLINE, || async {
        let out = env
            .kubectl(&[
                "get",
                "hpa",
                "web",
                "-o",
                "jsonpath={.status.desiredReplicas}",
            ])
            .await;
        (out.stdout.trim() == "3").then_some(())
    })
    .await;
    env.finish().await;
}
