//! Command-line interface of the `demoweb-operator` binary.

use clap::{Parser, Subcommand};

/// Serves static websites from git with nginx, driven by DemoWeb custom resources.
#[derive(Debug, Parser)]
#[command(name = "demoweb-operator", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the CustomResourceDefinitions as multi-document YAML.
    Crd {
        /// Which CRDs: `all`, `demoweb` (DemoWeb only) or `identity` (AzureIdentity and AzureIdentityBinding).
        #[arg(long, default_value = "all", value_parser = ["all", "demoweb", "identity"])]
        only: String,
    },
}

/// The CRDs selected by `crd --only`, as the YAML the binary prints and the chart ships.
pub fn crd_yaml(only: &str) -> Result<String, demoweb_crd::yaml::YamlError> {
    let crds = match only {
        "demoweb" => vec![demoweb_crd::demoweb_crd()],
        "identity" => demoweb_crd::identity_crds(),
        _ => demoweb_crd::all_crds(),
    };
    demoweb_crd::yaml::to_multi_doc(&crds)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::crd_yaml;

    /// The chart ships generated CRDs; they must match the Rust types.
    /// `DEMOWEB_UPDATE_GENERATED=1 cargo test -p demoweb-operator generated` rewrites them.
    #[test]
    fn generated_crds_are_up_to_date() {
        let chart = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../charts/demoweb-operator");
        let files = [
            ("demoweb", chart.join("crds/demowebs.baeke.info.yaml")),
            ("identity", chart.join("files/aadpodidentity-crds.yaml")),
        ];
        let update = std::env::var_os("DEMOWEB_UPDATE_GENERATED").is_some();
        for (only, path) in files {
            let expected = crd_yaml(only).expect("CRDs serialise");
            if update {
                std::fs::write(&path, &expected).expect("write generated CRD");
                continue;
            }
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                committed == expected,
                "{} is stale: run `DEMOWEB_UPDATE_GENERATED=1 cargo test -p demoweb-operator generated` and commit the result",
                path.display()
            );
        }
    }
}
