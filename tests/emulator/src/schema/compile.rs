//! Compiling an `openAPIV3Schema` into a [`Node`] tree, with the structural checks the server
//! makes before it serves a CRD version: forbidden keywords, missing types, defaults that must
//! survive pruning and validation, and CEL rules compiled and costed where they sit.

use super::cel::{self, Scope};
use super::error::FieldError;
use super::node::Node;
use super::{cost, prune, validate};
use regex::Regex;
use serde_json::{Map, Value, json};

/// A whole `openAPIV3Schema`, compiled.
pub(crate) struct CompiledSchema {
    pub root: Node,
    /// Whether any `x-kubernetes-validations` rule exists.
    pub has_rules: bool,
}

/// Checks and compiles a whole `openAPIV3Schema`, reporting problems under `path`: every node,
/// the root's own constraints (an object, not nullable) and the cost budget of all its rules.
pub(crate) fn schema(
    openapi_v3_schema: &Value,
    path: &str,
) -> Result<CompiledSchema, Vec<FieldError>> {
    let mut parser = Parser {
        errors: Vec::new(),
        costs: Vec::new(),
    };
    let root = parser.parse(openapi_v3_schema, path, &Scope::root(), Ctx::root());
    if root.nullable {
        parser.errors.push(FieldError::forbidden(
            &format!("{path}.nullable"),
            "nullable cannot be true at the root",
        ));
    }
    if let Some(ty) = &root.ty
        && ty != "object"
    {
        parser.errors.push(FieldError::invalid(
            &format!("{path}.type"),
            json!(ty),
            "must be object at the root",
        ));
    }
    let total: f64 = parser.costs.iter().map(|(_, c)| c).sum();
    if total > cost::SCHEMA_LIMIT {
        // As kube-apiserver does, name the most expensive rules, then the overall overrun.
        let mut costs = parser.costs.clone();
        costs.sort_by(|a, b| b.1.total_cmp(&a.1));
        for (rule_path, _) in costs.iter().take(4) {
            parser.errors.push(FieldError::forbidden(
                rule_path,
                "contributed to estimated rule & messageExpression cost total exceeding cost limit for entire OpenAPIv3 schema",
            ));
        }
        parser.errors.push(FieldError::forbidden(
            path,
            cost::exceeds_message(
                "x-kubernetes-validations estimated rule & messageExpression cost total for entire OpenAPIv3 schema",
                total,
                cost::SCHEMA_LIMIT,
            ),
        ));
    }
    if parser.errors.is_empty() {
        Ok(CompiledSchema {
            root,
            has_rules: !parser.costs.is_empty(),
        })
    } else {
        Err(parser.errors)
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

/// Where a schema node sits, which decides how a missing `type` is reported.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Level {
    Root,
    Field,
    Item,
}

/// How a node is being parsed: its level, whether it is inside `allOf`/`anyOf`/`oneOf`/`not`
/// (a value validation), and whether a `type` is tolerated there (the `integer`/`string`
/// alternatives of an int-or-string).
#[derive(Clone, Copy, Debug)]
struct Ctx {
    pub level: Level,
    pub vv: bool,
    pub allow_type: bool,
    /// Directly inside an `allOf` of a structural node, where rules are allowed.
    pub in_all_of: bool,
}

impl Ctx {
    pub fn root() -> Ctx {
        Ctx {
            level: Level::Root,
            vv: false,
            allow_type: false,
            in_all_of: false,
        }
    }

    fn at(self, level: Level) -> Ctx {
        Ctx {
            level,
            allow_type: false,
            in_all_of: false,
            ..self
        }
    }

    fn value_validation(self, allow_type: bool) -> Ctx {
        Ctx {
            vv: true,
            allow_type,
            in_all_of: false,
            ..self
        }
    }
}

/// Whether `anyOf` is exactly the `[{type: integer}, {type: string}]` an int-or-string may carry.
fn is_int_or_string_any_of(v: Option<&Value>) -> bool {
    v == Some(&serde_json::json!([{"type": "integer"}, {"type": "string"}]))
}

/// Compiles schema nodes, collecting every problem found rather than stopping at the first.
struct Parser {
    pub errors: Vec<FieldError>,
    /// (rule path, estimated cost of the rule times how often it may run per object)
    pub costs: Vec<(String, f64)>,
}

impl Parser {
    /// Parses `v` at schema path `path`.
    pub fn parse(&mut self, v: &Value, path: &str, scope: &Scope, ctx: Ctx) -> Node {
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
        if ctx.vv {
            self.value_validation_keywords(obj, path, ctx.allow_type);
        }
        n.ty = str_of(obj, "type");
        n.format = str_of(obj, "format");
        n.nullable = bool_of(obj, "nullable");
        n.preserve_unknown = bool_of(obj, "x-kubernetes-preserve-unknown-fields");
        n.embedded = bool_of(obj, "x-kubernetes-embedded-resource");
        n.int_or_string = bool_of(obj, "x-kubernetes-int-or-string");
        n.required = strings_of(obj, "required");
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
        n.map_type = str_of(obj, "x-kubernetes-map-type");
        n.list_map_keys = strings_of(obj, "x-kubernetes-list-map-keys");

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

        if !ctx.vv {
            self.check_structural(obj, &n, path, ctx.level);
            if n.embedded && scope.resource_meta.is_some() {
                self.errors.push(FieldError::forbidden(
                    &format!("{path}.x-kubernetes-embedded-resource"),
                    "must not be used inside of resource meta",
                ));
            }
        }

        if let Some(props) = obj.get("properties").and_then(Value::as_object) {
            for (k, sub) in props {
                let child_path = format!("{path}.properties[{k}]");
                let child_scope =
                    if scope.root && ["metadata", "apiVersion", "kind"].contains(&k.as_str()) {
                        if !ctx.vv && k == "metadata" {
                            self.check_root_metadata(sub, &child_path);
                        }
                        scope.resource_meta(k)
                    } else {
                        scope.child()
                    };
                let child = self.parse(sub, &child_path, &child_scope, ctx.at(Level::Field));
                n.properties.insert(k.clone(), child);
            }
        }
        match obj.get("additionalProperties") {
            // Beside properties, `true` only keeps unknown fields.
            Some(Value::Bool(true)) if !n.properties.is_empty() => n.preserve_unknown = true,
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
                        ctx.at(Level::Field),
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
                    ctx.at(Level::Item),
                )))
            }
            None => {}
        }
        let mut nested: Vec<(&Value, String)> = Vec::new();
        for kw in ["allOf", "anyOf", "oneOf"] {
            let Some(list) = obj.get(kw).and_then(Value::as_array) else {
                continue;
            };
            // An int-or-string may spell out its two alternatives, directly or in an allOf.
            let int_or_string_alternatives = kw == "anyOf"
                && (n.int_or_string || ctx.allow_type)
                && is_int_or_string_any_of(obj.get(kw));
            let parsed: Vec<Node> = list
                .iter()
                .enumerate()
                .map(|(i, sub)| {
                    let sub_path = format!("{path}.{kw}[{i}]");
                    let sub_ctx = ctx.value_validation(
                        int_or_string_alternatives || (kw == "allOf" && n.int_or_string && !ctx.vv),
                    );
                    let sub_ctx = Ctx {
                        in_all_of: kw == "allOf" && !ctx.vv,
                        ..sub_ctx
                    };
                    let node = self.parse(sub, &sub_path, &scope.child(), sub_ctx);
                    nested.push((sub, sub_path));
                    node
                })
                .collect();
            match kw {
                "allOf" => n.all_of = parsed,
                "anyOf" => n.any_of = parsed,
                _ => n.one_of = parsed,
            }
        }
        if let Some(sub) = obj.get("not") {
            let sub_path = format!("{path}.not");
            n.not = Some(Box::new(self.parse(
                sub,
                &sub_path,
                &scope.child(),
                ctx.value_validation(false),
            )));
            nested.push((sub, sub_path));
        }
        if !ctx.vv {
            for (sub, sub_path) in nested {
                self.check_complete(&n, sub, path, &sub_path, ctx.level);
            }
        }

        if ctx.vv {
            // Rules in an allOf are compiled against, and run with, the node that holds it.
            if obj.contains_key("x-kubernetes-validations") && !ctx.in_all_of {
                self.errors.push(FieldError::forbidden(
                    &format!("{path}.x-kubernetes-validations"),
                    "x-kubernetes-validations is only supported in allOf among value validations",
                ));
            }
        } else {
            let mut sources = vec![(obj.get("x-kubernetes-validations"), path.to_string())];
            if let Some(all_of) = obj.get("allOf").and_then(Value::as_array) {
                for (i, sub) in all_of.iter().enumerate() {
                    sources.push((
                        sub.get("x-kubernetes-validations"),
                        format!("{path}.allOf[{i}]"),
                    ));
                }
            }
            for (rules, at) in sources {
                let Some(list) = rules.and_then(Value::as_array) else {
                    continue;
                };
                let rpath = format!("{at}.x-kubernetes-validations");
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
        if !ctx.vv
            && let Some(d) = &n.default
        {
            self.check_default(&n, d, path, scope);
        }
        n
    }

    /// A default must survive pruning unchanged and pass the node's own validation, CEL included,
    /// or the CRD is refused.
    fn check_default(&mut self, n: &Node, d: &Value, path: &str, scope: &Scope) {
        let dpath = format!("{path}.default");
        if let Some(meta) = &scope.resource_meta {
            self.errors.push(FieldError::forbidden(
                &dpath,
                format!("must not be set in top-level {meta}"),
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

    /// What `allOf`/`anyOf`/`oneOf`/`not` may not say: they only add value validations to the
    /// structure declared outside them.
    fn value_validation_keywords(
        &mut self,
        obj: &Map<String, Value>,
        path: &str,
        allow_type: bool,
    ) {
        for (k, v) in obj {
            let detail = match k.as_str() {
                "type" if allow_type => continue,
                "type" | "title" | "description" => "must be empty to be structural",
                "additionalProperties" | "default" => "must be undefined to be structural",
                "nullable"
                | "x-kubernetes-preserve-unknown-fields"
                | "x-kubernetes-embedded-resource"
                | "x-kubernetes-int-or-string" => {
                    if v != &Value::Bool(true) {
                        continue;
                    }
                    "must be false to be structural"
                }
                _ => continue,
            };
            self.errors
                .push(FieldError::forbidden(&format!("{path}.{k}"), detail));
        }
    }

    /// What a value validation says at `vv_path` checked against `child`, the structural schema
    /// at `path`: it must be declared there.
    fn check_declared(
        &mut self,
        child: Option<&Node>,
        sub: &Value,
        path: &str,
        vv_path: &str,
        level: Level,
    ) {
        match child {
            Some(child) => self.check_complete(child, sub, path, vv_path, level),
            None => self.errors.push(FieldError::required(
                path,
                format!("because it is defined in {vv_path}"),
            )),
        }
    }

    /// Every property and item a value validation mentions must be declared in the structural
    /// schema itself.
    fn check_complete(&mut self, n: &Node, vv: &Value, path: &str, vv_path: &str, level: Level) {
        if let Some(props) = vv.get("properties").and_then(Value::as_object) {
            for (k, sub) in props {
                let sub_vv_path = format!("{vv_path}.properties[{k}]");
                if level == Level::Root && k == "metadata" {
                    self.errors.push(FieldError::forbidden(
                        &sub_vv_path,
                        "must not be specified in a nested context",
                    ));
                    continue;
                }
                let child = n.properties.get(k);
                if child.is_none() && n.preserve_unknown {
                    continue;
                }
                let sub_path = format!("{path}.properties[{k}]");
                self.check_declared(child, sub, &sub_path, &sub_vv_path, Level::Field);
            }
        }
        for (key, child, level) in [
            ("items", n.items.as_deref(), Level::Item),
            (
                "additionalProperties",
                n.additional.as_deref(),
                Level::Field,
            ),
        ] {
            if let Some(sub) = vv.get(key).filter(|i| i.is_object()) {
                let (sub_path, sub_vv_path) = (format!("{path}.{key}"), format!("{vv_path}.{key}"));
                self.check_declared(child, sub, &sub_path, &sub_vv_path, level);
            }
        }
        for kw in ["allOf", "anyOf", "oneOf"] {
            if let Some(list) = vv.get(kw).and_then(Value::as_array) {
                for (i, sub) in list.iter().enumerate() {
                    self.check_complete(n, sub, path, &format!("{vv_path}.{kw}[{i}]"), level);
                }
            }
        }
        if let Some(sub) = vv.get("not") {
            self.check_complete(n, sub, path, &format!("{vv_path}.not"), level);
        }
    }

    /// The root's `metadata` is implicitly ObjectMeta: a schema may only constrain `name` and
    /// `generateName`.
    fn check_root_metadata(&mut self, v: &Value, path: &str) {
        let Some(obj) = v.as_object() else {
            return;
        };
        let allowed_key = |k: &str| matches!(k, "type" | "properties" | "description" | "title");
        let props_ok = obj
            .get("properties")
            .and_then(Value::as_object)
            .is_none_or(|p| p.keys().all(|k| k == "name" || k == "generateName"));
        if !obj.keys().all(|k| allowed_key(k)) || !props_ok {
            self.errors.push(FieldError::forbidden(
                path,
                "must not specify anything other than name and generateName, but metadata is implicitly specified",
            ));
        }
        if obj.get("type").and_then(Value::as_str) != Some("object") {
            self.errors.push(FieldError::invalid(
                &format!("{path}.type"),
                Value::from(obj.get("type").and_then(Value::as_str).unwrap_or("")),
                "must be object",
            ));
        }
    }

    /// The keys of a map list: item properties, scalar, unique, required or defaulted, and not
    /// nullable.
    fn check_map_keys(&mut self, n: &Node, items: Option<&Map<String, Value>>, path: &str) {
        let props = items
            .and_then(|i| i.get("properties"))
            .and_then(Value::as_object);
        let required: Vec<&str> = items
            .and_then(|i| i.get("required"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let keys = Value::from(n.list_map_keys.clone());
        let mut seen = Vec::new();
        for k in &n.list_map_keys {
            match props.and_then(|p| p.get(k)) {
                None => self.errors.push(FieldError::invalid(
                    &format!("{path}.x-kubernetes-list-map-keys"),
                    keys.clone(),
                    "entries must all be names of item properties",
                )),
                Some(p) => {
                    let ty = p.get("type").and_then(Value::as_str).unwrap_or("");
                    if ty == "array" || ty == "object" {
                        self.errors.push(FieldError::invalid(
                            &format!("{path}.items.properties[{k}].type"),
                            Value::from("object"),
                            "must be a scalar type if parent array's x-kubernetes-list-type is map",
                        ));
                    }
                    if !required.contains(&k.as_str()) && p.get("default").is_none() {
                        self.errors.push(FieldError::required(
                            &format!("{path}.items.properties[{k}].default"),
                            "this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property",
                        ));
                    }
                    if p.get("nullable") == Some(&Value::Bool(true)) {
                        self.errors.push(FieldError::forbidden(
                            &format!("{path}.items.properties[{k}].nullable"),
                            "this property is in x-kubernetes-list-map-keys, so it cannot be nullable",
                        ));
                    }
                }
            }
            if seen.contains(&k) {
                self.errors.push(FieldError::invalid(
                    &format!("{path}.x-kubernetes-list-map-keys"),
                    keys.clone(),
                    "must not contain duplicate entries",
                ));
            }
            seen.push(k);
        }
    }

    /// `type` must be `want` because of an extension (`why` says which): missing or empty is
    /// Required, another type Invalid, as kube-apiserver words it.
    fn require_type(&mut self, n: &Node, path: &str, want: &str, why: &str) {
        let field = format!("{path}.type");
        match n.ty.as_deref() {
            Some(ty) if ty == want => {}
            None | Some("") => self.errors.push(FieldError::required(&field, why)),
            Some(other) => self
                .errors
                .push(FieldError::invalid(&field, Value::from(other), why)),
        }
    }

    fn check_structural(&mut self, obj: &Map<String, Value>, n: &Node, path: &str, level: Level) {
        match n.ty.as_deref() {
            None if !n.int_or_string && !n.preserve_unknown => {
                let detail = match level {
                    Level::Root => "must not be empty at the root",
                    Level::Field => "must not be empty for specified object fields",
                    Level::Item => "must not be empty for specified array items",
                };
                self.errors
                    .push(FieldError::required(&format!("{path}.type"), detail));
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
        // `additionalProperties: true` may sit beside properties; a schema or `false` may not.
        let has_properties = obj
            .get("properties")
            .and_then(Value::as_object)
            .is_some_and(|p| !p.is_empty());
        if has_properties
            && obj
                .get("additionalProperties")
                .is_some_and(|a| a != &Value::Bool(true))
        {
            self.errors.push(FieldError::forbidden(
                &format!("{path}.additionalProperties"),
                "additionalProperties and properties are mutual exclusive",
            ));
        }
        if level == Level::Root && obj.contains_key("additionalProperties") {
            self.errors.push(FieldError::forbidden(
                &format!("{path}.additionalProperties"),
                "must not be used at the root",
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
        let items = obj.get("items").and_then(Value::as_object);
        let items_ty = items.and_then(|i| i.get("type")).and_then(Value::as_str);
        if let Some(lt) = &n.list_type {
            self.require_type(
                n,
                path,
                "array",
                "must be array if x-kubernetes-list-type is specified",
            );
            if !["atomic", "set", "map"].contains(&lt.as_str()) {
                self.errors.push(FieldError::not_supported(
                    &format!("{path}.x-kubernetes-list-type"),
                    Value::String(lt.clone()),
                    &["atomic", "set", "map"].map(String::from),
                ));
            }
            if lt == "set" && n.ty.as_deref() == Some("array") {
                let item_map_type = items
                    .and_then(|i| i.get("x-kubernetes-map-type"))
                    .and_then(Value::as_str);
                let item_list_type = items
                    .and_then(|i| i.get("x-kubernetes-list-type"))
                    .and_then(Value::as_str);
                match items_ty {
                    Some("array") if item_list_type.is_some_and(|t| t != "atomic") => {
                        self.errors.push(FieldError::invalid(
                            &format!("{path}.items.x-kubernetes-list-type"),
                            Value::from(item_list_type),
                            "must be atomic as item of a list with x-kubernetes-list-type=set",
                        ))
                    }
                    Some("object") if item_map_type != Some("atomic") => {
                        self.errors.push(FieldError::invalid(
                            &format!("{path}.items.x-kubernetes-map-type"),
                            Value::from(item_list_type),
                            "must be atomic as item of a list with x-kubernetes-list-type=set",
                        ))
                    }
                    _ => {}
                }
            }
            if lt == "map" {
                if n.list_map_keys.is_empty() {
                    self.errors.push(FieldError::required(
                        &format!("{path}.x-kubernetes-list-map-keys"),
                        "must not be empty if x-kubernetes-list-type is map",
                    ));
                }
                if items.is_none() {
                    self.errors.push(FieldError::required(
                        &format!("{path}.items"),
                        "must have a schema if x-kubernetes-list-type is map",
                    ));
                } else if items_ty != Some("object") {
                    self.errors.push(FieldError::invalid(
                        &format!("{path}.items.type"),
                        Value::from(items_ty.unwrap_or("")),
                        "must be object if parent array's x-kubernetes-list-type is map",
                    ));
                } else {
                    self.check_map_keys(n, items, path);
                }
            }
        }
        if !n.list_map_keys.is_empty() {
            match n.list_type.as_deref() {
                Some("map") => {}
                None => self.errors.push(FieldError::required(
                    &format!("{path}.x-kubernetes-list-type"),
                    "must be map if x-kubernetes-list-map-keys is non-empty",
                )),
                Some(other) => self.errors.push(FieldError::invalid(
                    &format!("{path}.x-kubernetes-list-type"),
                    Value::from(other),
                    "must be map if x-kubernetes-list-map-keys is non-empty",
                )),
            }
        }
        if let Some(mt) = obj.get("x-kubernetes-map-type").and_then(Value::as_str) {
            self.require_type(
                n,
                path,
                "object",
                "must be object if x-kubernetes-map-type is specified",
            );
            if mt != "atomic" && mt != "granular" {
                self.errors.push(FieldError::not_supported(
                    &format!("{path}.x-kubernetes-map-type"),
                    Value::from(mt),
                    &["atomic".to_string(), "granular".to_string()],
                ));
            }
        }
        if n.ty.as_deref() == Some("null") {
            self.errors.push(FieldError::forbidden(
                &format!("{path}.type"),
                "type cannot be set to null, use nullable as an alternative",
            ));
        }
        if n.embedded {
            self.require_type(
                n,
                path,
                "object",
                "must be object if x-kubernetes-embedded-resource is true",
            );
            if !n.preserve_unknown && !obj.contains_key("properties") {
                self.errors.push(FieldError::required(
                    &format!("{path}.properties"),
                    "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
                ));
            }
        }
        if n.int_or_string {
            for kw in [
                "x-kubernetes-preserve-unknown-fields",
                "x-kubernetes-embedded-resource",
            ] {
                if obj.get(kw) == Some(&Value::Bool(true)) {
                    self.errors.push(FieldError::invalid(
                        &format!("{path}.{kw}"),
                        Value::Bool(true),
                        "must be false if x-kubernetes-int-or-string is true",
                    ));
                }
            }
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
    }
}

fn str_of(obj: &Map<String, Value>, k: &str) -> Option<String> {
    obj.get(k).and_then(Value::as_str).map(String::from)
}

fn bool_of(obj: &Map<String, Value>, k: &str) -> bool {
    obj.get(k).and_then(Value::as_bool).unwrap_or(false)
}

/// The strings of a list of strings (`required`, `x-kubernetes-list-map-keys`).
fn strings_of(obj: &Map<String, Value>, k: &str) -> Vec<String> {
    obj.get(k)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(String::from))
        .collect()
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
    cost::cardinality(declared, Some(&probe), map)
}
