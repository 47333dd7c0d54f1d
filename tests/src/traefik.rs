//! Traefik v3, the real ingress controller (`github.com/traefik/traefik/v3`, pinned by
//! `tests/cluster/traefik`), built once per version like the control plane (`crate::gobuild`) and run
//! on loopback with its Kubernetes Ingress and CRD providers, so that the allowlist the operator writes
//! for Traefik is seen refusing requests, not only written. Its CRDs are installed from the same module.
//!
//! Only loopback addresses: Traefik listens on 127.0.0.1 and is given no endpoint to proxy to (the
//! sites it routes have no pods, and `allowEmptyServices` makes it answer 503 itself past the
//! allowlist), so it never connects to a kwok pod or node address; nor does it look for new versions.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cluster::free_port;
use crate::gobuild::{GoBuild, crds_in_file, go_modules_dir, module_source, spawn_against};

/// The Go module of Traefik v3.
const MODULE: &str = "github.com/traefik/traefik/v3";
/// The Traefik release the tests run (`tests/cluster/traefik/go.mod`). The latest v3.7 releases
/// import a nested module (`github.com/traefik/traefik/dynamic/ext`) that their own go.mod replaces
/// with a directory of Traefik's repository and that the Go module proxy does not serve, so they
/// cannot be built from the proxy; v3.6 does not import it.
pub const PINNED_TRAEFIK: &str = "v3.6.12";
/// How Traefik is built; part of the cache's key, so that a change to it rebuilds it.
const RECIPE: &str = "r1";
/// Traefik's CRDs, all of them (its CRD provider watches every kind), in its module.
const CRD_DEFINITIONS: &str =
    "docs/content/reference/dynamic-configuration/kubernetes-crd-definition-v1.yml";
/// How long one request to Traefik may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The `traefik` program, built first when missing (needs Go).
pub fn binary() -> Result<PathBuf, String> {
    // What Traefik's release build stamps (its Makefile): `traefik version` then names the release.
    let ldflags = format!("-X {MODULE}/pkg/version.Version={PINNED_TRAEFIK}");
    let dir = GoBuild {
        name: "traefik",
        version: PINNED_TRAEFIK,
        recipe: RECIPE,
        ldflags: &ldflags,
        packages: &["github.com/traefik/traefik/v3/cmd/traefik"],
    }
    .cached(|| Ok(module_dir()))?;
    Ok(dir.join("traefik"))
}

fn module_dir() -> PathBuf {
    go_modules_dir().join("traefik")
}

/// Traefik's CRDs (`traefik.io`) as its release defines them, read from its module (downloaded
/// into the Go module cache when missing, checked against `go.sum`).
pub fn crds() -> Result<Vec<CustomResourceDefinition>, String> {
    let dir = module_source(&module_dir(), MODULE, PINNED_TRAEFIK)?;
    crds_in_file(&dir.join(CRD_DEFINITIONS))
}

/// A Traefik process on 127.0.0.1, watching one namespace of a cluster; killed when dropped.
pub struct Traefik {
    child: Child,
    /// The `web` entrypoint, where sites are served.
    pub web: SocketAddr,
    /// The `traefik` entrypoint: ping and the API (what Traefik made of the cluster's objects).
    pub admin: SocketAddr,
    log: PathBuf,
}

