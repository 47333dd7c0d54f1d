//! Every file under `examples/` parses into the Rust types without losing a field, and validates
//! as intended: files under `examples/invalid/` fail with the message their `# expect:` line names.

use std::path::{Path, PathBuf};

use demoweb_crd::{AzureIdentity, AzureIdentityBinding, DemoWeb, FieldError, yaml};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

fn example_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("examples/ is readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            example_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml") {
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
        let text = std::fs::read_to_string(&path).expect("readable");
        let expect = text
            .lines()
            .find_map(|l| l.strip_prefix("# expect: "))
            .map(str::to_owned);
        let invalid = path.components().any(|c| c.as_os_str() == "invalid");
        assert_eq!(
            invalid,
            expect.is_some(),
            "{}: files under invalid/ (and only they) need an `# expect:` line",
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
