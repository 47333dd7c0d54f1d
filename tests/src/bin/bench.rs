//! The benchmark: N DemoWebs applied in one burst (a bounded number in flight) in a fresh
//! namespace, the real operator as a child process; prints figures and never asserts a timing.
//! Only idle writes make it fail.
//!
//! Two times are told apart: the operator's part (every DemoWeb has its children and a status for
//! its generation) and the cluster's part (every DemoWeb Ready, which needs pods to run: skipped,
//! with a note, on a cluster without nodes). Also: per-object latencies, API requests by verb,
//! writes per DemoWeb, the operator's peak and steady RSS, the emulator's CPU, and requests while
//! idle.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use demoweb_crd::DemoWeb;
use demoweb_tests::emulator::{Emulator, EmulatorHandle, EmulatorOptions};
use demoweb_tests::operator_process::{self, OperatorProcess};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Service};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use kube::core::PartialObjectMeta;
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

/// The operator's allocator: this executable also runs as the operator (`__operator`, see
/// `operator_process`), which must measure and behave like the shipped binary
/// (docs/decisions/jemalloc.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const FIELD_MANAGER: &str = "demoweb-bench";
/// The verbs that change something, as the emulator counts them.
const WRITE_VERBS: [&str; 6] = [
    "create",
    "update",
    "patch",
    "apply",
    "delete",
    "deletecollection",
];
/// The repository every benchmark DemoWeb serves (the seed's).
const GITREPO: &str = "https://github.com/gbaeke/static-web.git";

#[derive(Parser)]
#[command(
    about = "Measure the operator: N DemoWebs at once, latency, API requests, peak RSS, idle writes"
)]
struct Args {
    /// How many DemoWebs to apply at once.
    #[arg(long, default_value_t = 100)]
    count: usize,
    /// Run against the cluster of this kubeconfig instead of an in-process emulator. The CRDs are
    /// installed when missing; stop any operator that already watches all namespaces first, or
    /// both will reconcile the benchmark's DemoWebs.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Length of the idle period after everything is ready, in which the operator must not write.
    #[arg(long, default_value_t = 60)]
    idle_secs: u64,
    /// The operator's --resync-period; shorter than the idle period so that full resyncs of every
    /// DemoWeb happen inside it and are shown to be silent too.
    #[arg(long, default_value = "15s")]
    resync_period: String,
    /// Give up waiting for readiness after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
    /// Also print the requests by verb and resource.
    #[arg(long)]
    by_resource: bool,
    /// Where to write the operator's log (and the emulator's kubeconfig); default target/bench.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// How many applies are in flight at once: all N are sent as fast as the API server takes
    /// them, through a bounded number of connections like any client's pool, not N at once.
    /// Fewer in flight spread the creations over more time, as fewer clients would.
    #[arg(long, default_value_t = 64)]
    applies_in_flight: usize,
    /// Start at most this many applies per second instead of all at once: a steady stream of new
    /// DemoWebs, as many clients would send over time. The latencies then tell the operator's own
    /// delay (watch, debounce, reconcile, status) apart from the time a burst takes to work off.
    #[arg(long)]
    rate: Option<f64>,
    /// Run this operator binary (e.g. target/release/demoweb-operator, as the image ships it)
    /// instead of the benchmark's own copy of the operator, whose binary also holds the emulator
    /// and so maps more code pages.
    #[arg(long)]
    operator: Option<PathBuf>,
    /// Make the in-process emulator answer every request this many milliseconds late, as a
    /// control plane on other machines would (AKS runs the API server outside the cluster's
    /// nodes): the operator's latency then also shows how many round trips a new DemoWeb waits
    /// for one after another, which a zero-latency emulator on the same cores hides. Default 5
    /// (a real API server's answer to a write, unloaded); 0 for the emulator's own speed.
    #[arg(long)]
    api_latency_ms: Option<u64>,
    /// Skip the API server's floor (the same writes from the benchmark with no operator, in a
    /// namespace of its own before the operator's run), which the operator's latencies are
    /// divided by.
    #[arg(long)]
    no_floor: bool,
}

fn main() -> ExitCode {
    operator_process::main(bench)
}

/// The name of the in-process emulator's threads (see [`emulator_cpu_time`]).
const EMULATOR_THREAD: &str = "emulator";

/// The cluster under test: the in-process emulator (with its request counters) or a real one.
struct Cluster {
    client: Client,
    kubeconfig: PathBuf,
    emulator: Option<EmulatorHandle>,
    /// The runtime the emulator serves on, apart from the benchmark's own client work.
    emulator_runtime: Option<tokio::runtime::Runtime>,
}

impl Cluster {
    fn counts(&self) -> Option<BTreeMap<(String, String), u64>> {
        self.emulator
            .as_ref()
            .map(|e| e.request_counts().snapshot())
    }
}

/// The emulator's answer delay: a few milliseconds unless told otherwise, so that its rows cannot
/// hide the round trips a new DemoWeb waits for.
fn api_latency_ms(args: &Args) -> u64 {
    args.api_latency_ms.unwrap_or(5)
}

