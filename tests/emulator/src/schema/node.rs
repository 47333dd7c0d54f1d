//! The compiled schema tree: one [`Node`] per `openAPIV3Schema` node, with its rules compiled.
//! Built by `compile`; read by the passes (pruning, defaulting, validation, CEL, cost).

use super::rule::CompiledRule;
use regex::Regex;
use serde_json::Value;
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
    pub map_type: Option<String>,
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

    /// The schema of `additionalProperties: true`: anything goes, nothing is pruned.
    pub fn any() -> Node {
        Node {
            preserve_unknown: true,
            ..Node::default()
        }
    }
}
