//! OpenAPI v3 validation of an object against a structural schema, with kube-openapi's messages
//! as apiextensions turns them into field errors, then list-type uniqueness and CEL rules.

use super::cel;
use super::error::{FieldError, format_float, go_quote};
use super::format;
use super::node::Node;
use serde_json::{Value, json};

/// The JSON type name kube-openapi reports for a value.
fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_integer(v: &Value) -> bool {
    match v {
        Value::Number(n) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    }
}

fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The old value of list item `x`, where it can be correlated: by key in a map list, by value in
/// a set; items of atomic lists have no identity.
fn old_item<'o>(node: &Node, x: &Value, old: Option<&'o Value>) -> Option<&'o Value> {
    let olds = old?.as_array()?;
    match node.list_type.as_deref() {
        Some("map") => olds
            .iter()
            .find(|o| node.list_map_keys.iter().all(|k| o.get(k) == x.get(k))),
        Some("set") => olds.iter().find(|o| *o == x),
        _ => None,
    }
}

/// OpenAPI keyword validation of `v` at `path`. `old` is the correlated old value on update: a
/// value equal to it is not validated again (kube-apiserver's validation ratcheting).
pub(crate) fn openapi(
    node: &Node,
    v: &Value,
    old: Option<&Value>,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    if old == Some(v) {
        return;
    }
    if v.is_null() && (node.nullable || (node.ty.is_none() && !node.int_or_string)) {
        return;
    }
    if !type_ok(node, v, path, errors) {
        return;
    }
    composition(node, v, path, errors);
    if let Value::String(s) = v {
        string_keywords(node, s, path, errors);
        if let Some(f) = &node.format
            && format::check(f, s) == Some(false)
        {
            errors.push(FieldError::type_invalid(
                path,
                v.clone(),
                format!("{path} in body must be of type {f}: {}", go_quote(s)),
            ));
        }
    }
    if let Value::Number(n) = v {
        number_keywords(node, n, path, errors);
    }
    if let Value::Array(items) = v {
        array_keywords(node, items, old, path, errors);
    }
    if let Some(allowed) = &node.enumeration
        && !allowed.iter().any(|a| json_equal(a, v))
    {
        let values: Vec<String> = allowed
            .iter()
            .map(|a| match a {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        errors.push(FieldError::not_supported(path, v.clone(), &values));
    }
    if let Value::Object(obj) = v {
        if let Some(max) = node.max_properties
            && obj.len() as u64 > max
        {
            errors.push(FieldError::too_many(
                path,
                Some(obj.len() as u64),
                Some(max),
            ));
        }
        if let Some(min) = node.min_properties
            && (obj.len() as u64) < min
        {
            errors.push(FieldError::invalid(
                path,
                json!(min),
                format!("{path} in body should have at least {min} properties"),
            ));
        }
        if node.embedded {
            embedded_resource(obj, path, errors);
        }
        for r in &node.required {
            if !obj.contains_key(r) {
                errors.push(FieldError::required(&child_path(path, r), ""));
            }
        }
        for (k, x) in obj {
            let old_x = old.and_then(|o| o.get(k));
            if let Some(child) = node.properties.get(k) {
                openapi(child, x, old_x, &child_path(path, k), errors);
            } else if let Some(add) = &node.additional {
                openapi(add, x, old_x, &child_path(path, k), errors);
            }
        }
    }
}

/// An `x-kubernetes-embedded-resource` object must say what it is.
fn embedded_resource(
    obj: &serde_json::Map<String, Value>,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    for k in ["apiVersion", "kind"] {
        let p = child_path(path, k);
        match obj.get(k) {
            None => errors.push(FieldError::required(&p, "must not be empty")),
            Some(Value::String(s)) if s.is_empty() => {
                errors.push(FieldError::invalid(&p, json!(s), "must not be empty"))
            }
            Some(Value::String(_)) => {}
            Some(other) => errors.push(FieldError::invalid(&p, other.clone(), "must be a string")),
        }
    }
}

fn type_ok(node: &Node, v: &Value, path: &str, errors: &mut Vec<FieldError>) -> bool {
    let (ok, want) = if node.int_or_string {
        (is_integer(v) || v.is_string(), "integer,string".to_string())
    } else {
        let Some(ty) = node.ty.as_deref() else {
            return true;
        };
        let ok = match ty {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "boolean" => v.is_boolean(),
            "integer" => is_integer(v),
            "number" => v.is_number(),
            _ => true,
        };
        (ok, ty.to_string())
    };
    if !ok {
        let got = json_type(v);
        errors.push(FieldError::type_invalid(
            path,
            json!(got),
            format!("{path} in body must be of type {want}: {}", go_quote(got)),
        ));
    }
    ok
}

fn string_keywords(node: &Node, s: &str, path: &str, errors: &mut Vec<FieldError>) {
    let len = s.chars().count() as u64;
    if let Some(max) = node.max_length
        && len > max
    {
        errors.push(FieldError::too_long(path, Some(max)));
    }
    if let Some(min) = node.min_length
        && len < min
    {
        errors.push(FieldError::invalid(
            path,
            json!(s),
            format!("{path} in body should be at least {min} chars long"),
        ));
    }
    if let Some((src, re)) = &node.pattern
        && !re.is_match(s)
    {
        errors.push(FieldError::invalid(
            path,
            json!(s),
            format!("{path} in body should match '{src}'"),
        ));
    }
}

fn number_keywords(node: &Node, n: &serde_json::Number, path: &str, errors: &mut Vec<FieldError>) {
    let x = n.as_f64().unwrap_or(0.0);
    let shown = Value::Number(n.clone());
    // An integer is compared and reported as one; the bound is printed as Go prints it.
    let bound = |b: f64| {
        if n.is_i64() || n.is_u64() {
            format!("{}", b as i64)
        } else {
            format_float(b)
        }
    };
    if let Some(m) = node.multiple_of
        && m > 0.0
        && ((x / m).fract() != 0.0)
    {
        errors.push(FieldError::invalid(
            path,
            shown.clone(),
            format!("{path} in body should be a multiple of {}", format_float(m)),
        ));
    }
    if let Some(max) = node.maximum {
        let bad = if node.exclusive_maximum {
            x >= max
        } else {
            x > max
        };
        if bad {
            let rel = if node.exclusive_maximum {
                "less than"
            } else {
                "less than or equal to"
            };
            errors.push(FieldError::invalid(
                path,
                shown.clone(),
                format!("{path} in body should be {rel} {}", bound(max)),
            ));
        }
    }
    if let Some(min) = node.minimum {
        let bad = if node.exclusive_minimum {
            x <= min
        } else {
            x < min
        };
        if bad {
            let rel = if node.exclusive_minimum {
                "greater than"
            } else {
                "greater than or equal to"
            };
            errors.push(FieldError::invalid(
                path,
                shown,
                format!("{path} in body should be {rel} {}", bound(min)),
            ));
        }
    }
}

fn array_keywords(
    node: &Node,
    items: &[Value],
    old: Option<&Value>,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    let size = items.len() as u64;
    if let Some(min) = node.min_items
        && size < min
    {
        errors.push(FieldError::invalid(
            path,
            json!(size),
            format!("{path} in body should have at least {min} items"),
        ));
    }
    if let Some(max) = node.max_items
        && size > max
    {
        errors.push(FieldError::too_many(path, Some(size), Some(max)));
    }
    if node.unique_items {
        let dup = items
            .iter()
            .enumerate()
            .any(|(i, a)| items[..i].iter().any(|b| json_equal(a, b)));
        if dup {
            errors.push(FieldError::invalid(
                path,
                json!(""),
                format!("{path} in body shouldn't contain duplicates"),
            ));
        }
    }
    if let Some(it) = &node.items {
        for (i, x) in items.iter().enumerate() {
            openapi(
                it,
                x,
                old_item(node, x, old),
                &format!("{path}[{i}]"),
                errors,
            );
        }
    }
}

/// `allOf`, `anyOf`, `oneOf` and `not`, reported the way kube-openapi words them.
fn composition(node: &Node, v: &Value, path: &str, errors: &mut Vec<FieldError>) {
    for sub in &node.all_of {
        openapi(sub, v, None, path, errors);
    }
    let run = |sub: &Node| {
        let mut e = Vec::new();
        openapi(sub, v, None, path, &mut e);
        e
    };
    // The failures of the alternative that came closest are reported too; kube-openapi picks
    // it by matched keywords, approximated here by the fewest errors.
    let closest = |results: Vec<Vec<FieldError>>| {
        results
            .into_iter()
            .filter(|e| !e.is_empty())
            .min_by_key(Vec::len)
            .unwrap_or_default()
    };
    // An error kube-openapi raises without a field ends up on a nil path, which prints as "<nil>".
    let composite = |msg: String| FieldError::invalid("<nil>", json!(""), msg);
    if !node.any_of.is_empty() {
        let results: Vec<Vec<FieldError>> = node.any_of.iter().map(run).collect();
        if results.iter().all(|e| !e.is_empty()) {
            errors.push(composite(format!(
                "{path} must validate at least one schema (anyOf)"
            )));
            errors.extend(closest(results));
        }
    }
    if !node.one_of.is_empty() {
        let results: Vec<Vec<FieldError>> = node.one_of.iter().map(run).collect();
        let valid = results.iter().filter(|e| e.is_empty()).count();
        if valid != 1 {
            let extra = if valid == 0 {
                "Found none valid".to_string()
            } else {
                format!("Found {valid} valid alternatives")
            };
            errors.push(composite(format!(
                "{path} must validate one and only one schema (oneOf). {extra}"
            )));
            if valid == 0 {
                errors.extend(closest(results));
            }
        }
    }
    if let Some(not) = &node.not
        && run(not).is_empty()
    {
        errors.push(composite(format!(
            "{path} must not validate the schema (not)"
        )));
    }
}

/// JSON equality where `1` and `1.0` are the same number.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, p)| y.get(k).is_some_and(|q| json_equal(p, q)))
        }
        _ => a == b,
    }
}