async fn connect(args: &Args, dir: &std::path::Path) -> Result<Cluster, String> {
    match &args.kubeconfig {
        Some(_) if args.api_latency_ms.is_some() => Err(
            "--api-latency-ms delays the in-process emulator; a real cluster has its own".into(),
        ),
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| format!("reading {}: {e}", path.display()))?;
            let config = kube::Config::from_custom_kubeconfig(
                kc,
                &kube::config::KubeConfigOptions::default(),
            )
            .await
            .map_err(|e| format!("using {}: {e}", path.display()))?;
            let client = Client::try_from(config).map_err(|e| e.to_string())?;
            let kubeconfig = path.canonicalize().unwrap_or_else(|_| path.clone());
            Ok(Cluster {
                client,
                kubeconfig,
                emulator: None,
                emulator_runtime: None,
            })
        }
        None => {
            // The emulator gets a runtime of its own with named threads: everything it does (HTTP,
            // watch streams, its controllers) runs there, so its CPU time can be read per thread and
            // is not mixed with the benchmark's applies and watches on the main runtime.
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .thread_name(EMULATOR_THREAD)
                .enable_all()
                .build()
                .map_err(|e| format!("starting the emulator's runtime: {e}"))?;
            // HTTPS, as kube-apiserver always serves: the operator then speaks HTTP/2 to the
            // emulator as it does to a cluster (one connection, not one per request in flight).
            let options = EmulatorOptions {
                tls: true,
                ..EmulatorOptions::default()
            };
            let emulator = runtime
                .spawn(Emulator::start(options))
                .await
                .map_err(|e| format!("starting the emulator: {e}"))?
                .map_err(|e| format!("starting the emulator: {e}"))?;
            emulator
                .faults()
                .set_latency(Duration::from_millis(api_latency_ms(args)));
            let kubeconfig = dir.join("kubeconfig");
            emulator
                .write_kubeconfig(&kubeconfig)
                .map_err(|e| format!("writing {}: {e}", kubeconfig.display()))?;
            Ok(Cluster {
                client: emulator.client(),
                kubeconfig,
                emulator: Some(emulator),
                emulator_runtime: Some(runtime),
            })
        }
    }
}

/// One `key: value` line per figure, in the order they were measured.
#[derive(Default)]
struct Report(Vec<(String, String)>);

impl Report {
    fn add(&mut self, key: impl Into<String>, value: impl ToString) {
        self.0.push((key.into(), value.to_string()));
    }

    /// A figure already added, as a number.
    fn number(&self, key: &str) -> Option<f64> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.parse().ok())
    }

    fn print(&self) {
        for (k, v) in &self.0 {
            println!("{k}: {v}");
        }
    }
}

