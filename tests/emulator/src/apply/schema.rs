//! Merge-relevant schema fragments for the built-in kinds, and the navigation the merge code shares.
//!
//! The fragments are OpenAPI-v3 shaped and carry only what merging needs; the values are those of the
//! Kubernetes API types (`+listType`, `+listMapKey`, `+mapType`, `+structType`, `patchStrategy`,
//! `patchMergeKey` struct tags). A CRD's own `openAPIV3Schema` carries the same extensions and goes
//! through [`crd_schema`] so that `metadata` behaves as it does for every kind.

use serde_json::{Value, json};

/// Which extension decides a list's behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListType {
    Atomic,
    Set,
    Map,
}

/// A position in a schema while walking an object alongside it.
#[derive(Debug, Clone, Copy)]
pub enum Schema<'a> {
    /// A described node.
    Node(&'a Value),
    /// A field the compact schema does not describe: struct-like, lists atomic.
    Struct,
    /// Inside `x-kubernetes-preserve-unknown-fields` or `additionalProperties: true`: keys are map
    /// entries, lists atomic, maps granular (structured-merge-diff's "deduced" type).
    Deduced,
}

impl<'a> Schema<'a> {
    pub fn new(v: &'a Value) -> Self {
        if v.as_object().is_some_and(|m| !m.is_empty()) {
            Schema::Node(v)
        } else {
            Schema::Struct
        }
    }

    fn ext(&self, name: &str) -> Option<&'a Value> {
        match self {
            Schema::Node(v) => v.get(name),
            _ => None,
        }
    }

    fn ext_str(&self, name: &str) -> Option<&'a str> {
        self.ext(name).and_then(Value::as_str)
    }

    fn preserves_unknown(&self) -> bool {
        match self {
            Schema::Deduced => true,
            Schema::Struct => false,
            Schema::Node(_) => self
                .ext("x-kubernetes-preserve-unknown-fields")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        }
    }

    /// The schema of an object's member and whether it is a declared struct field (as opposed to a
    /// map entry): a map entry is itself a member of a field set even when its value has children.
    pub fn field(&self, key: &str) -> (Schema<'a>, bool) {
        if let Some(p) = self.ext("properties").and_then(|p| p.get(key)) {
            return (Schema::new(p), true);
        }
        match self.ext("additionalProperties") {
            Some(Value::Bool(true)) => return (Schema::Deduced, false),
            Some(ap @ Value::Object(_)) => return (Schema::new(ap), false),
            _ => {}
        }
        if self.preserves_unknown() {
            (Schema::Deduced, false)
        } else {
            (Schema::Struct, true)
        }
    }

    pub fn items(&self) -> Schema<'a> {
        match self.ext("items") {
            Some(v) => Schema::new(v),
            None if self.preserves_unknown() => Schema::Deduced,
            None => Schema::Struct,
        }
    }

    /// Server-side apply's view: lists without `x-kubernetes-list-type` are atomic.
    pub fn list_type(&self) -> ListType {
        match self.ext_str("x-kubernetes-list-type") {
            Some("set") => ListType::Set,
            Some("map") => ListType::Map,
            _ => ListType::Atomic,
        }
    }

    pub fn list_map_keys(&self) -> Vec<&'a str> {
        self.ext("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }

    /// `x-kubernetes-map-type: atomic` (maps) or the struct equivalent.
    pub fn is_atomic_map(&self) -> bool {
        self.ext_str("x-kubernetes-map-type") == Some("atomic")
    }

    /// The default of a list item's key field, used when an item omits it (e.g. `protocol: TCP`).
    pub fn key_default(&self, key: &str) -> Option<&'a Value> {
        self.ext("properties")
            .and_then(|p| p.get(key))
            .and_then(|p| p.get("default"))
    }

    /// Strategic merge patch: the patch strategies (`merge`, `replace`, `retainKeys`).
    pub fn patch_strategies(&self) -> Vec<&'a str> {
        self.ext_str("x-kubernetes-patch-strategy")
            .map(|s| s.split(',').map(str::trim).collect())
            .unwrap_or_default()
    }

    pub fn patch_merge_key(&self) -> Option<&'a str> {
        self.ext_str("x-kubernetes-patch-merge-key")
    }

    /// A Go non-pointer struct in the built-in types: always present in the server's view of an
    /// object, so its appearance is never recorded as a change of its own.
    pub fn always_present(&self) -> bool {
        self.ext("x-emulator-always-present")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }
}

