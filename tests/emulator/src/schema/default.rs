//! Defaulting: `default` values applied where the parent exists, and nulls in non-nullable
//! fields replaced by the default or dropped, as kube-apiserver does before validation.

use super::node::Node;
use serde_json::Value;

pub(crate) fn apply(node: &Node, v: &mut Value) {
    match v {
        Value::Object(obj) => {
            if let Some(add) = &node.additional {
                let keys: Vec<String> = obj.keys().cloned().collect();
                for k in keys {
                    if obj.get(&k).is_some_and(Value::is_null) && !add.nullable {
                        match &add.default {
                            Some(d) => {
                                obj.insert(k.clone(), d.clone());
                            }
                            None => {
                                obj.remove(&k);
                            }
                        }
                    }
                    if let Some(x) = obj.get_mut(&k) {
                        apply(add, x);
                    }
                }
                return;
            }
            for (k, child) in &node.properties {
                match obj.get(k) {
                    None => {
                        if let Some(d) = &child.default {
                            obj.insert(k.clone(), d.clone());
                        }
                    }
                    Some(Value::Null) if !child.nullable => match &child.default {
                        Some(d) => {
                            obj.insert(k.clone(), d.clone());
                        }
                        None => {
                            obj.remove(k);
                        }
                    },
                    Some(_) => {}
                }
                if let Some(x) = obj.get_mut(k) {
                    apply(child, x);
                }
            }
        }
        Value::Array(items) => {
            if let Some(it) = &node.items {
                for x in items.iter_mut() {
                    if x.is_null()
                        && !it.nullable
                        && let Some(d) = &it.default
                    {
                        *x = d.clone();
                    }
                    apply(it, x);
                }
            }
        }
        _ => {}
    }
}