async fn bench(args: Args) -> Result<ExitCode, String> {
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| operator_process::default_dir("bench"));
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let dir = dir.canonicalize().unwrap_or(dir);
    let mut report = Report::default();
    report.add("command", command_line());
    let cluster = connect(&args, &dir).await?;
    report.add(
        "cluster",
        match &args.kubeconfig {
            Some(p) => format!("kubeconfig {}", p.display()),
            None => "emulator (in-process)".to_owned(),
        },
    );
    let client = cluster.client.clone();

    let crds = ensure_crds(&cluster).await?;
    eprintln!("CRDs {crds}");
    if !args.no_floor {
        eprintln!(
            "the API server's floor: {} DemoWebs written by the benchmark itself",
            args.count
        );
        floor(&args, &cluster, &mut report).await?;
    }
    let namespace = format!("bench-{}", random_suffix());
    create_namespace(&client, &namespace).await?;
    report.add("namespace", &namespace);
    report.add("count", args.count);
    report.add("resync_period", &args.resync_period);

    let log = dir.join("operator.log");
    let extra = [format!("--resync-period={}", args.resync_period)];
    let mut operator = match &args.operator {
        Some(binary) => OperatorProcess::start(
            binary,
            &operator_process::run_args(Some(&namespace), &extra),
            &cluster.kubeconfig,
            &[],
            &log,
        ),
        None => OperatorProcess::spawn(&cluster.kubeconfig, &namespace, &log, &extra),
    }
    .map_err(|e| format!("starting the operator: {e}"))?;
    report.add(
        "operator_binary",
        args.operator
            .as_ref()
            .map_or("the benchmark's own".to_owned(), |p| {
                p.display().to_string()
            }),
    );
    let metrics_addr = operator.wait_serving(Duration::from_secs(60)).await?;
    eprintln!(
        "operator pid {} serving metrics on {metrics_addr}; log {}",
        operator.pid(),
        log.display()
    );

    let result = measure(
        &args,
        &cluster,
        &namespace,
        &mut operator,
        metrics_addr,
        &mut report,
    )
    .await;
    let peak = operator.peak_rss_kib();
    operator.stop(Duration::from_secs(10)).await;
    if cluster.emulator.is_none() {
        let _ = Api::<Namespace>::all(client.clone())
            .delete(&namespace, &DeleteParams::default())
            .await;
    }
    if let Some(e) = cluster.emulator {
        e.shutdown().await;
    }
    if let Some(rt) = cluster.emulator_runtime {
        rt.shutdown_background();
    }
    let ok = match result {
        Ok(ok) => ok,
        Err(e) => {
            report.add("error", e);
            false
        }
    };
    report.add(
        "operator_peak_rss_kib",
        peak.map_or("n/a".to_owned(), |k| k.to_string()),
    );
    report.add(
        "operator_peak_rss_mib",
        peak.map_or("n/a".to_owned(), |k| format!("{:.1}", k as f64 / 1024.0)),
    );
    for p in ["p50", "p99"] {
        let operator = report.number(&format!("operator_latency_{p}_ms"));
        let floor = report.number(&format!("floor_latency_{p}_ms"));
        if let (Some(o), Some(f)) = (operator, floor.filter(|f| *f > 0.0)) {
            report.add(format!("operator_over_floor_{p}"), format!("{:.2}", o / f));
        }
    }
    report.add("operator_log", log.display());
    report.add("result", if ok { "ok" } else { "FAIL" });
    report.print();
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The run, the settling and the idle period; `Ok(false)` when something did not finish or the
/// operator wrote while idle.
async fn measure(
    args: &Args,
    cluster: &Cluster,
    namespace: &str,
    operator: &mut OperatorProcess,
    metrics_addr: std::net::SocketAddr,
    report: &mut Report,
) -> Result<bool, String> {
    let client = &cluster.client;
    let own = Arc::new(AtomicU64::new(0));
    let tracker = Arc::new(Tracker::default());
    let watchers = start_watches(client, namespace, &tracker, &own).await?;

    let before = cluster.counts();
    let own_before = own.load(Ordering::SeqCst);
    let metrics_before = operator_writes(metrics_addr).await;
    let reconciles_before = reconcile_totals(metrics_addr).await;
    let cpu_before = operator.cpu_time();
    let emulator_cpu_before = emulator_cpu_time(cluster);
    let process_cpu_before = process_cpu_time();
    let names: Vec<String> = (1..=args.count).map(|i| format!("bench-{i:04}")).collect();
    let api: Api<DemoWeb> = Api::namespaced(client.clone(), namespace);
    let start = Instant::now();
    let rate = args.rate.filter(|r| *r > 0.0);
    let failures = burst(args, &names, start, |name, due| {
        let api = api.clone();
        let tracker = tracker.clone();
        let own = own.clone();
        async move {
            let body = serde_json::json!({
                "apiVersion": "baeke.info/v1",
                "kind": "DemoWeb",
                "metadata": {"name": name},
                "spec": {"replicas": 1, "gitrepo": GITREPO},
            });
            tracker.applied(&name, due);
            own.fetch_add(1, Ordering::SeqCst);
            api.patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER),
                &Patch::Apply(&body),
            )
            .await
            .map(|_| ())
            .map_err(|e| format!("applying DemoWeb {name}: {e}"))
        }
    })
    .await;
    // When the last creation returned: the operator's part cannot end sooner, and a long
    // creation window means the API server, not the operator, set the pace.
    report.add("applies_in_flight", args.applies_in_flight.max(1));
    if args.kubeconfig.is_none() {
        report.add("api_latency_ms", api_latency_ms(args));
    }
    report.add(
        "rate_per_sec",
        rate.map_or("unlimited (one burst)".to_owned(), |r| r.to_string()),
    );
    report.add(
        "created_all_secs",
        format!("{:.3}", start.elapsed().as_secs_f64()),
    );
    if let Some(first) = failures.first() {
        report.add("apply_failures", failures.len());
        eprintln!("{first}");
    }

    let deadline = Duration::from_secs(args.timeout_secs);
    let mut current = tracker.current.subscribe();
    let all_current = tokio::time::timeout(deadline, current.wait_for(|n| *n >= args.count))
        .await
        .is_ok_and(|r| r.is_ok());
    let operator_elapsed = start.elapsed();
    let readiness_skipped = readiness_skipped(cluster).await;
    let all_ready = match &readiness_skipped {
        Some(_) => false,
        None => {
            let mut ready = tracker.ready.subscribe();
            let left = deadline.saturating_sub(start.elapsed());
            tokio::time::timeout(left, ready.wait_for(|n| *n >= args.count))
                .await
                .is_ok_and(|r| r.is_ok())
        }
    };
    let elapsed = start.elapsed();
    let after = cluster.counts();
    let own_during = own.load(Ordering::SeqCst) - own_before;
    let metrics_after = operator_writes(metrics_addr).await;
    let reconciles_after = reconcile_totals(metrics_addr).await;
    let cpu_after = operator.cpu_time();
    let emulator_cpu_after = emulator_cpu_time(cluster);
    let process_cpu_after = process_cpu_time();

    let ms = |d: Option<Duration>| {
        d.map_or("n/a".to_owned(), |d| {
            format!("{:.1}", d.as_secs_f64() * 1000.0)
        })
    };
    // The operator's part: children applied and a status for the DemoWeb's generation.
    let latencies = tracker.latencies(|p| p.current);
    report.add(
        "operator_done",
        format!(
            "{}/{} (children applied, status for the generation)",
            latencies.len(),
            args.count
        ),
    );
    let last = tracker.last(|p| p.current).map(|t| t.duration_since(start));
    report.add(
        "operator_time_to_all_secs",
        match (all_current, last) {
            (true, Some(d)) => format!("{:.3}", d.as_secs_f64()),
            _ => format!("not reached within {:.0}s", operator_elapsed.as_secs_f64()),
        },
    );
    report.add("operator_latency_p50_ms", ms(percentile(&latencies, 50.0)));
    report.add("operator_latency_p99_ms", ms(percentile(&latencies, 99.0)));
    report.add(
        "operator_latency_max_ms",
        ms(latencies.iter().max().copied()),
    );
    report_stages(
        report,
        &tracker,
        args.count,
        reconciles_before,
        reconciles_after,
    );
    // The cluster's part: pods ready.
    match &readiness_skipped {
        Some(note) => report.add("ready", format!("skipped: {note}")),
        None => {
            let latencies = tracker.latencies(|p| p.ready_done);
            report.add("ready", format!("{}/{}", latencies.len(), args.count));
            let last = tracker
                .last(|p| p.ready_done)
                .map(|t| t.duration_since(start));
            report.add(
                "time_to_all_ready_secs",
                match (all_ready, last) {
                    (true, Some(d)) => format!("{:.3}", d.as_secs_f64()),
                    _ => format!("not reached within {:.0}s", elapsed.as_secs_f64()),
                },
            );
            report.add("ready_latency_p50_ms", ms(percentile(&latencies, 50.0)));
            report.add("ready_latency_p99_ms", ms(percentile(&latencies, 99.0)));
        }
    }

    let mut served = None;
    match (before, after) {
        (Some(before), Some(after)) => {
            served = Some(deltas(&before, &after).values().sum::<u64>());
            let mut by_verb = requests_by_verb(&before, &after);
            // Our own applies, lists and watches went through the same server: take them out so
            // the figures are the operator's.
            subtract_own(&mut by_verb, args.count as u64, own_during);
            let total: u64 = by_verb.values().sum();
            let writes: u64 = by_verb
                .iter()
                .filter(|(verb, _)| WRITE_VERBS.contains(&verb.as_str()))
                .map(|(_, n)| n)
                .sum();
            for (verb, n) in &by_verb {
                report.add(format!("requests.{verb}"), n);
            }
            report.add("requests.writes", writes);
            report.add("requests.total", total);
            if args.by_resource {
                // Per resource, our own requests included (they are on demowebs only).
                for ((verb, resource), n) in deltas(&before, &after) {
                    report.add(format!("requests_by_resource.{verb}.{resource}"), n);
                }
            }
        }
        _ => report.add(
            "requests.total",
            "n/a (only the emulator counts requests by verb)",
        ),
    }
    report.add(
        "operator_writes_during_run",
        match (metrics_before, metrics_after) {
            (Some(b), Some(a)) => (a - b).to_string(),
            _ => "n/a".to_owned(),
        },
    );
    report.add(
        "operator_cpu_secs_during_run",
        cpu_secs(cpu_before, cpu_after),
    );
    report_emulator_cpu(
        report,
        (emulator_cpu_before, emulator_cpu_after),
        (process_cpu_before, process_cpu_after),
        served,
    );
    if !all_current || (readiness_skipped.is_none() && !all_ready) {
        report.add("not_done", tracker.not_done(&names).join(","));
        return Ok(false);
    }

    let settle = settle(cluster, metrics_addr).await;
    report.add("settle_secs", format!("{:.1}", settle.as_secs_f64()));
    // Everything the operator wrote for the new DemoWebs, the settling included.
    if let (Some(b), Some(a)) = (metrics_before, operator_writes(metrics_addr).await) {
        report.add(
            "operator_writes_per_demoweb",
            format!("{:.2}", (a - b) as f64 / args.count.max(1) as f64),
        );
    }
    if let Some(status) = operator.exited() {
        return Err(format!(
            "the operator exited ({status}):\n{}",
            operator.log_tail(20)
        ));
    }
    let idle = Duration::from_secs(args.idle_secs);
    eprintln!("everything ready; idling for {}s", args.idle_secs);
    let idle_before = cluster.counts();
    let idle_metrics_before = operator_writes(metrics_addr).await;
    let idle_cpu_before = operator.cpu_time();
    let idle_emulator_cpu_before = emulator_cpu_time(cluster);
    tokio::time::sleep(idle).await;
    let idle_after = cluster.counts();
    let idle_metrics_after = operator_writes(metrics_addr).await;
    let idle_cpu_after = operator.cpu_time();
    let idle_emulator_cpu_after = emulator_cpu_time(cluster);
    report.add("idle_secs", args.idle_secs);
    report.add(
        "operator_cpu_secs_while_idle",
        cpu_secs(idle_cpu_before, idle_cpu_after),
    );
    if cluster.emulator.is_some() {
        report.add(
            "emulator_cpu_secs_while_idle",
            cpu_secs(idle_emulator_cpu_before, idle_emulator_cpu_after),
        );
    }
    let writes = match (&idle_before, &idle_after) {
        (Some(b), Some(a)) => {
            report.add("idle_writes_source", "API server request counters");
            let writes = writes_by_resource(b, a);
            for ((verb, resource), n) in &writes {
                report.add(format!("idle_writes.{verb}.{resource}"), n);
            }
            Some(writes.values().sum::<u64>())
        }
        _ => {
            report.add(
                "idle_writes_source",
                "operator /metrics (demoweb_api_writes_total)",
            );
            match (idle_metrics_before, idle_metrics_after) {
                (Some(b), Some(a)) => Some(a - b),
                _ => None,
            }
        }
    };
    report.add(
        "idle_writes",
        writes.map_or("n/a".to_owned(), |w| w.to_string()),
    );
    if let (Some(b), Some(a)) = (&idle_before, &idle_after) {
        // Reads too: full resyncs should cost no request at all.
        for (verb, n) in requests_by_verb(b, a) {
            report.add(format!("idle_requests.{verb}"), n);
        }
    }
    report.add(
        "operator_steady_rss_mib",
        operator
            .rss_kib()
            .map_or("n/a".to_owned(), |k| format!("{:.1}", k as f64 / 1024.0)),
    );
    for w in watchers {
        w.abort();
    }
    Ok(writes == Some(0))
}

