//! Prometheus metrics: reconciles, their errors and durations, every write to the API, and one set
//! of series per DemoWeb in kube-state-metrics' style.
//!
//! The per-site series are read at scrape time from the controller's DemoWeb store, as
//! kube-state-metrics reads its informer cache: the store follows every watch event (status writes,
//! deletions, re-lists after the operator was down or a watch expired, tombstones of DemoWebs this
//! version cannot decode), so a deleted DemoWeb's series disappear with it and no bookkeeping can
//! drift from the API. Only a replica running the controller (the leader) has a store, so only the
//! leader exports them.

use std::sync::{Arc, Mutex};

use demoweb_crd::DemoWeb;
use kube::runtime::reflector::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

/// The operator's metrics, registered in their own registry.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<Labels, Counter>,
    errors: Family<Labels, Counter>,
    duration: Histogram,
    writes: Family<Labels, Counter>,
    leader: Gauge,
    sites: SiteCollector,
}

/// The DemoWeb store the per-site series are read from, while a controller runs.
#[derive(Debug, Clone, Default)]
struct SiteCollector {
    store: Arc<Mutex<Option<Store<DemoWeb>>>>,
}

/// Each value a condition's `status` can take; one series per value, as kube-state-metrics does.
const CONDITION_STATUSES: [&str; 3] = ["True", "False", "Unknown"];

impl SiteCollector {
    fn sites(&self) -> Vec<Arc<DemoWeb>> {
        let store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        let mut sites = store.as_ref().map(Store::state).unwrap_or_default();
        sites.sort_by(|a, b| {
            (a.metadata.namespace.as_deref(), a.metadata.name.as_deref())
                .cmp(&(b.metadata.namespace.as_deref(), b.metadata.name.as_deref()))
        });
        sites
    }
}

/// One series: a site's labels, then the labels of the series, and its value.
fn series(
    family: &mut MetricEncoder<'_>,
    dw: &DemoWeb,
    extra: &[(&str, &str)],
    value: i64,
) -> Result<(), std::fmt::Error> {
    let site = [
        (
            "namespace",
            dw.metadata.namespace.as_deref().unwrap_or_default(),
        ),
        ("name", dw.metadata.name.as_deref().unwrap_or_default()),
    ];
    let labels = (site, extra);
    ConstGauge::new(value).encode(family.encode_family(&labels)?)
}

/// One family of per-site gauges: its descriptor, then what `each` writes for every site.
fn site_family(
    encoder: &mut DescriptorEncoder,
    name: &'static str,
    help: &str,
    sites: &[Arc<DemoWeb>],
    each: impl Fn(&mut MetricEncoder<'_>, &DemoWeb) -> Result<(), std::fmt::Error>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    sites.iter().try_for_each(|dw| each(&mut family, dw))
}

/// The series are written straight into the scrape's text, site by site, and the text goes out in
/// pieces as it is written: nothing a scrape holds grows with the number of sites but the list of
/// them.
impl Collector for SiteCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let sites = self.sites();
        site_family(
            &mut encoder,
            "info",
            "Information about a DemoWeb: its git repository and ref",
            &sites,
            |family, dw| {
                let git_ref = dw.spec.git_ref.as_deref().unwrap_or_default();
                let labels = [("gitrepo", dw.spec.gitrepo.as_str()), ("ref", git_ref)];
                series(family, dw, &labels, 1)
            },
        )?;
        site_family(
            &mut encoder,
            "spec_replicas",
            "Replicas a DemoWeb asks for (spec.replicas, or autoscaling.minReplicas when it autoscales)",
            &sites,
            |family, dw| {
                // An autoscaled site ignores spec.replicas; the fewest pods it asks for is its floor.
                let asked = dw
                    .spec
                    .autoscaling
                    .as_ref()
                    .map_or(dw.spec.replicas, |a| a.min_replicas);
                series(family, dw, &[], i64::from(asked))
            },
        )?;
        site_family(
            &mut encoder,
            "status_ready_replicas",
            "Ready replicas of a DemoWeb (status.readyReplicas)",
            &sites,
            |family, dw| {
                let ready = dw.status.as_ref().and_then(|s| s.ready_replicas);
                series(family, dw, &[], i64::from(ready.unwrap_or_default()))
            },
        )?;
        site_family(
            &mut encoder,
            "status_condition",
            "The current status of each DemoWeb condition, with its reason: 1 for the status it has, 0 for the others",
            &sites,
            |family, dw| {
                let conditions = dw.status.as_ref().map(|s| s.conditions.as_slice());
                for c in conditions.unwrap_or_default() {
                    for value in CONDITION_STATUSES {
                        let labels = [
                            ("type", c.type_.as_str()),
                            ("status", value),
                            ("reason", c.reason.as_str()),
                        ];
                        series(family, dw, &labels, i64::from(c.status == value))?;
                    }
                }
                Ok(())
            },
        )
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("demoweb");
        let reconciles = Family::<Labels, Counter>::default();
        let errors = Family::<Labels, Counter>::default();
        let duration = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        let writes = Family::<Labels, Counter>::default();
        let leader = Gauge::default();
        let sites = SiteCollector::default();
        registry.register_collector(Box::new(sites.clone()));
        registry.register(
            "reconciles",
            "DemoWeb reconciliations, by result (ok, stalled, error)",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Failed DemoWeb reconciliations, by the operation that failed",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time one DemoWeb reconciliation took",
            duration.clone(),
        );
        registry.register(
            "api_writes",
            "Writes this operator made to the API, by verb and kind",
            writes.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease",
            leader.clone(),
        );
        Self {
            registry,
            reconciles,
            errors,
            duration,
            writes,
            leader,
            sites,
        }
    }
}

