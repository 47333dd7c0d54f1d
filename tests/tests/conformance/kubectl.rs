//! kubectl as a user runs it: client-side and server-side apply, get -w, wait, patch.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};

use super::{DEADLINE, widgets};
use demoweb_tests::harness::TestEnv;

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: registry.k8s.io/pause:3.10
        env:
        - {name: A, value: "1"}
        - {name: B, value: "2"}
"#;

#[tokio::test]
async fn client_side_apply_merges_a_changed_configuration() {
    let env = TestEnv::new("client_side_apply").await;
    widgets(&env).await;
    let v1 = "apiVersion: conformance.demoweb.test/v1\nkind: Widget\nmetadata: {name: w, labels: {a: '1', b: '2'}}\nspec: {color: red, note: first, tags: [x, v]}\n";
    assert!(
        env.apply_yaml(v1)
            .await
            .expect_ok()
            .contains("widget.conformance.demoweb.test/w created")
    );
    // Someone else adds a label; apply must keep it while removing what the configuration dropped.
    env.kubectl(&["label", "widget", "w", "other=kept"])
        .await
        .expect_ok();
    let v2 = "apiVersion: conformance.demoweb.test/v1\nkind: Widget\nmetadata: {name: w, labels: {a: '1'}}\nspec: {color: green, tags: [z]}\n";
    assert!(env.apply_yaml(v2).await.expect_ok().contains("configured"));
    let out = env
        .kubectl(&["get", "widget", "w", "-o", "json"])
        .await
        .expect_ok();
    let w: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        w["metadata"]["labels"],
        serde_json::json!({"a": "1", "other": "kept"})
    );
    assert_eq!(
        w["spec"],
        serde_json::json!({"color": "green", "size": 1, "tags": ["z"]})
    );
    assert!(env.apply_yaml(v2).await.expect_ok().contains("unchanged"));
    env.finish().await;
}

#[tokio::test]
async fn client_side_apply_of_a_deployment_uses_strategic_merge() {
    let env = TestEnv::new("client_side_apply_deploy").await;
    env.apply_yaml(DEPLOYMENT).await.expect_ok();
    let changed = DEPLOYMENT
        .replace("replicas: 2", "replicas: 3")
        .replace("        - {name: B, value: \"2\"}\n", "");
    let out = env.apply_yaml(&changed).await;
    assert!(
        out.expect_ok().contains("deployment.apps/web configured"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.is_empty(),
        "no warnings or errors: {}",
        out.stderr
    );
    let json = env
        .kubectl(&["get", "deploy", "web", "-o", "json"])
        .await
        .expect_ok();
    let d: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["env"],
        serde_json::json!([{"name": "A", "value": "1"}])
    );
    assert_eq!(d["metadata"]["generation"], 2);
    env.finish().await;
}

#[tokio::test]
async fn server_side_apply_conflicts_and_force() {
    let env = TestEnv::new("server_side_apply").await;
    env.kubectl_with_stdin(&["apply", "--server-side", "-f", "-"], Some(DEPLOYMENT))
        .await
        .expect_ok();
    let other = DEPLOYMENT.replace("replicas: 2", "replicas: 5");
    let out = env
        .kubectl_with_stdin(
            &["apply", "--server-side", "--field-manager=other", "-f", "-"],
            Some(&other),
        )
        .await;
    let stderr = out.expect_err();
    assert!(stderr.contains("conflict with \"kubectl\""), "{stderr}");
    assert!(stderr.contains(".spec.replicas"), "{stderr}");
    env.kubectl_with_stdin(
        &[
            "apply",
            "--server-side",
            "--field-manager=other",
            "--force-conflicts",
            "-f",
            "-",
        ],
        Some(&other),
    )
    .await
    .expect_ok();
    let json = env
        .kubectl(&[
            "get",
            "deploy",
            "web",
            "-o",
            "json",
            "--show-managed-fields",
        ])
        .await
        .expect_ok();
    let d: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(d["spec"]["replicas"], 5);
    let managers: Vec<&str> = d["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert!(
        managers.contains(&"other") && managers.contains(&"kubectl"),
        "{managers:?}"
    );
    env.finish().await;
}

