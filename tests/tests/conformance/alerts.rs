//! The chart's alerts, checked by Prometheus' own `promtool`: the rules rendered from the chart pass
//! `promtool check rules`, and `tests/promtool/demoweb-alerts.test.yaml` fires and does not fire
//! each alert on synthetic series (`promtool test rules`). The rules file is rendered here, never
//! kept as a copy, so the unit tests cannot drift from what the chart ships.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::chart::render;

/// The release and namespace the unit tests' series and expected annotations are written for.
const RELEASE: &str = "demoweb";
const NAMESPACE: &str = "demoweb-system";

fn run(promtool: &Path, args: &[&std::ffi::OsStr]) {
    let out = Command::new(promtool)
        .args(args)
        .output()
        .expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg_attr(
    any(no_go, no_promtool),
    ignore = "needs promtool (Debian package `prometheus`) and Go (Helm is built from its module), one of which was missing when the tests were built"
)]
#[test]
fn alerts_fire_and_stay_quiet() {
    let promtool = PathBuf::from("promtool");
    let rendered = render(
        RELEASE,
        NAMESPACE,
        &json!({"metrics": {"prometheusRule": {"enabled": true}}}),
    );
    let objects = rendered.expect("the chart renders with metrics.prometheusRule.enabled");
    let rule = objects
        .iter()
        .find(|o| o["kind"] == "PrometheusRule")
        .expect("a PrometheusRule is rendered");

    let dir = tempfile::tempdir().expect("a temporary directory");
    // A PrometheusRule's spec is a Prometheus rules file.
    let rules = dir.path().join("demoweb-operator.rules.yaml");
    std::fs::write(
        &rules,
        demoweb_crd::yaml::to_string(&rule["spec"]).expect("YAML"),
    )
    .expect("rules written");
    let source =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("promtool/demoweb-alerts.test.yaml");
    let unit_tests = dir.path().join("demoweb-alerts.test.yaml");
    std::fs::copy(&source, &unit_tests).expect("unit tests copied next to the rules");

    run(
        &promtool,
        &["check".as_ref(), "rules".as_ref(), rules.as_os_str()],
    );
    run(
        &promtool,
        &["test".as_ref(), "rules".as_ref(), unit_tests.as_os_str()],
    );

    // Every alert the chart ships has a unit test in which it fires and one in which it does not.
    let unit: serde_json::Value =
        demoweb_crd::yaml::from_str(&std::fs::read_to_string(&source).expect("readable"))
            .expect("the unit tests parse");
    let cases: Vec<(String, bool)> = unit["tests"]
        .as_array()
        .expect("tests")
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_array().cloned().unwrap_or_default())
        .map(|c| {
            let fires = c["exp_alerts"].as_array().is_some_and(|a| !a.is_empty());
            (
                c["alertname"].as_str().unwrap_or_default().to_owned(),
                fires,
            )
        })
        .collect();
    for alert in rule["spec"]["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| r["alert"].as_str().map(str::to_owned))
    {
        for fires in [true, false] {
            assert!(
                cases.contains(&(alert.clone(), fires)),
                "{alert} has no promtool test in which it {}",
                if fires { "fires" } else { "stays quiet" }
            );
        }
    }
}
