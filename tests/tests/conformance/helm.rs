//! Helm (through the helm-python-sdk package, which bundles Helm's Go SDK) installs a chart into the cluster.

use k8s_openapi::api::core::v1::ConfigMap;

use demoweb_tests::harness::TestEnv;

const SCRIPT: &str = r#"
import json, sys
import helm_python
kubeconfig, namespace, chart = sys.argv[1:4]
with helm_python.Config(kubeconfig_path=kubeconfig, namespace=namespace) as cfg:
    cfg.install(chart, "tiny", {"greeting": "hi"}, namespace=namespace, wait="watcher", timeout=60)
    print(json.dumps(cfg.list()))
"#;

#[cfg_attr(
    no_helm,
    ignore = "python3 could not import helm-python-sdk when the tests were built (pip install helm-python-sdk==0.2.2)"
)]
#[tokio::test]
async fn helm_installs_and_lists_a_release() {
    let env = TestEnv::new("helm").await;
    let chart = env.dir().join("tiny");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: tiny\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::write(chart.join("values.yaml"), "greeting: hello\n").unwrap();
    std::fs::write(
        chart.join("templates/configmap.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-greeting\ndata:\n  greeting: {{ .Values.greeting | quote }}\n",
    )
    .unwrap();
    let out = tokio::process::Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(&env.kubeconfig_path)
        .arg(&env.namespace)
        .arg(&chart)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "helm failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let releases: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let names: Vec<&str> = releases
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(names, vec!["tiny"], "{releases}");
    let cm = env.api::<ConfigMap>().get("tiny-greeting").await.unwrap();
    assert_eq!(cm.data.unwrap()["greeting"], "hi");
    env.finish().await;
}
