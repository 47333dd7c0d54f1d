//! The three patch types of `PATCH` requests: JSON merge patch, JSON patch and strategic merge patch.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::PatchError;
use super::schema::Schema;

/// RFC 7386 JSON merge patch: objects merge recursively, `null` deletes, everything else replaces.
pub fn merge_patch(target: &Value, patch: &Value) -> Value {
    let mut out = target.clone();
    json_patch::merge(&mut out, patch);
    out
}

/// RFC 6902 JSON patch. A failing `test` operation, a missing path or a malformed document is an error.
pub fn json_patch(target: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| PatchError(format!("invalid JSON patch: {e}")))?;
    let mut out = target.clone();
    json_patch::patch(&mut out, &ops).map_err(|e| PatchError(e.to_string()))?;
    Ok(out)
}

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

/// Strategic merge patch as kube-apiserver applies it to built-in kinds: lists whose schema says
/// `x-kubernetes-patch-strategy: merge` merge by `x-kubernetes-patch-merge-key` (or by value for
/// primitives), other lists replace; maps merge; `null` deletes; the directives `$patch`,
/// `$retainKeys`, `$setElementOrder/<list>` and `$deleteFromPrimitiveList/<list>` are honoured.
pub fn strategic_merge_patch(
    target: &Value,
    patch: &Value,
    schema: &Value,
) -> Result<Value, PatchError> {
    let (Some(original), Some(patch)) = (target.as_object(), patch.as_object()) else {
        return Err(PatchError(
            "strategic merge patch: both the object and the patch must be JSON objects".into(),
        ));
    };
    merge_map(original.clone(), patch, Schema::new(schema)).map(Value::Object)
}

fn bad(msg: impl Into<String>) -> PatchError {
    PatchError(msg.into())
}

fn merge_map(
    mut original: Map<String, Value>,
    patch: &Map<String, Value>,
    s: Schema<'_>,
) -> Result<Map<String, Value>, PatchError> {
    if let Some(directive) = patch.get(DIRECTIVE) {
        return match directive.as_str() {
            Some("replace") => {
                let mut rest = patch.clone();
                rest.remove(DIRECTIVE);
                merge_map(Map::new(), &rest, s)
            }
            Some("delete") => Ok(Map::new()),
            _ => Err(bad(format!(
                "Unknown patch type: {directive} in map: {}",
                Value::Object(patch.clone())
            ))),
        };
    }

    if let Some(retain) = patch.get(RETAIN_KEYS) {
        let keep: HashSet<&str> = retain
            .as_array()
            .ok_or_else(|| bad("invalid patch: $retainKeys must be a list of strings"))?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for (k, v) in patch {
            let directive = k == RETAIN_KEYS
                || k.starts_with(SET_ELEMENT_ORDER)
                || k.starts_with(DELETE_FROM_PRIMITIVE_LIST);
            if !v.is_null() && !directive && !keep.contains(k.as_str()) {
                return Err(bad(
                    "doesn't satisfy the retainKeys directive: all fields in the patch must be in $retainKeys",
                ));
            }
        }
        original.retain(|k, _| keep.contains(k.as_str()));
    }

    let mut ordered = HashSet::new();
    for (k, order) in patch {
        let Some(field) = k.strip_prefix(SET_ELEMENT_ORDER) else {
            continue;
        };
        let order = order
            .as_array()
            .ok_or_else(|| bad(format!("invalid patch: {k} must be a list")))?;
        let (fs, _) = s.field(field);
        let orig_list = original
            .get(field)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let patch_list = patch
            .get(field)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if orig_list.is_empty() && patch_list.is_empty() {
            ordered.insert(field.to_owned());
            continue;
        }
        let merged = merge_list(&orig_list, &patch_list, fs)?;
        let key = fs.patch_merge_key();
        let (in_order, rest): (Vec<Value>, Vec<Value>) = merged
            .into_iter()
            .partition(|item| position(order, item, key).is_some());
        original.insert(
            field.to_owned(),
            Value::Array(normalize_order(in_order, rest, order, &orig_list, key)),
        );
        ordered.insert(field.to_owned());
    }

    for (k, pv) in patch {
        if k == DIRECTIVE
            || k == RETAIN_KEYS
            || k.starts_with(SET_ELEMENT_ORDER)
            || ordered.contains(k)
        {
            continue;
        }
        if let Some(field) = k.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            let remove = pv
                .as_array()
                .ok_or_else(|| bad(format!("invalid patch: {k} must be a list")))?;
            if let Some(Value::Array(list)) = original.get_mut(field) {
                list.retain(|item| !remove.contains(item));
            }
            continue;
        }
        if pv.is_null() {
            original.remove(k);
            continue;
        }
        let (fs, _) = s.field(k);
        let merged = match (original.remove(k), pv) {
            (Some(Value::Object(o)), Value::Object(p)) => {
                if fs.patch_strategies().contains(&"replace") {
                    Value::Object(merge_map(Map::new(), p, fs)?)
                } else {
                    Value::Object(merge_map(o, p, fs)?)
                }
            }
            (Some(Value::Array(o)), Value::Array(p)) => Value::Array(merge_list(&o, p, fs)?),
            (_, Value::Object(p)) => Value::Object(merge_map(Map::new(), p, fs)?),
            (_, Value::Array(p)) => Value::Array(merge_list(&[], p, fs)?),
            (_, scalar) => scalar.clone(),
        };
        original.insert(k.clone(), merged);
    }
    Ok(original)
}

