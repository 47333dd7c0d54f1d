//! GitOps with the real Flux (`demoweb_tests::flux`): source-, kustomize- and helm-controller of
//! one Flux release, run out of cluster, sync `examples/flux/` (the user's example, unchanged but
//! for the repository's URL) from a git server on loopback into the real control plane.
//!
//! The chart's operator pod lands on a kwok node, where it is reported running but never runs; the
//! test runs the operator itself out of cluster, watching every namespace as the chart runs it, so
//! that the DemoWebs Flux applies become Ready.

use std::path::Path;
use std::time::Duration;

use demoweb_tests::flux::{self, Flux, GitServer};
use demoweb_tests::harness::{TestEnv, poll};
use demoweb_tests::operator::*;
use serde_json::Value;

/// How long a sync may take: a source fetch, the chart built and installed (Helm waits for its
/// Deployment), then the sites applied and waited on.
const SYNC: Duration = Duration::from_secs(240);
const FLUX_NS: &str = "flux-system";
const SITES_NS: &str = "demoweb-sites";
/// A second site the test adds, whose credentials Secret does not exist: Stalled.
const STALLED: &str = "apiVersion: baeke.info/v1
kind: DemoWeb
metadata:
  name: private-site
spec:
  gitrepo: https://git.example.com/team/private-site.git
  credentials:
    secretName: no-such-secret
";

async fn get_in(env: &TestEnv, namespace: &str, kind: &str, name: &str) -> Option<Value> {
    let out = env
        .kubectl(&["-n", namespace, "get", kind, name, "-o", "json"])
        .await;
    out.success()
        .then(|| serde_json::from_str(&out.stdout).expect("kubectl printed JSON"))
}

async fn list_in(env: &TestEnv, namespace: &str, kind: &str) -> Value {
    let out = env
        .kubectl(&["-n", namespace, "get", kind, "-o", "json"])
        .await
        .expect_ok();
    serde_json::from_str(&out).expect("kubectl printed JSON")
}

