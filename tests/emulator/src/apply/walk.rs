//! Schema-guided walks behind server-side apply: an object's field set, merging an applied
//! configuration into a live object, comparing two objects, and pruning fields a manager let go.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Map, Value};

use super::fieldset::{FieldPath, FieldSet, PathElement};
use super::schema::{ListType, Schema};

/// What changed between two objects, as field sets.
#[derive(Debug, Default)]
pub struct Comparison {
    pub added: FieldSet,
    pub modified: FieldSet,
    pub removed: FieldSet,
}

/// The path element naming one item of a set or associative list.
pub fn item_element(item: &Value, list: Schema<'_>) -> Result<PathElement, String> {
    match list.list_type() {
        ListType::Set => Ok(PathElement::Value(item.to_string())),
        ListType::Map => {
            let keys = list.list_map_keys();
            let Some(obj) = item.as_object() else {
                return Err("associative list with keys may not have non-map elements".into());
            };
            let items = list.items();
            let mut key = Map::new();
            for k in &keys {
                if let Some(v) = obj.get(*k).filter(|v| !v.is_null()) {
                    key.insert((*k).to_owned(), v.clone());
                } else if let Some(d) = items.key_default(k) {
                    key.insert((*k).to_owned(), d.clone());
                }
            }
            if key.is_empty() {
                return Err(format!(
                    "associative list with keys has an element that omits all key fields {keys:?} \
                     (and doesn't have default values for any key fields)"
                ));
            }
            Ok(PathElement::Key(Value::Object(key).to_string()))
        }
        ListType::Atomic => Err("invalid indexing of non-associative list".into()),
    }
}

fn non_null(v: Option<&Value>) -> Option<&Value> {
    v.filter(|v| !v.is_null())
}

/// The set of fields a value sets. `strict` rejects duplicate list items (applied configurations);
/// live objects may carry duplicates, which are then owned as a whole.
pub fn field_set(v: &Value, s: Schema<'_>, strict: bool) -> Result<FieldSet, String> {
    let mut set = FieldSet::new();
    let mut path = Vec::new();
    collect(v, s, &mut path, &mut set, strict)?;
    Ok(set)
}

fn collect(
    v: &Value,
    s: Schema<'_>,
    path: &mut Vec<PathElement>,
    set: &mut FieldSet,
    strict: bool,
) -> Result<(), String> {
    match v {
        Value::Object(m) if !s.is_atomic_map() || path.is_empty() => {
            for (k, child) in m {
                let (cs, declared) = s.field(k);
                path.push(PathElement::Field(k.clone()));
                collect(child, cs, path, set, strict)?;
                let empty = child.as_object().is_some_and(Map::is_empty);
                if child.is_null() || empty || !declared {
                    set.insert(path);
                }
                path.pop();
            }
        }
        Value::Array(items) if s.list_type() != ListType::Atomic => {
            let mut seen = HashSet::new();
            let mut dups = HashSet::new();
            let mut elements = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let pe = item_element(item, s)
                    .map_err(|e| format!("{}: element {i}: {e}", FieldPath(path.clone())))?;
                if !seen.insert(pe.clone()) {
                    if strict {
                        return Err(format!(
                            "{}: duplicate entries for key {pe}",
                            FieldPath(path.clone())
                        ));
                    }
                    dups.insert(pe.clone());
                }
                elements.push(pe);
            }
            let is = s.items();
            for (item, pe) in items.iter().zip(elements) {
                path.push(pe.clone());
                if !dups.contains(&pe) {
                    collect(item, is, path, set, strict)?;
                }
                set.insert(path);
                path.pop();
            }
        }
        _ if !path.is_empty() => set.insert(path),
        _ => {}
    }
    Ok(())
}