/// `x-kubernetes-list-type: set|map` uniqueness, reported as `Duplicate value` on the later item.
pub(crate) fn list_types(
    node: &Node,
    v: &Value,
    old: Option<&Value>,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    if old == Some(v) {
        return;
    }
    match v {
        Value::Array(items) => {
            match node.list_type.as_deref() {
                Some("set") => {
                    for (i, x) in items.iter().enumerate() {
                        if items[..i].iter().any(|y| json_equal(x, y)) {
                            errors.push(FieldError::duplicate(&format!("{path}[{i}]"), x.clone()));
                        }
                    }
                }
                Some("map") => {
                    let key_of = |x: &Value| {
                        let mut m = serde_json::Map::new();
                        for k in &node.list_map_keys {
                            if let Some(kv) = x.get(k) {
                                m.insert(k.clone(), kv.clone());
                            }
                        }
                        Value::Object(m)
                    };
                    for (i, x) in items.iter().enumerate() {
                        let key = key_of(x);
                        if items[..i].iter().any(|y| json_equal(&key_of(y), &key)) {
                            errors.push(FieldError::duplicate(&format!("{path}[{i}]"), key));
                        }
                    }
                }
                _ => {}
            }
            if let Some(it) = &node.items {
                for (i, x) in items.iter().enumerate() {
                    list_types(
                        it,
                        x,
                        old_item(node, x, old),
                        &format!("{path}[{i}]"),
                        errors,
                    );
                }
            }
        }
        Value::Object(obj) => {
            for (k, x) in obj {
                let old_x = old.and_then(|o| o.get(k));
                if let Some(child) = node.properties.get(k) {
                    list_types(child, x, old_x, &child_path(path, k), errors);
                } else if let Some(add) = &node.additional {
                    list_types(add, x, old_x, &format!("{path}[{k}]"), errors);
                }
            }
        }
        _ => {}
    }
}

