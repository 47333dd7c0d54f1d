//! `meta.k8s.io/v1` Table rendering for `kubectl get`: CRD printer columns and the built-in kinds' columns.

use jsonpath_rust::JsonPath;
use serde_json::{Value, json};

use super::kinds::{self, age, s};
use super::resources::ResourceInfo;

/// What a Table row carries besides its cells (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

struct Col {
    name: String,
    ty: String,
    format: String,
    description: String,
    priority: i64,
}

fn col(name: &str, ty: &str, priority: i64, description: &str) -> Col {
    Col {
        name: name.into(),
        ty: ty.into(),
        format: if name == "Name" {
            "name".into()
        } else {
            String::new()
        },
        description: description.into(),
        priority,
    }
}

const NAME_DESC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const AGE_DESC: &str =
    "CreationTimestamp is a timestamp representing the server time when this object was created.";

fn columns(info: &ResourceInfo) -> Vec<Col> {
    if let Some(crd) = &info.crd {
        let mut cols = vec![col("Name", "string", 0, NAME_DESC)];
        if crd.printer_columns.is_empty() {
            cols.push(col("Age", "date", 0, AGE_DESC));
        }
        for c in &crd.printer_columns {
            cols.push(Col {
                name: s(&c["name"]),
                ty: s(&c["type"]),
                format: s(&c["format"]),
                description: s(&c["description"]),
                priority: c["priority"].as_i64().unwrap_or(0),
            });
        }
        return cols;
    }
    let names = info.builtin.unwrap_or(&kinds::Kind::BASE).columns;
    names
        .iter()
        .map(|(n, t, p)| {
            col(
                n,
                t,
                *p,
                if *n == "Name" {
                    NAME_DESC
                } else if *n == "Age" {
                    AGE_DESC
                } else {
                    ""
                },
            )
        })
        .collect()
}

fn cell_for(ty: &str, v: &Value) -> Value {
    match ty {
        "integer" => v
            .as_i64()
            .map(Value::from)
            .or_else(|| v.as_f64().map(|f| json!(f as i64)))
            .unwrap_or(Value::Null),
        "number" => v.as_f64().map(Value::from).unwrap_or(Value::Null),
        "boolean" => v.as_bool().map(Value::from).unwrap_or(Value::Null),
        "date" => age(v),
        _ => match v {
            Value::String(s) => json!(s),
            other => json!(other.to_string()),
        },
    }
}

fn crd_cells(info: &ResourceInfo, o: &Value) -> Vec<Value> {
    let crd = info.crd.as_ref().expect("crd");
    let mut cells = vec![o["metadata"]["name"].clone()];
    if crd.printer_columns.is_empty() {
        cells.push(age(&o["metadata"]["creationTimestamp"]));
    }
    for c in &crd.printer_columns {
        let path = s(&c["jsonPath"]);
        let path = if path.starts_with('$') {
            path
        } else {
            format!("${path}")
        };
        let found = o
            .query(&path)
            .ok()
            .and_then(|r| r.first().map(|v| (*v).clone()));
        cells.push(match found {
            None | Some(Value::Null) => Value::Null,
            Some(v) => cell_for(c["type"].as_str().unwrap_or("string"), &v),
        });
    }
    cells
}

fn row(info: &ResourceInfo, o: &Value, include: IncludeObject) -> Value {
    let cells = if info.crd.is_some() {
        crd_cells(info, o)
    } else {
        (info.builtin.unwrap_or(&kinds::Kind::BASE).cells)(o)
    };
    let mut r = json!({"cells": cells});
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => r["object"] = partial_metadata(o),
        IncludeObject::Object => r["object"] = o.clone(),
    }
    r
}

pub fn partial_metadata(o: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"].clone()})
}

/// A Table of `objects`; `with_columns` false leaves out the column definitions (later watch events).
pub fn render(
    info: &ResourceInfo,
    objects: &[Value],
    include: IncludeObject,
    list_meta: Value,
    with_columns: bool,
) -> Value {
    let cols: Vec<Value> = if with_columns {
        columns(info)
            .into_iter()
            .map(|c| {
                json!({"name": c.name, "type": c.ty, "format": c.format, "description": c.description, "priority": c.priority})
            })
            .collect()
    } else {
        vec![]
    };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": cols,
        "rows": objects.iter().map(|o| row(info, o, include)).collect::<Vec<_>>(),
    })
}
