//! Field paths and field sets, and their `fieldsV1` wire encoding as kube-apiserver writes it.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

/// One step of a field path. The variant order is the order kube-apiserver sorts siblings in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathElement {
    /// A struct field or map key: `f:name`.
    Field(String),
    /// An associative-list item by its keys, as compact JSON with the keys sorted: `k:{"name":"web"}`.
    Key(String),
    /// A set item by its value, as compact JSON: `v:"finalizer"`.
    Value(String),
    /// A list item by position: `i:0` (only for lists without keys that are not atomic; rare).
    Index(usize),
}

impl PathElement {
    /// The key of a `fieldsV1` object member.
    fn encode(&self) -> String {
        match self {
            PathElement::Field(name) => format!("f:{name}"),
            PathElement::Key(json) => format!("k:{json}"),
            PathElement::Value(json) => format!("v:{json}"),
            PathElement::Index(i) => format!("i:{i}"),
        }
    }

    fn decode(key: &str) -> Result<Self, String> {
        let (prefix, rest) = key
            .split_once(':')
            .ok_or_else(|| format!("invalid fieldsV1 key {key:?}"))?;
        let canonical = |json: &str| {
            serde_json::from_str::<Value>(json)
                .map(|v| v.to_string())
                .map_err(|e| format!("invalid fieldsV1 key {key:?}: {e}"))
        };
        match prefix {
            "f" => Ok(PathElement::Field(rest.to_owned())),
            "k" => Ok(PathElement::Key(canonical(rest)?)),
            "v" => Ok(PathElement::Value(canonical(rest)?)),
            "i" => rest
                .parse()
                .map(PathElement::Index)
                .map_err(|e| format!("invalid fieldsV1 key {key:?}: {e}")),
            _ => Err(format!("invalid fieldsV1 key {key:?}")),
        }
    }
}

/// Renders a value the way structured-merge-diff's `value.ToString` does: strings quoted, the rest as JSON.
fn render_value(v: &Value) -> String {
    v.to_string()
}

impl fmt::Display for PathElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(name) => write!(f, ".{name}"),
            PathElement::Key(json) => {
                let parsed: Value = serde_json::from_str(json).unwrap_or(Value::Null);
                let parts: Vec<String> = parsed
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| format!("{k}={}", render_value(v)))
                            .collect()
                    })
                    .unwrap_or_default();
                write!(f, "[{}]", parts.join(","))
            }
            PathElement::Value(json) => write!(f, "[={json}]"),
            PathElement::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// A field path such as `.spec.containers[name="web"].image`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct FieldPath(pub Vec<PathElement>);

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for pe in &self.0 {
            write!(f, "{pe}")?;
        }
        Ok(())
    }
}

/// A set of field paths stored as a tree: a node is a member when the path leading to it is in the set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    member: bool,
    children: BTreeMap<PathElement, FieldSet>,
}

