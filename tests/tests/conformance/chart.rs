//! The project's own chart installs with real Helm (helm-python-sdk), and a user sees with kubectl what
//! it promises: CRDs established, the operator's Deployment, ServiceAccount and RBAC wired together.

use std::path::PathBuf;

use serde_json::{Value, json};

use demoweb_tests::harness::TestEnv;

use crate::DEADLINE;

/// Drives Helm's Go SDK: `action kubeconfig namespace release [values-json]`. Prints the answer as JSON;
/// a Helm error goes to stderr with exit code 1.
const HELM: &str = r#"
import json, sys
import helm_python
action, kubeconfig, namespace, release = sys.argv[1:5]
values = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {}
chart = sys.argv[6] if len(sys.argv) > 6 else None
try:
    with helm_python.Config(kubeconfig_path=kubeconfig, namespace=namespace) as cfg:
        if action == "install":
            out = cfg.install(chart, release, values, namespace=namespace, timeout=120)
        elif action == "upgrade":
            out = cfg.upgrade(chart, release, values, namespace=namespace, timeout=120)
        elif action == "uninstall":
            out = cfg.uninstall(release, ignore_not_found=True, timeout=120)
        else:
            out = cfg.list(all_states=True)
    print(json.dumps(out))
except Exception as e:
    print(f"{type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(1)
"#;

/// Renders the chart as `helm template` does (Helm's Go SDK; nothing is sent to a cluster):
/// `kubeconfig chart release namespace values-json`, printing {template path: manifest}.
const RENDER: &str = r#"
import json, sys
import helm_python
kubeconfig, chart, release, namespace, values = sys.argv[1:6]
try:
    with helm_python.Chart.load(chart) as c, helm_python.Config(kubeconfig_path=kubeconfig, namespace=namespace) as cfg:
        print(json.dumps(cfg.render(c, json.loads(values), name=release, namespace=namespace)))
except Exception as e:
    print(f"{type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(1)
"#;

/// The chart's objects rendered with `values` for `release` in `namespace`, or Helm's error.
/// None when helm-python-sdk is not installed (the caller says it skipped).
pub fn render(release: &str, namespace: &str, values: &Value) -> Result<Vec<Value>, String> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    // Rendering contacts no server unless a template calls `lookup`; Helm still wants a kubeconfig.
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters: [{name: none, cluster: {server: \"http://127.0.0.1:9\"}}]\ncontexts: [{name: none, context: {cluster: none}}]\ncurrent-context: none\n",
    )
    .expect("kubeconfig written");
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(RENDER)
        .arg(&kubeconfig)
        .arg(chart_dir())
        .arg(release)
        .arg(namespace)
        .arg(values.to_string())
        .output()
        .expect("python3 runs");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let manifests: std::collections::BTreeMap<String, String> =
        serde_json::from_slice(&out.stdout).expect("helm answers JSON");
    let mut objects = Vec::new();
    for (path, text) in manifests {
        let docs = demoweb_crd::yaml::documents(&text)
            .unwrap_or_else(|e| panic!("{path} renders invalid YAML: {e}\n{text}"));
        objects.extend(docs.into_iter().filter(|d| d.is_object()));
    }
    Ok(objects)
}

fn chart_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../charts/demoweb-operator")
}

struct Helm {
    kubeconfig: PathBuf,
    namespace: String,
    release: String,
}

impl Helm {
    fn command(&self, action: &str, values: &Value) -> std::process::Command {
        let mut cmd = std::process::Command::new("python3");
        cmd.arg("-c")
            .arg(HELM)
            .arg(action)
            .arg(&self.kubeconfig)
            .arg(&self.namespace)
            .arg(&self.release)
            .arg(values.to_string())
            .arg(chart_dir());
        cmd
    }

    /// Runs an action; Ok(stdout as JSON) or Err(stderr).
    async fn run(&self, action: &str, values: Value) -> Result<Value, String> {
        let out = tokio::process::Command::from(self.command(action, &values))
            .output()
            .await
            .expect("python3 runs");
        if out.status.success() {
            Ok(serde_json::from_slice(&out.stdout).expect("helm answers JSON"))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    async fn expect(&self, action: &str, values: Value) -> Value {
        self.run(action, values)
            .await
            .unwrap_or_else(|e| panic!("helm {action} {} failed:\n{e}", self.release))
    }
}

/// A failed test still removes what it installed: on a real cluster ClusterRoles outlive the namespace.
/// Started, not awaited: an in-process emulator shares this thread and would never answer.
impl Drop for Helm {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = self
                .command("uninstall", &json!({}))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn();
        }
    }
}

async fn get_json(env: &TestEnv, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    let out = env.kubectl(&all).await.expect_ok();
    serde_json::from_str(&out).expect("kubectl prints JSON")
}

/// `subjects` of a binding name exactly the operator's ServiceAccount and `roleRef` the role given.
fn assert_binds(binding: &Value, role_kind: &str, role: &str, sa: &str, ns: &str) {
    let name = binding["metadata"]["name"].as_str().unwrap_or_default();
    assert_eq!(
        binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role}),
        "{name}"
    );
    let subjects = binding["subjects"].as_array().cloned().unwrap_or_default();
    assert_eq!(subjects.len(), 1, "{name}: {subjects:?}");
    assert_eq!(subjects[0]["kind"], "ServiceAccount", "{name}");
    assert_eq!(subjects[0]["name"], sa, "{name}");
    assert_eq!(subjects[0]["namespace"], ns, "{name}");
}

