//! Prometheus metrics: reconciles, their errors and durations, and every write to the API.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
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
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("demoweb");
        let reconciles = Family::<Labels, Counter>::default();
        let errors = Family::<Labels, Counter>::default();
        let duration = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        let writes = Family::<Labels, Counter>::default();
        let leader = Gauge::default();
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

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
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
}