/// Merges an applied configuration into a live object: the configuration wins for every leaf it
/// sets; granular maps merge by key, sets and associative lists per item, atomic values whole.
/// A `null` in the configuration removes the field.
pub fn merge(live: Option<&Value>, config: Option<&Value>, s: Schema<'_>) -> Option<Value> {
    let live = non_null(live);
    match (live, config) {
        (l, None) => l.cloned(),
        (_, Some(Value::Null)) => None,
        (None, Some(c)) => Some(strip_nulls(c)),
        (Some(Value::Object(l)), Some(Value::Object(c))) if !s.is_atomic_map() => {
            let mut out = Map::new();
            for k in l.keys().chain(c.keys()) {
                if out.contains_key(k) {
                    continue;
                }
                if let Some(v) = merge(l.get(k), c.get(k), s.field(k).0) {
                    out.insert(k.clone(), v);
                }
            }
            Some(Value::Object(out))
        }
        (Some(Value::Array(l)), Some(Value::Array(c))) if s.list_type() != ListType::Atomic => {
            Some(Value::Array(merge_list(l, c, s)))
        }
        (_, Some(c)) => Some(strip_nulls(c)),
    }
}

fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_nulls).collect()),
        v => v.clone(),
    }
}

fn index_items<'v>(
    items: &'v [Value],
    s: Schema<'_>,
) -> (Vec<Option<PathElement>>, BTreeMap<PathElement, &'v Value>) {
    let mut order = Vec::with_capacity(items.len());
    let mut by_pe = BTreeMap::new();
    for item in items {
        let pe = item_element(item, s).ok();
        if let Some(pe) = &pe {
            by_pe.entry(pe.clone()).or_insert(item);
        }
        order.push(pe);
    }
    (order, by_pe)
}

/// Items keep the live order; items the configuration shares with live follow the configuration's
/// order among themselves, and new items go right after the configuration item they follow.
fn merge_list(live: &[Value], config: &[Value], s: Schema<'_>) -> Vec<Value> {
    let is = s.items();
    let (l_order, l_items) = index_items(live, s);
    let (c_order, c_items) = index_items(config, s);
    let mut shared = c_order
        .iter()
        .flatten()
        .filter(|pe| l_items.contains_key(*pe))
        .peekable();
    let mut out = Vec::with_capacity(live.len().max(config.len()));
    let mut ci = 0;
    let mut emit_config_through = |upto: Option<&PathElement>, out: &mut Vec<Value>| {
        while ci < config.len() {
            let pe = c_order[ci].as_ref();
            ci += 1;
            if let Some(pe) = pe
                && let Some(v) = merge(l_items.get(pe).copied(), c_items.get(pe).copied(), is)
            {
                out.push(v);
            }
            if upto.is_some() && pe == upto {
                break;
            }
        }
    };
    for (item, pe) in live.iter().zip(&l_order) {
        match pe {
            Some(pe) if c_items.contains_key(pe) => {
                if shared.peek() == Some(&pe) {
                    shared.next();
                    emit_config_through(Some(pe), &mut out);
                }
            }
            _ => out.push(item.clone()),
        }
    }
    emit_config_through(None, &mut out);
    out
}

/// Compares two objects the way structured-merge-diff does: leaves are added, modified or removed;
/// a map, list or item that appears or disappears as a whole is recorded too.
/// `metadata.managedFields`, the ownership records rather than a field anyone owns, is left out,
/// so callers need not copy objects to strip it.
pub fn compare(old: &Value, new: &Value, s: Schema<'_>) -> Comparison {
    let mut c = Comparison::default();
    let mut path = Vec::new();
    compare_at(Some(old), Some(new), s, &mut path, &mut c);
    c
}

fn is_empty_container(v: Option<&Value>) -> bool {
    match v {
        None => true,
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    }
}

