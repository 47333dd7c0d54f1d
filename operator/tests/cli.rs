//! The binary's command line as a user meets it. Also makes `cargo test --workspace` build the
//! binary, which the integration tests in `tests/` start as a child process.

use std::process::Command;

fn operator() -> Command {
    Command::new(env!("CARGO_BIN_EXE_demoweb-operator"))
}

#[test]
fn crd_prints_every_crd() {
    let out = operator()
        .arg("crd")
        .output()
        .expect("run demoweb-operator crd");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8(out.stdout).expect("utf-8");
    for name in [
        "demowebs.baeke.info",
        "azureidentities.aadpodidentity.k8s.io",
        "azureidentitybindings.aadpodidentity.k8s.io",
    ] {
        assert!(yaml.contains(&format!("name: {name}")), "missing {name}");
    }
}

#[test]
fn run_without_a_cluster_fails_with_a_message() {
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = dir.path().join("kubeconfig");
    // A server that refuses connections: port 9 on localhost is not listening.
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:9\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user: {}\n",
    )
    .expect("write kubeconfig");
    let out = operator()
        .args([
            "run",
            "--metrics-addr=127.0.0.1:0",
            "--leader-election=false",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .expect("run demoweb-operator run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("checking that the DemoWeb CRD is served"),
        "{stderr}"
    );
}

#[test]
fn bad_flags_are_rejected() {
    let out = operator()
        .args(["run", "--log-format=xml"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("xml"));
}
