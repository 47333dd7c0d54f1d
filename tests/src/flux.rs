//! Flux, for real: source-controller, kustomize-controller and helm-controller of one Flux release
//! (`tests/cluster/flux` pins them), built once per version like the control plane
//! (`crate::gobuild`, one `go build` for the three), their CRDs read from the same modules, run out
//! of cluster against a real control plane; and a git server on loopback for them to sync from
//! (git's own smart HTTP backend behind a small CGI bridge).
//!
//! Only loopback addresses: the controllers listen on 127.0.0.1 (metrics, health, the
//! source-controller's artifact storage, which it advertises as 127.0.0.1), leader election is off,
//! and the git server answers on 127.0.0.1.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use tokio::io::AsyncWriteExt;

use crate::cluster::free_port;
use crate::gobuild::{GoBuild, crds_in_file, go_modules_dir, module_source, spawn_against};

/// The Flux release whose controllers the tests run (`tests/cluster/flux/go.mod`).
pub const PINNED_FLUX: &str = "v2.9.1";
/// Its controllers: module, version, the Go module proxy serves each at this exact version.
/// helm-controller v1.6.1's go.mod names source-controller's API v1.9.x; source- and
/// kustomize-controller v1.9.1 are the ones released with it (same day, same dependencies).
pub const CONTROLLERS: [(&str, &str); 3] = [
    ("github.com/fluxcd/source-controller", "v1.9.1"),
    ("github.com/fluxcd/kustomize-controller", "v1.9.1"),
    ("github.com/fluxcd/helm-controller", "v1.6.1"),
];
/// How the controllers are built; part of the cache's key, so that a change to it rebuilds them.
const RECIPE: &str = "r1";

/// The directory holding `source-controller`, `kustomize-controller` and `helm-controller`,
/// built first when missing (needs Go).
pub fn binaries() -> Result<PathBuf, String> {
    let packages: Vec<&str> = CONTROLLERS.iter().map(|(module, _)| *module).collect();
    GoBuild {
        name: "flux",
        version: PINNED_FLUX,
        recipe: RECIPE,
        ldflags: "",
        packages: &packages,
    }
    .cached(|| Ok(module_dir()))
}

fn module_dir() -> PathBuf {
    go_modules_dir().join("flux")
}