/// The identity of a list item: its merge key's value for maps, itself for primitives.
fn identity<'v>(item: &'v Value, key: Option<&str>) -> Option<&'v Value> {
    match (item, key) {
        (Value::Object(m), Some(k)) => m.get(k),
        (Value::Object(_), None) => None,
        (v, _) => Some(v),
    }
}

fn position(list: &[Value], item: &Value, key: Option<&str>) -> Option<usize> {
    let id = identity(item, key)?;
    list.iter().position(|x| identity(x, key) == Some(id))
}

fn merge_list(
    original: &[Value],
    patch: &[Value],
    s: Schema<'_>,
) -> Result<Vec<Value>, PatchError> {
    if !s.patch_strategies().contains(&"merge") {
        return patch
            .iter()
            .map(|item| match item {
                Value::Object(m) => merge_map(Map::new(), m, s.items()).map(Value::Object),
                v => Ok(v.clone()),
            })
            .collect();
    }
    if original.is_empty() && patch.is_empty() {
        return Ok(Vec::new());
    }
    let maps = original.iter().chain(patch).any(Value::is_object);
    if !maps {
        let mut merged: Vec<Value> = Vec::new();
        for v in original.iter().chain(patch) {
            if !merged.contains(v) {
                merged.push(v.clone());
            }
        }
        let (in_patch, server_only) = merged.into_iter().partition(|v| patch.contains(v));
        return Ok(normalize_order(
            in_patch,
            server_only,
            patch,
            original,
            None,
        ));
    }
    let key = s
        .patch_merge_key()
        .ok_or_else(|| bad("cannot merge lists without merge key"))?;
    let item_schema = s.items();

    let mut original: Vec<Value> = original.to_vec();
    let mut plain: Vec<&Map<String, Value>> = Vec::new();
    let mut replace = false;
    for item in patch {
        let m = item
            .as_object()
            .ok_or_else(|| bad("all elements of a merged list must be of the same type"))?;
        match m.get(DIRECTIVE).map(|d| d.as_str()) {
            None => plain.push(m),
            Some(Some("delete")) => {
                let id = m.get(key).ok_or_else(|| {
                    bad(format!(
                        "map: {item} does not contain declared merge key: {key}"
                    ))
                })?;
                original.retain(|o| o.get(key) != Some(id));
            }
            Some(Some("replace")) => replace = true,
            Some(Some("merge")) => {
                return Err(bad("merging lists cannot yet be specified in the patch"));
            }
            Some(_) => return Err(bad(format!("Unknown patch type in list item: {item}"))),
        }
    }
    if replace {
        return plain
            .into_iter()
            .map(|m| merge_map(Map::new(), m, item_schema).map(Value::Object))
            .collect();
    }

    let server_order = original.clone();
    let mut merged = original;
    for p in &plain {
        let id = p.get(key).ok_or_else(|| {
            bad(format!(
                "map: {} does not contain declared merge key: {key}",
                Value::Object((*p).clone())
            ))
        })?;
        match merged.iter().position(|o| o.get(key) == Some(id)) {
            Some(i) => {
                let o = merged[i].as_object().cloned().unwrap_or_default();
                merged[i] = Value::Object(merge_map(o, p, item_schema)?);
            }
            None => merged.push(Value::Object(merge_map(Map::new(), p, item_schema)?)),
        }
    }
    let patch_order: Vec<Value> = plain.iter().map(|m| Value::Object((*m).clone())).collect();
    let (in_patch, server_only) = merged
        .into_iter()
        .partition(|v| position(&patch_order, v, Some(key)).is_some());
    Ok(normalize_order(
        in_patch,
        server_only,
        &patch_order,
        &server_order,
        Some(key),
    ))
}