impl FieldSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, path: &[PathElement]) {
        let mut node = self;
        for pe in path {
            node = node.children.entry(pe.clone()).or_default();
        }
        node.member = true;
    }

    pub fn contains(&self, path: &[PathElement]) -> bool {
        let mut node = self;
        for pe in path {
            match node.children.get(pe) {
                Some(n) => node = n,
                None => return false,
            }
        }
        node.member
    }

    pub fn child(&self, pe: &PathElement) -> Option<&FieldSet> {
        self.children.get(pe)
    }

    pub fn children(&self) -> impl Iterator<Item = (&PathElement, &FieldSet)> {
        self.children.iter()
    }

    pub fn is_member(&self) -> bool {
        self.member
    }

    /// No path at all in the set.
    pub fn is_empty(&self) -> bool {
        !self.member && self.children.values().all(FieldSet::is_empty)
    }

    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.union_in(other);
        out
    }

    fn union_in(&mut self, other: &FieldSet) {
        self.member |= other.member;
        for (pe, sub) in &other.children {
            self.children.entry(pe.clone()).or_default().union_in(sub);
        }
    }

    /// Paths in `self` that are not in `other` (exact paths, not subtrees).
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && !other.member,
            children: BTreeMap::new(),
        };
        for (pe, sub) in &self.children {
            let d = match other.children.get(pe) {
                Some(o) => sub.difference(o),
                None => sub.clone(),
            };
            if !d.is_empty() {
                out.children.insert(pe.clone(), d);
            }
        }
        out
    }

    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && other.member,
            children: BTreeMap::new(),
        };
        for (pe, sub) in &self.children {
            if let Some(o) = other.children.get(pe) {
                let i = sub.intersection(o);
                if !i.is_empty() {
                    out.children.insert(pe.clone(), i);
                }
            }
        }
        out
    }

    /// Every member path, in kube-apiserver's sort order.
    pub fn paths(&self) -> Vec<FieldPath> {
        let mut out = Vec::new();
        let mut prefix = Vec::new();
        self.collect(&mut prefix, &mut out);
        out
    }

    fn collect(&self, prefix: &mut Vec<PathElement>, out: &mut Vec<FieldPath>) {
        if self.member {
            out.push(FieldPath(prefix.clone()));
        }
        for (pe, sub) in &self.children {
            prefix.push(pe.clone());
            sub.collect(prefix, out);
            prefix.pop();
        }
    }

    /// The `fieldsV1` JSON object: `{}` for a leaf member, `".": {}` for a member that also has children.
    pub fn to_fields_v1(&self) -> Value {
        Value::Object(self.encode_children())
    }

    fn encode_children(&self) -> Map<String, Value> {
        let mut out = Map::new();
        for (pe, sub) in &self.children {
            if sub.is_empty() {
                continue;
            }
            let mut inner = sub.encode_children();
            if sub.member && !inner.is_empty() {
                inner.insert(".".to_owned(), Value::Object(Map::new()));
            }
            out.insert(pe.encode(), Value::Object(inner));
        }
        out
    }

    pub fn from_fields_v1(v: &Value) -> Result<FieldSet, String> {
        let obj = v
            .as_object()
            .ok_or_else(|| "fieldsV1 must be an object".to_owned())?;
        let mut out = FieldSet::new();
        for (key, sub) in obj {
            if key == "." {
                out.member = true;
                continue;
            }
            let pe = PathElement::decode(key)?;
            let mut child = FieldSet::from_fields_v1(sub)?;
            if child.children.is_empty() {
                child.member = true;
            }
            out.children.insert(pe, child);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(name: &str) -> PathElement {
        PathElement::Field(name.to_owned())
    }

    #[test]
    fn fields_v1_round_trips() {
        let cases = [
            json!({"f:data": {"f:a": {}}}),
            json!({"f:metadata": {"f:labels": {".": {}, "f:app": {}}}}),
            json!({"f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}}}}),
            json!({"f:metadata": {"f:finalizers": {"v:\"a\"": {}, "v:\"b\"": {}}}}),
        ];
        for case in cases {
            let set = FieldSet::from_fields_v1(&case).unwrap();
            assert_eq!(set.to_fields_v1(), case);
        }
    }

    #[test]
    fn paths_render_like_kube_apiserver() {
        let mut s = FieldSet::new();
        s.insert(&[f("spec"), f("replicas")]);
        s.insert(&[
            f("spec"),
            f("containers"),
            PathElement::Key(r#"{"name":"web"}"#.into()),
            f("image"),
        ]);
        s.insert(&[
            f("spec"),
            f("ports"),
            PathElement::Key(r#"{"port":80,"protocol":"TCP"}"#.into()),
        ]);
        s.insert(&[
            f("metadata"),
            f("finalizers"),
            PathElement::Value(r#""x""#.into()),
        ]);
        let rendered: Vec<String> = s.paths().iter().map(ToString::to_string).collect();
        assert_eq!(
            rendered,
            [
                r#".metadata.finalizers[="x"]"#,
                r#".spec.containers[name="web"].image"#,
                r#".spec.ports[port=80,protocol="TCP"]"#,
                ".spec.replicas",
            ]
        );
    }

    #[test]
    fn set_algebra() {
        let mut a = FieldSet::new();
        a.insert(&[f("a"), f("b")]);
        a.insert(&[f("a")]);
        a.insert(&[f("c")]);
        let mut b = FieldSet::new();
        b.insert(&[f("a"), f("b")]);
        let d = a.difference(&b);
        assert!(d.contains(&[f("a")]) && d.contains(&[f("c")]) && !d.contains(&[f("a"), f("b")]));
        let i = a.intersection(&b);
        assert_eq!(i, b);
        assert!(FieldSet::new().is_empty());
        assert!(!a.union(&b).is_empty());
    }
}
