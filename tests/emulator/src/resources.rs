//! The registry of served resources: the built-in kinds and the ones CustomResourceDefinitions add.

use std::sync::{Arc, OnceLock};

use serde_json::Value;

use super::engines::CrdSchema;
use super::kinds::{self, Kind, Storage};

/// What a CRD version adds to a served resource.
#[derive(Debug, Clone)]
pub struct CrdVersion {
    /// `metadata.name` of the CRD, e.g. `widgets.example.com`.
    pub crd_name: String,
    /// `schema.openAPIV3Schema`, when given.
    pub schema: Option<Value>,
    pub printer_columns: Vec<Value>,
    /// The schema compiled for validation, once, on first use (like kube-apiserver, which compiles
    /// a CRD's schema when the CRD changes, not per request).
    pub compiled: Derived<Result<Arc<CrdSchema>, String>>,
    /// The merge information for the patch and apply engines, once, on first use.
    pub merge: Derived<Arc<Value>>,
}

/// A value derived from a CRD version, computed on first use and shared by its clones.
pub struct Derived<T>(Arc<OnceLock<T>>);

impl<T> Derived<T> {
    pub fn get_or_init(&self, f: impl FnOnce() -> T) -> &T {
        self.0.get_or_init(f)
    }
}

impl<T> Default for Derived<T> {
    fn default() -> Self {
        Derived(Arc::default())
    }
}

impl<T> Clone for Derived<T> {
    fn clone(&self) -> Self {
        Derived(self.0.clone())
    }
}

impl<T> std::fmt::Debug for Derived<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Derived")
    }
}

#[derive(Debug, Clone)]
pub struct ResourceInfo {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub list_kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Has a `status` subresource (status changes through the main endpoint are ignored).
    pub status: bool,
    /// Keeps `metadata.generation`.
    pub generation: bool,
    /// A built-in kind's table (None for a CRD's resources).
    pub builtin: Option<&'static Kind>,
    pub crd: Option<Arc<CrdVersion>>,
}

impl ResourceInfo {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps` / `configmaps`, as in error messages.
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Where objects live; versions stored as another's objects share its store, as on a real
    /// cluster (core and events.k8s.io Events; autoscaling v1 and v2).
    pub fn storage_key(&self) -> String {
        match self.storage() {
            Some(s) => s.key.to_string(),
            None => format!("{}/{}", self.group, self.plural),
        }
    }

    /// How this version is converted to and from the storage version, when it is not that version.
    pub fn storage(&self) -> Option<Storage> {
        self.builtin.and_then(|k| k.storage)
    }

    pub fn verbs(&self) -> &'static [&'static str] {
        self.builtin.unwrap_or(&Kind::BASE).verbs
    }

    /// Has a `scale` subresource.
    pub fn scale(&self) -> bool {
        self.builtin.is_some_and(|k| k.scale)
    }
}

/// The built-in kinds this emulator serves, from their tables under `kinds/`.
pub fn builtins() -> Vec<ResourceInfo> {
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
    kinds::KINDS
        .iter()
        .map(|k| ResourceInfo {
            group: k.group.into(),
            version: k.version.into(),
            kind: k.kind.into(),
            list_kind: format!("{}List", k.kind),
            plural: k.plural.into(),
            singular: k.kind.to_lowercase(),
            namespaced: k.namespaced,
            short_names: strings(k.short_names),
            categories: strings(k.categories),
            status: k.status,
            generation: k.generation,
            builtin: Some(*k),
            crd: None,
        })
        .collect()
}

/// The resources a CRD serves, one per served version. Fails with the reason when it cannot be served.
pub fn from_crd(crd: &Value) -> Vec<ResourceInfo> {
    let spec = &crd["spec"];
    let names = &spec["names"];
    let strs = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let kind = names["kind"].as_str().unwrap_or_default().to_string();
    let plural = names["plural"].as_str().unwrap_or_default().to_string();
    let mut out = Vec::new();
    for v in spec["versions"].as_array().into_iter().flatten() {
        if v["served"].as_bool() != Some(true) {
            continue;
        }
        out.push(ResourceInfo {
            group: spec["group"].as_str().unwrap_or_default().into(),
            version: v["name"].as_str().unwrap_or_default().into(),
            kind: kind.clone(),
            list_kind: names["listKind"]
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| format!("{kind}List")),
            plural: plural.clone(),
            singular: names["singular"]
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| kind.to_lowercase()),
            namespaced: spec["scope"].as_str() != Some("Cluster"),
            short_names: strs(&names["shortNames"]),
            categories: strs(&names["categories"]),
            status: v["subresources"]["status"].is_object(),
            generation: true,
            builtin: None,
            crd: Some(Arc::new(CrdVersion {
                crd_name: crd["metadata"]["name"].as_str().unwrap_or_default().into(),
                schema: v["schema"].get("openAPIV3Schema").cloned(),
                printer_columns: v["additionalPrinterColumns"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
                compiled: Derived::default(),
                merge: Derived::default(),
            })),
        });
    }
    out
}

/// Kubernetes version priority: GA before beta before alpha, higher numbers first, others last by name.
pub fn version_order(a: &str, b: &str) -> std::cmp::Ordering {
    fn rank(v: &str) -> (u8, i64, i64, String) {
        let parse = |s: &str| -> Option<(i64, u8, i64)> {
            let rest = s.strip_prefix('v')?;
            let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            let major = digits.parse().ok()?;
            let tail = &rest[digits.len()..];
            if tail.is_empty() {
                return Some((major, 0, 0));
            }
            for (i, pre) in ["beta", "alpha"].iter().enumerate() {
                if let Some(n) = tail.strip_prefix(pre) {
                    return Some((major, i as u8 + 1, n.parse().ok()?));
                }
            }
            None
        };
        match parse(v) {
            Some((major, stage, minor)) => (stage, -major, -minor, String::new()),
            None => (9, 0, 0, v.to_string()),
        }
    }
    rank(a).cmp(&rank(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_like_kubernetes() {
        let mut v = vec!["v1alpha1", "foo", "v1beta2", "v2", "v1", "v1beta1", "v10"];
        v.sort_by(|a, b| version_order(a, b));
        assert_eq!(
            v,
            vec!["v10", "v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "foo"]
        );
    }
}