#[tokio::test]
async fn get_watch_prints_changes_as_they_happen() {
    let env = TestEnv::new("get_watch").await;
    env.apply_yaml("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: first}\n")
        .await
        .expect_ok();
    let kubeconfig = env.kubeconfig_path.to_string_lossy().to_string();
    let mut child =
        tokio::process::Command::new(std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into()))
            .args([
                "--kubeconfig",
                &kubeconfig,
                "-n",
                &env.namespace,
                "get",
                "configmaps",
                "-w",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = vec![];
    let read = async {
        while let Some(l) = lines.next_line().await.unwrap() {
            seen.push(l.split_whitespace().next().unwrap_or_default().to_string());
            if seen.contains(&"first".to_string())
                && !seen.contains(&"second".to_string())
                && seen.len() < 10
            {
                env.apply_yaml("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: second}\n")
                    .await
                    .expect_ok();
            }
            if seen.contains(&"second".to_string()) {
                break;
            }
        }
    };
    tokio::time::timeout(DEADLINE, read)
        .await
        .expect("kubectl get -w showed the new object");
    assert_eq!(seen[0], "NAME", "a header first: {seen:?}");
    assert_eq!(
        seen.iter().filter(|l| *l == "NAME").count(),
        1,
        "one header: {seen:?}"
    );
    child.kill().await.ok();
    env.finish().await;
}

#[tokio::test]
async fn wait_for_a_condition() {
    let env = TestEnv::new("kubectl_wait").await;
    env.apply_yaml(DEPLOYMENT).await.expect_ok();
    env.kubectl(&[
        "wait",
        "--for=condition=Available",
        "deployment/web",
        "--timeout=120s",
    ])
    .await
    .expect_ok();
    let out = env.kubectl(&["get", "deploy", "web"]).await.expect_ok();
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], &["web", "2/2", "2", "2"], "{out}");
    env.finish().await;
}

#[tokio::test]
async fn kubectl_scale_goes_through_the_scale_subresource() {
    let env = TestEnv::new("kubectl_scale").await;
    env.apply_yaml(DEPLOYMENT).await.expect_ok();
    env.kubectl(&["scale", "deployment", "web", "--replicas=4"])
        .await
        .expect_ok();
    env.kubectl(&[
        "wait",
        "--for=jsonpath={.status.readyReplicas}=4",
        "deployment/web",
        "--timeout=120s",
    ])
    .await
    .expect_ok();
    let json = env
        .kubectl(&[
            "get",
            "--raw",
            &format!(
                "/apis/apps/v1/namespaces/{}/deployments/web/scale",
                env.namespace
            ),
        ])
        .await
        .expect_ok();
    let scale: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        (scale["kind"].as_str(), scale["spec"]["replicas"].as_i64()),
        (Some("Scale"), Some(4))
    );
    assert_eq!(scale["status"]["selector"], "app=web");
    env.finish().await;
}

#[tokio::test]
async fn kubectl_patch_and_edit_style_replace() {
    let env = TestEnv::new("kubectl_patch").await;
    env.apply_yaml("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: '1'}\n")
        .await
        .expect_ok();
    env.kubectl(&[
        "patch",
        "cm",
        "c",
        "--type=merge",
        "-p",
        r#"{"data":{"b":"2"}}"#,
    ])
    .await
    .expect_ok();
    let json = env
        .kubectl(&["get", "cm", "c", "-o", "json"])
        .await
        .expect_ok();
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["data"], serde_json::json!({"a": "1", "b": "2"}));
    v["data"]["c"] = "3".into();
    env.kubectl_with_stdin(&["replace", "-f", "-"], Some(&v.to_string()))
        .await
        .expect_ok();
    // The same (now stale) resourceVersion again is a conflict, as `kubectl edit` would report.
    let err = env
        .kubectl_with_stdin(&["replace", "-f", "-"], Some(&v.to_string()))
        .await
        .expect_err();
    assert!(err.contains("the object has been modified"), "{err}");
    env.finish().await;
}

