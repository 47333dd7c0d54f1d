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

    // The `get dweb -o wide` table: header, then the seed with 2 desired and 2 ready replicas.
    let header = stdout
        .lines()
        .find(|l| l.starts_with("NAME "))
        .unwrap_or_else(|| panic!("no table header\n{context}"));
    let columns: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(
        columns,
        ["NAME", "REPLICAS", "READY", "GITREPO", "URL", "AGE"],
        "{context}"
    );
    let row: Vec<&str> = stdout
        .lines()
        .find(|l| l.starts_with("demoweb1 "))
        .unwrap_or_else(|| panic!("no row for demoweb1\n{context}"))
        .split_whitespace()
        .collect();
    assert_eq!(
        row[..4],
        [
            "demoweb1",
            "2",
            "2",
            "https://github.com/gbaeke/static-web.git"
        ],
        "{context}"
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
