//! Every file under `examples/` parses into the Rust types without losing a field, and validates
//! as intended: files under `examples/invalid/` fail with the message their `# expect:` line names.
//! The GitOps files (`examples/flux/`, Flux's kinds, and kustomization files, kustomize's)
//! are not ours to parse into types: they are checked for what makes them work together — the API
//! versions Flux serves, references that resolve, paths that exist, and the chart ordered before
//! the DemoWebs.

use std::path::{Path, PathBuf};

use demoweb_crd::{AzureIdentity, AzureIdentityBinding, DemoWeb, FieldError, yaml};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

fn example_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("examples/ is readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            example_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml") || is_kustomization(&path) {
            out.push(path);
        }
    }
}

/// True when every field of `sub` is in `sup` with the same value (defaults may add fields).
fn is_subset(sub: &Value, sup: &Value) -> bool {
    match (sub, sup) {
        (Value::Object(a), Value::Object(b)) => a
            .iter()
            .all(|(k, v)| b.get(k).is_some_and(|w| is_subset(v, w))),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(v, w)| is_subset(v, w))
        }
        _ => sub == sup,
    }
}

/// Parses `doc` as `T`, checks nothing was dropped, and returns the validation result.
fn round_trip<T: DeserializeOwned + Serialize>(
    path: &Path,
    doc: &Value,
    validate: impl Fn(&T) -> Result<(), Vec<FieldError>>,
) -> Result<(), Vec<FieldError>> {
    let typed: T = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("{}: does not parse: {e}", path.display()));
    let back = serde_json::to_value(&typed).expect("serialises");
    assert!(
        is_subset(doc, &back),
        "{}: fields were dropped in the round trip\n  file: {doc}\n  typed: {back}",
        path.display()
    );
    validate(&typed)
}

/// The file names kustomize (and Flux) recognise as a kustomization. `examples/` uses
/// `Kustomization`, which has no `.yaml` suffix, so `kubectl apply -f examples/` skips it.
const KUSTOMIZATION_NAMES: &[&str] = &["kustomization.yaml", "kustomization.yml", "Kustomization"];

fn is_kustomization(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| KUSTOMIZATION_NAMES.iter().any(|k| n == *k))
}

/// Kong's kinds the examples may carry beside DemoWebs (seed 004's KongPlugin and KongConsumer).
const KONG_KINDS: &[(&str, &str)] = &[
    ("configuration.konghq.com/v1", "KongPlugin"),
    ("configuration.konghq.com/v1", "KongClusterPlugin"),
    ("configuration.konghq.com/v1", "KongConsumer"),
];

fn is_kong_kind(doc: &Value) -> bool {
    let key = (
        doc["apiVersion"].as_str().unwrap_or_default(),
        doc["kind"].as_str().unwrap_or_default(),
    );
    KONG_KINDS.contains(&key)
}

/// Flux's and kustomize's files, checked by `flux_examples_deploy_the_chart_before_the_sites`.
fn is_gitops_file(root: &Path, path: &Path) -> bool {
    path.starts_with(root.join("flux")) || is_kustomization(path)
}

/// `kubectl apply -f examples/` reads every `.yaml`, `.yml` and `.json` file of the directory (not
/// its sub-directories): each must be a Kubernetes object it can apply, never a kustomization.
#[test]
fn kubectl_apply_f_examples_finds_only_objects() {
    let root = repo_root().join("examples");
    for entry in std::fs::read_dir(&root).expect("examples/ is readable") {
        let path = entry.expect("directory entry").path();
        let applied = path.is_file()
            && path
                .extension()
                .is_some_and(|e| e == "yaml" || e == "yml" || e == "json");
        if !applied {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable");
        for doc in yaml::documents(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display())) {
            let api = doc["apiVersion"].as_str().unwrap_or_default();
            assert!(
                !api.starts_with("kustomize.config.k8s.io/"),
                "{}: kubectl apply -f examples/ would try to apply this kustomization",
                path.display()
            );
            // Kong's kinds (demoweb-kong-allowlist.yaml, seed 004's KongPlugin and consumer)
            // apply only where the cluster serves Kong's CRDs, as a cluster running Kong does
            // and the playground does; elsewhere kubectl applies the rest and names them.
            assert!(
                matches!(doc["kind"].as_str(), Some("DemoWeb" | "Secret")) || is_kong_kind(&doc),
                "{}: {:?} in examples/ itself (identities live in examples/identity/)",
                path.display(),
                doc["kind"]
            );
        }
    }
}

