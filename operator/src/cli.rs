//! Command-line interface of the `demoweb-operator` binary.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgAction, Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;

/// Serves static websites from git with nginx, driven by DemoWeb custom resources.
#[derive(Debug, Parser)]
#[command(name = "demoweb-operator", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the CustomResourceDefinitions as multi-document YAML.
    Crd {
        /// Which CRDs: `all`, `demoweb` (DemoWeb only) or `identity` (AzureIdentity and AzureIdentityBinding).
        #[arg(long, default_value = "all", value_parser = ["all", "demoweb", "identity"])]
        only: String,
    },
    /// Run the controller (in-cluster configuration or KUBECONFIG).
    Run(RunArgs),
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "DEMOWEB_NAMESPACE")]
    pub namespace: Option<String>,

    /// Address of the /metrics, /healthz and /readyz endpoints. Port 0 picks a free port (logged).
    #[arg(long, default_value = "0.0.0.0:8080", env = "DEMOWEB_METRICS_ADDR")]
    pub metrics_addr: SocketAddr,

    /// Log format.
    #[arg(long, value_enum, default_value = "text", env = "DEMOWEB_LOG_FORMAT")]
    pub log_format: LogFormat,

    /// Compete for a Lease so that only one replica reconciles (`--leader-election=false` to run alone).
    #[arg(long, default_value_t = true, action = ArgAction::Set, env = "DEMOWEB_LEADER_ELECTION")]
    pub leader_election: bool,

    /// Namespace of the leader Lease (default: the pod's namespace, else --namespace, else `default`).
    #[arg(long, env = "DEMOWEB_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,

    /// Name of the leader Lease.
    #[arg(long, default_value = "demoweb-operator", env = "DEMOWEB_LEASE_NAME")]
    pub lease_name: String,

    /// How often every DemoWeb is reconciled even when nothing changed, to repair drift the
    /// operator was not told about (e.g. `30s`, `5m`, `1h`).
    #[arg(long, default_value = "5m", value_parser = parse_period, env = "DEMOWEB_RESYNC_PERIOD")]
    pub resync_period: Duration,

    /// How often a stalled DemoWeb (one that needs a change by the user, e.g. a missing Secret or
    /// a name clash) is looked at again, since the fix may be in an object the operator does not
    /// watch. Capped at --resync-period.
    #[arg(long, default_value = "30s", value_parser = parse_period, env = "DEMOWEB_STALLED_REQUEUE_PERIOD")]
    pub stalled_requeue_period: Duration,

    /// While the aad-pod-identity API (AzureIdentity and AzureIdentityBinding) is not served, how
    /// often the operator looks for it besides watching its CRD (the fallback when that watch is
    /// not allowed), to start using it without a restart.
    #[arg(long, default_value = "60s", value_parser = parse_period, env = "DEMOWEB_IDENTITY_API_POLL_PERIOD")]
    pub identity_api_poll_period: Duration,

    /// Threads that run the operator's work. One (a current-thread runtime: the controllers, the
    /// watches and the HTTP server share it) keeps up with a thousand new DemoWebs a second and
    /// spends less CPU than several, which hand work to each other; more only help when
    /// reconciles, not the API server, are the bottleneck.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..), env = "DEMOWEB_WORKER_THREADS")]
    pub worker_threads: u16,

    /// How many DemoWebs have their children applied at once, and how many write their status and
    /// Events at once (two queues of this size each). A reconcile waits for its requests one after
    /// another, so against a control plane some milliseconds away (AKS runs it outside the nodes) a
    /// burst is worked off faster with more at once; each reconcile in a queue's turn holds its
    /// children and the API's answers in memory, and the API server gets up to twice this many of
    /// the operator's requests at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..), env = "DEMOWEB_MAX_CONCURRENT_RECONCILES")]
    pub max_concurrent_reconciles: u16,

    /// Offer the API server HTTP/2, so that the watches and every request in flight share one
    /// connection (`--http2=false`: HTTP/1.1, a connection per request in flight). A `proxy-url` in
    /// the kubeconfig always gets HTTP/1.1.
    #[arg(long, default_value_t = true, action = ArgAction::Set, env = "DEMOWEB_HTTP2")]
    pub http2: bool,
}

impl RunArgs {
    /// The configuration `run` starts from, with the Lease's namespace resolved.
    pub fn into_config(self) -> crate::manager::RunConfig {
        let lease = self.leader_election.then(|| crate::manager::Lease {
            namespace: lease_namespace(&self),
            name: self.lease_name.clone(),
        });
        crate::manager::RunConfig {
            namespace: self.namespace,
            metrics_addr: self.metrics_addr,
            lease,
            resync_period: self.resync_period,
            stalled_requeue_period: self.stalled_requeue_period,
            identity_api_poll_period: self.identity_api_poll_period,
            max_concurrent_reconciles: self.max_concurrent_reconciles,
            protocols: if self.http2 {
                crate::client::Protocols::Http2OrHttp1
            } else {
                crate::client::Protocols::Http1
            },
        }
    }
}