fn grants(role: &Value, resource: &str) -> bool {
    role["rules"].as_array().into_iter().flatten().any(|r| {
        r["resources"]
            .as_array()
            .is_some_and(|a| a.contains(&json!(resource)))
    })
}

fn container_args(deployment: &Value) -> Vec<String> {
    deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(String::from))
        .collect()
}

#[cfg_attr(
    no_helm,
    ignore = "python3 could not import helm-python-sdk when the tests were built (pip install helm-python-sdk==0.2.2)"
)]
#[tokio::test]
async fn the_chart_installs_upgrades_and_uninstalls() {
    let env = TestEnv::new("chart").await;
    let ns = env.namespace.clone();
    // The namespace is unique, so are the release and the cluster-scoped names derived from it.
    let rel = ns.clone();
    let helm = Helm {
        kubeconfig: env.kubeconfig_path.clone(),
        namespace: ns.clone(),
        release: rel.clone(),
    };

    helm.expect("install", json!({"installIdentityCRDs": true}))
        .await;
    let releases = helm.expect("list", json!({})).await;
    let listed: Vec<(&str, &str)> = releases
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or_default(),
                r["status"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(listed, [(rel.as_str(), "deployed")], "{releases}");
    // Helm keeps the release in a Secret of the release namespace.
    let stored = env
        .kubectl(&[
            "get",
            "secrets",
            "-l",
            &format!("owner=helm,name={rel}"),
            "-o",
            "name",
        ])
        .await
        .expect_ok();
    assert_eq!(stored.trim(), format!("secret/sh.helm.release.v1.{rel}.v1"));

    env.kubectl(&[
        "wait",
        "--for=condition=Established",
        "crd/demowebs.baeke.info",
        "crd/azureidentities.aadpodidentity.k8s.io",
        "crd/azureidentitybindings.aadpodidentity.k8s.io",
        "--timeout=60s",
    ])
    .await
    .expect_ok();

    let deployment = get_json(&env, &["get", "deployment", &rel]).await;
    let args = container_args(&deployment);
    for want in ["run", "--metrics-addr=0.0.0.0:8080"] {
        assert!(
            args.iter().any(|a| a == want),
            "{want} missing from {args:?}"
        );
    }
    // The Lease's namespace is the pod's, from the downward API.
    let env_vars = &deployment["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(
        env_vars
            .as_array()
            .into_iter()
            .flatten()
            .any(|v| v["name"] == "POD_NAMESPACE"
                && v["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"),
        "POD_NAMESPACE from the downward API: {env_vars}"
    );
    assert!(
        !args.iter().any(|a| a.starts_with("--namespace")),
        "watchNamespace unset: the operator watches every namespace, {args:?}"
    );
    assert_eq!(
        deployment["spec"]["template"]["spec"]["serviceAccountName"],
        rel
    );
    env.kubectl(&["get", "serviceaccount", &rel])
        .await
        .expect_ok();

    let workload = get_json(&env, &["get", "clusterrole", &rel]).await;
    assert!(grants(&workload, "demowebs"), "{workload}");
    let cluster = get_json(&env, &["get", "clusterrole", &format!("{rel}-cluster")]).await;
    assert!(grants(&cluster, "ingressclasses"), "{cluster}");
    for role in [rel.clone(), format!("{rel}-cluster")] {
        let binding = get_json(&env, &["get", "clusterrolebinding", &role]).await;
        assert_binds(&binding, "ClusterRole", &role, &rel, &ns);
    }
    let leader = format!("{rel}-leader-election");
    let lease_role = get_json(&env, &["get", "role", &leader]).await;
    assert!(grants(&lease_role, "leases"), "{lease_role}");
    let binding = get_json(&env, &["get", "rolebinding", &leader]).await;
    assert_binds(&binding, "Role", &leader, &rel, &ns);

    // Watching one namespace: the workload permissions become a Role there.
    helm.expect(
        "upgrade",
        json!({"installIdentityCRDs": true, "watchNamespace": ns}),
    )
    .await;
    let role = get_json(&env, &["get", "role", &rel]).await;
    assert!(grants(&role, "demowebs"), "{role}");
    let binding = get_json(&env, &["get", "rolebinding", &rel]).await;
    assert_binds(&binding, "Role", &rel, &rel, &ns);
    for kind in ["clusterrole", "clusterrolebinding"] {
        let err = env.kubectl(&["get", kind, &rel]).await.expect_err();
        assert!(
            err.contains("NotFound"),
            "{kind} {rel} should be gone: {err}"
        );
    }
    env.kubectl(&["get", "clusterrole", &format!("{rel}-cluster")])
        .await
        .expect_ok();
    let args = container_args(&get_json(&env, &["get", "deployment", &rel]).await);
    assert!(args.contains(&format!("--namespace={ns}")), "{args:?}");

    // values.schema.json guards the values before anything reaches the cluster.
    let bad = Helm {
        kubeconfig: env.kubeconfig_path.clone(),
        namespace: ns.clone(),
        release: format!("{rel}-bad"),
    };
    let err = bad
        .run("install", json!({"logFormat": "xml"}))
        .await
        .expect_err("logFormat=xml is refused");
    assert!(
        err.contains("values don't meet the specifications of the schema")
            && err.contains("/logFormat"),
        "{err}"
    );
    let releases = helm.expect("list", json!({})).await;
    assert_eq!(releases.as_array().map(Vec::len), Some(1), "{releases}");

    helm.expect("uninstall", json!({})).await;
    for (kind, name) in [
        ("clusterrole", format!("{rel}-cluster")),
        ("clusterrolebinding", format!("{rel}-cluster")),
        ("deployment", rel.clone()),
    ] {
        env.wait_for(
            &format!("{kind} {name} to go with the release"),
            DEADLINE,
            || async {
                let out = env.kubectl(&["get", kind, &name]).await;
                (!out.success() && out.stderr.contains("NotFound")).then_some(())
            },
        )
        .await;
    }
    // CRDs stay: deleting them would delete every custom resource in the cluster.
    for crd in [
        "azureidentities.aadpodidentity.k8s.io",
        "azureidentitybindings.aadpodidentity.k8s.io",
    ] {
        let live = get_json(&env, &["get", "crd", crd]).await;
        // When this release installed them (the cluster served none), the test removes them, so
        // that the cluster is left as it was found; a cluster's own are left alone.
        if live["metadata"]["annotations"]["meta.helm.sh/release-name"] == rel.as_str() {
            env.kubectl(&["delete", "crd", crd, "--timeout=60s"])
                .await
                .expect_ok();
        }
    }
    env.finish().await;
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

#[cfg_attr(
    no_helm,
    ignore = "python3 could not import helm-python-sdk when the tests were built (pip install helm-python-sdk==0.2.2)"
)]
#[test]
fn monitoring_objects_render_only_when_asked_and_fit_together() {
    let defaults = render("demoweb", "demoweb-system", &json!({}))
        .expect("the chart renders with its defaults");
    for kind in ["ServiceMonitor", "PrometheusRule"] {
        assert!(
            of_kind(&defaults, kind).is_empty(),
            "{kind} is off by default"
        );
    }
    assert!(
        !defaults.iter().any(|o| o["kind"] == "ConfigMap"
            && o["metadata"]["labels"]["grafana_dashboard"].is_string()),
        "no dashboard by default"
    );

    let objects = render(
        "demoweb",
        "demoweb-system",
        &json!({"metrics": {
            "serviceMonitor": {"enabled": true, "labels": {"release": "kube-prometheus-stack"}},
            "prometheusRule": {"enabled": true, "labels": {"release": "kube-prometheus-stack"},
                               "alertLabels": {"team": "platform"}},
            "grafanaDashboard": {"enabled": true},
        }}),
    )
    .expect("the chart renders with monitoring enabled");

    // The ServiceMonitor selects the metrics Service, in its namespace, on the named port.
    let monitor = of_kind(&objects, "ServiceMonitor");
    assert_eq!(monitor.len(), 1, "{objects:?}");
    let monitor = monitor[0];
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(
        monitor["metadata"]["labels"]["release"],
        "kube-prometheus-stack"
    );
    let services = of_kind(&objects, "Service");
    let selected: Vec<&&Value> = services
        .iter()
        .filter(|svc| {
            monitor["spec"]["selector"]["matchLabels"]
                .as_object()
                .expect("matchLabels")
                .iter()
                .all(|(k, v)| svc["metadata"]["labels"][k] == *v)
        })
        .collect();
    assert_eq!(
        selected.len(),
        1,
        "exactly the metrics Service: {services:?}"
    );
    let service = selected[0];
    assert_eq!(
        monitor["spec"]["namespaceSelector"]["matchNames"],
        json!([service["metadata"]["namespace"]])
    );
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert!(
        service["spec"]["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .any(|p| p["name"] == endpoint["port"]),
        "endpoint port {} is a port of {service}",
        endpoint["port"]
    );
    assert_eq!(endpoint["path"], "/metrics");
    assert_eq!(
        endpoint["honorLabels"], true,
        "per-site series keep the DemoWeb's namespace"
    );

    // The alerts, on the job the ServiceMonitor produces (the Service's name).
    let rule = of_kind(&objects, "PrometheusRule");
    assert_eq!(rule.len(), 1);
    let job = format!(
        "job=\"{}\"",
        service["metadata"]["name"].as_str().expect("name")
    );
    let alerts: Vec<Value> = rule[0]["spec"]["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .collect();
    let names: Vec<&str> = alerts.iter().filter_map(|r| r["alert"].as_str()).collect();
    assert_eq!(
        names,
        [
            "DemoWebStalled",
            "DemoWebNotReady",
            "DemoWebReconcileErrors",
            "DemoWebOperatorDown",
            "DemoWebOperatorNoLeader"
        ]
    );
    for alert in &alerts {
        let expr = alert["expr"].as_str().expect("expr");
        assert!(
            expr.contains(&job),
            "{} selects {job}: {expr}",
            alert["alert"]
        );
        assert_eq!(alert["labels"]["team"], "platform", "{alert}");
    }

    // The dashboard, for Grafana's sidecar.
    let dashboard = objects
        .iter()
        .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["labels"]["grafana_dashboard"] == "1")
        .expect("a dashboard ConfigMap");
    let data = dashboard["data"].as_object().expect("data");
    let (file, json_text) = data.iter().next().expect("one file");
    assert!(file.ends_with(".json"), "{file}");
    let board: Value = serde_json::from_str(json_text.as_str().expect("text"))
        .unwrap_or_else(|e| panic!("{file} is not JSON: {e}"));
    let text = board.to_string();
    for metric in [
        "demoweb_status_condition",
        "demoweb_status_ready_replicas",
        "demoweb_reconcile_errors_total",
        "demoweb_leader",
    ] {
        assert!(text.contains(metric), "the dashboard graphs {metric}");
    }

    // values.schema.json refuses what the templates cannot use.
    for (values, pointer) in [
        (
            json!({"metrics": {"serviceMonitor": {"enabled": "yes"}}}),
            "/metrics/serviceMonitor/enabled",
        ),
        (
            json!({"metrics": {"serviceMonitor": {"interval": "soon"}}}),
            "/metrics/serviceMonitor/interval",
        ),
        (
            json!({"metrics": {"prometheusRule": {"stalledFor": "15 minutes"}}}),
            "/metrics/prometheusRule/stalledFor",
        ),
        (
            json!({"metrics": {"prometheusRule": {"alertLabels": {"team": 7}}}}),
            "/metrics/prometheusRule/alertLabels/team",
        ),
        (
            json!({"metrics": {"prometheusRule": {"pagerduty": true}}}),
            "/metrics/prometheusRule",
        ),
        (
            json!({"metrics": {"grafanaDashboard": {"labels": []}}}),
            "/metrics/grafanaDashboard/labels",
        ),
    ] {
        let err = render("demoweb", "demoweb-system", &values)
            .expect_err(&format!("{values} is refused"));
        assert!(
            err.contains("values don't meet the specifications of the schema")
                && err.contains(pointer),
            "{values}: {err}"
        );
    }
}

#[cfg_attr(
    no_helm,
    ignore = "python3 could not import helm-python-sdk when the tests were built (pip install helm-python-sdk==0.2.2)"
)]
#[test]
fn extra_args_reach_the_operator_and_only_flags_are_taken() {
    let flags = ["--resync-period=10m", "--worker-threads=2"];
    let objects = render("demoweb", "demoweb-system", &json!({ "extraArgs": flags }))
        .expect("the chart renders with extra flags");
    let deployments = of_kind(&objects, "Deployment");
    let args = container_args(deployments.first().expect("the operator's Deployment"));
    for flag in flags {
        assert!(
            args.iter().any(|a| a == flag),
            "{flag} missing from {args:?}"
        );
    }
    assert_eq!(args.first().map(String::as_str), Some("run"), "{args:?}");

    let err = render("demoweb", "demoweb-system", &json!({"extraArgs": ["10m"]}))
        .expect_err("a value that is not a flag is refused");
    assert!(
        err.contains("extraArgs"),
        "the error names the value: {err}"
    );
}