#[test]
fn every_example_parses_round_trips_and_validates() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files = Vec::new();
    example_files(&root, &mut files);
    assert!(
        files.len() >= 10,
        "expected the examples to be found, got {files:?}"
    );
    for path in files {
        if is_gitops_file(&root, &path) {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable");
        // `# expect: MESSAGE`: the API server refuses the file with MESSAGE (checked against the
        // emulator or a cluster by the integration tests); `# expect-event: REASON: MESSAGE`: the
        // API server accepts it and the operator reports it in a Warning Event. Either way the
        // Rust validation, which the operator runs, finds MESSAGE.
        let expect = text.lines().find_map(|l| {
            l.strip_prefix("# expect: ").map(str::to_owned).or_else(|| {
                let (_reason, message) = l.strip_prefix("# expect-event: ")?.split_once(": ")?;
                Some(message.to_owned())
            })
        });
        let invalid = path.components().any(|c| c.as_os_str() == "invalid");
        assert_eq!(
            invalid,
            expect.is_some(),
            "{}: files under invalid/ (and only they) need an `# expect:` or `# expect-event: REASON:` line",
            path.display()
        );
        let docs = yaml::documents(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut errors = Vec::new();
        for doc in &docs {
            let result = match doc["kind"].as_str() {
                Some("DemoWeb") => round_trip::<DemoWeb>(&path, doc, DemoWeb::validate),
                Some("AzureIdentity") => {
                    round_trip::<AzureIdentity>(&path, doc, |o| o.spec.validate())
                }
                Some("AzureIdentityBinding") => {
                    round_trip::<AzureIdentityBinding>(&path, doc, |o| o.spec.validate())
                }
                Some("Secret") => {
                    check_credentials_secret(&path, doc);
                    Ok(())
                }
                // Kong's objects seed 004 needs next to its DemoWeb (its KongPlugin and consumer):
                // not ours to parse, but named and of a kind we expect, so a typo in a kind shows.
                Some(kind) if is_kong_kind(doc) => {
                    assert!(
                        doc["metadata"]["name"].is_string(),
                        "{}: a {kind} without a name",
                        path.display()
                    );
                    Ok(())
                }
                other => panic!("{}: unexpected kind {other:?}", path.display()),
            };
            errors.extend(result.err().into_iter().flatten());
        }
        let message = demoweb_crd::validation::summarize(&errors);
        match expect {
            Some(expected) => assert!(
                message.contains(&expected),
                "{}: expected an error containing {expected:?}, got {message:?}",
                path.display()
            ),
            None => assert!(errors.is_empty(), "{}: {message}", path.display()),
        }
    }
}

/// A Secret example holds git credentials in the keys a DemoWeb's `credentials.secretName` needs:
/// `username` and `password`, or `ssh` (and optionally `known_hosts`); or, labelled
/// `konghq.com/credential`, a Kong consumer's credential (basic-auth: `username` and `password`).
fn check_credentials_secret(path: &Path, doc: &Value) {
    assert_eq!(doc["apiVersion"], "v1", "{}", path.display());
    let data = doc["stringData"]
        .as_object()
        .or_else(|| doc["data"].as_object())
        .unwrap_or_else(|| panic!("{}: a Secret example has data", path.display()));
    let has = |k: &str| data.contains_key(k);
    assert!(
        (has("username") && has("password")) || has("ssh"),
        "{}: {} holds neither username/password nor ssh",
        path.display(),
        doc["metadata"]["name"]
    );
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A path as Flux reads it: relative to the root of the repository the GitRepository fetches.
fn in_repo(path: &str) -> PathBuf {
    repo_root().join(path.trim_start_matches("./"))
}

/// Every document of the GitOps files, with the file it came from.
fn gitops_documents() -> Vec<(PathBuf, Value)> {
    let root = repo_root().join("examples");
    let mut files = Vec::new();
    example_files(&root, &mut files);
    files.sort();
    let mut docs = Vec::new();
    for path in files.into_iter().filter(|p| is_gitops_file(&root, p)) {
        let text = std::fs::read_to_string(&path).expect("readable");
        for doc in yaml::documents(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display())) {
            docs.push((path.clone(), doc));
        }
    }
    docs
}

/// The kinds the GitOps files may use, at the API versions current Flux (v2.3 and later) serves.
const GITOPS_KINDS: &[(&str, &str)] = &[
    ("source.toolkit.fluxcd.io/v1", "GitRepository"),
    ("kustomize.toolkit.fluxcd.io/v1", "Kustomization"),
    ("helm.toolkit.fluxcd.io/v2", "HelmRelease"),
    ("kustomize.config.k8s.io/v1beta1", "Kustomization"),
    ("v1", "Namespace"),
];

/// What kustomize builds from `dir`: its kustomization.yaml's resources, or (as Flux does when
/// there is none) every manifest in the directory tree. Returns the documents.
fn build(dir: &Path) -> Vec<Value> {
    let config = KUSTOMIZATION_NAMES
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file());
    let mut files = Vec::new();
    if let Some(config) = config {
        let text = std::fs::read_to_string(&config).expect("readable");
        let k: Value = yaml::from_str(&text).expect("kustomization.yaml parses");
        for resource in k["resources"].as_array().expect("resources listed") {
            let file = dir.join(resource.as_str().expect("a path"));
            assert!(
                file.starts_with(dir) && !resource.as_str().unwrap_or_default().contains(".."),
                "{}: {resource} is outside the kustomization's directory (kustomize refuses it)",
                config.display()
            );
            assert!(
                file.is_file(),
                "{}: {resource} does not exist",
                config.display()
            );
            files.push(file);
        }
    } else {
        example_files(dir, &mut files);
    }
    files
        .iter()
        .flat_map(|f| {
            yaml::documents(&std::fs::read_to_string(f).expect("readable")).expect("YAML")
        })
        .collect()
}