/// The emulator's CPU time during the run, the rest of the benchmark process's (its own applies and
/// watches), and the emulator's CPU per request it served (everyone's requests: the operator's and
/// the benchmark's).
fn report_emulator_cpu(
    report: &mut Report,
    emulator: (Option<Duration>, Option<Duration>),
    process: (Option<Duration>, Option<Duration>),
    served: Option<u64>,
) {
    let (Some(before), Some(after)) = emulator else {
        return;
    };
    let used = after.saturating_sub(before);
    report.add(
        "emulator_cpu_secs_during_run",
        format!("{:.2}", used.as_secs_f64()),
    );
    if let (Some(b), Some(a)) = process {
        let client = a.saturating_sub(b).saturating_sub(used);
        report.add(
            "bench_client_cpu_secs_during_run",
            format!("{:.2}", client.as_secs_f64()),
        );
    }
    if let Some(n) = served.filter(|n| *n > 0) {
        report.add("emulator_requests_during_run", n);
        report.add(
            "emulator_cpu_ms_per_request",
            format!("{:.3}", used.as_secs_f64() * 1000.0 / n as f64),
        );
    }
}

/// CPU time (user + system) of the in-process emulator's threads (Linux only; `None` against a real
/// cluster). A thread that has exited is no longer counted; the emulator's runtime keeps its
/// worker threads for its whole life and it starts no blocking threads.
fn emulator_cpu_time(cluster: &Cluster) -> Option<Duration> {
    cluster.emulator.as_ref()?;
    let mut ticks = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let name = stat
            .split_once('(')
            .and_then(|(_, rest)| rest.rsplit_once(')'))
            .map(|(name, _)| name);
        if name == Some(EMULATOR_THREAD) {
            ticks += operator_process::cpu_ticks(&stat)?;
        }
    }
    Some(operator_process::ticks_to_duration(ticks))
}

/// CPU time (user + system) of this whole process so far (Linux only).
fn process_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    operator_process::cpu_ticks(&stat).map(operator_process::ticks_to_duration)
}

fn cpu_secs(before: Option<Duration>, after: Option<Duration>) -> String {
    match (before, after) {
        (Some(b), Some(a)) => format!("{:.2}", a.saturating_sub(b).as_secs_f64()),
        _ => "n/a".to_owned(),
    }
}

