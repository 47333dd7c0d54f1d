//! Programs built with plain `go build` from the Go modules committed under `tests/cluster/` (their
//! `go.mod` and `go.sum` pin every dependency; builds never edit them), and cached outside the checkout
//! in `~/.cache/demoweb-operator/<name>-<version>-<recipe>/` (or under `$DEMOWEB_CACHE_DIR`), so that
//! each version is built once per machine. The control plane (`crate::cluster`), Helm
//! (`crate::helm`), kstatus (`crate::kstatus`), Traefik (`crate::traefik`) and Flux (`crate::flux`)
//! are built this way.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Where built programs are cached.
pub fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("DEMOWEB_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("demoweb-operator")
}

/// `tests/cluster` in the source tree: one Go module a directory.
pub fn go_modules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("cluster")
}

/// The source directory of `module@version` in the Go module cache, downloaded when missing and
/// checked against the `go.sum` of the module in `dir`.
pub fn module_source(dir: &Path, module: &str, version: &str) -> Result<PathBuf, String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Download {
        dir: Option<String>,
        error: Option<String>,
    }
    let out = run_go_output(
        dir,
        &["mod", "download", "-json", &format!("{module}@{version}")],
    )?;
    let download: Download =
        serde_json::from_str(&out).map_err(|e| format!("`go mod download -json`: {e}\n{out}"))?;
    match (download.dir, download.error) {
        (Some(dir), None) => Ok(PathBuf::from(dir)),
        (_, error) => Err(format!("downloading {module}: {error:?}")),
    }
}

/// The CRDs of a YAML file of one or more documents.
pub fn crds_in_file(
    path: &Path,
) -> Result<
    Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>,
    String,
>{
    let text = fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let docs =
        demoweb_crd::yaml::documents(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    docs.into_iter()
        .filter(|d| d.is_object())
        .map(|d| serde_json::from_value(d).map_err(|e| format!("{}: {e}", path.display())))
        .collect()
}

/// Starts `command` out of cluster against the cluster of `kubeconfig` (client-go reads
/// `KUBECONFIG` unless it believes it runs in a pod), its output and errors in `log`.
pub fn spawn_against(
    mut command: Command,
    kubeconfig: &Path,
    log: &Path,
) -> Result<std::process::Child, String> {
    let out = fs::File::create(log).map_err(|e| format!("creating {}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    command
        .env("KUBECONFIG", kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("running {}: {e}", command.get_program().to_string_lossy()))
}

/// Runs `go args…` in `dir`.
pub fn run_go(dir: &Path, args: &[&str]) -> Result<(), String> {
    // Builds take the modules as go.mod and go.sum pin them, and never edit them.
    let goflags = if args.first() == Some(&"build") {
        "-mod=readonly"
    } else {
        ""
    };
    let status = Command::new("go")
        .args(args)
        .current_dir(dir)
        .env("GOFLAGS", goflags)
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("running `go` (install Go 1.26 or newer): {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "`go {}` in {} failed ({status})",
            args.join(" "),
            dir.display()
        ))
    }
}

/// `go args…` in `dir`, and what it printed on stdout.
pub fn run_go_output(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("go")
        .args(args)
        .current_dir(dir)
        .env("GOFLAGS", "-mod=readonly")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("running `go` (install Go 1.26 or newer): {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "`go {}` in {} failed ({}):\n{stdout}",
            args.join(" "),
            dir.display(),
            out.status
        ))
    }
}

/// `go build -o out pkgs…` in `module`, into a scratch directory renamed to `out` once every
/// program is built, so that a build cut short is never taken for a finished one.
fn build_into(module: &Path, out: &Path, ldflags: &str, pkgs: &[&str]) -> Result<(), String> {
    let partial = beside(out, "partial");
    let _ = fs::remove_dir_all(&partial);
    fs::create_dir_all(&partial).map_err(|e| format!("creating {}: {e}", partial.display()))?;
    let target = format!("{}/", partial.display());
    let ldflags = format!("-ldflags=-s -w {ldflags}");
    let mut args = vec!["build", "-trimpath", &ldflags, "-o", target.as_str()];
    args.extend_from_slice(pkgs);
    run_go(module, &args)?;
    fs::rename(&partial, out).map_err(|e| format!("moving {}: {e}", partial.display()))
}

/// `<path>.<suffix>`: beside `path`, whose name has dots of its own (`helm-v4.3.2-r1`).
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(format!(".{suffix}"));
    path.with_file_name(name)
}

/// Programs of one Go module at one version, and how they are built.
pub struct GoBuild<'a> {
    /// What is built, for messages and the cache's key.
    pub name: &'a str,
    /// The version of the upstream module; part of the cache's key.
    pub version: &'a str,
    /// How they are built (flags, patches to the module); part of the cache's key, so that a change
    /// rebuilds them. Empty for kwok, cached before recipes were keyed.
    pub recipe: &'a str,
    /// Extra `-ldflags` (`-s -w` are always given).
    pub ldflags: &'a str,
    /// The packages to build, as `go build` takes them; each becomes a program of its last element's name.
    pub packages: &'a [&'a str],
}

impl GoBuild<'_> {
    /// The cache directory of these programs.
    pub fn dir(&self) -> PathBuf {
        let key = if self.recipe.is_empty() {
            format!("{}-{}", self.name, self.version)
        } else {
            format!("{}-{}-{}", self.name, self.version, self.recipe)
        };
        cache_root().join(key)
    }

    /// The cache directory holding the programs, built first (from the module `module` gives) when
    /// missing. Concurrent callers, threads or processes, wait for one build.
    pub fn cached(
        &self,
        module: impl FnOnce() -> Result<PathBuf, String>,
    ) -> Result<PathBuf, String> {
        let dir = self.dir();
        if dir.is_dir() {
            return Ok(dir);
        }
        let root = cache_root();
        fs::create_dir_all(&root).map_err(|e| format!("creating {}: {e}", root.display()))?;
        let lock_path = beside(&dir, "lock");
        let lock = fs::File::create(&lock_path)
            .map_err(|e| format!("creating {}: {e}", lock_path.display()))?;
        lock.lock()
            .map_err(|e| format!("locking {}: {e}", lock_path.display()))?;
        if dir.is_dir() {
            // Built by someone else while this one waited.
            return Ok(dir);
        }
        eprintln!(
            "building {} {} into {} (once per version; a cold Go cache takes minutes)",
            self.name,
            self.version,
            dir.display()
        );
        let started = Instant::now();
        build_into(&module()?, &dir, self.ldflags, self.packages)?;
        eprintln!(
            "built {} {} in {:.0?}",
            self.name,
            self.version,
            started.elapsed()
        );
        Ok(dir)
    }
}
