//! The parsed form of an `openAPIV3Schema` node, and the structural checks the server makes
//! before it serves a CRD version.

use super::cel::{self, CompiledRule, Scope};
use super::error::FieldError;
use super::{prune, validate};
use regex::Regex;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// One schema node. Only what pruning, defaulting and validation read is kept.
#[derive(Debug, Default)]
pub(crate) struct Node {
    pub ty: Option<String>,
    pub format: Option<String>,
    pub nullable: bool,
    pub properties: BTreeMap<String, Node>,
    /// `additionalProperties` as a schema; `additionalProperties: true` is a schema that allows anything.
    pub additional: Option<Box<Node>>,
    pub items: Option<Box<Node>>,
    pub required: Vec<String>,
    pub enumeration: Option<Vec<Value>>,
    pub minimum: Option<f64>,
    pub maximum: Option<f64>,
    pub exclusive_minimum: bool,
    pub exclusive_maximum: bool,
    pub multiple_of: Option<f64>,
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    pub pattern: Option<(String, Regex)>,
    pub min_items: Option<u64>,
    pub max_items: Option<u64>,
    pub unique_items: bool,
    pub min_properties: Option<u64>,
    pub max_properties: Option<u64>,
    pub default: Option<Value>,
    pub preserve_unknown: bool,
    pub embedded: bool,
    pub int_or_string: bool,
    pub list_type: Option<String>,
    pub list_map_keys: Vec<String>,
    pub all_of: Vec<Node>,
    pub any_of: Vec<Node>,
    pub one_of: Vec<Node>,
    pub not: Option<Box<Node>>,
    pub rules: Vec<CompiledRule>,
}

impl Node {
    /// Whether a value of this node is an object whose fields are known (not a map).
    pub fn is_object(&self) -> bool {
        self.ty.as_deref() == Some("object")
    }
}

/// Keywords a structural schema may not use.
const FORBIDDEN_KEYWORDS: &[&str] = &[
    "$ref",
    "$schema",
    "id",
    "definitions",
    "dependencies",
    "patternProperties",
    "additionalItems",
];

/// Keywords that `allOf`/`anyOf`/`oneOf`/`not` may not carry (value validations only).
const NOT_IN_VALUE_VALIDATION: &[&str] = &[
    "type",
    "default",
    "description",
    "nullable",
    "additionalProperties",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-int-or-string",
];

pub(crate) struct Parser {
    pub errors: Vec<FieldError>,
    /// (rule path, estimated cost of the rule times how often it may run per object)
    pub costs: Vec<(String, f64)>,
}