/// Waits until no writes have been counted for two seconds (the last status writes and Events
/// that readiness triggers), at most 30 seconds; returns how long that took.
async fn settle(cluster: &Cluster, metrics_addr: std::net::SocketAddr) -> Duration {
    let start = Instant::now();
    let quiet = Duration::from_secs(2);
    let writes = || async {
        match cluster.counts() {
            Some(c) => Some(
                c.iter()
                    .filter(|((v, _), _)| WRITE_VERBS.contains(&v.as_str()))
                    .map(|(_, n)| n)
                    .sum(),
            ),
            None => operator_writes(metrics_addr).await,
        }
    };
    let mut last = writes().await;
    let mut since = Instant::now();
    while since.elapsed() < quiet && start.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = writes().await;
        if now != last {
            last = now;
            since = Instant::now();
        }
    }
    start.elapsed()
}

/// Where a new DemoWeb's time goes, seen from outside: apply → its first child (the watch, the
/// debounce, the wait for a free reconcile slot, the reads and the first write), first → last
/// child (writes waited for one after another), last child → a status for the generation (the
/// status write, or a second reconcile that a child's watch event starts), and apply → its
/// Deployment (what a burst of new sites waits for before anything can run). And the operator's own
/// figures: reconciles per DemoWeb and the time each held a slot.
fn report_stages(
    report: &mut Report,
    tracker: &Tracker,
    count: usize,
    before: Option<(f64, f64)>,
    after: Option<(f64, f64)>,
) {
    let stages = tracker.stages();
    for (i, name) in [
        "applied_to_first_child",
        "first_to_last_child",
        "last_child_to_status",
        "applied_to_deployment",
    ]
    .iter()
    .enumerate()
    {
        let mut d: Vec<Duration> = stages.iter().map(|s| s[i]).collect();
        d.sort();
        let ms = |d: Option<Duration>| {
            d.map_or("n/a".to_owned(), |d| {
                format!("{:.1}", d.as_secs_f64() * 1000.0)
            })
        };
        report.add(
            format!("stage.{name}_p50_p99_ms"),
            format!(
                "{} / {}",
                ms(percentile(&d, 50.0)),
                ms(percentile(&d, 99.0))
            ),
        );
    }
    if let (Some((count_before, sum_before)), Some((count_after, sum_after))) = (before, after) {
        let reconciles = count_after - count_before;
        let seconds = sum_after - sum_before;
        report.add(
            "operator_reconciles_per_demoweb",
            format!("{:.2}", reconciles / count.max(1) as f64),
        );
        if reconciles > 0.0 {
            report.add(
                "operator_reconcile_mean_ms",
                format!("{:.1}", seconds * 1000.0 / reconciles),
            );
        }
        report.add("operator_reconcile_slot_secs", format!("{seconds:.1}"));
    }
}

/// The operator's reconciles so far and the seconds they took (`demoweb_reconcile_duration_seconds`).
async fn reconcile_totals(addr: std::net::SocketAddr) -> Option<(f64, f64)> {
    let (code, body) = operator_process::http_get(addr, "/metrics").await.ok()?;
    (code == 200).then(|| {
        (
            sum_metric_f64(&body, "demoweb_reconcile_duration_seconds_count"),
            sum_metric_f64(&body, "demoweb_reconcile_duration_seconds_sum"),
        )
    })
}

/// The sum of the operator's `demoweb_api_writes_total` counters.
async fn operator_writes(addr: std::net::SocketAddr) -> Option<u64> {
    let (code, body) = operator_process::http_get(addr, "/metrics").await.ok()?;
    (code == 200).then(|| sum_metric(&body, "demoweb_api_writes_total"))
}

/// The sum over all label sets of one metric in Prometheus text format.
fn sum_metric(text: &str, name: &str) -> u64 {
    sum_metric_f64(text, name) as u64
}

fn sum_metric_f64(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let metric = series.split('{').next()?;
            (metric == name).then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

/// Requests between two snapshots of the emulator's counters, by verb.
fn requests_by_verb(
    before: &BTreeMap<(String, String), u64>,
    after: &BTreeMap<(String, String), u64>,
) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for ((verb, resource), n) in after {
        let was = before
            .get(&(verb.clone(), resource.clone()))
            .copied()
            .unwrap_or(0);
        if *n > was {
            *out.entry(verb.clone()).or_default() += n - was;
        }
    }
    out
}

/// Takes the benchmark's own requests out: `applies` server-side applies, the rest lists and
/// watches its watchers (re)started.
fn subtract_own(by_verb: &mut BTreeMap<String, u64>, applies: u64, own_total: u64) {
    let sub = |m: &mut BTreeMap<String, u64>, verb: &str, n: u64| {
        if let Some(v) = m.get_mut(verb) {
            *v = v.saturating_sub(n);
        }
    };
    sub(by_verb, "apply", applies);
    // Watch restarts are rare; count them as watches (a relist after 410 would be a list).
    sub(by_verb, "watch", own_total.saturating_sub(applies));
    by_verb.retain(|_, n| *n > 0);
}

/// Requests between two snapshots, by (verb, resource).
fn deltas(
    before: &BTreeMap<(String, String), u64>,
    after: &BTreeMap<(String, String), u64>,
) -> BTreeMap<(String, String), u64> {
    after
        .iter()
        .filter_map(|(key, n)| {
            let was = before.get(key).copied().unwrap_or(0);
            (*n > was).then(|| (key.clone(), n - was))
        })
        .collect()
}

/// Writes between two snapshots, by (verb, resource).
fn writes_by_resource(
    before: &BTreeMap<(String, String), u64>,
    after: &BTreeMap<(String, String), u64>,
) -> BTreeMap<(String, String), u64> {
    let mut out = deltas(before, after);
    out.retain(|(verb, _), _| WRITE_VERBS.contains(&verb.as_str()));
    out
}

/// Nearest-rank percentile.
fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[derive(Clone, Copy)]
enum Child {
    Deployment,
    Service,
    ConfigMap,
}