/// The Ready condition of a Flux Kustomization, for the revision it last attempted.
async fn kustomization(env: &TestEnv, name: &str) -> Option<(String, String, String, String)> {
    let k = get_in(
        env,
        FLUX_NS,
        "kustomizations.kustomize.toolkit.fluxcd.io",
        name,
    )
    .await?;
    let (status, reason, message) = condition(&k, "Ready")?;
    let revision = k["status"]["lastAttemptedRevision"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    Some((status, reason, message, revision))
}

/// What a user sees: `kubectl get kustomizations -n flux-system`, printed for the docs.
async fn show(env: &TestEnv, stage: &str) {
    let out = env
        .kubectl(&[
            "-n",
            FLUX_NS,
            "get",
            "kustomizations.kustomize.toolkit.fluxcd.io",
        ])
        .await;
    eprintln!("--- {stage}\n{}", out.stdout);
}

/// Polls `check` until it returns `Some`; on timeout panics with the controllers' and operator's logs.
async fn until<T, F, Fut>(env: &TestEnv, flux: &mut Flux, op: &Operator, what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    if let Some(v) = poll(SYNC, check).await {
        return v;
    }
    let objects = env
        .kubectl(&[
            "get",
            "-A",
            "gitrepositories,helmcharts,helmreleases,kustomizations,demowebs",
            "-o",
            "yaml",
        ])
        .await;
    panic!(
        "timed out after {SYNC:?} waiting for {what}\n{:?}\n--- Flux objects ---\n{}\n--- Flux logs ---\n{}\n--- operator log ---\n{}",
        flux.exited(),
        objects.stdout,
        flux.log_tails(40),
        op.logs()
    );
}

/// Commits the work tree and has the GitRepository fetch at once, as `flux reconcile source git`
/// does (instead of waiting for its one-minute interval). Returns the commit's SHA.
async fn commit(env: &TestEnv, git: &GitServer, message: &str) -> String {
    let sha = git.commit(message).expect("commit");
    let now = jiff::Timestamp::now().to_string();
    env.kubectl(&[
        "-n",
        FLUX_NS,
        "annotate",
        "--overwrite",
        "gitrepositories.source.toolkit.fluxcd.io/demoweb",
        &format!("reconcile.fluxcd.io/requestedAt={now}"),
    ])
    .await
    .expect_ok();
    sha
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

#[cfg_attr(
    not(real_cluster),
    ignore = "needs a real cluster (cargo cluster): Flux's controllers need the real API's machinery (server-side apply dry runs, the garbage collector, Helm's release storage, discovery of every group)"
)]
#[cfg_attr(
    all(real_cluster, not(cluster_wide)),
    ignore = "changes cluster-wide objects (installs Flux's CRDs and the chart's cluster roles): runs only on a cluster the suite owns (DEMOWEB_TEST_CLUSTER_WIDE=1), one at a time"
)]
#[cfg_attr(
    all(real_cluster, cluster_wide, no_go),
    ignore = "Flux is built from its Go modules (tests/cluster/flux): `go` was not on the PATH when the tests were built"
)]
#[tokio::test]
async fn cluster_wide_flux_syncs_the_example_from_git_waits_for_every_demoweb_and_prunes() {
    let env = TestEnv::cluster_wide("flux").await;
    let flux_crds = flux::crds().unwrap_or_else(|e| panic!("Flux's CRDs: {e}"));
    env.install_crds(&flux_crds).await;
    let op = Operator::start_all_namespaces(&env, &[]).await;

    // The repository: the chart and the examples Flux applies, as in this project's tree.
    let git = GitServer::start(env.dir(), "demoweb")
        .await
        .expect("git server");
    let root = repo_root();
    let tree = &git.work_tree;
    copy_tree(
        &root.join("charts/demoweb-operator"),
        &tree.join("charts/demoweb-operator"),
    );
    copy_tree(&root.join("examples/flux"), &tree.join("examples/flux"));
    for file in ["Kustomization", "demoweb-seed.yaml"] {
        std::fs::copy(
            root.join("examples").join(file),
            tree.join("examples").join(file),
        )
        .expect("copy example");
    }
    let first = git.commit("the example").expect("commit");

    env.kubectl(&["create", "namespace", FLUX_NS]).await;
    let mut flux = Flux::start(&env.kubeconfig_path, FLUX_NS, env.dir()).expect("Flux starts");
    // What a failed earlier run left (Flux's objects carry finalizers only its controllers remove).
    env.kubectl(&[
        "-n",
        FLUX_NS,
        "delete",
        "kustomizations.kustomize.toolkit.fluxcd.io,helmreleases.helm.toolkit.fluxcd.io,gitrepositories.source.toolkit.fluxcd.io",
        "--all",
        "--timeout=180s",
    ])
    .await
    .expect_ok();
    let source = std::fs::read_to_string(tree.join("examples/flux/gitrepository.yaml"))
        .expect("gitrepository.yaml")
        .replace("https://github.com/your-org/demoweb-operator", &git.url);
    assert!(source.contains(&git.url), "the example's url line moved");
    env.kubectl_with_stdin(&["-n", FLUX_NS, "apply", "-f", "-"], Some(&source))
        .await
        .expect_ok();
    let kustomizations = tree.join("examples/flux/kustomizations.yaml");
    env.kubectl(&[
        "-n",
        FLUX_NS,
        "apply",
        "-f",
        kustomizations.to_str().expect("utf-8"),
    ])
    .await
    .expect_ok();

    // The platform first (the chart through the HelmRelease, its CRDs with it), then the sites;
    // `demoweb-sites` is Ready only once every DemoWeb is: never Ready for this revision while
    // demoweb1 is not.
    let saw_in_progress = std::cell::Cell::new(false);
    until(
        &env,
        &mut flux,
        &op,
        "both Kustomizations Ready",
        || async {
            let platform = kustomization(&env, "demoweb-platform").await;
            let sites = kustomization(&env, "demoweb-sites").await;
            let site = get_in(&env, SITES_NS, "demoweb", "demoweb1").await;
            let site_ready = site
                .as_ref()
                .and_then(|s| condition(s, "Ready"))
                .is_some_and(|(s, _, _)| s == "True");
            if site.is_some() && !site_ready && !saw_in_progress.replace(true) {
                show(&env, "while the sites roll out").await;
            }
            if let Some((status, _, message, _)) = &sites
                && status == "True"
            {
                assert!(
                    site_ready,
                    "demoweb-sites Ready ({message}) before demoweb1 is"
                );
            }
            let ready = |k: &Option<(String, String, String, String)>| {
                k.as_ref()
                    .is_some_and(|(s, _, _, rev)| s == "True" && rev.ends_with(&first))
            };
            (ready(&platform) && ready(&sites)).then_some(())
        },
    )
    .await;
    show(&env, "synced").await;
    let release = get_in(&env, FLUX_NS, "helmrelease", "demoweb-operator")
        .await
        .expect("the HelmRelease");
    assert_eq!(
        condition(&release, "Ready").map(|c| c.0).as_deref(),
        Some("True")
    );
    let operator = get_in(&env, "demoweb-system", "deployment", "demoweb").await;
    assert!(operator.is_some(), "the chart's Deployment is installed");
    let site = get_in(&env, SITES_NS, "demoweb", "demoweb1")
        .await
        .expect("demoweb1");
    let deployment = get_in(&env, SITES_NS, "deployment", "demoweb1")
        .await
        .expect("demoweb1's Deployment");
    assert!(controlled_by(
        &deployment,
        site["metadata"]["uid"].as_str().unwrap()
    ));

    // A commit adds a site whose Secret is missing: the DemoWeb is Stalled, and `demoweb-sites`
    // fails at once, naming it, and stays not Ready while it is.
    std::fs::write(tree.join("examples/demoweb-private.yaml"), STALLED).expect("write");
    let kustomize_file = tree.join("examples/Kustomization");
    let kustomize = std::fs::read_to_string(&kustomize_file).expect("Kustomization");
    std::fs::write(
        &kustomize_file,
        kustomize.replace(
            "  - demoweb-seed.yaml\n",
            "  - demoweb-seed.yaml\n  - demoweb-private.yaml\n",
        ),
    )
    .expect("write");
    let second = commit(&env, &git, "a private site").await;
    let message = until(&env, &mut flux, &op, "demoweb-sites to fail", || async {
        let (status, _, message, revision) = kustomization(&env, "demoweb-sites").await?;
        (status == "False" && revision.ends_with(&second)).then_some(message)
    })
    .await;
    show(&env, "a DemoWeb Stalled").await;
    let stalled = get_in(&env, SITES_NS, "demoweb", "private-site")
        .await
        .expect("private-site");
    let (_, reason, stalled_message) = condition(&stalled, "Stalled").expect("Stalled");
    eprintln!("private-site Stalled: {reason}: {stalled_message}\ndemoweb-sites: {message}");
    assert_eq!(reason, "CredentialsNotFound", "{stalled_message}");
    assert!(
        stalled_message.contains("no-such-secret"),
        "{stalled_message}"
    );
    assert!(
        message.contains("DemoWeb/demoweb-sites/private-site"),
        "{message}"
    );
    // And still not Ready on the next attempt (`flux reconcile kustomization demoweb-sites`).
    let requested = jiff::Timestamp::now().to_string();
    env.kubectl(&[
        "-n",
        FLUX_NS,
        "annotate",
        "--overwrite",
        "kustomizations.kustomize.toolkit.fluxcd.io/demoweb-sites",
        &format!("reconcile.fluxcd.io/requestedAt={requested}"),
    ])
    .await
    .expect_ok();
    let retried = until(&env, &mut flux, &op, "demoweb-sites to retry", || async {
        let k = get_in(
            &env,
            FLUX_NS,
            "kustomizations.kustomize.toolkit.fluxcd.io",
            "demoweb-sites",
        )
        .await?;
        (k["status"]["lastHandledReconcileAt"] == requested.as_str()).then_some(k)
    })
    .await;
    let (status, _, message) = condition(&retried, "Ready").expect("Ready");
    assert_eq!(status, "False", "{message}");
    assert!(
        message.contains("DemoWeb/demoweb-sites/private-site"),
        "{message}"
    );

    // A commit removes it from git: Flux prunes it, and its children go with it.
    std::fs::remove_file(tree.join("examples/demoweb-private.yaml")).expect("rm");
    std::fs::write(&kustomize_file, &kustomize).expect("write");
    let third = commit(&env, &git, "no private site").await;
    until(&env, &mut flux, &op, "the private site pruned", || async {
        let (status, _, _, revision) = kustomization(&env, "demoweb-sites").await?;
        let gone = get_in(&env, SITES_NS, "demoweb", "private-site")
            .await
            .is_none()
            && get_in(&env, SITES_NS, "configmap", "private-site-nginx")
                .await
                .is_none();
        (status == "True" && revision.ends_with(&third) && gone).then_some(())
    })
    .await;

    // A commit changes replicas: the Deployment scales, its pod template is unchanged, no new
    // ReplicaSet.
    let replica_sets = |rs: Value| {
        let mut names: Vec<String> = rs["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| {
                r["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("demoweb1-")
            })
            .map(|r| r["metadata"]["name"].as_str().unwrap_or("").to_owned())
            .collect();
        names.sort();
        names
    };
    let before = get_in(&env, SITES_NS, "deployment", "demoweb1")
        .await
        .expect("deployment");
    let sets_before = replica_sets(list_in(&env, SITES_NS, "replicasets").await);
    let seed_file = tree.join("examples/demoweb-seed.yaml");
    let seed = std::fs::read_to_string(&seed_file).expect("seed");
    assert!(seed.contains("replicas: 2"), "{seed}");
    std::fs::write(&seed_file, seed.replace("replicas: 2", "replicas: 3")).expect("write");
    let fourth = commit(&env, &git, "three replicas").await;
    let after = until(&env, &mut flux, &op, "demoweb1 at 3 replicas", || async {
        let (status, _, _, revision) = kustomization(&env, "demoweb-sites").await?;
        let d = get_in(&env, SITES_NS, "deployment", "demoweb1").await?;
        (status == "True" && revision.ends_with(&fourth) && d["spec"]["replicas"] == 3).then_some(d)
    })
    .await;
    show(&env, "replicas changed").await;
    assert_eq!(
        before["spec"]["template"], after["spec"]["template"],
        "the pod template changed"
    );
    let sets_after = replica_sets(list_in(&env, SITES_NS, "replicasets").await);
    assert_eq!(sets_before, sets_after, "a new ReplicaSet");

    // Leave the cluster as the next test expects it: Flux removes what it applied (the sites,
    // their namespace, the release), then its own objects and CRDs go.
    env.kubectl(&[
        "-n",
        FLUX_NS,
        "delete",
        "kustomizations.kustomize.toolkit.fluxcd.io",
        "--all",
        "--timeout=180s",
    ])
    .await
    .expect_ok();
    env.kubectl(&[
        "-n",
        FLUX_NS,
        "delete",
        "gitrepositories.source.toolkit.fluxcd.io",
        "--all",
        "--timeout=60s",
    ])
    .await
    .expect_ok();
    drop(flux);
    for ns in [FLUX_NS, "demoweb-system", SITES_NS] {
        env.kubectl(&[
            "delete",
            "namespace",
            ns,
            "--ignore-not-found",
            "--wait=false",
        ])
        .await;
    }
    for crd in &flux_crds {
        env.remove_crd(crd.metadata.name.as_deref().unwrap_or_default())
            .await;
    }
    env.finish().await;
}
