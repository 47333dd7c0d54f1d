//! Whether a child still holds what we want.
//!
//! Child stores keep metadata only (and the Deployment's status, see `crate::stored`), not specs: a
//! thousand Deployments with their pod templates and managed fields would be most of the
//! operator's memory. Whether a child still holds what we want is therefore decided in two steps:
//! its metadata (owner, labels, annotations with the applied-hash) is compared with the store's
//! copy on every reconcile; its spec is compared with a full read only when its generation (for
//! kinds whose writes are all spec) or resourceVersion has moved since we last saw it hold what
//! we want ([`Verified`]). An idle operator therefore neither reads nor writes, and an edit by
//! someone else — which moves the generation or resourceVersion — is read and healed.

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::Serialize;
use serde_json::Value;

use super::Error;
use super::hash_of;
use crate::vocabulary::{APPLIED_HASH_ANNOTATION, short_hash};

/// What tells that an object changed since we last knew it to hold what we want.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker {
    /// `metadata.generation`, which kube-apiserver moves on every spec change of kinds that
    /// report an `observedGeneration`; metadata is compared on every reconcile anyway.
    Generation,
    /// `metadata.resourceVersion`, which moves on every change.
    ResourceVersion,
}

/// Per child (by uid): the [`Marker`] at which the child was last known to hold what we want,
/// after our own apply or after a full read that compared equal. A child whose marker has not moved since needs no
/// read; the child reflectors drop the entries of deleted children. Keys and markers are kept as
/// 64-bit hashes: a few dozen bytes per child.
#[derive(Debug, Default)]
pub struct Verified {
    seen: Mutex<HashMap<u64, u64>>,
}