impl Traefik {
    /// Starts Traefik with its `kubernetesIngress` and `kubernetesCRD` providers reading `namespace`
    /// through `kubeconfig`; its configuration and log go in `dir`. Returns once it answers its ping.
    pub async fn start(kubeconfig: &Path, namespace: &str, dir: &Path) -> Result<Traefik, String> {
        let program = binary()?;
        let web = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?));
        let admin = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?));
        let config = dir.join("traefik.yaml");
        fs::write(&config, static_config(web, admin, namespace))
            .map_err(|e| format!("writing {}: {e}", config.display()))?;
        let log = dir.join("traefik.log");
        let mut command = Command::new(&program);
        command.arg(format!("--configFile={}", config.display()));
        let child = spawn_against(command, kubeconfig, &log)?;
        let mut traefik = Traefik {
            child,
            web,
            admin,
            log,
        };
        let pinged = crate::harness::poll(Duration::from_secs(30), || async {
            let (code, _) = get(Ipv4Addr::LOCALHOST, admin, "localhost", "/ping")
                .await
                .ok()?;
            (code == 200).then_some(())
        })
        .await;
        if let Ok(Some(status)) = traefik.child.try_wait() {
            return Err(format!("traefik exited with {status}:\n{}", traefik.logs()));
        }
        match pinged {
            Some(()) => Ok(traefik),
            None => Err(format!(
                "traefik did not answer its ping in 30s:\n{}",
                traefik.logs()
            )),
        }
    }

    /// What Traefik logged so far.
    pub fn logs(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET path` with `Host: host` on the `web` entrypoint, from the source address `source`
    /// (any 127.0.0.0/8 address is local on Linux): the response's status code and body.
    pub async fn request_from(
        &self,
        source: Ipv4Addr,
        host: &str,
        path: &str,
    ) -> Result<(u16, String), String> {
        get(source, self.web, host, path).await
    }

    /// `GET path` of Traefik's API (e.g. `/api/http/routers`), parsed as JSON.
    pub async fn api(&self, path: &str) -> Result<serde_json::Value, String> {
        let (code, body) = get(Ipv4Addr::LOCALHOST, self.admin, "localhost", path).await?;
        if code != 200 {
            return Err(format!("GET {path}: {code} {body}"));
        }
        serde_json::from_str(&body).map_err(|e| format!("GET {path}: {e}: {body}"))
    }
}

impl Drop for Traefik {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Traefik's static configuration: the two entrypoints on loopback, both Kubernetes providers on
/// one namespace (so that other tests' Ingresses on a shared cluster are not its business), services
/// without endpoints answered with 503, and no calls home.
fn static_config(web: SocketAddr, admin: SocketAddr, namespace: &str) -> String {
    format!(
        "global:
  checkNewVersion: false
  sendAnonymousUsage: false
entryPoints:
  web:
    address: \"{web}\"
  traefik:
    address: \"{admin}\"
ping:
  entryPoint: traefik
api:
  insecure: true
  dashboard: false
log:
  level: DEBUG
  noColor: true
providers:
  kubernetesIngress:
    namespaces: [\"{namespace}\"]
    allowEmptyServices: true
  kubernetesCRD:
    namespaces: [\"{namespace}\"]
    allowEmptyServices: true
"
    )
}

/// One HTTP/1.1 GET from `source` to `to`, the connection closed after it: (status, body).
async fn get(
    source: Ipv4Addr,
    to: SocketAddr,
    host: &str,
    path: &str,
) -> Result<(u16, String), String> {
    let exchange = async {
        let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
        socket
            .bind(SocketAddr::from((source, 0)))
            .map_err(|e| format!("binding {source}: {e}"))?;
        let mut stream = socket
            .connect(to)
            .await
            .map_err(|e| format!("connecting to {to}: {e}"))?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(String::from_utf8_lossy(&response).into_owned())
    };
    let response = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| {
            format!("GET {path} from {source} to {to}: no answer in {REQUEST_TIMEOUT:?}")
        })??;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP response: {response:?}"))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_static_configuration_listens_on_loopback_only_and_never_calls_home() {
        let config = super::static_config(
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
            "ns",
        );
        let parsed: serde_json::Value = demoweb_crd::yaml::from_str(&config).unwrap();
        for entrypoint in ["web", "traefik"] {
            let address = parsed["entryPoints"][entrypoint]["address"]
                .as_str()
                .unwrap();
            assert!(address.starts_with("127.0.0.1:"), "{address}");
        }
        assert_eq!(parsed["global"]["checkNewVersion"], false);
        assert_eq!(parsed["global"]["sendAnonymousUsage"], false);
    }
}