/// When each DemoWeb was applied, got each child, a status for its generation and Ready.
#[derive(Default)]
struct Progress {
    applied: Option<Instant>,
    status: Option<Instant>,
    ready: Option<Instant>,
    children: [Option<Instant>; 3],
    /// Children and a status for the generation: the operator's part.
    current: Option<Instant>,
    /// That, and Ready: the cluster's part too.
    ready_done: Option<Instant>,
}

struct Tracker {
    progress: Mutex<HashMap<String, Progress>>,
    current: tokio::sync::watch::Sender<usize>,
    ready: tokio::sync::watch::Sender<usize>,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker {
            progress: Mutex::default(),
            current: tokio::sync::watch::Sender::new(0),
            ready: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl Tracker {
    fn update(&self, name: &str, f: impl FnOnce(&mut Progress)) {
        let mut all = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        let p = all.entry(name.to_owned()).or_default();
        f(p);
        if let (Some(_), [Some(a), Some(b), Some(c)]) = (p.applied, p.children) {
            let children = a.max(b).max(c);
            if p.current.is_none()
                && let Some(status) = p.status
            {
                p.current = Some(status.max(children));
                self.current.send_modify(|n| *n += 1);
            }
            if p.ready_done.is_none()
                && let Some(ready) = p.ready
            {
                p.ready_done = Some(ready.max(children));
                self.ready.send_modify(|n| *n += 1);
            }
        }
    }

    fn applied(&self, name: &str, at: Instant) {
        self.update(name, |p| p.applied = Some(at));
    }

    fn demoweb(&self, dw: &DemoWeb) {
        let status = dw.status.clone().unwrap_or_default();
        if status.observed_generation.is_none()
            || status.observed_generation != dw.meta().generation
        {
            return;
        }
        let ready = status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        let now = Instant::now();
        self.update(&dw.name_any(), |p| {
            p.status.get_or_insert(now);
            if ready {
                p.ready.get_or_insert(now);
            }
        });
    }

    fn child<K: Resource>(&self, which: Child, obj: &K) {
        let owner = obj
            .meta()
            .owner_references
            .iter()
            .flatten()
            .find(|r| r.controller == Some(true) && r.kind == "DemoWeb");
        if let Some(owner) = owner {
            let now = Instant::now();
            self.update(&owner.name, |p| {
                p.children[which as usize].get_or_insert(now);
            });
        }
    }

    /// Apply → `done` latencies of the DemoWebs that got there, sorted.
    fn latencies(&self, done: impl Fn(&Progress) -> Option<Instant>) -> Vec<Duration> {
        let all = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<Duration> = all
            .values()
            .filter_map(|p| Some(done(p)?.saturating_duration_since(p.applied?)))
            .collect();
        out.sort();
        out
    }

    /// For each DemoWeb with children and a status: apply → first child, first → last child, last
    /// child → status (zero when the status came first), and apply → its Deployment.
    fn stages(&self) -> Vec<[Duration; 4]> {
        let all = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        all.values()
            .filter_map(|p| {
                let children: Vec<Instant> = p.children.iter().flatten().copied().collect();
                let (first, last) = (*children.iter().min()?, *children.iter().max()?);
                (children.len() == 3).then_some(())?;
                Some([
                    first.saturating_duration_since(p.applied?),
                    last - first,
                    p.status?.saturating_duration_since(last),
                    p.children[Child::Deployment as usize]?.saturating_duration_since(p.applied?),
                ])
            })
            .collect()
    }

    fn last(&self, done: impl Fn(&Progress) -> Option<Instant>) -> Option<Instant> {
        let all = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        all.values().filter_map(done).max()
    }

    fn not_done(&self, names: &[String]) -> Vec<String> {
        let all = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        names
            .iter()
            .filter(|n| all.get(*n).is_none_or(|p| p.current.is_none()))
            .cloned()
            .collect()
    }
}

/// Why readiness is not measured, if it is not: a cluster without nodes runs no pods, so no
/// DemoWeb can become Ready there. The emulator simulates ready pods.
async fn readiness_skipped(cluster: &Cluster) -> Option<String> {
    if cluster.emulator.is_some() {
        return None;
    }
    match Api::<Node>::all(cluster.client.clone())
        .list_metadata(&ListParams::default().limit(1))
        .await
    {
        Ok(nodes) if nodes.items.is_empty() => {
            Some("the cluster has no nodes, so no pod can become ready".to_owned())
        }
        _ => None,
    }
}

/// Lists, then watches from the list's resourceVersion (re-watching or re-listing when the stream
/// ends), calling `on` for every object seen; counts its own requests in `own` and signals
/// `started` once the first watch is open.
/// Runs `write` for every name, `--applies-in-flight` at a time, all at once from `start` or at
/// `--rate` a second; returns the errors. Each write is told when it was due (`start`, or its
/// turn at `--rate`): latencies count from then, for the floor and the operator alike, so that
/// the floor's writes waiting for a free connection count as the operator's DemoWebs waiting for
/// a free reconcile do.
async fn burst<F, Fut>(args: &Args, names: &[String], start: Instant, write: F) -> Vec<String>
where
    F: Fn(String, Instant) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let pace = args
        .rate
        .filter(|r| *r > 0.0)
        .map(|r| Duration::from_secs_f64(1.0 / r));
    let writes = names.iter().enumerate().map(|(i, name)| {
        let due = pace.map_or(start, |pace| start + pace * i as u32);
        let write = write(name.clone(), due);
        async move {
            tokio::time::sleep_until(due.into()).await;
            write.await
        }
    });
    futures::stream::iter(writes)
        .buffer_unordered(args.applies_in_flight.max(1))
        .filter_map(|r| async move { r.err() })
        .collect()
        .await
}

/// The API server's floor: what a new DemoWeb costs with no operator at all, measured the same way
/// in a namespace of its own. The benchmark applies each DemoWeb and, as soon as that returns, the
/// three children the operator writes for it (the operator's own builders, controlled by the
/// DemoWeb) at once, then a status for its generation: the operator's writes, without its watch,
/// queue, reads or Events. The namespace is deleted, and gone, before the operator's run starts.
async fn floor(args: &Args, cluster: &Cluster, report: &mut Report) -> Result<(), String> {
    let client = &cluster.client;
    let namespace = format!("bench-floor-{}", random_suffix());
    create_namespace(client, &namespace).await?;
    let own = Arc::new(AtomicU64::new(0));
    let tracker = Arc::new(Tracker::default());
    let watchers = start_watches(client, &namespace, &tracker, &own).await?;
    let names: Vec<String> = (1..=args.count).map(|i| format!("bench-{i:04}")).collect();
    let start = Instant::now();
    let failures = burst(args, &names, start, |name, due| {
        let tracker = tracker.clone();
        let client = client.clone();
        let namespace = namespace.clone();
        async move {
            tracker.applied(&name, due);
            write_as_the_operator(&client, &namespace, &name)
                .await
                .map_err(|e| format!("{name}: {e}"))
        }
    })
    .await;
    if let Some(first) = failures.first() {
        report.add("floor_failures", failures.len());
        eprintln!("{first}");
    }
    let mut current = tracker.current.subscribe();
    let all = tokio::time::timeout(
        Duration::from_secs(args.timeout_secs),
        current.wait_for(|n| *n >= args.count),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    for w in watchers {
        w.abort();
    }
    let latencies = tracker.latencies(|p| p.current);
    let ms = |d: Option<Duration>| {
        d.map_or("n/a".to_owned(), |d| {
            format!("{:.1}", d.as_secs_f64() * 1000.0)
        })
    };
    let last = tracker.last(|p| p.current).map(|t| t.duration_since(start));
    report.add(
        "floor_time_to_all_secs",
        match (all, last) {
            (true, Some(d)) => format!("{:.3}", d.as_secs_f64()),
            _ => "not reached".to_owned(),
        },
    );
    report.add("floor_latency_p50_ms", ms(percentile(&latencies, 50.0)));
    report.add("floor_latency_p99_ms", ms(percentile(&latencies, 99.0)));
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .delete(&namespace, &DeleteParams::default())
        .await
        .map_err(|e| format!("deleting {namespace}: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    while namespaces
        .get_opt(&namespace)
        .await
        .ok()
        .flatten()
        .is_some()
    {
        if Instant::now() > deadline {
            return Err(format!("namespace {namespace} not gone"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

/// One DemoWeb applied, then what the operator writes for it: its ConfigMap, Deployment and
/// Service at once, then its status.
async fn write_as_the_operator(client: &Client, namespace: &str, name: &str) -> Result<(), String> {
    use demoweb_operator::demoweb::desired::{self, GitAuth};
    use demoweb_operator::identity::workload::PodIdentity;
    let api: Api<DemoWeb> = Api::namespaced(client.clone(), namespace);
    let body = serde_json::json!({
        "apiVersion": "baeke.info/v1",
        "kind": "DemoWeb",
        "metadata": {"name": name},
        "spec": {"replicas": 1, "gitrepo": GITREPO},
    });
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    let dw = api
        .patch(name, &pp, &Patch::Apply(&body))
        .await
        .map_err(|e| e.to_string())?;
    let config_map = desired::desired_config_map(&dw);
    let deployment = desired::desired_deployment(&dw, &GitAuth::None, &PodIdentity::default());
    let service = desired::desired_service(&dw);
    let (config_maps, deployments, services) = (
        Api::<ConfigMap>::namespaced(client.clone(), namespace),
        Api::<Deployment>::namespaced(client.clone(), namespace),
        Api::<Service>::namespaced(client.clone(), namespace),
    );
    let config_map_name = desired::config_map_name(name);
    let (config_map, deployment, service) = (
        Patch::Apply(&config_map),
        Patch::Apply(&deployment),
        Patch::Apply(&service),
    );
    let (a, b, c) = tokio::join!(
        config_maps.patch(&config_map_name, &pp, &config_map),
        deployments.patch(name, &pp, &deployment),
        services.patch(name, &pp, &service),
    );
    a.map_err(|e| e.to_string())?;
    b.map_err(|e| e.to_string())?;
    c.map_err(|e| e.to_string())?;
    let now = jiff::Timestamp::now().to_string();
    let status = serde_json::json!({
        "apiVersion": "baeke.info/v1",
        "kind": "DemoWeb",
        "status": {
            "observedGeneration": dw.metadata.generation,
            "conditions": [{
                "type": "Ready", "status": "False", "reason": "Progressing",
                "message": "waiting for the Deployment", "lastTransitionTime": now,
                "observedGeneration": dw.metadata.generation,
            }],
        },
    });
    api.patch_status(name, &pp, &Patch::Apply(&status))
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// The benchmark's watches of a namespace's DemoWebs (with their status) and of the owners of their
/// children, feeding `tracker`; returns once every watch has started.
async fn start_watches(
    client: &Client,
    namespace: &str,
    tracker: &Arc<Tracker>,
    own: &Arc<AtomicU64>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, String> {
    let (started_tx, mut started_rx) = tokio::sync::mpsc::channel::<()>(4);
    let mut watchers = Vec::new();
    macro_rules! watch {
        ($kind:ty, $on:expr) => {{
            let api: Api<$kind> = Api::namespaced(client.clone(), namespace);
            let tracker = tracker.clone();
            watchers.push(tokio::spawn(watch_objects(
                api,
                own.clone(),
                started_tx.clone(),
                move |obj: &$kind| $on(&tracker, obj),
            )));
        }};
    }
    watch!(DemoWeb, |t: &Tracker, dw: &DemoWeb| t.demoweb(dw));
    // Of the children only their owners are read: metadata watches, so that the benchmark's own
    // decoding takes as little as it can of the CPU it shares with the operator.
    watch!(PartialObjectMeta<Deployment>, |t: &Tracker, o: &_| t
        .child(Child::Deployment, o));
    watch!(PartialObjectMeta<Service>, |t: &Tracker, o: &_| t
        .child(Child::Service, o));
    watch!(PartialObjectMeta<ConfigMap>, |t: &Tracker, o: &_| t
        .child(Child::ConfigMap, o));
    for _ in 0..watchers.len() {
        tokio::time::timeout(Duration::from_secs(60), started_rx.recv())
            .await
            .ok()
            .flatten()
            .ok_or("the benchmark's watches could not be started within 60s")?;
    }
    Ok(watchers)
}

async fn watch_objects<K>(
    api: Api<K>,
    own: Arc<AtomicU64>,
    started: tokio::sync::mpsc::Sender<()>,
    on: impl Fn(&K) + Send + 'static,
) where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let mut started = Some(started);
    'relist: loop {
        own.fetch_add(1, Ordering::SeqCst);
        let Ok(list) = api.list(&ListParams::default()).await else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        list.items.iter().for_each(&on);
        let mut version = list.metadata.resource_version.unwrap_or_default();
        loop {
            own.fetch_add(1, Ordering::SeqCst);
            let Ok(stream) = api
                .watch(&WatchParams::default().timeout(290), &version)
                .await
            else {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue 'relist;
            };
            if let Some(tx) = started.take() {
                let _ = tx.send(()).await;
            }
            let mut stream = stream.boxed();
            while let Ok(Some(event)) = stream.try_next().await {
                match event {
                    WatchEvent::Added(obj) | WatchEvent::Modified(obj) => {
                        on(&obj);
                        version = obj.resource_version().unwrap_or(version);
                    }
                    WatchEvent::Deleted(obj) => {
                        version = obj.resource_version().unwrap_or(version);
                    }
                    WatchEvent::Bookmark(b) => version = b.metadata.resource_version,
                    WatchEvent::Error(_) => continue 'relist,
                }
            }
        }
    }
}

async fn ensure_crds(cluster: &Cluster) -> Result<&'static str, String> {
    let served = Api::<DemoWeb>::all(cluster.client.clone())
        .list_metadata(&ListParams::default().limit(1))
        .await
        .is_ok();
    if served && cluster.emulator.is_none() {
        return Ok("already installed");
    }
    demoweb_tests::harness::install_crds(
        &cluster.client,
        &demoweb_crd::all_crds(),
        FIELD_MANAGER,
        Duration::from_secs(60),
    )
    .await?;
    Ok("installed")
}

async fn create_namespace(client: &Client, name: &str) -> Result<(), String> {
    let ns = serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/created-by": "demoweb-bench"}}
    });
    Api::<Namespace>::all(client.clone())
        .patch(name, &PatchParams::apply(FIELD_MANAGER), &Patch::Apply(&ns))
        .await
        .map_err(|e| format!("creating namespace {name}: {e}"))?;
    Ok(())
}

fn random_suffix() -> String {
    (0..5)
        .map(|_| (b'a' + rand::random_range(0..26u8)) as char)
        .collect()
}

/// The command that produced the report, as a user would type it.
fn command_line() -> String {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .skip_while(|a| a == "--")
        .collect();
    if args.is_empty() {
        "cargo bench-operator".to_owned()
    } else {
        format!("cargo bench-operator -- {}", args.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::{percentile, requests_by_verb, subtract_own, sum_metric, writes_by_resource};

    #[test]
    fn nearest_rank_percentiles() {
        let ms = |v: &[u64]| {
            v.iter()
                .map(|m| Duration::from_millis(*m))
                .collect::<Vec<_>>()
        };
        let hundred: Vec<u64> = (1..=100).collect();
        let cases: [(&[u64], f64, Option<u64>); 7] = [
            (&[], 50.0, None),
            (&[7], 50.0, Some(7)),
            (&[7], 99.0, Some(7)),
            (&[1, 2, 3, 4], 50.0, Some(2)),
            (&[1, 2, 3, 4], 99.0, Some(4)),
            (&hundred, 50.0, Some(50)),
            (&hundred, 99.0, Some(99)),
        ];
        for (values, p, want) in cases {
            assert_eq!(
                percentile(&ms(values), p),
                want.map(Duration::from_millis),
                "p{p} of {values:?}"
            );
        }
    }

    #[test]
    fn metric_sums_over_label_sets() {
        let text = "# HELP demoweb_api_writes Writes\n# TYPE demoweb_api_writes counter\n\
            demoweb_api_writes_total{verb=\"apply\",kind=\"Deployment\"} 3\n\
            demoweb_api_writes_total{verb=\"create\",kind=\"Event\"} 2\n\
            demoweb_reconciles_total{result=\"ok\"} 9\n\
            # EOF\n";
        assert_eq!(sum_metric(text, "demoweb_api_writes_total"), 5);
        assert_eq!(sum_metric(text, "demoweb_reconciles_total"), 9);
        assert_eq!(sum_metric(text, "missing"), 0);
    }

    fn counts(entries: &[(&str, &str, u64)]) -> BTreeMap<(String, String), u64> {
        entries
            .iter()
            .map(|(v, r, n)| ((v.to_string(), r.to_string()), *n))
            .collect()
    }

    #[test]
    fn request_deltas() {
        let before = counts(&[("list", "demowebs", 2), ("watch", "demowebs", 2)]);
        let after = counts(&[
            ("list", "demowebs", 2),
            ("watch", "demowebs", 3),
            ("apply", "demowebs", 10),
            ("apply", "deployments", 10),
            ("get", "demowebs", 1),
        ]);
        let mut by_verb = requests_by_verb(&before, &after);
        assert_eq!(
            by_verb,
            BTreeMap::from([
                ("apply".to_owned(), 20),
                ("get".to_owned(), 1),
                ("watch".to_owned(), 1)
            ])
        );
        subtract_own(&mut by_verb, 10, 11);
        assert_eq!(
            by_verb,
            BTreeMap::from([("apply".to_owned(), 10), ("get".to_owned(), 1)])
        );
        assert_eq!(
            writes_by_resource(&before, &after),
            counts(&[("apply", "demowebs", 10), ("apply", "deployments", 10)])
        );
    }
}
