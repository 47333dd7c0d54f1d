//! The project's own chart with the real Helm CLI: `helm lint --strict` passes, and `helm install`,
//! `upgrade` and `uninstall` do what a user checks with kubectl: CRDs established (and kept on
//! uninstall), the operator's Deployment, ServiceAccount and RBAC wired together, an upgrade with the
//! same values changing nothing.

use serde_json::{Value, json};

use demoweb_tests::harness::TestEnv;
pub use demoweb_tests::helm::render;
use demoweb_tests::helm::{Helm, chart_dir, offline, set_json};
use demoweb_tests::operator::SEED;

use crate::DEADLINE;

/// `helm <action> release chart …` with `values`. On a real cluster Helm waits for the release as a
/// user would (`--wait`: kstatus, through watches); its Deployment reader lists the Deployment's
/// ReplicaSets, which the emulator does not serve (it has no pods), so there the test waits with
/// `kubectl rollout status`, which reads the Deployment's own status.
fn chart_args(env: &TestEnv, action: &str, release: &str, values: &Value) -> Vec<String> {
    let mut args = vec![
        action.to_owned(),
        release.to_owned(),
        chart_dir().display().to_string(),
        "--timeout=120s".to_owned(),
    ];
    if !env.is_emulator() {
        args.push("--wait=watcher".to_owned());
    }
    args.extend(set_json(values));
    args
}

/// A failed test still removes what it installed: on a real cluster ClusterRoles outlive the namespace.
/// Started, not awaited: an in-process emulator shares this thread and would never answer.
struct Uninstall<'a> {
    helm: &'a Helm,
    release: String,
}

impl Drop for Uninstall<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = self
                .helm
                .command(&[
                    "uninstall".into(),
                    self.release.clone(),
                    "--ignore-not-found".into(),
                ])
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
    no_go,
    ignore = "Helm is built from its Go module (tests/cluster/helm): `go` was not on the PATH when the tests were built"
)]
#[test]
fn the_chart_lints_strictly() {
    // Every template renders: the optional objects too.
    let everything = json!({
        "installIdentityCRDs": true,
        "watchNamespace": "sites",
        "extraArgs": ["--resync-period=10m"],
        "metrics": {
            "serviceMonitor": {"enabled": true},
            "prometheusRule": {"enabled": true},
            "grafanaDashboard": {"enabled": true},
        },
    });
    for values in [json!({}), everything] {
        let mut args = vec![
            "lint".to_owned(),
            "--strict".to_owned(),
            chart_dir().display().to_string(),
        ];
        args.extend(set_json(&values));
        let out = offline(&args).unwrap_or_else(|e| panic!("helm lint --strict {values}:\n{e}"));
        assert!(
            out.contains("1 chart(s) linted, 0 chart(s) failed"),
            "{values}: {out}"
        );
    }
    // Strict lint fails on what the schema refuses, so the check above can fail.
    let err = offline(&[
        "lint".into(),
        "--strict".into(),
        chart_dir().display().to_string(),
        "--set-json".into(),
        "replicaCount=\"two\"".into(),
    ])
    .expect_err("replicaCount=\"two\" fails the lint");
    assert!(err.contains("replicaCount"), "{err}");
}