#[test]
fn flux_examples_deploy_the_chart_before_the_sites() {
    let docs = gitops_documents();
    let named = |api: &str, kind: &str| -> Vec<&Value> {
        docs.iter()
            .map(|(_, d)| d)
            .filter(|d| d["apiVersion"] == api && d["kind"] == kind)
            .collect()
    };
    for (path, doc) in &docs {
        let key = (
            doc["apiVersion"].as_str().unwrap_or_default(),
            doc["kind"].as_str().unwrap_or_default(),
        );
        assert!(
            GITOPS_KINDS.contains(&key),
            "{}: {key:?} is not a kind/version the GitOps examples use",
            path.display()
        );
        if key.0.ends_with(".toolkit.fluxcd.io/v1") || key.0.ends_with(".toolkit.fluxcd.io/v2") {
            assert!(
                doc["metadata"]["name"].is_string() && doc["metadata"]["namespace"].is_string(),
                "{}: Flux objects are named and namespaced",
                path.display()
            );
            assert!(
                doc["spec"]["interval"].is_string(),
                "{}: {} needs spec.interval",
                path.display(),
                key.1
            );
        }
    }

    let sources = named("source.toolkit.fluxcd.io/v1", "GitRepository");
    assert_eq!(sources.len(), 1, "one GitRepository");
    let source = sources[0];
    assert!(source["spec"]["url"].is_string() && source["spec"]["ref"]["branch"].is_string());
    let kustomizations = named("kustomize.toolkit.fluxcd.io/v1", "Kustomization");
    let by_name = |name: &str| {
        kustomizations
            .iter()
            .find(|k| k["metadata"]["name"] == name)
            .copied()
    };
    let releases = named("helm.toolkit.fluxcd.io/v2", "HelmRelease");
    assert_eq!(releases.len(), 1, "one HelmRelease for the operator");
    let release = releases[0];

    // The HelmRelease installs this repository's chart, CRDs included and kept up to date.
    let chart = &release["spec"]["chart"]["spec"];
    assert_eq!(chart["sourceRef"]["kind"], "GitRepository");
    assert_eq!(chart["sourceRef"]["name"], source["metadata"]["name"]);
    let chart_dir = in_repo(chart["chart"].as_str().expect("chart path"));
    assert!(
        chart_dir.join("Chart.yaml").is_file(),
        "{}",
        chart_dir.display()
    );
    assert_eq!(
        chart["reconcileStrategy"], "Revision",
        "a chart change in git is a new release"
    );
    for action in ["install", "upgrade"] {
        assert_eq!(
            release["spec"][action]["crds"], "CreateReplace",
            "{action} manages the CRDs"
        );
    }

    // Every Kustomization syncs from the GitRepository, a path that exists, and waits on health.
    let mut applies = std::collections::BTreeMap::new();
    for k in &kustomizations {
        let name = k["metadata"]["name"].as_str().expect("name");
        assert_eq!(k["spec"]["sourceRef"]["kind"], "GitRepository", "{name}");
        assert_eq!(
            k["spec"]["sourceRef"]["name"], source["metadata"]["name"],
            "{name}"
        );
        let dir = in_repo(k["spec"]["path"].as_str().expect("path"));
        assert!(dir.is_dir(), "{name}: {} is not a directory", dir.display());
        assert!(
            k["spec"]["wait"] == true || k["spec"]["healthChecks"].is_array(),
            "{name}: without wait or healthChecks Flux reports Ready before the objects are"
        );
        assert_eq!(
            k["spec"]["prune"], true,
            "{name}: removing a file removes the object"
        );
        for dependency in k["spec"]["dependsOn"].as_array().into_iter().flatten() {
            let other = dependency["name"].as_str().expect("dependsOn name");
            assert!(
                by_name(other).is_some(),
                "{name} depends on unknown {other}"
            );
        }
        applies.insert(name.to_owned(), (k, build(&dir)));
    }

    // The sites: DemoWebs that are valid examples, applied after (dependsOn, transitively) the
    // Kustomization that installs the chart, into a namespace that Kustomization creates.
    let installs_chart = |docs: &[Value]| {
        docs.iter().any(|d| {
            d["kind"] == "HelmRelease" && d["metadata"]["name"] == release["metadata"]["name"]
        })
    };
    let mut sites = 0;
    for (name, (k, objects)) in &applies {
        let demowebs: Vec<&Value> = objects.iter().filter(|d| d["kind"] == "DemoWeb").collect();
        if demowebs.is_empty() {
            continue;
        }
        sites += demowebs.len();
        for dw in &demowebs {
            let dw: DemoWeb = serde_json::from_value((*dw).clone()).expect("a DemoWeb");
            assert!(dw.validate().is_ok(), "{name} deploys an invalid DemoWeb");
        }
        let mut before = Vec::new();
        let mut queue: Vec<String> = k["spec"]["dependsOn"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["name"].as_str().map(str::to_owned))
            .collect();
        while let Some(dep) = queue.pop() {
            let dk = by_name(&dep).expect("known");
            queue.extend(
                dk["spec"]["dependsOn"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|d| d["name"].as_str().map(str::to_owned)),
            );
            before.push(dep);
        }
        assert!(
            before.iter().any(|dep| installs_chart(&applies[dep].1)),
            "{name} applies DemoWebs without depending on the Kustomization that installs the chart"
        );
        if let Some(target) = k["spec"]["targetNamespace"].as_str() {
            assert!(
                before.iter().any(|dep| applies[dep]
                    .1
                    .iter()
                    .any(|d| d["kind"] == "Namespace" && d["metadata"]["name"] == target)),
                "{name}: targetNamespace {target} is created by a Kustomization it depends on"
            );
        }
    }
    assert!(sites > 0, "the Flux examples deploy at least one site");
}

/// Applying an invalid example next to the valid ones must not replace one of them: no invalid
/// example shares a kind and name with a valid one.
#[test]
fn invalid_examples_have_names_of_their_own() {
    let root = repo_root().join("examples");
    let mut files = Vec::new();
    example_files(&root, &mut files);
    let mut valid = std::collections::BTreeSet::new();
    let mut invalid = Vec::new();
    for path in files.iter().filter(|p| !is_gitops_file(&root, p)) {
        let text = std::fs::read_to_string(path).expect("readable");
        for doc in yaml::documents(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display())) {
            let key = (
                doc["kind"].as_str().unwrap_or_default().to_owned(),
                doc["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
            if path.starts_with(root.join("invalid")) {
                invalid.push((path.clone(), key));
            } else {
                valid.insert(key);
            }
        }
    }
    assert!(!invalid.is_empty() && !valid.is_empty());
    for (path, key) in invalid {
        assert!(
            !valid.contains(&key),
            "{}: {} {} is also a valid example's name",
            path.display(),
            key.0,
            key.1
        );
    }
}
