//! Pruning: the fields a structural schema does not specify are dropped, as kube-apiserver does
//! on every write of a custom resource.

use super::node::Node;
use serde_json::Value;

/// The fields of `ObjectMeta`; anything else under a resource's `metadata` is dropped.
const OBJECT_META_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// Prunes `v` in place; `resource` is true at the root and for `x-kubernetes-embedded-resource`
/// objects, whose `apiVersion`, `kind` and `metadata` are always kept.
pub(crate) fn prune(node: &Node, v: &mut Value, resource: bool) {
    match v {
        Value::Object(obj) => {
            if let Some(add) = &node.additional {
                for x in obj.values_mut() {
                    prune(add, x, add.embedded);
                }
                return;
            }
            obj.retain(|k, _| {
                node.properties.contains_key(k)
                    || node.preserve_unknown
                    || (resource && (k == "apiVersion" || k == "kind" || k == "metadata"))
            });
            for (k, x) in obj.iter_mut() {
                if resource && k == "metadata" {
                    if let Value::Object(meta) = x {
                        meta.retain(|f, _| OBJECT_META_FIELDS.contains(&f.as_str()));
                    }
                } else if let Some(child) = node.properties.get(k) {
                    prune(child, x, child.embedded);
                }
            }
        }
        Value::Array(items) => {
            if let Some(it) = &node.items {
                for x in items {
                    prune(it, x, it.embedded);
                }
            }
        }
        _ => {}
    }
}

/// Collects the paths of the fields [`prune`] would drop.
pub(crate) fn unknown(node: &Node, v: &Value, resource: bool, path: &str, out: &mut Vec<String>) {
    let child = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match v {
        Value::Object(obj) => {
            if let Some(add) = &node.additional {
                for (k, x) in obj {
                    unknown(add, x, add.embedded, &child(k), out);
                }
                return;
            }
            for (k, x) in obj {
                if resource && k == "metadata" {
                    if let Value::Object(meta) = x {
                        for f in meta.keys() {
                            if !OBJECT_META_FIELDS.contains(&f.as_str()) {
                                out.push(format!("{}.{f}", child(k)));
                            }
                        }
                    }
                } else if let Some(c) = node.properties.get(k) {
                    unknown(c, x, c.embedded, &child(k), out);
                } else if !(node.preserve_unknown
                    || (resource && (k == "apiVersion" || k == "kind")))
                {
                    out.push(child(k));
                }
            }
        }
        Value::Array(items) => {
            if let Some(it) = &node.items {
                for (i, x) in items.iter().enumerate() {
                    unknown(it, x, it.embedded, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}