pub fn string_map() -> Value {
    json!({"type": "object", "additionalProperties": {"type": "string"}})
}

pub fn atomic_map() -> Value {
    json!({"type": "object", "x-kubernetes-map-type": "atomic"})
}

pub fn atomic_list() -> Value {
    json!({"type": "array", "x-kubernetes-list-type": "atomic"})
}

/// A list-type map list that strategic merge patch also merges (`patchStrategy: merge`).
pub fn keyed_list(keys: &[&str], merge_key: &str, strategy: &str, items: Value) -> Value {
    json!({
        "type": "array",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": keys,
        "x-kubernetes-patch-merge-key": merge_key,
        "x-kubernetes-patch-strategy": strategy,
        "items": items,
    })
}

pub fn by_name(items: Value) -> Value {
    keyed_list(&["name"], "name", "merge", items)
}

pub fn object(props: Value) -> Value {
    json!({"type": "object", "properties": props})
}

/// A struct the server always materialises (Go value, not pointer).
pub fn present(mut v: Value) -> Value {
    v["x-emulator-always-present"] = json!(true);
    v
}

/// A kind's top level: its `spec` and `status` structs, both always materialised.
pub fn spec_status(spec: Value, status: Value) -> Value {
    object(json!({"spec": present(spec), "status": present(status)}))
}

pub fn conditions() -> Value {
    keyed_list(&["type"], "type", "merge", json!({"type": "object"}))
}

/// `ObjectMeta`, shared by every kind and by pod templates.
pub fn object_meta() -> Value {
    object(json!({
        "labels": string_map(),
        "annotations": string_map(),
        "ownerReferences": keyed_list(&["uid"], "uid", "merge", json!({"type": "object"})),
        "finalizers": {
            "type": "array",
            "x-kubernetes-list-type": "set",
            "x-kubernetes-patch-strategy": "merge",
            "items": {"type": "string"},
        },
        "managedFields": atomic_list(),
    }))
}

pub fn container() -> Value {
    object(json!({
        "ports": {
            "type": "array",
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["containerPort", "protocol"],
            "x-kubernetes-patch-merge-key": "containerPort",
            "x-kubernetes-patch-strategy": "merge",
            "items": object(json!({"protocol": {"type": "string", "default": "TCP"}})),
        },
        "env": by_name(json!({"type": "object"})),
        "envFrom": atomic_list(),
        "volumeMounts": keyed_list(&["mountPath"], "mountPath", "merge", json!({"type": "object"})),
        "volumeDevices": keyed_list(&["devicePath"], "devicePath", "merge", json!({"type": "object"})),
        "resources": present(object(json!({
            "limits": string_map(),
            "requests": string_map(),
            // listType=map but no patchStrategy: strategic merge patch replaces it.
            "claims": {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object"},
            },
        }))),
        "args": atomic_list(),
        "command": atomic_list(),
    }))
}

pub fn pod_spec() -> Value {
    object(json!({
        // `containers` has no omitempty: the server's view always has it, if only as null.
        "containers": present(by_name(container())),
        "initContainers": by_name(container()),
        "ephemeralContainers": by_name(container()),
        "volumes": keyed_list(&["name"], "name", "merge,retainKeys", json!({"type": "object"})),
        "imagePullSecrets": by_name(json!({"type": "object"})),
        "hostAliases": keyed_list(&["ip"], "ip", "merge", json!({"type": "object"})),
        "topologySpreadConstraints": keyed_list(
            &["topologyKey", "whenUnsatisfiable"], "topologyKey", "merge", json!({"type": "object"})),
        "schedulingGates": by_name(json!({"type": "object"})),
        "resourceClaims": keyed_list(&["name"], "name", "merge,retainKeys", json!({"type": "object"})),
        "nodeSelector": atomic_map(),
        "tolerations": atomic_list(),
        "readinessGates": atomic_list(),
    }))
}

/// A built-in kind's merge schema (from its file under `kinds/`) with `metadata` added.
pub fn builtin_schema(mut schema: Value) -> Value {
    schema["properties"]["metadata"] = present(object_meta());
    schema
}

