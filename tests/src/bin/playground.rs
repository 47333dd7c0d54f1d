//! The playground: the API emulator, the CRDs, the real operator and every valid example, then what
//! a user would see with kubectl, serving until Ctrl-C so the cluster can be explored.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use demoweb_crd::DemoWeb;
use demoweb_tests::emulator::{Emulator, EmulatorOptions};
use demoweb_tests::operator_process::{self, OperatorProcess};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::ApiResource;
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::Value;

/// The operator's allocator: this executable also runs as the operator (`__operator`, see
/// `operator_process`), which must measure and behave like the shipped binary
/// (docs/decisions/jemalloc.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const NAMESPACE: &str = "playground";
const FIELD_MANAGER: &str = "playground";
/// How long the operator may take to reconcile every example.
const SETTLE_DEADLINE: Duration = Duration::from_secs(60);

#[derive(Parser)]
#[command(
    about = "Run the operator against the API emulator with the examples applied, and explore it with kubectl"
)]
struct Args {
    /// Print what the cluster holds once the examples are reconciled, then exit.
    #[arg(long)]
    once: bool,
    /// Where to write the kubeconfig and the operator's log (default: target/playground).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Port of the emulator on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// The examples directory (its `invalid/` and `flux/` sub-directories are skipped).
    #[arg(long)]
    examples: Option<PathBuf>,
}

fn main() -> ExitCode {
    operator_process::main(playground)
}

async fn playground(args: Args) -> Result<ExitCode, String> {
    let dir = args
        .dir
        .unwrap_or_else(|| operator_process::default_dir("playground"));
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let dir = dir.canonicalize().unwrap_or(dir);
    let kubeconfig = dir.join("kubeconfig");
    let log = dir.join("operator.log");
    let examples = args
        .examples
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples"));

    let emulator = Emulator::start(EmulatorOptions {
        port: args.port,
        ..EmulatorOptions::default()
    })
    .await
    .map_err(|e| format!("starting the emulator: {e}"))?;
    // The context names the namespace the operator watches, so `kubectl get dweb` without `-n`
    // shows the sites, and `kubectl apply -f` without `-n` creates where the operator looks.
    emulator
        .write_kubeconfig_in(&kubeconfig, NAMESPACE)
        .map_err(|e| format!("writing {}: {e}", kubeconfig.display()))?;
    println!("API emulator serving on {}", emulator.url());
    println!("kubeconfig: {}", kubeconfig.display());
    println!("kubeconfig context namespace: {NAMESPACE} (kubectl needs no -n)");
    let client = emulator.client();

    demoweb_tests::harness::install_crds(
        &client,
        &demoweb_crd::all_crds(),
        FIELD_MANAGER,
        Duration::from_secs(30),
    )
    .await?;
    // Kong's CRDs, as a cluster running Kong serves them: seed 004's example names a KongPlugin
    // (basic-auth) next to its allowlist, and the operator writes its allowlist as a KongPlugin.
    demoweb_tests::harness::install_crds(
        &client,
        &demoweb_tests::kong::crds(),
        FIELD_MANAGER,
        Duration::from_secs(30),
    )
    .await?;
    println!("CRDs installed: {}", crd_names().join(", "));
    create_namespace(&client).await?;

    let mut operator = OperatorProcess::spawn(&kubeconfig, NAMESPACE, &log, &[])
        .map_err(|e| format!("starting the operator: {e}"))?;
    let metrics = operator
        .wait_serving(Duration::from_secs(30))
        .await
        .map_err(|e| format!("{e}\n(operator log: {})", log.display()))?;
    println!(
        "operator running (pid {}), watching namespace {NAMESPACE}; metrics on http://{metrics}/metrics; log: {}",
        operator.pid(),
        log.display()
    );

    let docs = load_examples(&examples)?;
    println!(
        "\napplying {} objects from {}:",
        docs.len(),
        examples.display()
    );
    let mut rejected = 0;
    for (file, doc) in &docs {
        let what = format!("{}/{}", doc["kind"].as_str().unwrap_or("?"), name_of(doc));
        match apply(&client, doc).await {
            Ok(()) => println!("  {what:<45} applied ({file})"),
            Err(e) => {
                rejected += 1;
                println!("  {what:<45} REJECTED ({file}): {e}");
            }
        }
    }

    let settled = wait_settled(&client).await?;
    print_state(&client).await?;
    if !settled.is_empty() {
        println!(
            "\nstill reconciling after {SETTLE_DEADLINE:?}: {}",
            settled.join(", ")
        );
    }
    // A site that is not Ready is the playground working as intended (an example may name an
    // ingress controller the emulator does not run); it is shown with why, not failed.
    print_not_ready(&client).await?;
    let healthy = rejected == 0 && settled.is_empty();

    if args.once {
        operator.stop(Duration::from_secs(5)).await;
        emulator.shutdown().await;
        return Ok(if healthy {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }

    let kc = kubeconfig.display();
    println!("\nExplore with kubectl (the kubeconfig's context is namespace {NAMESPACE}):");
    println!("  export KUBECONFIG={kc}");
    println!("  kubectl get dweb,deploy,svc,ingress,cm,sa");
    println!("  kubectl get dweb -o wide");
    println!("  kubectl describe dweb demoweb1");
    println!("  kubectl get events");
    println!(
        "  kubectl apply -f examples/demoweb-seed.yaml   # edit it first: the operator follows"
    );
    println!("The operator reconciles what you change. Ctrl-C stops everything.");
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                if let Some(status) = operator.exited() {
                    eprintln!(
                        "the operator exited ({status}); the API keeps serving. Log tail:\n{}",
                        operator.log_tail(20)
                    );
                    tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
                    break;
                }
            }
        }
    }
    println!("\nstopping");
    operator.stop(Duration::from_secs(5)).await;
    emulator.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

