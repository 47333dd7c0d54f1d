//! Decides at build time which substrate the integration tests run on, so that a test which cannot
//! run there is compiled as ignored, with its reason, and counted as such in the test summary
//! (instead of passing without checking anything).
//!
//! - `real_cluster`: `DEMOWEB_TEST_KUBECONFIG` names a real cluster's kubeconfig. Tests that need the
//!   emulator (fault injection, request counters, replacing cluster-wide CRDs) are ignored.
//! - `identity_crds = "ours" | "upstream"`: on a real cluster, `DEMOWEB_TEST_IDENTITY_CRDS` says
//!   which aad-pod-identity CRDs the cluster serves (this project's or upstream's); tests never
//!   install or replace those cluster-wide objects there, so those needing them are ignored
//!   unless they are declared served (and fail if the declaration is wrong).
//! - `cluster_wide`: on a real cluster, `DEMOWEB_TEST_CLUSTER_WIDE` says the cluster belongs to the
//!   suite (`cargo cluster`), so the tests that change cluster-wide objects run too (named
//!   `cluster_wide_*`, one at a time after the others: see `harness::CLUSTER_WIDE_ENV`).
//! - `no_go`, `no_promtool`, `no_unshare`: `go` is not on the PATH (the tests build Helm and kstatus
//!   from their Go modules, `demoweb_tests::gobuild`), promtool is not, or `unshare` cannot make a
//!   private mount namespace, so the tests that need them are ignored.

use std::process::Command;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(real_cluster)");
    println!("cargo::rustc-check-cfg=cfg(identity_crds, values(\"ours\", \"upstream\"))");
    println!("cargo::rustc-check-cfg=cfg(cluster_wide)");
    println!("cargo::rustc-check-cfg=cfg(no_go)");
    println!("cargo::rustc-check-cfg=cfg(no_promtool)");
    println!("cargo::rustc-check-cfg=cfg(no_unshare)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=DEMOWEB_TEST_KUBECONFIG");
    println!("cargo::rerun-if-env-changed=DEMOWEB_TEST_IDENTITY_CRDS");
    println!("cargo::rerun-if-env-changed=DEMOWEB_TEST_CLUSTER_WIDE");

    let set = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if set("DEMOWEB_TEST_KUBECONFIG").is_some() {
        println!("cargo::rustc-cfg=real_cluster");
        if set("DEMOWEB_TEST_CLUSTER_WIDE").is_some() {
            println!("cargo::rustc-cfg=cluster_wide");
        }
        match set("DEMOWEB_TEST_IDENTITY_CRDS").as_deref() {
            Some(variant @ ("ours" | "upstream")) => {
                println!("cargo::rustc-cfg=identity_crds=\"{variant}\"")
            }
            Some(other) => panic!(
                "DEMOWEB_TEST_IDENTITY_CRDS={other:?}: say `ours` or `upstream` (the aad-pod-identity CRDs the cluster serves), or leave it unset when it serves none"
            ),
            None => {}
        }
    }
    let go = Command::new("go")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !go {
        println!("cargo::rustc-cfg=no_go");
    }
    let promtool = Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !promtool {
        println!("cargo::rustc-cfg=no_promtool");
    }
    // The in-cluster test mounts the ServiceAccount files in a private mount namespace (through a
    // user namespace when not root).
    let unshare = [
        "--mount --propagation private true",
        "--user --map-root-user --mount --propagation private true",
    ]
    .iter()
    .any(|args| {
        Command::new("unshare")
            .args(args.split(' '))
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !unshare {
        println!("cargo::rustc-cfg=no_unshare");
    }
}