impl Verified {
    fn marker(meta: &ObjectMeta, marker: Marker) -> Option<u64> {
        match (marker, meta.generation, &meta.resource_version) {
            (Marker::Generation, Some(generation), _) => Some(hash_of(("generation", generation))),
            (_, _, Some(version)) => Some(hash_of(("resourceVersion", version))),
            _ => None,
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<u64, u64>> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the child with this metadata is unchanged since it was last known to be current.
    pub fn is_current(&self, meta: &ObjectMeta, marker: Marker) -> bool {
        let (Some(uid), Some(marker)) = (&meta.uid, Self::marker(meta, marker)) else {
            return false;
        };
        self.entries().get(&hash_of(uid)) == Some(&marker)
    }

    /// Records that the child with this metadata holds what we want.
    pub fn remember(&self, meta: &ObjectMeta, marker: Marker) {
        if let (Some(uid), Some(marker)) = (&meta.uid, Self::marker(meta, marker)) {
            self.entries().insert(hash_of(uid), marker);
        }
    }

    /// Forgets a deleted child.
    pub fn forget(&self, meta: &ObjectMeta) {
        if let Some(uid) = &meta.uid {
            self.entries().remove(&hash_of(uid));
        }
    }

    pub fn len(&self) -> usize {
        self.entries().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether `live` holds every field of `want` with an equal value. Fields the API server
/// defaults (absent from `want`) are ignored; lists of scalars must match exactly, lists of
/// objects element by element (the server adds defaults inside elements).
pub fn contains(live: &Value, want: &Value) -> bool {
    match (want, live) {
        (Value::Object(w), Value::Object(l)) => w.iter().all(|(k, wv)| match l.get(k) {
            Some(lv) => contains(lv, wv),
            None => is_empty(wv),
        }),
        (Value::Array(w), Value::Array(l)) if w.iter().all(|v| v.is_object()) => {
            l.len() >= w.len() && w.iter().all(|wv| l.iter().any(|lv| contains(lv, wv)))
        }
        (Value::String(w), Value::String(l)) => w == l || same_quantity(w, l),
        (w, l) => w == l || (is_empty(w) && is_empty(l)),
    }
}

/// The API server stores resource quantities in canonical form (`1000m` becomes `1`); both
/// spellings mean the same and must not look like drift.
fn same_quantity(a: &str, b: &str) -> bool {
    match (parse_quantity(a), parse_quantity(b)) {
        (Some(x), Some(y)) => (x - y).abs() <= f64::EPSILON * x.abs().max(y.abs()) * 4.0,
        _ => false,
    }
}

fn parse_quantity(s: &str) -> Option<f64> {
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0f64.powi(2),
        "Gi" => 1024.0f64.powi(3),
        "Ti" => 1024.0f64.powi(4),
        "Pi" => 1024.0f64.powi(5),
        "Ei" => 1024.0f64.powi(6),
        exp => {
            let digits = exp.strip_prefix('e').or_else(|| exp.strip_prefix('E'))?;
            10f64.powi(digits.parse().ok()?)
        }
    };
    Some(number * factor)
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Hashes the desired object and stamps the hash on it, so a field we stop wanting is noticed
/// even though the live object still "contains" everything we want.
pub fn stamp_hash<K: Resource + Serialize>(kind: &str, desired: &mut K) -> Result<String, Error> {
    let text = serde_json::to_string(&*desired).map_err(|source| Error::Serialize {
        kind: kind.to_owned(),
        name: desired.meta().name.clone().unwrap_or_default(),
        source,
    })?;
    let hash = short_hash(&text);
    desired
        .meta_mut()
        .annotations
        .get_or_insert_with(Default::default)
        .insert(APPLIED_HASH_ANNOTATION.to_owned(), hash.clone());
    Ok(hash)
}

/// The applied-hash annotation of an object we applied.
pub fn applied_hash(meta: &ObjectMeta) -> Option<&str> {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(APPLIED_HASH_ANNOTATION))
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn containment() {
        let cases = [
            ("equal", json!({"a": 1}), json!({"a": 1}), true),
            (
                "server defaults ignored",
                json!({"a": 1, "b": 2}),
                json!({"a": 1}),
                true,
            ),
            ("changed value", json!({"a": 2}), json!({"a": 1}), false),
            ("missing field", json!({}), json!({"a": 1}), false),
            (
                "canonical quantity",
                json!({"cpu": "1"}),
                json!({"cpu": "1000m"}),
                true,
            ),
            (
                "canonical memory",
                json!({"memory": "1Gi"}),
                json!({"memory": "1024Mi"}),
                true,
            ),
            (
                "different quantity",
                json!({"cpu": "2"}),
                json!({"cpu": "1000m"}),
                false,
            ),
            (
                "plain strings",
                json!({"image": "nginx:1"}),
                json!({"image": "nginx:2"}),
                false,
            ),
            (
                "empty wanted list vs absent",
                json!({}),
                json!({"a": []}),
                true,
            ),
            (
                "scalar lists exact",
                json!({"args": ["x", "y"]}),
                json!({"args": ["y", "x"]}),
                false,
            ),
            (
                "scalar list extra",
                json!({"args": ["x", "y"]}),
                json!({"args": ["x"]}),
                false,
            ),
            (
                "object list with defaults",
                json!({"ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}),
                json!({"ports": [{"name": "http", "port": 80}]}),
                true,
            ),
            (
                "object list element edited",
                json!({"ports": [{"name": "http", "port": 81}]}),
                json!({"ports": [{"name": "http", "port": 80}]}),
                false,
            ),
            (
                "object list element removed",
                json!({"c": [{"name": "web"}]}),
                json!({"c": [{"name": "web"}, {"name": "git-sync"}]}),
                false,
            ),
        ];
        for (name, live, want, expected) in cases {
            assert_eq!(contains(&live, &want), expected, "{name}");
        }
    }

    #[test]
    fn verified_follows_generation_or_resource_version() {
        let meta = |generation: Option<i64>, version: &str| ObjectMeta {
            uid: Some("c1".into()),
            generation,
            resource_version: Some(version.into()),
            ..ObjectMeta::default()
        };
        let v = Verified::default();
        let (gen_, rv) = (Marker::Generation, Marker::ResourceVersion);
        assert!(!v.is_current(&meta(Some(1), "10"), gen_), "unknown child");
        v.remember(&meta(Some(1), "10"), gen_);
        assert!(
            v.is_current(&meta(Some(1), "11"), gen_),
            "a status update moves the resourceVersion, not the generation"
        );
        assert!(!v.is_current(&meta(Some(2), "12"), gen_), "a spec edit");
        assert!(
            !v.is_current(&meta(Some(1), "11"), rv),
            "other kinds follow the resourceVersion"
        );
        v.remember(&meta(None, "20"), gen_);
        assert!(
            v.is_current(&meta(None, "20"), gen_),
            "no generation: the resourceVersion"
        );
        assert!(!v.is_current(&meta(None, "21"), gen_));
        let other = ObjectMeta {
            uid: Some("c2".into()),
            ..meta(None, "20")
        };
        assert!(!v.is_current(&other, gen_), "per child");
        v.forget(&meta(None, "20"));
        assert!(v.is_empty());
    }
}
