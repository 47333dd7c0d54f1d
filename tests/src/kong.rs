//! Kong's CRDs as a cluster running Kong Ingress Controller serves them (its Helm chart installs
//! them), cut down to the kinds and fields this project's examples and tests write: KongPlugin
//! (namespaced), KongClusterPlugin (cluster-scoped) and KongConsumer (namespaced). The playground
//! serves them so that seed 004's example (`examples/demoweb-kong-allowlist.yaml`) applies and its
//! site becomes Ready; the Kong integration tests install them one at a time to see the operator
//! follow each API as it arrives.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

/// The schema of a KongPlugin and a KongClusterPlugin (Kong's `configuration.konghq.com/v1`):
/// `plugin` names the plugin's type; its settings are free-form.
macro_rules! plugin_schema {
    () => {
        "    schema:
      openAPIV3Schema:
        type: object
        required: [plugin]
        properties:
          plugin: {type: string}
          config: {type: object, x-kubernetes-preserve-unknown-fields: true}
          configFrom: {type: object, x-kubernetes-preserve-unknown-fields: true}
          disabled: {type: boolean}
          instance_name: {type: string}
          protocols: {type: array, items: {type: string}}
          run_on: {type: string}
          ordering: {type: object, x-kubernetes-preserve-unknown-fields: true}
    additionalPrinterColumns:
    - {name: Plugin-Type, type: string, jsonPath: .plugin, description: Name of the plugin}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
"
    };
}

/// Kong's KongPlugin CRD (namespaced).
pub const KONG_PLUGIN_CRD: &str = concat!(
    "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: kongplugins.configuration.konghq.com}
spec:
  group: configuration.konghq.com
  names: {kind: KongPlugin, listKind: KongPluginList, plural: kongplugins, singular: kongplugin, shortNames: [kp]}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
",
    plugin_schema!()
);

/// Kong's KongClusterPlugin CRD (cluster-scoped).
pub const KONG_CLUSTER_PLUGIN_CRD: &str = concat!(
    "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: kongclusterplugins.configuration.konghq.com}
spec:
  group: configuration.konghq.com
  names: {kind: KongClusterPlugin, listKind: KongClusterPluginList, plural: kongclusterplugins, singular: kongclusterplugin, shortNames: [kcp]}
  scope: Cluster
  versions:
  - name: v1
    served: true
    storage: true
",
    plugin_schema!()
);

/// Kong's KongConsumer CRD (namespaced): who may log in, with the Secrets holding their credentials.
pub const KONG_CONSUMER_CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: kongconsumers.configuration.konghq.com}
spec:
  group: configuration.konghq.com
  names: {kind: KongConsumer, listKind: KongConsumerList, plural: kongconsumers, singular: kongconsumer, shortNames: [kc]}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          username: {type: string}
          custom_id: {type: string}
          credentials: {type: array, items: {type: string}}
          consumerGroups: {type: array, items: {type: string}}
    additionalPrinterColumns:
    - {name: Username, type: string, jsonPath: .username, description: Username of a Kong Consumer}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
";

/// KongPlugin, KongClusterPlugin and KongConsumer, for [`crate::harness::install_crds`].
pub fn crds() -> Vec<CustomResourceDefinition> {
    [KONG_PLUGIN_CRD, KONG_CLUSTER_PLUGIN_CRD, KONG_CONSUMER_CRD]
        .into_iter()
        .map(crd)
        .collect()
}

/// One of the CRDs above, for [`crate::harness::TestEnv::install_crds`].
pub fn crd(yaml: &str) -> CustomResourceDefinition {
    demoweb_crd::yaml::from_str(yaml).expect("Kong's CRD parses")
}

#[cfg(test)]
mod tests {
    #[test]
    fn kong_crds_parse_with_their_kinds() {
        let kinds: Vec<String> = super::crds()
            .into_iter()
            .map(|c| c.spec.names.kind)
            .collect();
        assert_eq!(kinds, ["KongPlugin", "KongClusterPlugin", "KongConsumer"]);
    }
}
