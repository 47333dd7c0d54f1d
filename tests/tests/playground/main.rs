//! The playground as a user runs it (`cargo playground`): once, the seed example reconciled and
//! shown with its children; serving, the README's runnable commands against it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

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

    // Every site is Ready, seed 004's Kong site too: the playground serves Kong's CRDs, so its
    // KongPlugin (basic-auth) is applied and the operator writes its allowlist as a KongPlugin.
    assert!(
        stdout.contains("\nevery DemoWeb is Ready\n"),
        "some sites are not Ready\n{context}"
    );
    for applied in [
        "KongPlugin/http-auth",
        "KongConsumer/frontdoor",
        "Secret/frontdoor-basic-auth",
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.trim_start().starts_with(applied) && l.contains(" applied (")),
            "{applied} not applied\n{context}"
        );
    }
    let kong: Vec<&str> = stdout
        .lines()
        .find(|l| l.starts_with("frontdoor-site "))
        .unwrap_or_else(|| panic!("no row for frontdoor-site\n{context}"))
        .split_whitespace()
        .collect();
    assert_eq!(kong[1..3], ["True", "Reconciled"], "{context}");
    // Its Ingress exists, which the operator writes only once its allowlist KongPlugin is applied.
    let kong_section = stdout
        .split("\nDemoWeb ")
        .find(|s| s.starts_with("frontdoor-site\n"))
        .unwrap_or_else(|| panic!("no section for frontdoor-site\n{context}"));
    assert!(
        kong_section
            .lines()
            .any(|l| l.trim() == "Ingress/frontdoor-site"),
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

/// The fenced `sh` blocks that the README marks with a `<!-- runnable -->` line before them.
fn runnable_blocks(readme: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        if line.trim() != "<!-- runnable -->" {
            continue;
        }
        assert_eq!(
            lines.next().map(str::trim),
            Some("```sh"),
            "README.md: `<!-- runnable -->` must be followed by a ```sh block"
        );
        let block: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
        blocks.push(block.join("\n"));
    }
    blocks
}

/// A playground serving until dropped: SIGINT (its Ctrl-C), then SIGKILL if it lingers.
struct Playground(std::process::Child);

impl Drop for Playground {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.0.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The README's runnable commands work as written against `cargo playground`, in order, with only
/// `KUBECONFIG` set as the README says — and kubectl warns about nothing (re-applying the examples
/// over the playground's objects included).
#[test]
fn readme_runnable_blocks_run_against_the_playground() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let blocks = runnable_blocks(&readme);
    assert!(blocks.len() >= 3, "runnable blocks: {blocks:?}");

    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_playground"))
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the playground");
    let stdout = child.stdout.take().expect("stdout");
    let playground = Playground(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut printed = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let ready = line.starts_with("The operator reconciles what you change");
                printed.push(line);
                if ready {
                    break;
                }
            }
            Err(e) => panic!(
                "the playground did not get ready ({e:?}); it printed:\n{}",
                printed.join("\n")
            ),
        }
    }

    let kubeconfig = dir.path().join("kubeconfig");
    for block in &blocks {
        let out = Command::new("sh")
            .args(["-ec", block])
            .current_dir(&root)
            .env("KUBECONFIG", &kubeconfig)
            .output()
            .expect("run sh");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "README block failed ({}):\n{block}\nstdout:\n{stdout}\nstderr:\n{stderr}",
            out.status
        );
        assert!(
            !stderr.contains("Warning") && !stderr.contains("warning"),
            "README block warned:\n{block}\nstderr:\n{stderr}"
        );
    }
    drop(playground);
}

/// The README is a user's page: short enough to read, without a lab notebook's dated results
/// (those live in docs/benchmark-history.md).
#[test]
fn readme_stays_a_users_page() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let readme = std::fs::read_to_string(path).expect("README.md");
    let lines = readme.lines().count();
    assert!(lines < 450, "README.md has {lines} lines; fewer than 450");
    for dated in ["slow day", "the day before", "left out", "faster day"] {
        assert!(
            !readme.contains(dated),
            "README.md says {dated:?}: dated results belong in docs/benchmark-history.md"
        );
    }
}