#[cfg_attr(
    no_go,
    ignore = "Helm is built from its Go module (tests/cluster/helm): `go` was not on the PATH when the tests were built"
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
    };
    let _cleanup = Uninstall {
        helm: &helm,
        release: rel.clone(),
    };
    let values = json!({"installIdentityCRDs": true});
    if !env.is_emulator() {
        // Helm 4 server-side applies crds/ over a CRD that exists: one left older by an earlier run
        // (another field manager's values) conflicts. The suite's tests keep it as generated.
        let demoweb: Vec<_> = demoweb_crd::all_crds()
            .into_iter()
            .filter(|c| c.metadata.name.as_deref() == Some("demowebs.baeke.info"))
            .collect();
        env.install_crds(&demoweb).await;
    }

    helm.expect(&chart_args(&env, "install", &rel, &values))
        .await;
    assert_eq!(
        helm.list().await,
        [(rel.clone(), "deployed".to_owned(), "1".to_owned())]
    );
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

    env.kubectl(&[
        "rollout",
        "status",
        &format!("deployment/{rel}"),
        "--timeout=60s",
    ])
    .await
    .expect_ok();
    let deployment = get_json(&env, &["get", "deployment", &rel]).await;
    // The Deployment is available (on a real cluster its pod runs on a kwok node).
    assert_eq!(
        deployment["status"]["availableReplicas"], 1,
        "{}",
        deployment["status"]
    );
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
    let pods = operator_pods(&env, &rel).await;
    if let Some(pods) = &pods {
        // The scheduler placed the pod, under the chart's ServiceAccount, and kwok reports it Ready.
        assert_eq!(pods.len(), 1, "{pods:?}");
        let pod = &pods[0];
        assert!(
            pod["spec"]["nodeName"]
                .as_str()
                .is_some_and(|n| n.starts_with("kwok-node-")),
            "{}",
            pod["spec"]
        );
        assert_eq!(pod["spec"]["serviceAccountName"], rel);
        assert!(
            pod["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True"),
            "{}",
            pod["status"]
        );
    }

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

    // The same values again: a new revision that writes nothing. The Deployment's spec is unchanged
    // (its generation stays, no pod is replaced) and no object the release holds is rewritten.
    let held = [
        ("deployment", rel.clone()),
        ("serviceaccount", rel.clone()),
        ("service", format!("{rel}-metrics")),
        ("clusterrole", rel.clone()),
        ("clusterrole", format!("{rel}-cluster")),
        ("clusterrolebinding", rel.clone()),
        ("clusterrolebinding", format!("{rel}-cluster")),
        ("role", leader.clone()),
        ("rolebinding", leader.clone()),
    ];
    let before = versions(&env, &held).await;
    helm.expect(&chart_args(&env, "upgrade", &rel, &values))
        .await;
    assert_eq!(
        helm.list().await,
        [(rel.clone(), "deployed".to_owned(), "2".to_owned())]
    );
    let after = versions(&env, &held).await;
    for ((what, (generation, version)), (_, (generation_after, version_after))) in
        before.iter().zip(&after)
    {
        assert_eq!(generation, generation_after, "{what}: generation");
        // The Deployment controller writes the Deployment's status; the rest nobody else writes.
        if !what.starts_with("deployment/") {
            assert_eq!(version, version_after, "{what} was rewritten");
        }
    }
    let uids = |pods: Option<Vec<Value>>| -> Option<Vec<Value>> {
        pods.map(|p| p.iter().map(|p| p["metadata"]["uid"].clone()).collect())
    };
    assert_eq!(
        uids(operator_pods(&env, &rel).await),
        uids(pods),
        "the operator's pods are the same"
    );

    // Watching one namespace: the workload permissions become a Role there.
    helm.expect(&chart_args(
        &env,
        "upgrade",
        &rel,
        &json!({"installIdentityCRDs": true, "watchNamespace": ns}),
    ))
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
    let err = helm
        .run(&chart_args(
            &env,
            "install",
            &format!("{rel}-bad"),
            &json!({"logFormat": "xml"}),
        ))
        .await
        .expect_err("logFormat=xml is refused");
    assert!(
        err.contains("values don't meet the specifications of the schema")
            && err.contains("/logFormat"),
        "{err}"
    );
    assert_eq!(helm.list().await.len(), 1, "only the first release");

    // A site of the user's, to outlive the release.
    env.apply_yaml(SEED).await.expect_ok();
    helm.expect(&[
        "uninstall".into(),
        rel.clone(),
        "--wait".into(),
        "--timeout=120s".into(),
    ])
    .await;
    assert_eq!(helm.list().await, [], "the release is gone");
    for (kind, name) in [
        ("clusterrole", format!("{rel}-cluster")),
        ("clusterrolebinding", format!("{rel}-cluster")),
        ("role", leader.clone()),
        ("rolebinding", leader.clone()),
        ("serviceaccount", rel.clone()),
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
    // CRDs stay, and so do the sites: deleting a CRD would delete every custom resource of it.
    env.kubectl(&["get", "crd", "demowebs.baeke.info"])
        .await
        .expect_ok();
    env.kubectl(&["get", "demoweb", "demoweb1"])
        .await
        .expect_ok();
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

/// The pods of the release's operator Deployment; None on the emulator, which has no pods.
async fn operator_pods(env: &TestEnv, release: &str) -> Option<Vec<Value>> {
    if env.is_emulator() {
        return None;
    }
    let list = get_json(
        env,
        &[
            "get",
            "pods",
            "-l",
            &format!("app.kubernetes.io/instance={release}"),
        ],
    )
    .await;
    Some(list["items"].as_array().cloned().unwrap_or_default())
}

/// `kind/name` → (metadata.generation, metadata.resourceVersion) of each object.
async fn versions(env: &TestEnv, objects: &[(&str, String)]) -> Vec<(String, (Value, Value))> {
    let mut out = Vec::new();
    for (kind, name) in objects {
        let live = get_json(env, &["get", kind, name]).await;
        out.push((
            format!("{kind}/{name}"),
            (
                live["metadata"]["generation"].clone(),
                live["metadata"]["resourceVersion"].clone(),
            ),
        ));
    }
    out
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

#[cfg_attr(
    no_go,
    ignore = "Helm is built from its Go module (tests/cluster/helm): `go` was not on the PATH when the tests were built"
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
    no_go,
    ignore = "Helm is built from its Go module (tests/cluster/helm): `go` was not on the PATH when the tests were built"
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
