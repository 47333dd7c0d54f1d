//! The real operator as a child process of the playground and the benchmark (so it is measured and
//! behaves like the shipped binary), and the one HTTP GET of its endpoints.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use demoweb_operator::cli::{Cli, Command as OperatorCommand};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The hidden first argument that turns a playground or benchmark executable into the operator.
pub const SUBCOMMAND: &str = "__operator";

/// When this process was started as `<exe> __operator <operator args>`, runs the operator exactly as
/// `demoweb-operator` does and returns its exit code; `None` otherwise. Call it first in `main`.
pub fn run_if_requested() -> Option<ExitCode> {
    let mut args = std::env::args_os();
    let _exe = args.next();
    if args.next().is_none_or(|a| a != SUBCOMMAND) {
        return None;
    }
    let cli = Cli::parse_from(std::iter::once("demoweb-operator".into()).chain(args));
    let OperatorCommand::Run(run_args) = cli.command else {
        eprintln!("error: only `run` is available through {SUBCOMMAND}");
        return Some(ExitCode::FAILURE);
    };
    exit_with_parent();
    Some(demoweb_operator::cli::execute(Cli {
        command: OperatorCommand::Run(run_args),
    }))
}

/// `main` of the playground and the benchmark: the operator child when asked (see
/// [`run_if_requested`]), else the command line parsed as `A` — without the extra `--` that
/// `cargo <alias> -- ARGS` passes on, since the aliases already end with one — and `app` run on it.
pub fn main<A, F>(app: impl FnOnce(A) -> F) -> ExitCode
where
    A: Parser,
    F: std::future::Future<Output = Result<ExitCode, String>>,
{
    if let Some(code) = run_if_requested() {
        return code;
    }
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "--") {
        args.remove(1);
    }
    let args = A::parse_from(args);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: starting the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(app(args)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

/// `target/<name>`, next to the profile directory this executable was built into.
pub fn default_dir(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join(name)))
        .unwrap_or_else(|| PathBuf::from("target").join(name))
}

/// A parent killed without a chance to clean up (SIGKILL, a closed terminal) must not leave an
/// operator running against a cluster nobody watches: exit once we are re-parented.
fn exit_with_parent() {
    #[cfg(unix)]
    {
        let parent = std::os::unix::process::parent_id();
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(500));
                if std::os::unix::process::parent_id() != parent {
                    eprintln!("the process that started this operator is gone; exiting");
                    std::process::exit(1);
                }
            }
        });
    }
}

/// A running operator child process; killed when dropped (also on panic or an early return).
/// The one launcher: the playground and the benchmark run their own executable as the operator
/// ([`OperatorProcess::spawn`]), the integration tests run the operator binary
/// ([`OperatorProcess::start`] with its path).
pub struct OperatorProcess {
    child: Child,
    log: PathBuf,
}

impl OperatorProcess {
    /// Starts `<current exe> __operator run --namespace <ns> ...` against `kubeconfig`, logging JSON
    /// to `log`. Leader election is off unless `extra` says otherwise.
    pub fn spawn(
        kubeconfig: &Path,
        namespace: &str,
        log: &Path,
        extra: &[String],
    ) -> io::Result<OperatorProcess> {
        let mut args = vec![SUBCOMMAND.to_owned()];
        args.extend(run_args(Some(namespace), extra));
        Self::start(&std::env::current_exe()?, &args, kubeconfig, &[], log)
    }

    /// Starts `program` with `args` against `kubeconfig` and the environment `env`, its standard
    /// error (the operator's log) going to `log`.
    pub fn start(
        program: &Path,
        args: &[String],
        kubeconfig: &Path,
        env: &[(&str, &str)],
        log: &Path,
    ) -> io::Result<OperatorProcess> {
        let mut command = Command::new(program);
        command
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .envs(env.iter().copied());
        Self::from_command(command, log)
    }