/// A CRD version's `openAPIV3Schema` with `metadata` replaced by the full `ObjectMeta` fragment, as
/// kube-apiserver does for custom resources.
pub fn crd_schema(open_api_v3_schema: &Value) -> Value {
    let mut schema = open_api_v3_schema.clone();
    if !schema.is_object() {
        schema = json!({"type": "object"});
    }
    if !schema.get("properties").is_some_and(Value::is_object) {
        schema["properties"] = json!({});
    }
    schema["properties"]["metadata"] = object_meta();
    schema
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::merge_schema as builtin_schema;

    #[test]
    fn every_served_builtin_has_a_schema_with_metadata() {
        let kinds = [
            ("", "v1", "Namespace"),
            ("", "v1", "ConfigMap"),
            ("", "v1", "Secret"),
            ("", "v1", "Service"),
            ("", "v1", "ServiceAccount"),
            ("", "v1", "Event"),
            ("events.k8s.io", "v1", "Event"),
            ("apps", "v1", "Deployment"),
            ("networking.k8s.io", "v1", "Ingress"),
            ("policy", "v1", "PodDisruptionBudget"),
            ("autoscaling", "v2", "HorizontalPodAutoscaler"),
            ("coordination.k8s.io", "v1", "Lease"),
            ("rbac.authorization.k8s.io", "v1", "Role"),
            ("rbac.authorization.k8s.io", "v1", "ClusterRole"),
            ("rbac.authorization.k8s.io", "v1", "RoleBinding"),
            ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding"),
        ];
        for (g, v, k) in kinds {
            let s = builtin_schema(g, v, k).unwrap_or_else(|| panic!("{g}/{v} {k}"));
            let meta = Schema::new(&s).field("metadata").0;
            assert_eq!(meta.field("finalizers").0.list_type(), ListType::Set);
            assert_eq!(
                meta.field("ownerReferences").0.list_map_keys(),
                ["uid"],
                "{k}"
            );
        }
        assert!(builtin_schema("apps", "v1", "StatefulSet").is_none());
    }

    #[test]
    fn navigation_follows_the_kubernetes_types() {
        let d = builtin_schema("apps", "v1", "Deployment").unwrap();
        let root = Schema::new(&d);
        let pod = root.field("spec").0.field("template").0.field("spec").0;
        let containers = pod.field("containers").0;
        assert_eq!(containers.list_type(), ListType::Map);
        assert_eq!(containers.patch_merge_key(), Some("name"));
        let ports = containers.items().field("ports").0;
        assert_eq!(ports.list_map_keys(), ["containerPort", "protocol"]);
        assert_eq!(ports.items().key_default("protocol"), Some(&json!("TCP")));
        assert!(root.field("spec").0.field("selector").0.is_atomic_map());
        let (labels, declared) = root.field("metadata").0.field("labels");
        assert!(declared);
        assert!(!labels.field("app").1, "label keys are map entries");
        assert_eq!(
            pod.field("volumes").0.patch_strategies(),
            ["merge", "retainKeys"]
        );
        let ing = builtin_schema("networking.k8s.io", "v1", "Ingress").unwrap();
        let rules = Schema::new(&ing).field("spec").0.field("rules").0;
        assert_eq!(rules.list_type(), ListType::Atomic);
        for kind in ["Role", "ClusterRole"] {
            let r = builtin_schema("rbac.authorization.k8s.io", "v1", kind).unwrap();
            let rules = Schema::new(&r).field("rules").0;
            assert_eq!(rules.list_type(), ListType::Atomic, "{kind}");
            assert!(rules.patch_merge_key().is_none(), "{kind}");
        }
        let b = builtin_schema("rbac.authorization.k8s.io", "v1", "RoleBinding").unwrap();
        assert_eq!(
            Schema::new(&b).field("subjects").0.list_type(),
            ListType::Atomic
        );
    }

    #[test]
    fn crd_schema_folds_in_metadata_and_keeps_its_extensions() {
        let s = crd_schema(&json!({
            "type": "object",
            "properties": {"status": {"type": "object", "properties": {
                "conditions": {"type": "array", "x-kubernetes-list-type": "map",
                               "x-kubernetes-list-map-keys": ["type"]},
                "tags": {"type": "array"},
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            }}},
        }));
        let root = Schema::new(&s);
        let status = root.field("status").0;
        assert_eq!(status.field("conditions").0.list_type(), ListType::Map);
        assert_eq!(status.field("tags").0.list_type(), ListType::Atomic);
        assert!(!status.field("extra").0.field("anything").1);
        assert_eq!(
            root.field("metadata").0.field("finalizers").0.list_type(),
            ListType::Set
        );
    }
}
