//! `cargo cluster`: a real Kubernetes control plane on 127.0.0.1 — etcd, kube-apiserver,
//! kube-controller-manager and kube-scheduler built from Kubernetes' own Go modules, and kwok
//! simulating three nodes in three zones — for the integration tests, the benchmark and exploring;
//! `cargo cluster tools` builds the other Go programs the tests run (Helm, kstatus, Traefik, Flux's controllers).
//! See `demoweb_tests::cluster` for what runs and how.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use demoweb_tests::cluster::{self, Cluster};
use demoweb_tests::operator_process;
use demoweb_tests::{flux, helm, kstatus, traefik};

/// The operator's allocator: this executable also runs as the operator (`__operator`, see
/// `operator_process`), which must measure and behave like the shipped binary
/// (docs/decisions/jemalloc.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(about = "A real Kubernetes control plane with kwok nodes on 127.0.0.1")]
struct Args {
    /// Where the cluster keeps its certificates, data, logs and kubeconfig (default: target/cluster).
    #[arg(long, global = true)]
    dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the control plane (once per version, cached) and start it; does nothing when it is up.
    Up {
        /// The Kubernetes release to run (any `k8s.io/kubernetes` version the Go module proxy serves).
        #[arg(long, default_value = cluster::PINNED_KUBERNETES)]
        version: String,
    },
    /// Stop every process of the cluster and delete its data.
    Down,
    /// Print the path of the cluster's admin kubeconfig.
    Kubeconfig,
    /// Say what runs, and whether the API server is ready and the nodes are Ready.
    Status,
    /// Only build (and cache) the binaries of a version.
    Build {
        #[arg(long, default_value = cluster::PINNED_KUBERNETES)]
        version: String,
    },
    /// Build (and cache) the other programs the tests run, Helm, kstatus, Traefik and Flux's controllers, and print their paths.
    Tools,
}

fn main() -> ExitCode {
    operator_process::main(run)
}

async fn run(args: Args) -> Result<ExitCode, String> {
    let dir = args
        .dir
        .unwrap_or_else(|| operator_process::default_dir("cluster"));
    let cluster = Cluster::at(dir);
    match args.command {
        Cmd::Up { version } => cluster.up(&version).await?,
        Cmd::Down => cluster.down()?,
        Cmd::Kubeconfig => println!("{}", cluster.kubeconfig().display()),
        Cmd::Status => {
            let healthy = cluster.status().await;
            if !healthy {
                return Ok(ExitCode::FAILURE);
            }
        }
        Cmd::Build { version } => {
            cluster::build(&version)?;
        }
        Cmd::Tools => {
            for program in [helm::binary()?, kstatus::binary()?, traefik::binary()?] {
                println!("{}", program.display());
            }
            let flux = flux::binaries()?;
            for (module, _) in flux::CONTROLLERS {
                let name = module.rsplit('/').next().unwrap_or(module);
                println!("{}", flux.join(name).display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
