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

/// Without any configuration, `run` says so once: one `error:` line naming each cause once, without
/// colour codes when its standard error is not a terminal (here a pipe).
#[test]
fn run_without_a_kubeconfig_says_each_cause_once() {
    let home = tempfile::tempdir().expect("temp dir");
    let missing = home.path().join("no-such-kubeconfig");
    let out = operator()
        .args([
            "run",
            "--metrics-addr=127.0.0.1:0",
            "--leader-election=false",
        ])
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env("KUBECONFIG", &missing)
        .env("HOME", home.path())
        .output()
        .expect("run demoweb-operator run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains('\u{1b}'),
        "colour codes on a pipe:\n{stderr}"
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line:\n{stderr}");
    assert!(
        lines[0].starts_with("error: no Kubernetes configuration"),
        "{stderr}"
    );
    for cause in ["incluster environment variable", "no-such-kubeconfig"] {
        assert_eq!(stderr.matches(cause).count(), 1, "{cause} once:\n{stderr}");
    }
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
