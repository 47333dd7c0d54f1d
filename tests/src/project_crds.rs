//! Cross-checks between the project's CRDs and the emulator's schema engine: the CRDs are accepted
//! as kube-apiserver would accept them, and the schema's rules agree with the Rust `validate()`
//! that the operator runs, example by example.

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde_json::Value;

    use crate::emulator::schema::{StructuralSchema, validate_crd};

    fn crds() -> Vec<Value> {
        demoweb_crd::all_crds()
            .into_iter()
            .map(|crd| serde_json::to_value(crd).expect("CRD serialises"))
            .collect()
    }

    fn schema_for(kind: &str) -> StructuralSchema {
        let crd = crds()
            .into_iter()
            .find(|c| c["spec"]["names"]["kind"] == kind)
            .expect("a CRD for the kind");
        StructuralSchema::new(&crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
            .unwrap_or_else(|e| panic!("{kind} schema refused: {e:?}"))
    }

    /// Schema failures of one document after pruning and defaulting, as the API server runs them.
    fn schema_errors(doc: &Value) -> Vec<String> {
        let schema = schema_for(doc["kind"].as_str().expect("kind"));
        let mut obj = doc.clone();
        schema.prune(&mut obj);
        schema.apply_defaults(&mut obj);
        schema
            .validate(&obj, None)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn rust_errors(doc: &Value) -> Vec<String> {
        let result = match doc["kind"].as_str() {
            Some("DemoWeb") => serde_json::from_value::<demoweb_crd::DemoWeb>(doc.clone())
                .map_err(|e| vec![e.to_string()])
                .and_then(|dw| {
                    dw.validate()
                        .map_err(|e| e.iter().map(ToString::to_string).collect())
                }),
            Some("AzureIdentity") => {
                serde_json::from_value::<demoweb_crd::AzureIdentity>(doc.clone())
                    .map_err(|e| vec![e.to_string()])
                    .and_then(|o| {
                        o.spec
                            .validate()
                            .map_err(|e| e.iter().map(ToString::to_string).collect())
                    })
            }
            Some("AzureIdentityBinding") => {
                serde_json::from_value::<demoweb_crd::AzureIdentityBinding>(doc.clone())
                    .map_err(|e| vec![e.to_string()])
                    .and_then(|o| {
                        o.spec
                            .validate()
                            .map_err(|e| e.iter().map(ToString::to_string).collect())
                    })
            }
            other => panic!("unexpected kind {other:?}"),
        };
        result.err().unwrap_or_default()
    }

    fn examples() -> Vec<(PathBuf, Value)> {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples");
        let mut out = Vec::new();
        let mut dirs = vec![root];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("examples/ readable") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "yaml") {
                    let text = std::fs::read_to_string(&path).expect("readable");
                    // Only this project's kinds: examples/flux/ and kustomization files
                    // (Flux's and kustomize's kinds) are checked by crd/tests/examples.rs.
                    for doc in demoweb_crd::yaml::documents(&text).expect("YAML") {
                        let api_version = doc["apiVersion"].as_str().unwrap_or_default();
                        if api_version.starts_with("baeke.info/")
                            || api_version.starts_with("aadpodidentity.k8s.io/")
                        {
                            out.push((path.clone(), doc));
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn the_crds_are_accepted_like_kube_apiserver_accepts_them() {
        for crd in crds() {
            let errors = validate_crd(&crd);
            assert!(
                errors.is_empty(),
                "{} refused: {errors:?}",
                crd["metadata"]["name"]
            );
            schema_for(crd["spec"]["names"]["kind"].as_str().unwrap());
        }
    }

    /// The schema may accept what only the operator can judge (an ARM ID, a missing reference), but
    /// it must never refuse what the operator accepts, and for DemoWeb the two must agree exactly.
    #[test]
    fn schema_rules_and_rust_validation_agree_on_every_example() {
        let all = examples();
        assert!(all.len() >= 15, "examples found: {}", all.len());
        for (path, doc) in all {
            let schema = schema_errors(&doc);
            let rust = rust_errors(&doc);
            if rust.is_empty() {
                assert!(
                    schema.is_empty(),
                    "{}: the schema refuses what validate() accepts: {schema:?}",
                    path.display()
                );
            }
            if doc["kind"] == "DemoWeb" {
                assert_eq!(
                    schema.is_empty(),
                    rust.is_empty(),
                    "{}: schema says {schema:?}, validate() says {rust:?}",
                    path.display()
                );
            }
        }
    }
}
