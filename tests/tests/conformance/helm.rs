//! Helm, the real CLI, installs a chart into the cluster, waits for it with kstatus (`--wait=watcher`)
//! and lists the release.

use k8s_openapi::api::core::v1::ConfigMap;

use demoweb_tests::harness::TestEnv;
use demoweb_tests::helm::Helm;

#[cfg_attr(
    no_go,
    ignore = "Helm is built from its Go module (tests/cluster/helm): `go` was not on the PATH when the tests were built"
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
    let helm = Helm {
        kubeconfig: env.kubeconfig_path.clone(),
        namespace: env.namespace.clone(),
    };
    helm.expect(&[
        "install".into(),
        "tiny".into(),
        chart.display().to_string(),
        "--set".into(),
        "greeting=hi".into(),
        "--wait=watcher".into(),
        "--timeout=60s".into(),
    ])
    .await;
    assert_eq!(
        helm.list().await,
        [("tiny".to_owned(), "deployed".to_owned(), "1".to_owned())]
    );
    let cm = env.api::<ConfigMap>().get("tiny-greeting").await.unwrap();
    assert_eq!(cm.data.unwrap()["greeting"], "hi");
    env.finish().await;
}