/// The controllers' CRDs (`config/crd/bases` of each module), as the release defines them, read
/// from the Go module cache (downloaded when missing, checked against `go.sum`).
pub fn crds() -> Result<Vec<CustomResourceDefinition>, String> {
    let mut crds = Vec::new();
    for (module, version) in CONTROLLERS {
        let dir = module_source(&module_dir(), module, version)?.join("config/crd/bases");
        let mut files: Vec<PathBuf> = fs::read_dir(&dir)
            .map_err(|e| format!("reading {}: {e}", dir.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        files.sort();
        for path in files {
            crds.extend(crds_in_file(&path)?);
        }
    }
    Ok(crds)
}

/// The three controllers, running out of cluster; killed when dropped.
pub struct Flux {
    children: Vec<(&'static str, Child)>,
    dir: PathBuf,
}

impl Flux {
    /// Starts the controllers against `kubeconfig`'s cluster, as if they ran in `namespace`
    /// (`flux-system`: where they write Events and look for their own objects); logs go in `dir`.
    pub fn start(kubeconfig: &Path, namespace: &str, dir: &Path) -> Result<Flux, String> {
        let bin = binaries()?;
        let storage = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?));
        let storage_dir = dir.join("artifacts");
        fs::create_dir_all(&storage_dir).map_err(|e| e.to_string())?;
        let mut flux = Flux {
            children: Vec::new(),
            dir: dir.to_owned(),
        };
        for name in [
            "source-controller",
            "kustomize-controller",
            "helm-controller",
        ] {
            let mut args = vec![
                "--metrics-addr=127.0.0.1:0".to_owned(),
                "--health-addr=127.0.0.1:0".to_owned(),
                "--enable-leader-election=false".to_owned(),
                "--log-encoding=console".to_owned(),
            ];
            if name == "kustomize-controller" {
                // A Kustomization whose dependsOn is not Ready yet looks again after 5 s, not 30 s.
                args.push("--requeue-dependency=5s".to_owned());
            }
            if name == "source-controller" {
                args.push(format!("--storage-addr={storage}"));
                // The address in the artifacts' URLs, from which the other two download them.
                args.push(format!("--storage-adv-addr={storage}"));
                args.push(format!("--storage-path={}", storage_dir.display()));
            }
            let mut command = Command::new(bin.join(name));
            command.args(&args).env("RUNTIME_NAMESPACE", namespace);
            let child = spawn_against(command, kubeconfig, &dir.join(format!("{name}.log")))?;
            flux.children.push((name, child));
        }
        Ok(flux)
    }

    /// The controllers that have exited, with their status.
    pub fn exited(&mut self) -> Vec<String> {
        self.children
            .iter_mut()
            .filter_map(|(name, child)| {
                let status = child.try_wait().ok()??;
                Some(format!("{name} exited with {status}"))
            })
            .collect()
    }

    /// The last `n` lines each controller logged.
    pub fn log_tails(&self, n: usize) -> String {
        let mut out = String::new();
        for (name, _) in &self.children {
            let text = fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&format!("--- {name}\n"));
            for line in &lines[lines.len().saturating_sub(n)..] {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for Flux {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A git repository served over smart HTTP on 127.0.0.1 (`git http-backend`), with a work tree
/// the test commits to; stopped when dropped.
pub struct GitServer {
    /// The work tree (and repository) served.
    pub work_tree: PathBuf,
    /// The URL to clone it from.
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl GitServer {
    /// An empty repository `name` (branch `main`) under `root`, served.
    pub async fn start(root: &Path, name: &str) -> Result<GitServer, String> {
        let work_tree = root.join(name);
        fs::create_dir_all(&work_tree).map_err(|e| e.to_string())?;
        git(&work_tree, &["init", "--quiet", "--initial-branch=main"])?;
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|e| format!("binding 127.0.0.1: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let project_root = root.to_owned();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let project_root = project_root.clone();
                async move { http_backend(&project_root, method, uri, headers, body).await }
            },
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(GitServer {
            work_tree,
            url: format!("http://{addr}/{name}"),
            task,
        })
    }

    /// Commits everything in the work tree; returns the commit's SHA.
    pub fn commit(&self, message: &str) -> Result<String, String> {
        git(&self.work_tree, &["add", "--all"])?;
        git(
            &self.work_tree,
            &[
                "-c",
                "user.name=demoweb tests",
                "-c",
                "user.email=tests@demoweb.invalid",
                "commit",
                "--quiet",
                "--allow-empty",
                "-m",
                message,
            ],
        )?;
        Ok(git(&self.work_tree, &["rev-parse", "HEAD"])?
            .trim()
            .to_owned())
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running git: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`git {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// One request through `git http-backend` (CGI): the request as its environment and stdin, its
/// output's headers and body as the response.
async fn http_backend(
    project_root: &Path,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let mut command = tokio::process::Command::new("git");
    command
        .arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", project_root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", method.as_str())
        .env("PATH_INFO", uri.path())
        .env("QUERY_STRING", uri.query().unwrap_or_default())
        .env("CONTENT_TYPE", header("content-type"))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        .env("GIT_PROTOCOL", header("git-protocol"))
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let run = async {
        let mut child = command.spawn().map_err(|e| e.to_string())?;
        let mut stdin = child.stdin.take().ok_or("no stdin")?;
        stdin.write_all(&body).await.map_err(|e| e.to_string())?;
        drop(stdin);
        child.wait_with_output().await.map_err(|e| e.to_string())
    };
    let out = match run.await {
        Ok(out) => out,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    };
    let Some(split) = out.stdout.windows(4).position(|w| w == b"\r\n\r\n") else {
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        return (StatusCode::INTERNAL_SERVER_ERROR, stderr).into_response();
    };
    let head = String::from_utf8_lossy(&out.stdout[..split]).into_owned();
    let mut response = Response::builder();
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split(' ').next().and_then(|c| c.parse().ok());
            response = response.status(code.unwrap_or(500));
        } else {
            response = response.header(name, value);
        }
    }
    response
        .body(axum::body::Body::from(out.stdout[split + 4..].to_vec()))
        .unwrap_or_else(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response())
}
