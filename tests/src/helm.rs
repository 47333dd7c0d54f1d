//! Helm, the real CLI (`helm.sh/helm/v4`, pinned by `tests/cluster/helm`), built once per version like
//! the control plane (`crate::gobuild`): the chart is linted, rendered, installed, upgraded and
//! uninstalled the way its users do it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::gobuild::{GoBuild, go_modules_dir};

/// The Helm release the tests run (`tests/cluster/helm/go.mod`).
pub const PINNED_HELM: &str = "v4.3.2";
/// How Helm is built; part of the cache's key, so that a change to it rebuilds it.
const RECIPE: &str = "r1";
/// How long one Helm command may take; its own `--timeout`s are shorter.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(180);

/// The `helm` program, built first when missing (needs Go).
pub fn binary() -> Result<PathBuf, String> {
    // What Helm's release build stamps (its Makefile): `helm version` then names the release.
    let ldflags = format!(
        "-X helm.sh/helm/v4/internal/version.version={PINNED_HELM} -X helm.sh/helm/v4/internal/version.gitTreeState=clean"
    );
    let dir = GoBuild {
        name: "helm",
        version: PINNED_HELM,
        recipe: RECIPE,
        ldflags: &ldflags,
        packages: &["helm.sh/helm/v4/cmd/helm"],
    }
    .cached(|| Ok(go_modules_dir().join("helm")))?;
    Ok(dir.join("helm"))
}

/// The project's chart, `charts/demoweb-operator`.
pub fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/demoweb-operator")
}

/// `--set-json key=value` for each top-level key of `values` (a JSON object), as a user sets values
/// on the command line.
pub fn set_json(values: &Value) -> Vec<String> {
    values
        .as_object()
        .expect("values are a JSON object")
        .iter()
        .flat_map(|(k, v)| ["--set-json".to_owned(), format!("{k}={v}")])
        .collect()
}

/// Helm's output: Ok(stdout) when it exits 0, else Err(stderr and stdout).
fn output(out: std::process::Output) -> Result<String, String> {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{}{stdout}",
            String::from_utf8_lossy(&out.stderr).into_owned()
        ))
    }
}

/// `helm args…` with nothing sent to a cluster (lint, template). Panics when Helm cannot be built.
pub fn offline(args: &[String]) -> Result<String, String> {
    let program = binary().unwrap_or_else(|e| panic!("building helm: {e}"));
    let out = std::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("helm runs");
    output(out)
}

/// `helm template release chart -n namespace` with `values`: the chart's objects (without its
/// `crds/`), or Helm's error.
pub fn render(release: &str, namespace: &str, values: &Value) -> Result<Vec<Value>, String> {
    let mut args = vec![
        "template".to_owned(),
        release.to_owned(),
        chart_dir().display().to_string(),
        "--namespace".to_owned(),
        namespace.to_owned(),
    ];
    args.extend(set_json(values));
    let text = offline(&args)?;
    let docs = demoweb_crd::yaml::documents(&text)
        .unwrap_or_else(|e| panic!("helm template printed invalid YAML: {e}\n{text}"));
    Ok(docs.into_iter().filter(Value::is_object).collect())
}

/// Helm against one cluster, in one namespace.
pub struct Helm {
    pub kubeconfig: PathBuf,
    pub namespace: String,
}

impl Helm {
    /// `helm --kubeconfig … --namespace … args…`.
    pub fn command(&self, args: &[String]) -> std::process::Command {
        let program = binary().unwrap_or_else(|e| panic!("building helm: {e}"));
        let mut cmd = std::process::Command::new(program);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--namespace")
            .arg(&self.namespace)
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs Helm; Ok(stdout) or Err(what it printed).
    pub async fn run(&self, args: &[String]) -> Result<String, String> {
        let mut cmd = tokio::process::Command::from(self.command(args));
        cmd.kill_on_drop(true);
        let out = tokio::time::timeout(COMMAND_TIMEOUT, cmd.output())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "`helm {}` did not finish in {COMMAND_TIMEOUT:?}",
                    args.join(" ")
                )
            })
            .expect("helm runs");
        output(out)
    }

    /// Runs Helm and panics with its output when it fails.
    pub async fn expect(&self, args: &[String]) -> String {
        self.run(args)
            .await
            .unwrap_or_else(|e| panic!("`helm {}` failed:\n{e}", args.join(" ")))
    }

    /// `helm list -o json` of the releases in any state but superseded (their newer revision is
    /// listed): (name, status, revision) of each in the namespace.
    pub async fn list(&self) -> Vec<(String, String, String)> {
        let args = [
            "list",
            "--deployed",
            "--failed",
            "--pending",
            "--uninstalling",
            "--output",
            "json",
        ];
        let out = self.expect(&args.map(String::from)).await;
        let releases: Value = serde_json::from_str(&out).expect("helm list prints JSON");
        releases
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                let field = |k: &str| match &r[k] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (field("name"), field("status"), field("revision"))
            })
            .collect()
    }
}