#[tokio::test]
async fn imperative_create_commands_work() {
    let env = TestEnv::new("kubectl_create").await;
    env.kubectl(&[
        "create",
        "deployment",
        "web",
        "--image=nginx:1.27",
        "--port=80",
        "--replicas=2",
    ])
    .await
    .expect_ok();
    env.kubectl(&["create", "configmap", "cfg", "--from-literal=a=1"])
        .await
        .expect_ok();
    env.kubectl(&[
        "create",
        "secret",
        "generic",
        "sec",
        "--from-literal=user=admin",
    ])
    .await
    .expect_ok();
    env.kubectl(&["create", "serviceaccount", "robot"])
        .await
        .expect_ok();
    let d: serde_json::Value = serde_json::from_str(
        &env.kubectl(&["get", "deploy", "web", "-o", "json"])
            .await
            .expect_ok(),
    )
    .unwrap();
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "web");
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        (c["name"].as_str(), c["image"].as_str()),
        (Some("nginx"), Some("nginx:1.27"))
    );
    assert_eq!(
        c["ports"],
        serde_json::json!([{"containerPort": 80, "protocol": "TCP"}])
    );
    assert_eq!(d["spec"]["template"]["spec"]["dnsPolicy"], "ClusterFirst");
    let data = env
        .kubectl(&[
            "get",
            "secret",
            "sec",
            "-o",
            "jsonpath={.type} {.data.user}",
        ])
        .await
        .expect_ok();
    assert_eq!(data, "Opaque YWRtaW4=");
    let cm = env
        .kubectl(&["get", "cm", "cfg", "-o", "jsonpath={.data.a}"])
        .await
        .expect_ok();
    assert_eq!(cm, "1");
    env.finish().await;
}

#[tokio::test]
async fn kubectl_creates_disruption_budgets() {
    let env = TestEnv::new("kubectl_pdb_hpa").await;
    env.apply_yaml(DEPLOYMENT).await.expect_ok();
    env.kubectl(&[
        "create",
        "poddisruptionbudget",
        "web",
        "--selector=app=web",
        "--max-unavailable=1",
    ])
    .await
    .expect_ok();
    env.kubectl(&[
        "create",
        "pdb",
        "strict",
        "--selector=app=web,tier notin (db)",
        "--min-available=50%",
    ])
    .await
    .expect_ok();
    let get = |kind: &'static str, name: &'static str| {
        let env = &env;
        async move {
            let out = env
                .kubectl(&["get", kind, name, "-o", "json"])
                .await
                .expect_ok();
            serde_json::from_str::<serde_json::Value>(&out).unwrap()
        }
    };
    let pdb = get("pdb", "web").await;
    assert_eq!(pdb["spec"]["maxUnavailable"], 1, "{pdb:#}");
    assert_eq!(
        pdb["spec"]["selector"],
        serde_json::json!({"matchLabels": {"app": "web"}}),
        "{pdb:#}"
    );
    let strict = get("pdb", "strict").await;
    assert_eq!(strict["spec"]["minAvailable"], "50%", "{strict:#}");
    assert_eq!(
        strict["spec"]["selector"]["matchExpressions"],
        serde_json::json!([{"key": "tier", "operator": "NotIn", "values": ["db"]}]),
        "{strict:#}"
    );
    env.finish().await;
}

