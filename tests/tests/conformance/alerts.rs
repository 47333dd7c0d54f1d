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

fn promtool() -> Option<PathBuf> {
    let found = Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    found.then(|| PathBuf::from("promtool"))
}

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

#[test]
fn alerts_fire_and_stay_quiet() {
    let Some(promtool) = promtool() else {
        eprintln!(
            "SKIPPED: promtool is not installed (Debian package `prometheus`; .ci/run installs it): the chart's alerts were not tested"
        );
        return;
    };
    let Some(rendered) = render(
        RELEASE,
        NAMESPACE,
        &json!({"metrics": {"prometheusRule": {"enabled": true}}}),
    ) else {
        eprintln!(
            "SKIPPED: the Python package helm-python-sdk is not installed (pip install helm-python-sdk): the chart's alerts were not tested"
        );
        return;
    };
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

    // Every alert the chart ships has unit tests that expect it to fire.
    let tests = std::fs::read_to_string(&source).expect("readable");
    for alert in rule["spec"]["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| r["alert"].as_str().map(str::to_owned))
    {
        let fires = tests.split("alertname: ").skip(1).any(|rest| {
            rest.starts_with(&format!("{alert}\n"))
                && !rest
                    .lines()
                    .nth(1)
                    .is_some_and(|l| l.contains("exp_alerts: []"))
        });
        assert!(fires, "{alert} has no promtool test in which it fires");
    }
}
