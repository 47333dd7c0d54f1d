//! The Kubernetes API emulator as a process: serves until killed and writes a kubeconfig once ready.

use std::path::PathBuf;

use clap::Parser;
use demoweb_tests::emulator::{Emulator, EmulatorOptions};

#[derive(Parser)]
#[command(
    about = "An in-memory Kubernetes API server for tests (no scheduler, no pods, no kubelet)"
)]
struct Args {
    /// Where to write a kubeconfig pointing at the emulator (written once it answers).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Require this bearer token on every request.
    #[arg(long, env = "EMULATOR_TOKEN")]
    token: Option<String>,
    /// Leave Deployments unready (their pods never become available).
    #[arg(long)]
    deployments_unready: bool,
    /// Serve HTTPS with a certificate signed by a CA generated at start-up; the kubeconfig carries
    /// the CA, and `--ca-cert` writes it to a file (a pod's `ca.crt`).
    #[arg(long)]
    tls: bool,
    /// With `--tls`, where to write the CA certificate (PEM).
    #[arg(long, requires = "tls")]
    ca_cert: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let emulator = Emulator::start(EmulatorOptions {
        port: args.port,
        token: args.token,
        deployments_ready: !args.deployments_unready,
        tls: args.tls,
        ..EmulatorOptions::default()
    })
    .await?;
    if let (Some(path), Some(pem)) = (&args.ca_cert, emulator.ca_pem()) {
        std::fs::write(path, pem)?;
    }
    if let Some(path) = &args.kubeconfig {
        emulator.write_kubeconfig(path)?;
        eprintln!(
            "emulator serving on {}; kubeconfig written to {}",
            emulator.url(),
            path.display()
        );
    } else {
        eprintln!("emulator serving on {}", emulator.url());
    }
    tokio::signal::ctrl_c().await?;
    emulator.shutdown().await;
    Ok(())
}