/// Orders the patched items as the patch lists them and slots the items only the server has back in
/// where they stood relative to the others, like kube-apiserver does.
fn normalize_order(
    mut in_patch: Vec<Value>,
    mut server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    key: Option<&str>,
) -> Vec<Value> {
    let rank = |order: &[Value], v: &Value| position(order, v, key).unwrap_or(usize::MAX);
    in_patch.sort_by_key(|v| rank(patch_order, v));
    server_only.sort_by_key(|v| rank(server_order, v));
    let mut out = Vec::with_capacity(in_patch.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = in_patch.into_iter().peekable();
    loop {
        match (left.peek(), right.peek()) {
            (Some(l), Some(r)) => {
                let before = match (
                    position(server_order, l, key),
                    position(server_order, r, key),
                ) {
                    (Some(li), Some(ri)) => li < ri,
                    _ => false,
                };
                out.extend(if before { left.next() } else { right.next() });
            }
            (Some(_), None) => out.extend(left.next()),
            (None, Some(_)) => out.extend(right.next()),
            (None, None) => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::merge_schema as builtin_schema;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let cases = [
            (
                json!({"a": 1, "b": 2}),
                json!({"b": null, "c": 3}),
                json!({"a": 1, "c": 3}),
            ),
            (
                json!({"a": {"x": 1, "y": 2}}),
                json!({"a": {"y": 3}}),
                json!({"a": {"x": 1, "y": 3}}),
            ),
            (json!({"l": [1, 2]}), json!({"l": [3]}), json!({"l": [3]})),
            (json!({"a": 1}), json!([1]), json!([1])),
        ];
        for (target, patch, want) in cases {
            assert_eq!(merge_patch(&target, &patch), want, "{patch}");
        }
    }

    #[test]
    fn json_patch_follows_rfc_6902() {
        let target = json!({"spec": {"replicas": 1, "list": ["a"]}});
        let ok = [
            (
                json!([{"op": "replace", "path": "/spec/replicas", "value": 3}]),
                json!({"spec": {"replicas": 3, "list": ["a"]}}),
            ),
            (
                json!([{"op": "add", "path": "/spec/list/-", "value": "b"}]),
                json!({"spec": {"replicas": 1, "list": ["a", "b"]}}),
            ),
            (
                json!([{"op": "test", "path": "/spec/replicas", "value": 1}, {"op": "remove", "path": "/spec/list"}]),
                json!({"spec": {"replicas": 1}}),
            ),
        ];
        for (patch, want) in ok {
            assert_eq!(json_patch(&target, &patch).unwrap(), want, "{patch}");
        }
        let failing = [
            json!([{"op": "test", "path": "/spec/replicas", "value": 2}]),
            json!([{"op": "remove", "path": "/spec/missing"}]),
            json!([{"op": "frobnicate", "path": "/spec"}]),
            json!({"op": "add"}),
        ];
        for patch in failing {
            assert!(json_patch(&target, &patch).is_err(), "{patch}");
        }
    }

    fn deployment(containers: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
               "spec": {"replicas": 1, "template": {"spec": {"containers": containers}}}})
    }

    fn containers(obj: &Value) -> &Value {
        &obj["spec"]["template"]["spec"]["containers"]
    }

    #[test]
    fn strategic_merge_of_deployment_lists() {
        let schema = builtin_schema("apps", "v1", "Deployment").unwrap();
        let live = deployment(json!([
            {"name": "web", "image": "nginx:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
             "ports": [{"containerPort": 80, "protocol": "TCP"}], "args": ["x", "y"]},
            {"name": "sync", "image": "git-sync:4"},
        ]));
        let cases: Vec<(&str, Value, Value)> = vec![
            (
                "containers merge by name, env by name, unlisted fields stay",
                json!({"spec": {"template": {"spec": {"containers": [
                    {"name": "web", "image": "nginx:2", "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}]}]}}}}),
                json!([
                    {"name": "web", "image": "nginx:2", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}, {"name": "C", "value": "4"}],
                     "ports": [{"containerPort": 80, "protocol": "TCP"}], "args": ["x", "y"]},
                    {"name": "sync", "image": "git-sync:4"},
                ]),
            ),
            (
                // kube-apiserver puts items only the patch has before the server's own items.
                "ports merge by containerPort (new item first); args (no strategy) replace",
                json!({"spec": {"template": {"spec": {"containers": [
                    {"name": "web", "ports": [{"containerPort": 8080}], "args": ["z"]}]}}}}),
                json!([
                    {"name": "web", "image": "nginx:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                     "ports": [{"containerPort": 8080}, {"containerPort": 80, "protocol": "TCP"}], "args": ["z"]},
                    {"name": "sync", "image": "git-sync:4"},
                ]),
            ),
            (
                "$patch: delete removes one item; null deletes a field",
                json!({"spec": {"template": {"spec": {"containers": [
                    {"name": "sync", "$patch": "delete"}, {"name": "web", "args": null}]}}}}),
                json!([
                    {"name": "web", "image": "nginx:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                     "ports": [{"containerPort": 80, "protocol": "TCP"}]},
                ]),
            ),
            (
                "$patch: replace replaces the whole list",
                json!({"spec": {"template": {"spec": {"containers": [
                    {"$patch": "replace"}, {"name": "only", "image": "busybox"}]}}}}),
                json!([{"name": "only", "image": "busybox"}]),
            ),
            (
                "$setElementOrder reorders and a new item lands where the order says",
                json!({"spec": {"template": {"spec": {
                    "$setElementOrder/containers": [{"name": "sync"}, {"name": "new"}, {"name": "web"}],
                    "containers": [{"name": "new", "image": "busybox"}]}}}}),
                json!([
                    {"name": "sync", "image": "git-sync:4"},
                    {"name": "new", "image": "busybox"},
                    {"name": "web", "image": "nginx:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                     "ports": [{"containerPort": 80, "protocol": "TCP"}], "args": ["x", "y"]},
                ]),
            ),
            (
                "$setElementOrder on a nested list (env)",
                json!({"spec": {"template": {"spec": {"containers": [{"name": "web",
                    "$setElementOrder/env": [{"name": "B"}, {"name": "A"}]}]}}}}),
                json!([
                    {"name": "web", "image": "nginx:1", "env": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}],
                     "ports": [{"containerPort": 80, "protocol": "TCP"}], "args": ["x", "y"]},
                    {"name": "sync", "image": "git-sync:4"},
                ]),
            ),
        ];
        for (name, patch, want) in cases {
            let got = strategic_merge_patch(&live, &patch, &schema)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(containers(&got), &want, "{name}");
            assert_eq!(got["spec"]["replicas"], 1, "{name}");
        }
    }

    #[test]
    fn strategic_merge_of_metadata_service_and_directives() {
        let svc_schema = builtin_schema("", "v1", "Service").unwrap();
        let svc = json!({"metadata": {"name": "s", "labels": {"a": "1", "b": "2"}, "finalizers": ["x", "y"]},
            "spec": {"selector": {"app": "a", "tier": "web"},
                     "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}]}});
        let cases: Vec<(&str, Value, Value)> = vec![
            (
                "labels merge, null deletes a label",
                json!({"metadata": {"labels": {"b": null, "c": "3"}}}),
                json!({"metadata": {"name": "s", "labels": {"a": "1", "c": "3"}, "finalizers": ["x", "y"]},
                    "spec": {"selector": {"app": "a", "tier": "web"},
                             "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}]}}),
            ),
            (
                "finalizers merge as a set; $deleteFromPrimitiveList removes",
                json!({"metadata": {"finalizers": ["z"], "$deleteFromPrimitiveList/finalizers": ["x"]}}),
                json!({"metadata": {"name": "s", "labels": {"a": "1", "b": "2"}, "finalizers": ["z", "y"]},
                    "spec": {"selector": {"app": "a", "tier": "web"},
                             "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}]}}),
            ),
            (
                "service ports merge by port; $patch: replace on a map replaces it",
                json!({"spec": {"ports": [{"port": 443, "targetPort": 8443}],
                                "selector": {"$patch": "replace", "app": "b"}}}),
                json!({"metadata": {"name": "s", "labels": {"a": "1", "b": "2"}, "finalizers": ["x", "y"]},
                    "spec": {"selector": {"app": "b"},
                             "ports": [{"port": 443, "targetPort": 8443}, {"port": 80, "protocol": "TCP", "targetPort": 8080}]}}),
            ),
        ];
        for (name, patch, want) in cases {
            let got = strategic_merge_patch(&svc, &patch, &svc_schema)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(got, want, "{name}");
        }

        let dep_schema = builtin_schema("apps", "v1", "Deployment").unwrap();
        let dep = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
        let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
        let got = strategic_merge_patch(&dep, &patch, &dep_schema).unwrap();
        assert_eq!(got, json!({"spec": {"strategy": {"type": "Recreate"}}}));
        let vols = json!({"spec": {"template": {"spec": {"volumes": [
            {"name": "v", "configMap": {"name": "c"}}, {"name": "w", "emptyDir": {}}]}}}});
        let switch = json!({"spec": {"template": {"spec": {"volumes": [
            {"$retainKeys": ["name", "secret"], "name": "v", "secret": {"secretName": "s"}}]}}}});
        assert_eq!(
            strategic_merge_patch(&vols, &switch, &dep_schema).unwrap(),
            json!({"spec": {"template": {"spec": {"volumes": [
                {"name": "v", "secret": {"secretName": "s"}}, {"name": "w", "emptyDir": {}}]}}}}),
            "$retainKeys drops the volume source the patch replaced"
        );
        let bad_retain =
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}});
        assert!(strategic_merge_patch(&dep, &bad_retain, &dep_schema).is_err());
        let pod = json!({"spec": {"template": {"spec": {"containers": [{"name": "a"}]}}}});
        let order_only =
            json!({"spec": {"template": {"spec": {"$setElementOrder/initContainers": []}}}});
        assert_eq!(
            strategic_merge_patch(&pod, &order_only, &dep_schema).unwrap(),
            pod,
            "ordering an absent list does not create it"
        );
        let no_key = json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}});
        assert!(strategic_merge_patch(&dep, &no_key, &dep_schema).is_err());
        let bad_directive = json!({"metadata": {"$patch": "frobnicate"}});
        assert!(strategic_merge_patch(&dep, &bad_directive, &dep_schema).is_err());
    }
}