/// CEL rules at every node, with the old value where it can be correlated. `parent_unchanged`
/// carries ratcheting into items that cannot be correlated themselves.
pub(crate) fn rules(
    node: &Node,
    v: &Value,
    old: Option<&Value>,
    parent_unchanged: bool,
    path: &str,
    errors: &mut Vec<FieldError>,
    warnings: &mut Vec<FieldError>,
) {
    if v.is_null() {
        return;
    }
    let unchanged = match old {
        Some(o) => o == v,
        None => parent_unchanged,
    };
    cel::evaluate(node, v, old, path, unchanged, errors, warnings);
    match v {
        Value::Object(obj) => {
            for (k, x) in obj {
                let old_x = old.and_then(|o| o.get(k));
                if let Some(child) = node.properties.get(k) {
                    rules(
                        child,
                        x,
                        old_x,
                        unchanged,
                        &child_path(path, k),
                        errors,
                        warnings,
                    );
                } else if let Some(add) = &node.additional {
                    rules(
                        add,
                        x,
                        old_x,
                        unchanged,
                        &format!("{path}[{k}]"),
                        errors,
                        warnings,
                    );
                }
            }
        }
        Value::Array(items) => {
            let Some(it) = &node.items else {
                return;
            };
            for (i, x) in items.iter().enumerate() {
                // Only map lists give transition rules an old item; sets still ratchet.
                let old_x = match node.list_type.as_deref() {
                    Some("map") => old_item(node, x, old),
                    _ => None,
                };
                let item_unchanged = unchanged || old_item(node, x, old) == Some(x);
                rules(
                    it,
                    x,
                    old_x,
                    item_unchanged,
                    &format!("{path}[{i}]"),
                    errors,
                    warnings,
                );
            }
        }
        _ => {}
    }
}