/// `kubectl create` sends these kinds as protobuf; every flag must reach the stored object (a field
/// the server cannot decode is refused with 415, never dropped).
#[tokio::test]
async fn kubectl_create_flags_reach_the_stored_object() {
    let env = TestEnv::new("kubectl_create_flags").await;
    let other = format!("{}-made", env.namespace);
    let creates: &[&[&str]] = &[
        &[
            "deployment",
            "web",
            "--image=nginx:1.27",
            "--port=8080",
            "--replicas=0",
        ],
        &["deployment", "dry", "--image=nginx", "--dry-run=server"],
        &["service", "clusterip", "web", "--tcp=80:8080"],
        &["service", "loadbalancer", "lb", "--tcp=443:https"],
        &[
            "service",
            "externalname",
            "ext",
            "--external-name=example.com",
        ],
        &[
            "ingress",
            "web",
            "--class=nginx",
            "--rule=web.example.com/app*=web:80,tls=web-tls",
            "--default-backend=web:http",
            "--annotation=team=blue",
        ],
        &[
            "poddisruptionbudget",
            "web",
            "--selector=app=web",
            "--min-available=0",
        ],
        &[
            "configmap",
            "cfg",
            "--from-literal=a=1",
            "--from-literal=b=",
        ],
        &[
            "secret",
            "generic",
            "sec",
            "--from-literal=user=admin",
            "--type=custom/kind",
        ],
        &[
            "secret",
            "docker-registry",
            "pull",
            "--docker-server=registry.example.com",
            "--docker-username=u",
            "--docker-password=p",
        ],
        &["serviceaccount", "robot"],
        &["namespace", &other],
    ];
    for args in creates {
        let full: Vec<&str> = std::iter::once("create")
            .chain(args.iter().copied())
            .collect();
        env.kubectl(&full).await.expect_ok();
    }
    let get = |what: &'static str, path: &'static str| {
        let env = &env;
        async move {
            env.kubectl(&["get", what, "-o", &format!("jsonpath={path}")])
                .await
                .expect_ok()
        }
    };
    let deploy = get(
        "deployment/web",
        "{.spec.replicas} {.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].ports[0].containerPort}",
    );
    assert_eq!(deploy.await, "0 nginx:1.27 8080");
    let dry = env
        .kubectl(&["get", "deployment", "dry"])
        .await
        .expect_err();
    assert!(
        dry.contains("NotFound") || dry.contains("not found"),
        "{dry}"
    );
    assert_eq!(
        get(
            "service/web",
            "{.spec.type} {.spec.ports[0].port} {.spec.ports[0].targetPort} {.spec.selector.app}"
        )
        .await,
        "ClusterIP 80 8080 web"
    );
    assert_eq!(
        get(
            "service/lb",
            "{.spec.type} {.spec.ports[0].port} {.spec.ports[0].targetPort}"
        )
        .await,
        "LoadBalancer 443 https"
    );
    assert_eq!(
        get("service/ext", "{.spec.type} {.spec.externalName}").await,
        "ExternalName example.com"
    );
    assert_eq!(
        get(
            "ingress/web",
            "{.spec.ingressClassName} {.metadata.annotations.team} {.spec.defaultBackend.service.port.name} {.spec.rules[0].host} {.spec.rules[0].http.paths[0].path} {.spec.rules[0].http.paths[0].pathType} {.spec.rules[0].http.paths[0].backend.service.port.number} {.spec.tls[0].secretName} {.spec.tls[0].hosts[0]}"
        )
        .await,
        "nginx blue http web.example.com /app Prefix 80 web-tls web.example.com"
    );
    assert_eq!(
        get(
            "pdb/web",
            "{.spec.minAvailable} {.spec.selector.matchLabels.app}"
        )
        .await,
        "0 web"
    );
    assert_eq!(get("configmap/cfg", "{.data}").await, r#"{"a":"1","b":""}"#);
    assert_eq!(
        get("secret/sec", "{.type} {.data.user}").await,
        "custom/kind YWRtaW4="
    );
    assert_eq!(
        get("secret/pull", "{.type}").await,
        "kubernetes.io/dockerconfigjson"
    );
    assert_eq!(
        get("serviceaccount/robot", "{.metadata.name}").await,
        "robot"
    );
    let ns = env
        .kubectl(&["get", "namespace", &other, "-o", "jsonpath={.status.phase}"])
        .await
        .expect_ok();
    assert_eq!(ns, "Active");
    env.kubectl(&["delete", "namespace", &other, "--wait=false"])
        .await
        .expect_ok();
    env.finish().await;
}

/// `kubectl autoscale` writes autoscaling/v1; the same object reads as autoscaling/v2 (the version
/// `kubectl get hpa` prefers), the CPU target as its Utilization metric.
#[tokio::test]
async fn kubectl_autoscale_serves_both_autoscaling_versions() {
    let env = TestEnv::new("kubectl_autoscale").await;
    env.apply_yaml(DEPLOYMENT).await.expect_ok();
    env.kubectl(&[
        "autoscale",
        "deployment",
        "web",
        "--min=2",
        "--max=5",
        "--cpu-percent=60",
    ])
    .await
    .expect_ok();
    let v2 = env
        .kubectl(&[
            "get",
            "horizontalpodautoscalers.v2.autoscaling",
            "web",
            "-o",
            "jsonpath={.spec.minReplicas} {.spec.maxReplicas} {.spec.scaleTargetRef.name} {.spec.metrics[0].resource.name} {.spec.metrics[0].resource.target.averageUtilization}",
        ])
        .await
        .expect_ok();
    assert_eq!(v2, "2 5 web cpu 60");
    let v1 = env
        .kubectl(&[
            "get",
            "horizontalpodautoscalers.v1.autoscaling",
            "web",
            "-o",
            "jsonpath={.apiVersion} {.spec.targetCPUUtilizationPercentage}",
        ])
        .await
        .expect_ok();
    assert_eq!(v1, "autoscaling/v1 60");
    let table = env.kubectl(&["get", "hpa", "web"]).await.expect_ok();
    assert!(
        table.contains("Deployment/web") && table.contains("60%"),
        "{table}"
    );
    env.finish().await;
}