fn lease_namespace(args: &RunArgs) -> String {
    args.lease_namespace
        .clone()
        .or_else(|| std::env::var("POD_NAMESPACE").ok())
        .or_else(|| args.namespace.clone())
        .or_else(|| {
            std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
                .ok()
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "default".to_owned())
}

fn parse_period(s: &str) -> Result<Duration, String> {
    demoweb_crd::validation::parse_duration_secs(s)
        .filter(|secs| *secs >= 1.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{s:?} is not a duration of at least 1s such as 30s, 5m or 1h"))
}

/// Runs a parsed command line the way the `demoweb-operator` binary does, and returns its exit code.
/// The binary's `main` is only this; the playground and the benchmark call it in a child process.
pub fn execute(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Crd { only } => match crd_yaml(&only) {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("error: {err}");
                ExitCode::FAILURE
            }
        },
        Command::Run(args) => {
            let log_format = args.log_format;
            init_tracing(log_format);
            let mut builder = match args.worker_threads {
                1 => tokio::runtime::Builder::new_current_thread(),
                n => {
                    let mut b = tokio::runtime::Builder::new_multi_thread();
                    b.worker_threads(usize::from(n));
                    b
                }
            };
            let runtime = match builder.enable_all().build() {
                Ok(rt) => rt,
                Err(err) => {
                    eprintln!("error: starting the async runtime: {err}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(crate::manager::run(args.into_config())) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    let message = crate::error::chain(&err);
                    // Once: as a log record where logs are collected as JSON, else as the one
                    // `error:` line a command prints (the text log shares the terminal).
                    match log_format {
                        LogFormat::Json => tracing::error!("{message}"),
                        LogFormat::Text => eprintln!("error: {message}"),
                    }
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour codes only for a terminal: piped into a file or `less` they are noise.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// The CRDs selected by `crd --only`, as the YAML the binary prints and the chart ships.
pub fn crd_yaml(only: &str) -> Result<String, demoweb_crd::yaml::YamlError> {
    let crds = match only {
        "demoweb" => vec![demoweb_crd::demoweb_crd()],
        "identity" => demoweb_crd::identity_crds(),
        _ => demoweb_crd::all_crds(),
    };
    demoweb_crd::yaml::to_multi_doc(&crds)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use clap::Parser;

    use super::{Cli, Command, LogFormat, crd_yaml};

    #[test]
    fn run_flags() {
        let cli = Cli::parse_from(["demoweb-operator", "run"]);
        let Command::Run(args) = cli.command else {
            panic!("run")
        };
        assert!(args.leader_election);
        assert_eq!(args.metrics_addr.to_string(), "0.0.0.0:8080");
        assert_eq!(args.log_format, LogFormat::Text);
        assert_eq!(args.resync_period.as_secs(), 300);
        assert_eq!(args.stalled_requeue_period.as_secs(), 30);
        assert_eq!(args.identity_api_poll_period.as_secs(), 60);
        assert_eq!(args.max_concurrent_reconciles, 16);
        let cli = Cli::parse_from([
            "demoweb-operator",
            "run",
            "--namespace=web",
            "--metrics-addr=127.0.0.1:0",
            "--log-format=json",
            "--leader-election=false",
            "--lease-namespace=ops",
            "--resync-period=1m30s",
            "--stalled-requeue-period=2s",
            "--identity-api-poll-period=1s",
            "--max-concurrent-reconciles=64",
        ]);
        let Command::Run(args) = cli.command else {
            panic!("run")
        };
        assert_eq!(args.namespace.as_deref(), Some("web"));
        assert!(!args.leader_election);
        assert_eq!(args.log_format, LogFormat::Json);
        assert_eq!(args.lease_namespace.as_deref(), Some("ops"));
        assert_eq!(args.resync_period.as_secs(), 90);
        assert_eq!(args.stalled_requeue_period.as_secs(), 2);
        assert_eq!(args.identity_api_poll_period.as_secs(), 1);
        assert_eq!(args.max_concurrent_reconciles, 64);
        assert!(Cli::try_parse_from(["demoweb-operator", "run", "--resync-period=10"]).is_err());
        assert!(
            Cli::try_parse_from(["demoweb-operator", "run", "--max-concurrent-reconciles=0"])
                .is_err()
        );
    }

    /// The chart ships generated CRDs; they must match the Rust types.
    /// `DEMOWEB_UPDATE_GENERATED=1 cargo test -p demoweb-operator generated` rewrites them.
    #[test]
    fn generated_crds_are_up_to_date() {
        let chart = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../charts/demoweb-operator");
        let files = [
            ("demoweb", chart.join("crds/demowebs.baeke.info.yaml")),
            ("identity", chart.join("files/aadpodidentity-crds.yaml")),
        ];
        let update = std::env::var_os("DEMOWEB_UPDATE_GENERATED").is_some();
        for (only, path) in files {
            let expected = crd_yaml(only).expect("CRDs serialise");
            if update {
                std::fs::write(&path, &expected).expect("write generated CRD");
                continue;
            }
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                committed == expected,
                "{} is stale: run `DEMOWEB_UPDATE_GENERATED=1 cargo test -p demoweb-operator generated` and commit the result",
                path.display()
            );
        }
    }
}
