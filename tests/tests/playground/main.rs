//! The playground as a user runs it (`cargo playground`), once: the seed example is reconciled and
//! shown with its children.

use std::process::Command;

#[test]
fn playground_shows_the_seed_demoweb_and_its_children() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_playground"))
        .args(["--once", "--dir"])
        .arg(dir.path())
        .output()
        .expect("run the playground");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let log = std::fs::read_to_string(dir.path().join("operator.log")).unwrap_or_default();
    let context = format!("stdout:\n{stdout}\nstderr:\n{stderr}\noperator log:\n{log}");
    assert!(out.status.success(), "exit {}\n{context}", out.status);

    let printed = stdout
        .lines()
        .find_map(|l| l.strip_prefix("kubeconfig: "))
        .unwrap_or_else(|| panic!("no kubeconfig path printed\n{context}"));
    assert!(
        std::path::Path::new(printed).starts_with(dir.path().canonicalize().expect("dir"))
            && std::path::Path::new(printed).is_file(),
        "{context}"
    );

    // The kubeconfig's context is the namespace the operator watches, so kubectl needs no `-n`.
    let kubeconfig = std::fs::read_to_string(printed).expect("kubeconfig readable");
    assert!(kubeconfig.contains("namespace: playground"), "{kubeconfig}");

    // The `get dweb -o wide` table: header, then the seed Ready with 2 desired and 2 ready replicas.
    let header = stdout
        .lines()
        .find(|l| l.starts_with("NAME "))
        .unwrap_or_else(|| panic!("no table header\n{context}"));
    let columns: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(
        columns,
        [
            "NAME",
            "READY",
            "REASON",
            "REPLICAS",
            "READYREPLICAS",
            "GITREPO",
            "MESSAGE",
            "URL",
            "AGE"
        ],
        "{context}"
    );
    let row: Vec<&str> = stdout
        .lines()
        .find(|l| l.starts_with("demoweb1 "))
        .unwrap_or_else(|| panic!("no row for demoweb1\n{context}"))
        .split_whitespace()
        .collect();
    assert_eq!(
        row[..6],
        [
            "demoweb1",
            "True",
            "Reconciled",
            "2",
            "2",
            "https://github.com/gbaeke/static-web.git"
        ],
        "{context}"
    );

    // The sites that are not Ready, each with its reason and message: only the Kong site, whose
    // ingress controller the emulator does not run (the examples' Secrets are applied).
    let not_ready: Vec<&str> = stdout
        .split("\nnot Ready (")
        .nth(1)
        .unwrap_or_else(|| panic!("no list of sites that are not Ready\n{context}"))
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .collect();
    assert_eq!(not_ready.len(), 1, "{not_ready:?}\n{context}");
    assert!(
        not_ready[0].starts_with("  frontdoor-site: Ready=False AllowlistApiMissing: "),
        "{not_ready:?}\n{context}"
    );

    // Its section: Ready, and the children found through their owner references.
    let section: Vec<&str> = stdout
        .split("\nDemoWeb ")
        .find(|s| s.starts_with("demoweb1\n"))
        .unwrap_or_else(|| panic!("no section for demoweb1\n{context}"))
        .lines()
        .map(str::trim)
        .collect();
    assert!(
        section
            .iter()
            .any(|l| l.split_whitespace().take(2).eq(["Ready", "True"])),
        "{context}"
    );
    for kind in ["Deployment", "Service", "ConfigMap"] {
        assert!(
            section.iter().any(|l| l.starts_with(&format!("{kind}/"))),
            "no {kind} child of demoweb1\n{context}"
        );
    }
    assert!(section.contains(&"Deployment/demoweb1"), "{context}");
}