fn crd_names() -> Vec<String> {
    demoweb_crd::all_crds()
        .into_iter()
        .chain(demoweb_tests::kong::crds())
        .filter_map(|c| c.metadata.name)
        .collect()
}

async fn create_namespace(client: &Client) -> Result<(), String> {
    let ns = serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}
    });
    Api::<Namespace>::all(client.clone())
        .patch(
            NAMESPACE,
            &PatchParams::apply(FIELD_MANAGER),
            &Patch::Apply(&ns),
        )
        .await
        .map_err(|e| format!("creating namespace {NAMESPACE}: {e}"))?;
    Ok(())
}

/// Every document of every YAML file under `dir` except `invalid/`, `flux/` and kustomization
/// files, as (file, object): identities first so the DemoWebs that use them resolve on their first
/// reconcile.
fn load_examples(dir: &Path) -> Result<Vec<(String, Value)>, String> {
    let mut files = Vec::new();
    collect_yaml(dir, &mut files)?;
    files.sort();
    let mut docs = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("reading {}: {e}", file.display()))?;
        let shown = file
            .strip_prefix(dir)
            .unwrap_or(&file)
            .display()
            .to_string();
        for doc in demoweb_crd::yaml::documents(&text)
            .map_err(|e| format!("parsing {}: {e}", file.display()))?
        {
            if doc.is_object() {
                docs.push((shown.clone(), doc));
            }
        }
    }
    docs.sort_by_key(|(_, doc)| doc["kind"] == "DemoWeb");
    Ok(docs)
}

fn collect_yaml(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.is_dir() {
            // invalid/ is refused by design; flux/ holds Flux's kinds, which the emulator does not serve.
            if path
                .file_name()
                .is_some_and(|n| n != "invalid" && n != "flux")
            {
                collect_yaml(&path, out)?;
            }
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml")
            && path.file_stem().is_some_and(|s| s != "kustomization")
        {
            out.push(path);
        }
    }
    Ok(())
}

fn name_of(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().unwrap_or("?")
}

/// The annotation in which client-side `kubectl apply` keeps what it applied last.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// `doc` as client-side `kubectl apply -n playground` would send it: in the playground namespace,
/// carrying itself as its last-applied configuration, so a user's `kubectl apply -f examples/...`
/// over it computes its three-way merge instead of warning that the annotation is missing.
fn as_kubectl_applies(doc: &Value) -> Value {
    let mut doc = doc.clone();
    if let Some(meta) = doc["metadata"].as_object_mut() {
        meta.entry("namespace")
            .or_insert_with(|| Value::from(NAMESPACE));
        // kubectl records the object with its own annotation taken out again, which leaves an
        // empty `annotations` map where the file had none.
        let annotations = meta
            .entry("annotations")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(annotations) = annotations.as_object_mut() {
            annotations.remove(LAST_APPLIED);
        }
    }
    let last_applied = serde_json::to_string(&doc).unwrap_or_default();
    doc["metadata"]["annotations"][LAST_APPLIED] = Value::from(last_applied + "\n");
    doc
}

/// Server-side apply of one example into the playground namespace, with the annotation that
/// client-side `kubectl apply` reads (see [`as_kubectl_applies`]).
async fn apply(client: &Client, doc: &Value) -> Result<(), String> {
    let api_version = doc["apiVersion"].as_str().ok_or("no apiVersion")?;
    let kind = doc["kind"].as_str().ok_or("no kind")?;
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (resource, _caps): (ApiResource, _) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .map_err(|e| format!("{api_version} {kind} is not served: {e}"))?;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), NAMESPACE, &resource);
    api.patch(
        name_of(doc),
        &PatchParams::apply(FIELD_MANAGER),
        &Patch::Apply(as_kubectl_applies(doc)),
    )
    .await
    .map_err(|e| match e {
        kube::Error::Api(s) => s.message,
        other => other.to_string(),
    })?;
    Ok(())
}