    /// Starts a command prepared by the caller (a wrapper such as unshare, its own environment),
    /// its standard error going to `log`.
    pub fn from_command(mut command: Command, log: &Path) -> io::Result<OperatorProcess> {
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::File::create(log)?;
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()?;
        Ok(OperatorProcess {
            child,
            log: log.to_owned(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Waits until the operator logs the address of its metrics endpoint, which it does once it
    /// has found the CRDs served; fails with the log's tail if it exits or takes too long.
    pub async fn wait_serving(&mut self, timeout: Duration) -> Result<SocketAddr, String> {
        let start = Instant::now();
        loop {
            if let Some(addr) = metrics_addr_in_log(&self.logs()) {
                return Ok(addr);
            }
            if let Some(status) = self.exited() {
                return Err(format!(
                    "the operator exited with {status} before serving:\n{}",
                    self.log_tail(40)
                ));
            }
            if start.elapsed() > timeout {
                return Err(format!(
                    "the operator did not start serving within {timeout:?}:\n{}",
                    self.log_tail(40)
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        let logs = self.logs();
        let lines: Vec<&str> = logs.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// The process's peak resident set size (VmHWM) in KiB, while it runs (Linux only).
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        vm_hwm_kib(&status)
    }

    /// The process's resident set size now (VmRSS) in KiB (Linux only).
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        proc_status_kib(&status, "VmRSS:")
    }

    /// CPU time (user + system) the process has used so far (Linux only).
    pub fn cpu_time(&self) -> Option<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).ok()?;
        cpu_ticks(&stat).map(ticks_to_duration)
    }

    /// Whether the process has exited, and how.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM, as Kubernetes stops a pod; does not wait.
    pub fn terminate(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// SIGTERM (a graceful shutdown, as Kubernetes stops a pod), then SIGKILL after `grace`.
    pub async fn stop(&mut self, grace: Duration) {
        if self.exited().is_some() {
            return;
        }
        self.terminate();
        let start = Instant::now();
        while self.exited().is_none() && start.elapsed() < grace {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.kill();
    }

    /// SIGKILL: a crash, with no chance to hand anything back.
    pub fn kill(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The arguments of `demoweb-operator run` as the tests, the playground and the benchmark use it:
/// JSON logs, a free port for the endpoints, no leader election unless `extra` asks for it.
pub fn run_args(namespace: Option<&str>, extra: &[String]) -> Vec<String> {
    let mut args = vec![
        "run".to_owned(),
        "--metrics-addr=127.0.0.1:0".to_owned(),
        "--log-format=json".to_owned(),
    ];
    if let Some(namespace) = namespace {
        args.push(format!("--namespace={namespace}"));
    }
    if !extra.iter().any(|a| a.starts_with("--leader-election")) {
        args.push("--leader-election=false".to_owned());
    }
    args.extend(extra.iter().cloned());
    args
}

/// The `addr` of the operator's "serving /metrics" JSON log line.
pub fn metrics_addr_in_log(log: &str) -> Option<SocketAddr> {
    log.lines().find_map(|line| {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        let msg = v["fields"]["message"].as_str()?;
        if !msg.starts_with("serving /metrics") {
            return None;
        }
        v["fields"]["addr"].as_str()?.parse().ok()
    })
}

/// The unit of /proc's CPU times: USER_HZ, which Linux fixes at 100 whatever the kernel's HZ.
const USER_HZ: u64 = 100;

/// utime + stime, in clock ticks, from the text of `/proc/<pid>/stat`.
pub fn cpu_ticks(proc_stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    let rest = &proc_stat[proc_stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 (utime) and 15 (stime) of proc(5); `rest` starts at field 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks of /proc's CPU times as a duration.
pub fn ticks_to_duration(ticks: u64) -> Duration {
    Duration::from_millis(ticks * 1000 / USER_HZ)
}

/// `VmHWM` from the text of `/proc/<pid>/status`, in KiB.
pub fn vm_hwm_kib(proc_status: &str) -> Option<u64> {
    proc_status_kib(proc_status, "VmHWM:")
}

/// The field `key` (e.g. `VmRSS:`) of `/proc/<pid>/status`, in KiB.
fn proc_status_kib(proc_status: &str, key: &str) -> Option<u64> {
    proc_status.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?;
        let mut parts = rest.split_whitespace();
        let value: u64 = parts.next()?.parse().ok()?;
        match parts.next() {
            Some("kB") | None => Some(value),
            Some(_) => None,
        }
    })
}

/// A plain HTTP/1.0 GET (the operator's metrics endpoint): (status code, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> io::Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(
            // HTTP/1.0: the answer's body runs to the end of the connection, never in chunks
            // (`/metrics` is sent in pieces as it is rendered).
            format!("GET {path} HTTP/1.0\r\nHost: operator\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut out = String::new();
    stream.read_to_string(&mut out).await?;
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((code, body))
}

#[cfg(test)]
mod tests {
    use super::{cpu_ticks, metrics_addr_in_log, vm_hwm_kib};

    #[test]
    fn cpu_ticks_from_proc_stat() {
        let cases = [
            (
                "4242 (bench) S 1 4242 4242 0 -1 4194560 1234 0 0 0 150 25 0 0 20 0 9 0 1000 0 0",
                Some(175),
            ),
            (
                "7 (a) b (c)) R 1 7 7 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 5 0 0",
                Some(7),
            ),
            ("7 (x) R 1 2", None),
            ("no parenthesis", None),
        ];
        for (text, want) in cases {
            assert_eq!(cpu_ticks(text), want, "{text:?}");
        }
    }

    #[test]
    fn peak_rss_from_proc_status() {
        let cases = [
            (
                "Name:\tx\nVmPeak:\t  9000 kB\nVmHWM:\t   12345 kB\nVmRSS:\t 100 kB\n",
                Some(12345),
            ),
            ("VmHWM:\t1 kB", Some(1)),
            ("VmRSS:\t100 kB\n", None),
            ("VmHWM:\tlots kB\n", None),
            ("VmHWM:\t5 MB\n", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(vm_hwm_kib(text), want, "{text:?}");
        }
    }

    #[test]
    fn metrics_address_from_the_operator_log() {
        let log = concat!(
            "not json\n",
            r#"{"fields":{"message":"starting"}}"#,
            "\n",
            r#"{"fields":{"message":"serving /metrics, /healthz and /readyz","addr":"127.0.0.1:40123"}}"#,
            "\n"
        );
        assert_eq!(
            metrics_addr_in_log(log),
            Some("127.0.0.1:40123".parse().expect("addr"))
        );
        assert_eq!(metrics_addr_in_log("{}\n"), None);
    }

    /// Each executable that can run as the operator ([`super::main`]) links the shipped binary's
    /// allocator, so the benchmark measures what ships (docs/decisions/jemalloc.md).
    #[test]
    fn executables_that_run_the_operator_use_its_allocator() {
        let bins = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bin");
        let mut checked = 0;
        for entry in std::fs::read_dir(&bins).expect("tests/src/bin") {
            let path = entry.expect("a directory entry").path();
            let text = std::fs::read_to_string(&path).expect("a source file");
            if text.contains("operator_process::main(") {
                assert!(
                    text.contains("static ALLOCATOR: tikv_jemallocator::Jemalloc"),
                    "{} runs the operator but does not declare its allocator (see operator/src/main.rs)",
                    path.display()
                );
                checked += 1;
            }
        }
        assert!(
            checked >= 3,
            "bench, playground and cluster run the operator"
        );
    }
}