fn compare_at(
    l: Option<&Value>,
    r: Option<&Value>,
    s: Schema<'_>,
    path: &mut Vec<PathElement>,
    c: &mut Comparison,
) {
    let (l, r) = (non_null(l), non_null(r));
    match (l, r) {
        (None, None) => return,
        // Nothing below two equal values changed.
        (Some(a), Some(b)) if a == b => return,
        _ => {}
    }
    let silent = s.always_present() || path.is_empty();
    let both_empty = is_empty_container(l) && is_empty_container(r);
    let kind_of = |v: Option<&Value>| match v {
        Some(Value::Object(_)) => 1,
        Some(Value::Array(_)) => 2,
        Some(_) => 3,
        None => 0,
    };
    let (lk, rk) = (kind_of(l), kind_of(r));
    let kind = if lk == 0 || lk == rk {
        rk
    } else if rk == 0 {
        lk
    } else {
        3
    };
    let granular = match kind {
        1 => !s.is_atomic_map() || path.is_empty(),
        2 => s.list_type() != ListType::Atomic,
        _ => false,
    };
    if !granular || both_empty {
        if silent {
            return;
        }
        match (l, r) {
            (None, _) => c.added.insert(path),
            (_, None) => c.removed.insert(path),
            (Some(a), Some(b)) if a != b => c.modified.insert(path),
            _ => {}
        }
        return;
    }
    if kind == 1 {
        let empty = Map::new();
        let lm = l.and_then(Value::as_object).unwrap_or(&empty);
        let rm = r.and_then(Value::as_object).unwrap_or(&empty);
        let keys: std::collections::BTreeSet<&String> = lm.keys().chain(rm.keys()).collect();
        let in_metadata = matches!(path.as_slice(), [PathElement::Field(f)] if f == "metadata");
        for k in keys {
            if in_metadata && k == "managedFields" {
                continue;
            }
            path.push(PathElement::Field(k.clone()));
            compare_at(lm.get(k), rm.get(k), s.field(k).0, path, c);
            path.pop();
        }
    } else {
        let empty = Vec::new();
        let la = l.and_then(Value::as_array).unwrap_or(&empty);
        let ra = r.and_then(Value::as_array).unwrap_or(&empty);
        let (_, li) = index_items(la, s);
        let (_, ri) = index_items(ra, s);
        let is = s.items();
        let pes: std::collections::BTreeSet<&PathElement> = li.keys().chain(ri.keys()).collect();
        for pe in pes {
            path.push(pe.clone());
            compare_at(li.get(pe).copied(), ri.get(pe).copied(), is, path, c);
            path.pop();
        }
    }
    if !silent {
        if l.is_none() {
            c.added.insert(path);
        } else if r.is_none() {
            c.removed.insert(path);
        }
    }
}

/// Removes from `v` what `last` (the applier's previous set) holds and nobody, the applier's new
/// set included, owns any more. A struct field counts as owned when anything below it is; a list
/// item or map entry only when it is owned itself, so an item goes even if another manager owns a
/// field inside it (as structured-merge-diff does).
pub fn prune(v: &mut Value, s: Schema<'_>, last: &FieldSet, keep: Option<&FieldSet>) {
    match v {
        Value::Object(m) => {
            for (pe, lsub) in last.children() {
                let PathElement::Field(k) = pe else { continue };
                let (cs, declared) = s.field(k);
                let ksub = keep.and_then(|k| k.child(pe));
                let owns = |set: Option<&FieldSet>| {
                    set.is_some_and(|n| n.is_member() || (declared && !n.is_empty()))
                };
                if owns(Some(lsub)) && !owns(ksub) {
                    m.remove(k);
                } else if let Some(child) = m.get_mut(k) {
                    prune(child, cs, lsub, ksub);
                }
            }
        }
        Value::Array(items) if s.list_type() != ListType::Atomic => {
            let is = s.items();
            let elements: Vec<Option<PathElement>> =
                items.iter().map(|i| item_element(i, s).ok()).collect();
            let mut drop = vec![false; items.len()];
            for (pe, lsub) in last.children() {
                let Some(i) = elements.iter().position(|e| e.as_ref() == Some(pe)) else {
                    continue;
                };
                let ksub = keep.and_then(|k| k.child(pe));
                if lsub.is_member() && !ksub.is_some_and(FieldSet::is_member) {
                    drop[i] = true;
                } else {
                    prune(&mut items[i], is, lsub, ksub);
                }
            }
            let mut i = 0;
            items.retain(|_| {
                i += 1;
                !drop[i - 1]
            });
        }
        _ => {}
    }
}