impl Parser {
    /// Parses `v` at schema path `path`; `value_validation` is true inside `allOf`/`anyOf`/`oneOf`/`not`.
    pub fn parse(&mut self, v: &Value, path: &str, scope: &Scope, value_validation: bool) -> Node {
        let Some(obj) = v.as_object() else {
            self.errors.push(FieldError::invalid(
                path,
                v.clone(),
                "must be a schema object",
            ));
            return Node::default();
        };
        let mut n = Node::default();
        for kw in FORBIDDEN_KEYWORDS {
            if obj.contains_key(*kw) {
                self.errors.push(FieldError::forbidden(
                    &format!("{path}.{kw}"),
                    format!("{kw} is not supported"),
                ));
            }
        }
        if value_validation {
            for kw in NOT_IN_VALUE_VALIDATION {
                if obj.contains_key(*kw) {
                    self.errors.push(FieldError::forbidden(
                        &format!("{path}.{kw}"),
                        "must be false to be structural",
                    ));
                }
            }
        }
        n.ty = str_of(obj, "type");
        n.format = str_of(obj, "format");
        n.nullable = bool_of(obj, "nullable");
        n.preserve_unknown = bool_of(obj, "x-kubernetes-preserve-unknown-fields");
        n.embedded = bool_of(obj, "x-kubernetes-embedded-resource");
        n.int_or_string = bool_of(obj, "x-kubernetes-int-or-string");
        n.required = obj
            .get("required")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        n.enumeration = obj.get("enum").and_then(Value::as_array).cloned();
        n.minimum = obj.get("minimum").and_then(Value::as_f64);
        n.maximum = obj.get("maximum").and_then(Value::as_f64);
        n.exclusive_minimum = bool_of(obj, "exclusiveMinimum");
        n.exclusive_maximum = bool_of(obj, "exclusiveMaximum");
        n.multiple_of = obj.get("multipleOf").and_then(Value::as_f64);
        n.min_length = obj.get("minLength").and_then(Value::as_u64);
        n.max_length = obj.get("maxLength").and_then(Value::as_u64);
        n.min_items = obj.get("minItems").and_then(Value::as_u64);
        n.max_items = obj.get("maxItems").and_then(Value::as_u64);
        n.min_properties = obj.get("minProperties").and_then(Value::as_u64);
        n.max_properties = obj.get("maxProperties").and_then(Value::as_u64);
        n.unique_items = bool_of(obj, "uniqueItems");
        n.default = obj.get("default").cloned();
        n.list_type = str_of(obj, "x-kubernetes-list-type");
        n.list_map_keys = obj
            .get("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();

        if let Some(p) = str_of(obj, "pattern") {
            match Regex::new(&p) {
                Ok(re) => n.pattern = Some((p, re)),
                Err(e) => self.errors.push(FieldError::invalid(
                    &format!("{path}.pattern"),
                    Value::String(p.clone()),
                    format!("must be a valid regular expression, but isn't: {e}"),
                )),
            }
        }

        if !value_validation {
            self.check_structural(obj, &n, path);
        }

        if let Some(props) = obj.get("properties").and_then(Value::as_object) {
            for (k, sub) in props {
                let child_scope = if scope.root && k == "metadata" {
                    scope.metadata()
                } else {
                    scope.child()
                };
                let child = self.parse(
                    sub,
                    &format!("{path}.properties[{k}]"),
                    &child_scope,
                    value_validation,
                );
                n.properties.insert(k.clone(), child);
            }
        }
        match obj.get("additionalProperties") {
            Some(Value::Bool(true)) => n.additional = Some(Box::new(Node::any())),
            Some(Value::Bool(false)) | None => {}
            Some(sub) => {
                n.additional = Some(Box::new(
                    self.parse(
                        sub,
                        &format!("{path}.additionalProperties"),
                        &scope
                            .child()
                            .times(cardinality_json(n.max_properties, sub, true)),
                        value_validation,
                    ),
                ))
            }
        }
        match obj.get("items") {
            Some(Value::Array(_)) => self.errors.push(FieldError::forbidden(
                &format!("{path}.items"),
                "items must be a schema object and not an array",
            )),
            Some(sub) => {
                // Below a list that is not a map, elements have no identity: transition rules
                // cannot find their old value.
                let item_scope = if n.list_type.as_deref() == Some("map") {
                    scope.child()
                } else {
                    scope.uncorrelated(path)
                };
                let item_scope = item_scope.times(cardinality_json(n.max_items, sub, false));
                n.items = Some(Box::new(self.parse(
                    sub,
                    &format!("{path}.items"),
                    &item_scope,
                    value_validation,
                )))
            }
            None => {}
        }
        for (kw, target) in [
            ("allOf", &mut n.all_of),
            ("anyOf", &mut n.any_of),
            ("oneOf", &mut n.one_of),
        ] {
            if let Some(list) = obj.get(kw).and_then(Value::as_array) {
                for (i, sub) in list.iter().enumerate() {
                    target.push(self.parse(
                        sub,
                        &format!("{path}.{kw}[{i}]"),
                        &scope.child(),
                        true,
                    ));
                }
            }
        }
        if let Some(sub) = obj.get("not") {
            n.not = Some(Box::new(self.parse(
                sub,
                &format!("{path}.not"),
                &scope.child(),
                true,
            )));
        }

        if let Some(rules) = obj.get("x-kubernetes-validations") {
            let rpath = format!("{path}.x-kubernetes-validations");
            if value_validation {
                self.errors.push(FieldError::forbidden(
                    &rpath,
                    "x-kubernetes-validations is not supported in value validations",
                ));
            } else if let Some(list) = rules.as_array() {
                for (i, r) in list.iter().enumerate() {
                    match cel::compile_rule(r, &n, &format!("{rpath}[{i}]"), scope) {
                        Ok(c) => {
                            self.costs
                                .push((format!("{rpath}[{i}].rule"), c.cost * scope.cardinality));
                            n.rules.push(c);
                        }
                        Err(mut es) => self.errors.append(&mut es),
                    }
                }
            }
        }
        if !value_validation && let Some(d) = &n.default {
            self.check_default(&n, d, path, scope);
        }
        n
    }

    /// A default must survive pruning unchanged and pass the node's own validation, CEL included,
    /// or the CRD is refused.
    fn check_default(&mut self, n: &Node, d: &Value, path: &str, scope: &Scope) {
        let dpath = format!("{path}.default");
        if scope.in_metadata {
            self.errors.push(FieldError::forbidden(
                &dpath,
                "must not be set inside metadata",
            ));
            return;
        }
        let mut pruned = d.clone();
        prune::prune(n, &mut pruned, n.embedded);
        if &pruned != d {
            self.errors.push(FieldError::invalid(
                &dpath,
                d.clone(),
                "must not have unknown fields",
            ));
            return;
        }
        if d.is_null() && n.nullable {
            return;
        }
        let mut errs = Vec::new();
        validate::openapi(n, d, None, "", &mut errs);
        validate::rules(n, d, None, false, "", &mut errs, &mut Vec::new());
        for mut e in errs {
            e.field = match e.field.as_str() {
                "" | "<nil>" => dpath.clone(),
                f if f.starts_with('[') => format!("{dpath}{f}"),
                f => format!("{dpath}.{f}"),
            };
            self.errors.push(e);
        }
    }

    fn check_structural(&mut self, obj: &Map<String, Value>, n: &Node, path: &str) {
        match n.ty.as_deref() {
            None if !n.int_or_string && !n.preserve_unknown => {
                self.errors.push(FieldError::required(
                    &format!("{path}.type"),
                    "must not be empty for specified object fields",
                ));
            }
            Some("object" | "array" | "string" | "integer" | "number" | "boolean") | None => {}
            Some(other) => self.errors.push(FieldError::not_supported(
                &format!("{path}.type"),
                Value::String(other.to_string()),
                &["array", "boolean", "integer", "number", "object", "string"].map(String::from),
            )),
        }
        if n.int_or_string && n.ty.is_some() {
            self.errors.push(FieldError::invalid(
                &format!("{path}.type"),
                Value::String(n.ty.clone().unwrap_or_default()),
                "must be empty if x-kubernetes-int-or-string is true",
            ));
        }
        if obj.contains_key("properties") && obj.contains_key("additionalProperties") {
            self.errors.push(FieldError::forbidden(
                &format!("{path}.additionalProperties"),
                "additionalProperties and properties are mutual exclusive",
            ));
        }
        if obj.get("additionalProperties") == Some(&Value::Bool(false)) {
            self.errors.push(FieldError::forbidden(
                &format!("{path}.additionalProperties"),
                "must not be false",
            ));
        }
        if n.ty.as_deref() == Some("array") && !obj.contains_key("items") {
            self.errors.push(FieldError::required(
                &format!("{path}.items"),
                "must be specified",
            ));
        }
        if n.unique_items {
            self.errors.push(FieldError::forbidden(
                &format!("{path}.uniqueItems"),
                "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
            ));
        }
        if let Some(lt) = &n.list_type {
            if !["atomic", "set", "map"].contains(&lt.as_str()) {
                self.errors.push(FieldError::not_supported(
                    &format!("{path}.x-kubernetes-list-type"),
                    Value::String(lt.clone()),
                    &["atomic", "set", "map"].map(String::from),
                ));
            } else if n.ty.as_deref() != Some("array") {
                self.errors.push(FieldError::invalid(
                    &format!("{path}.type"),
                    Value::String(n.ty.clone().unwrap_or_default()),
                    "must be array if x-kubernetes-list-type is specified",
                ));
            }
            if lt == "map" && n.list_map_keys.is_empty() {
                self.errors.push(FieldError::required(
                    &format!("{path}.x-kubernetes-list-map-keys"),
                    "must not be empty if x-kubernetes-list-type is map",
                ));
            }
        }
        if !n.list_map_keys.is_empty() && n.list_type.as_deref() != Some("map") {
            self.errors.push(FieldError::forbidden(
                &format!("{path}.x-kubernetes-list-map-keys"),
                "must not be set if x-kubernetes-list-type is not map",
            ));
        }
        if n.embedded && n.ty.as_deref() != Some("object") {
            self.errors.push(FieldError::invalid(
                &format!("{path}.type"),
                Value::String(n.ty.clone().unwrap_or_default()),
                "must be object if x-kubernetes-embedded-resource is true",
            ));
        }
        for kw in [
            "x-kubernetes-preserve-unknown-fields",
            "x-kubernetes-embedded-resource",
            "x-kubernetes-int-or-string",
        ] {
            if obj.get(kw) == Some(&Value::Bool(false)) {
                self.errors.push(FieldError::invalid(
                    &format!("{path}.{kw}"),
                    Value::Bool(false),
                    "must be true or undefined",
                ));
            }
        }
        let items = obj.get("items").and_then(Value::as_object);
        if matches!(n.list_type.as_deref(), Some("set" | "map"))
            && items.is_some_and(|i| i.get("nullable") == Some(&Value::Bool(true)))
        {
            self.errors.push(FieldError::forbidden(
                &format!("{path}.items.nullable"),
                format!(
                    "cannot be nullable when x-kubernetes-list-type is {}",
                    n.list_type.as_deref().unwrap_or_default()
                ),
            ));
        }
        if n.list_type.as_deref() == Some("map") {
            let props = items
                .and_then(|i| i.get("properties"))
                .and_then(Value::as_object);
            for k in &n.list_map_keys {
                match props.and_then(|p| p.get(k)) {
                    None => {
                        self.errors.push(FieldError::invalid(
                            &format!("{path}.x-kubernetes-list-map-keys"),
                            Value::from(n.list_map_keys.clone()),
                            "entries must all be names of item properties",
                        ));
                        break;
                    }
                    Some(p) => {
                        let ty = p.get("type").and_then(Value::as_str).unwrap_or("");
                        if ty == "array" || ty == "object" {
                            self.errors.push(FieldError::invalid(
                                &format!("{path}.items.properties[{k}].type"),
                                Value::from(ty),
                                "must be a scalar type if parent array type is x-kubernetes-list-type=map",
                            ));
                        }
                    }
                }
            }
        }
    }
}

impl Node {
    /// The schema of `additionalProperties: true`: anything goes, nothing is pruned.
    fn any() -> Node {
        Node {
            preserve_unknown: true,
            ..Node::default()
        }
    }
}

fn str_of(obj: &Map<String, Value>, k: &str) -> Option<String> {
    obj.get(k).and_then(Value::as_str).map(String::from)
}

fn bool_of(obj: &Map<String, Value>, k: &str) -> bool {
    obj.get(k).and_then(Value::as_bool).unwrap_or(false)
}

/// The cardinality of a list or map from its raw schema: its declared maximum, else what fits
/// in a request given the smallest element its item schema allows.
fn cardinality_json(declared: Option<u64>, element: &Value, map: bool) -> f64 {
    let probe = Node {
        ty: element
            .get("type")
            .and_then(Value::as_str)
            .map(String::from),
        ..Node::default()
    };
    super::cost::cardinality(declared, Some(&probe), map)
}