fn condition_status<'a>(dw: &'a DemoWeb, type_: &str) -> Option<&'a str> {
    dw.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.as_str())
}

/// Whether the operator has looked at the current spec and stopped working on it (Ready or
/// Stalled, no longer Reconciling).
fn settled(dw: &DemoWeb) -> bool {
    let current = dw.status.as_ref().and_then(|s| s.observed_generation) == dw.meta().generation;
    current && condition_status(dw, "Reconciling") != Some("True")
}

/// Polls until every DemoWeb has settled; returns the names of those that did not in time.
async fn wait_settled(client: &Client) -> Result<Vec<String>, String> {
    let api: Api<DemoWeb> = Api::namespaced(client.clone(), NAMESPACE);
    let start = Instant::now();
    loop {
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|e| format!("listing DemoWebs: {e}"))?;
        let pending: Vec<String> = list
            .items
            .iter()
            .filter(|dw| !settled(dw))
            .map(|dw| dw.name_any())
            .collect();
        if pending.is_empty() || start.elapsed() > SETTLE_DEADLINE {
            return Ok(pending);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// (kind, name, controller owner uids) of everything the operator may create.
async fn children(client: &Client) -> Result<Vec<(String, String, Vec<String>)>, String> {
    async fn of<K>(
        client: &Client,
        out: &mut Vec<(String, String, Vec<String>)>,
    ) -> Result<(), String>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        <K as Resource>::DynamicType: Default,
    {
        let kind = K::kind(&Default::default()).to_string();
        let list = Api::<K>::namespaced(client.clone(), NAMESPACE)
            .list(&ListParams::default())
            .await
            .map_err(|e| format!("listing {kind}s: {e}"))?;
        for obj in list.items {
            let meta: &ObjectMeta = obj.meta();
            let owners = meta
                .owner_references
                .iter()
                .flatten()
                .map(|r| r.uid.clone())
                .collect();
            out.push((kind.clone(), obj.name_any(), owners));
        }
        Ok(())
    }
    let mut out = Vec::new();
    of::<ConfigMap>(client, &mut out).await?;
    of::<Deployment>(client, &mut out).await?;
    of::<Ingress>(client, &mut out).await?;
    of::<Service>(client, &mut out).await?;
    of::<ServiceAccount>(client, &mut out).await?;
    Ok(out)
}

async fn print_state(client: &Client) -> Result<(), String> {
    let mut demowebs = Api::<DemoWeb>::namespaced(client.clone(), NAMESPACE)
        .list(&ListParams::default())
        .await
        .map_err(|e| format!("listing DemoWebs: {e}"))?
        .items;
    demowebs.sort_by_key(|dw| dw.name_any());
    let now = k8s_openapi::jiff::Timestamp::now();

    println!("\n$ kubectl -n {NAMESPACE} get dweb -o wide");
    let mut rows = vec![
        [
            "NAME",
            "READY",
            "REASON",
            "REPLICAS",
            "READYREPLICAS",
            "GITREPO",
            "MESSAGE",
            "URL",
            "AGE",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for dw in &demowebs {
        let status = dw.status.clone().unwrap_or_default();
        let age = dw
            .meta()
            .creation_timestamp
            .as_ref()
            .map(|t| human_duration(now.as_second() - t.0.as_second()))
            .unwrap_or_else(|| "<unknown>".to_owned());
        let ready = status.conditions.iter().find(|c| c.type_ == "Ready");
        rows.push(vec![
            dw.name_any(),
            none_or(ready.map(|c| c.status.clone())),
            none_or(ready.map(|c| c.reason.clone())),
            none_or(status.replicas.map(|r| r.to_string())),
            none_or(status.ready_replicas.map(|r| r.to_string())),
            dw.spec.gitrepo.clone(),
            none_or(ready.map(|c| c.message.clone())),
            none_or(status.url),
            age,
        ]);
    }
    print!("{}", table(&rows));

    let children = children(client).await?;
    let events = Api::<Event>::namespaced(client.clone(), NAMESPACE)
        .list(&ListParams::default())
        .await
        .map_err(|e| format!("listing Events: {e}"))?
        .items;
    for dw in &demowebs {
        println!("\nDemoWeb {}", dw.name_any());
        let status = dw.status.clone().unwrap_or_default();
        println!(
            "  generation {}, observedGeneration {}",
            none_or(dw.meta().generation.map(|g| g.to_string())),
            none_or(status.observed_generation.map(|g| g.to_string()))
        );
        println!("  conditions:");
        if status.conditions.is_empty() {
            println!("    <none>");
        }
        for c in &status.conditions {
            let line = format!(
                "    {:<12} {:<6} {:<24} {}",
                c.type_, c.status, c.reason, c.message
            );
            println!("{}", line.trim_end());
        }
        let uid = dw.meta().uid.clone().unwrap_or_default();
        let mut mine: Vec<String> = children
            .iter()
            .filter(|(_, _, owners)| owners.contains(&uid))
            .map(|(kind, name, _)| format!("{kind}/{name}"))
            .collect();
        mine.sort();
        println!("  children:");
        if mine.is_empty() {
            println!("    <none>");
        }
        for child in mine {
            println!("    {child}");
        }
        let mut about: Vec<&Event> = events
            .iter()
            .filter(|e| {
                e.regarding
                    .as_ref()
                    .is_some_and(|r| r.uid.as_deref() == Some(uid.as_str()))
            })
            .collect();
        about.sort_by_key(|e| e.metadata.creation_timestamp.as_ref().map(|t| t.0));
        println!("  events:");
        if about.is_empty() {
            println!("    <none>");
        }
        for e in about {
            let line = format!(
                "    {:<8} {:<24} {}",
                e.type_.as_deref().unwrap_or(""),
                e.reason.as_deref().unwrap_or(""),
                e.note.as_deref().unwrap_or("")
            );
            println!("{}", line.trim_end());
        }
    }
    Ok(())
}

/// Prints each DemoWeb that is not Ready with its Ready condition's reason and message (what
/// `kubectl get dweb` shows in its REASON column and `-o wide` in MESSAGE).
async fn print_not_ready(client: &Client) -> Result<(), String> {
    let mut demowebs = Api::<DemoWeb>::namespaced(client.clone(), NAMESPACE)
        .list(&ListParams::default())
        .await
        .map_err(|e| format!("listing DemoWebs: {e}"))?
        .items;
    demowebs.sort_by_key(|dw| dw.name_any());
    let lines: Vec<String> = demowebs
        .iter()
        .filter_map(|dw| {
            let ready = dw
                .status
                .as_ref()
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
            match ready {
                Some(c) if c.status == "True" => None,
                Some(c) => Some(format!(
                    "  {}: Ready={} {}: {}",
                    dw.name_any(),
                    c.status,
                    c.reason,
                    c.message
                )),
                None => Some(format!(
                    "  {}: not reconciled yet (no Ready condition)",
                    dw.name_any()
                )),
            }
        })
        .collect();
    if lines.is_empty() {
        println!("\nevery DemoWeb is Ready");
    } else {
        println!("\nnot Ready ({} of {}):", lines.len(), demowebs.len());
        for line in &lines {
            println!("{line}");
        }
    }
    Ok(())
}

fn none_or(v: Option<String>) -> String {
    v.unwrap_or_else(|| "<none>".to_owned())
}

/// Left-aligned columns separated by three spaces, as kubectl prints them.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}   ", width = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// An age as kubectl shows it (apimachinery's `duration.HumanDuration`).
fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".to_owned();
    }
    let seconds = seconds.max(0);
    let minutes = seconds / 60;
    let hours = minutes / 60;
    let days = hours / 24;
    let years = days / 365;
    let pair = |a: i64, ua: &str, b: i64, ub: &str| {
        if b == 0 {
            format!("{a}{ua}")
        } else {
            format!("{a}{ua}{b}{ub}")
        }
    };
    if seconds < 60 * 2 {
        format!("{seconds}s")
    } else if minutes < 10 {
        pair(minutes, "m", seconds % 60, "s")
    } else if minutes < 60 * 3 {
        format!("{minutes}m")
    } else if hours < 8 {
        pair(hours, "h", minutes % 60, "m")
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        pair(days, "d", hours % 24, "h")
    } else if hours < 24 * 365 * 2 {
        format!("{days}d")
    } else if hours < 24 * 365 * 8 {
        pair(years, "y", days % 365, "d")
    } else {
        format!("{years}y")
    }
}

#[cfg(test)]
mod tests {
    use super::{human_duration, table};

    #[test]
    fn ages_as_kubectl_prints_them() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (59, "59s"),
            (119, "119s"),
            (120, "2m"),
            (185, "3m5s"),
            (600, "10m"),
            (3 * 3600 - 1, "179m"),
            (3 * 3600 + 60, "3h1m"),
            (8 * 3600, "8h"),
            (47 * 3600, "47h"),
            (2 * 86400 + 3600, "2d1h"),
            (8 * 86400, "8d"),
            (3 * 365 * 86400 + 86400, "3y1d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs), want, "{secs}s");
        }
    }

    #[test]
    fn columns_line_up() {
        let rows = vec![
            vec!["NAME".to_owned(), "READY".to_owned()],
            vec!["demoweb1".to_owned(), "2".to_owned()],
        ];
        assert_eq!(table(&rows), "NAME       READY\ndemoweb1   2\n");
    }
}