impl Metrics {
    pub fn count_reconcile(&self, result: &str, seconds: f64) {
        self.reconciles
            .get_or_create(&vec![("result".to_owned(), result.to_owned())])
            .inc();
        self.duration.observe(seconds);
    }

    pub fn count_error(&self, operation: &str) {
        self.errors
            .get_or_create(&vec![("operation".to_owned(), operation.to_owned())])
            .inc();
    }

    pub fn count_write(&self, verb: &str, kind: &str) {
        self.writes
            .get_or_create(&vec![
                ("verb".to_owned(), verb.to_owned()),
                ("kind".to_owned(), kind.to_owned()),
            ])
            .inc();
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// Exports one set of series per DemoWeb in `store` (the controller's), until `forget_sites`.
    pub fn watch_sites(&self, store: Store<DemoWeb>) {
        *self.sites.store.lock().unwrap_or_else(|e| e.into_inner()) = Some(store);
    }

    /// Stops exporting per-site series (the controller stopped, e.g. leadership was lost).
    pub fn forget_sites(&self) {
        *self.sites.store.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Writes the Prometheus text exposition of every metric into `out` as it goes (the server
    /// sends it in pieces: with thousands of DemoWebs it runs to megabytes).
    pub fn render_into(&self, out: &mut impl std::fmt::Write) -> std::fmt::Result {
        encode(out, &self.registry)
    }

    /// The whole text at once.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = self.render_into(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts() {
        let m = Metrics::default();
        m.count_reconcile("ok", 0.01);
        m.count_write("apply_create", "Deployment");
        let text = m.render();
        assert!(
            text.contains("demoweb_reconciles_total{result=\"ok\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("demoweb_api_writes_total{verb=\"apply_create\",kind=\"Deployment\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("demoweb_reconcile_duration_seconds_count 1"),
            "{text}"
        );
    }

    fn site(name: &str, ready: &str) -> DemoWeb {
        let mut dw: DemoWeb = serde_json::from_value(serde_json::json!({
            "apiVersion": "baeke.info/v1",
            "kind": "DemoWeb",
            "metadata": {"name": name, "namespace": "web", "uid": format!("uid-{name}")},
            "spec": {"replicas": 2, "gitrepo": "https://github.com/gbaeke/static-web.git"},
        }))
        .expect("a DemoWeb");
        dw.status = Some(demoweb_crd::DemoWebStatus {
            ready_replicas: Some(1),
            conditions: vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
                type_: "Ready".into(),
                status: ready.into(),
                reason: "WaitingForReplicas".into(),
                message: String::new(),
                observed_generation: Some(1),
                last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    jiff::Timestamp::UNIX_EPOCH,
                ),
            }],
            ..Default::default()
        });
        dw
    }

    #[test]
    fn per_site_series_follow_the_store() {
        use kube::runtime::watcher::Event;
        let m = Metrics::default();
        let (reader, mut writer) = kube::runtime::reflector::store::<DemoWeb>();
        m.watch_sites(reader);
        writer.apply_watcher_event(&Event::Apply(site("a", "False")));
        writer.apply_watcher_event(&Event::Apply(site("b", "True")));
        let mut scaled = site("s", "True");
        scaled.spec.autoscaling = Some(demoweb_crd::demoweb::AutoscalingSpec {
            min_replicas: 3,
            max_replicas: 9,
            target_cpu_utilization_percentage: None,
        });
        writer.apply_watcher_event(&Event::Apply(scaled));
        let text = m.render();
        for line in [
            r#"demoweb_spec_replicas{namespace="web",name="s"} 3"#,
            r#"demoweb_info{namespace="web",name="a",gitrepo="https://github.com/gbaeke/static-web.git",ref=""} 1"#,
            r#"demoweb_spec_replicas{namespace="web",name="a"} 2"#,
            r#"demoweb_status_ready_replicas{namespace="web",name="a"} 1"#,
            r#"demoweb_status_condition{namespace="web",name="a",type="Ready",status="True",reason="WaitingForReplicas"} 0"#,
            r#"demoweb_status_condition{namespace="web",name="a",type="Ready",status="False",reason="WaitingForReplicas"} 1"#,
            r#"demoweb_status_condition{namespace="web",name="a",type="Ready",status="Unknown",reason="WaitingForReplicas"} 0"#,
            r#"demoweb_status_condition{namespace="web",name="b",type="Ready",status="True",reason="WaitingForReplicas"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
        }
        assert!(
            text.contains("# TYPE demoweb_status_condition gauge"),
            "{text}"
        );

        // Deleted while watched.
        writer.apply_watcher_event(&Event::Delete(site("a", "False")));
        let text = m.render();
        assert!(!text.contains(r#"name="a""#), "{text}");
        assert!(text.contains(r#"name="b""#), "{text}");

        // Deleted while the watch was down: the re-list no longer has it.
        writer.apply_watcher_event(&Event::Init);
        writer.apply_watcher_event(&Event::InitDone);
        assert!(!m.render().contains(r#"name="b""#));

        // The controller stopped (leadership lost): no per-site series at all.
        writer.apply_watcher_event(&Event::Apply(site("c", "True")));
        assert!(m.render().contains(r#"name="c""#));
        m.forget_sites();
        assert!(!m.render().contains("demoweb_info{"));
    }
}
