//! Validation of a `CustomResourceDefinition` object (apiextensions.k8s.io/v1) as kube-apiserver
//! validates it on create and update, schemas included.

use super::compile;
use super::error::FieldError;
use serde_json::{Value, json};

const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

fn is_dns1035_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> Option<&'a str> {
    v.pointer(ptr).and_then(Value::as_str)
}

/// Everything kube-apiserver checks when a CRD is created: names, scope, versions, each
/// version's schema (structural, defaults, CEL rules compiled and costed), subresources,
/// printer columns, and the API-approval annotation of protected groups (`*.k8s.io`,
/// `*.kubernetes.io`). Empty when the CRD is acceptable.
pub fn validate_crd(crd: &Value) -> Vec<FieldError> {
    validate_crd_update(crd, None)
}

/// As [`validate_crd`], for an update of `old`: an API-approval annotation that did not change
/// is not checked again, as the real server does.
pub fn validate_crd_update(crd: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let group = str_at(crd, "/spec/group").unwrap_or("");
    let plural = str_at(crd, "/spec/names/plural").unwrap_or("");
    let name = str_at(crd, "/metadata/name").unwrap_or("");

    if name != format!("{plural}.{group}") {
        errs.push(FieldError::invalid(
            "metadata.name",
            json!(name),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    if group.is_empty() {
        errs.push(FieldError::required("spec.group", ""));
    } else if !is_dns1123_subdomain(group) {
        errs.push(FieldError::invalid(
            "spec.group",
            json!(group),
            DNS1123_SUBDOMAIN_MSG,
        ));
    } else if !group.contains('.') {
        errs.push(FieldError::invalid(
            "spec.group",
            json!(group),
            "should be a domain with at least one dot",
        ));
    }

    validate_names(crd, &mut errs);
    validate_api_approval(crd, old, group, &mut errs);

    if crd.pointer("/spec/preserveUnknownFields") == Some(&Value::Bool(true)) {
        errs.push(FieldError::invalid(
            "spec.preserveUnknownFields",
            json!(true),
            "cannot set to true, set x-kubernetes-preserve-unknown-fields to true in spec.versions[*].schema instead",
        ));
    }

    match str_at(crd, "/spec/scope") {
        Some("Cluster" | "Namespaced") => {}
        None | Some("") => errs.push(FieldError::required("spec.scope", "")),
        Some(other) => errs.push(FieldError::not_supported(
            "spec.scope",
            json!(other),
            &["Cluster".to_string(), "Namespaced".to_string()],
        )),
    }

    validate_versions(crd, &mut errs);
    validate_conversion(crd, &mut errs);
    errs
}

const APPROVAL: &str = "api-approved.kubernetes.io";

/// Groups under `k8s.io` and `kubernetes.io` need an approval annotation (KEP 1111): a URL, or
/// a reason starting with "unapproved".
fn validate_api_approval(
    crd: &Value,
    old: Option<&Value>,
    group: &str,
    errs: &mut Vec<FieldError>,
) {
    let protected = ["k8s.io", "kubernetes.io"]
        .iter()
        .any(|g| group == *g || group.ends_with(&format!(".{g}")));
    if !protected {
        return;
    }
    let annotation = |o: &Value| {
        o.pointer("/metadata/annotations")
            .and_then(|a| a.get(APPROVAL))
            .and_then(Value::as_str)
            .map(String::from)
    };
    let value = annotation(crd).unwrap_or_default();
    if let Some(o) = old
        && annotation(o).unwrap_or_default() == value
    {
        return;
    }
    let field = format!("metadata.annotations[{APPROVAL}]");
    let is_url = value.split_once("://").is_some_and(|(scheme, rest)| {
        scheme
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            && !rest.is_empty()
            && !rest.starts_with('/')
    });
    if value.is_empty() {
        errs.push(FieldError::required(
            &field,
            format!("protected groups must have approval annotation \"{APPROVAL}\", see https://github.com/kubernetes/enhancements/pull/1111"),
        ));
    } else if !value.starts_with("unapproved") && !is_url {
        errs.push(FieldError::invalid(
            &field,
            json!(value),
            format!("protected groups must have approval annotation \"{APPROVAL}\" with either a URL or a reason starting with \"unapproved\", see https://github.com/kubernetes/enhancements/pull/1111"),
        ));
    }
}

fn validate_names(crd: &Value, errs: &mut Vec<FieldError>) {
    let names = crd.pointer("/spec/names").cloned().unwrap_or(Value::Null);
    let get = |k: &str| {
        names
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let kind = get("kind");
    // kube-apiserver defaults these from the kind before validating.
    let singular = match get("singular") {
        s if s.is_empty() => kind.to_lowercase(),
        s => s,
    };
    let list_kind = match get("listKind") {
        s if s.is_empty() && !kind.is_empty() => format!("{kind}List"),
        s => s,
    };
    let plural = get("plural");
    for (field, value) in [
        ("plural", &plural),
        ("singular", &singular),
        ("kind", &kind),
        ("listKind", &list_kind),
    ] {
        if value.is_empty() {
            errs.push(FieldError::required(&format!("spec.names.{field}"), ""));
        }
    }
    let label = |field: &str, value: &str, errs: &mut Vec<FieldError>| {
        if !value.is_empty() && !is_dns1035_label(value) {
            errs.push(FieldError::invalid(
                &format!("spec.names.{field}"),
                json!(value),
                DNS1035_MSG,
            ));
        }
    };
    label("plural", &plural, errs);
    label("singular", &singular, errs);
    for (field, value) in [("kind", &kind), ("listKind", &list_kind)] {
        if !value.is_empty() && !is_dns1035_label(&value.to_lowercase()) {
            errs.push(FieldError::invalid(
                &format!("spec.names.{field}"),
                json!(value),
                format!("may have mixed case, but should otherwise match: {DNS1035_MSG}"),
            ));
        }
    }
    for key in ["shortNames", "categories"] {
        if let Some(list) = names.get(key).and_then(Value::as_array) {
            for (i, s) in list.iter().enumerate() {
                label(&format!("{key}[{i}]"), s.as_str().unwrap_or(""), errs);
            }
        }
    }
    if !kind.is_empty() && kind == list_kind {
        errs.push(FieldError::invalid(
            "spec.names.listKind",
            json!(list_kind),
            "kind and listKind may not be the same",
        ));
    }
}

/// Where the server reports errors for a per-version field: `spec.<field>` when every version
/// carries the same value (the internal form hoists it), `spec.versions[i].<field>` otherwise.
fn version_prefix(versions: &[Value], ptr: &str, i: usize, top: &str, per_version: &str) -> String {
    let first = versions.first().and_then(|v| v.pointer(ptr));
    let identical = versions.iter().all(|v| v.pointer(ptr) == first);
    if identical {
        top.to_string()
    } else {
        format!("spec.versions[{i}].{per_version}")
    }
}

fn validate_versions(crd: &Value, errs: &mut Vec<FieldError>) {
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        errs.push(FieldError::invalid(
            "spec.versions",
            json!([]),
            "must have exactly one version marked as storage version",
        ));
        errs.push(FieldError::required(
            "spec.versions",
            "must have at least one version",
        ));
        return;
    }
    let storage = versions
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .count();
    if storage != 1 {
        errs.push(FieldError::invalid(
            "spec.versions",
            Value::Array(versions.clone()),
            "must have exactly one version marked as storage version",
        ));
    }
    let mut seen = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        let vname = v.get("name").and_then(Value::as_str).unwrap_or("");
        if vname.is_empty() {
            errs.push(FieldError::required(
                &format!("spec.versions[{i}].name"),
                "",
            ));
        } else if !is_dns1035_label(vname) {
            errs.push(FieldError::invalid(
                &format!("spec.versions[{i}].name"),
                json!(vname),
                DNS1035_MSG,
            ));
        } else if seen.contains(&vname) {
            errs.push(FieldError::invalid(
                "spec.versions",
                Value::Array(versions.clone()),
                "must contain unique version names",
            ));
        }
        seen.push(vname);

        let served = v.get("served").and_then(Value::as_bool).unwrap_or(false);
        deprecation_warning(v, &format!("spec.versions[{i}].deprecationWarning"), errs);
        match v.pointer("/schema/openAPIV3Schema") {
            Some(schema) => {
                let prefix = version_prefix(
                    &versions,
                    "/schema",
                    i,
                    "spec.validation.openAPIV3Schema",
                    "schema.openAPIV3Schema",
                );
                // Identical schemas are checked once, under spec.validation.
                if i == 0 || !prefix.starts_with("spec.validation") {
                    if v.pointer("/subresources/status").is_some() {
                        status_root(schema, &prefix, errs);
                    }
                    if let Err(mut e) = compile::schema(schema, &prefix) {
                        errs.append(&mut e);
                    }
                }
            }
            None if served || v.get("schema").is_none() => errs.push(FieldError::required(
                &format!("spec.versions[{i}].schema.openAPIV3Schema"),
                "schemas are required",
            )),
            None => {}
        }

        let sub_prefix = version_prefix(
            &versions,
            "/subresources",
            i,
            "spec.subresources",
            "subresources",
        );
        if i == 0 || !sub_prefix.starts_with("spec.subresources") {
            validate_subresources(v.get("subresources"), &sub_prefix, errs);
        }
        let cols_prefix = version_prefix(
            &versions,
            "/additionalPrinterColumns",
            i,
            "spec.additionalPrinterColumns",
            "additionalPrinterColumns",
        );
        if i == 0 || !cols_prefix.starts_with("spec.additionalPrinterColumns") {
            validate_columns(v.get("additionalPrinterColumns"), &cols_prefix, errs);
        }
    }
}

/// With the status subresource, the root schema may only carry what survives splitting off
/// `properties.status`.
fn status_root(schema: &Value, path: &str, errs: &mut Vec<FieldError>) {
    const ALLOWED: &[(&str, &str)] = &[
        ("description", "Description"),
        ("type", "Type"),
        ("format", "Format"),
        ("title", "Title"),
        ("maximum", "Maximum"),
        ("exclusiveMaximum", "ExclusiveMaximum"),
        ("minimum", "Minimum"),
        ("exclusiveMinimum", "ExclusiveMinimum"),
        ("maxLength", "MaxLength"),
        ("minLength", "MinLength"),
        ("pattern", "Pattern"),
        ("maxItems", "MaxItems"),
        ("minItems", "MinItems"),
        ("uniqueItems", "UniqueItems"),
        ("multipleOf", "MultipleOf"),
        ("required", "Required"),
        ("items", "Items"),
        ("properties", "Properties"),
        ("externalDocs", "ExternalDocs"),
        ("example", "Example"),
        (
            "x-kubernetes-preserve-unknown-fields",
            "XPreserveUnknownFields",
        ),
        ("x-kubernetes-validations", "XValidations"),
    ];
    let Some(obj) = schema.as_object() else {
        return;
    };
    if let Some(t) = obj.get("type").and_then(Value::as_str)
        && t != "object"
    {
        errs.push(FieldError::invalid(
            &format!("{path}.type"),
            json!(t),
            r#"only "object" is allowed as the type at the root of the schema if the status subresource is enabled"#,
        ));
    }
    // Zero values do not count, as Go skips them; `nullable` has its own error.
    let set = |v: &Value| !matches!(v, Value::Null | Value::Bool(false)) && v != &json!("");
    if obj
        .iter()
        .any(|(k, v)| set(v) && k != "nullable" && !ALLOWED.iter().any(|(a, _)| a == k))
    {
        let names: Vec<&str> = ALLOWED.iter().map(|(_, go)| *go).collect();
        errs.push(FieldError::invalid(
            path,
            schema.clone(),
            format!(
                "only [{}] fields are allowed at the root of the schema if the status subresource is enabled",
                names.join(" ")
            ),
        ));
    }
}

fn deprecation_warning(version: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let Some(w) = version.get("deprecationWarning").and_then(Value::as_str) else {
        return;
    };
    let deprecated = version.get("deprecated").and_then(Value::as_bool) == Some(true);
    let mut problems = Vec::new();
    if !deprecated {
        problems.push("can only be set for deprecated versions".to_string());
    } else {
        if w.len() > 256 {
            problems.push("must be <= 256 characters long".to_string());
        }
        if w.is_empty() {
            problems.push("must not be an empty string".to_string());
        }
        if let Some((i, _)) = w.char_indices().find(|(_, c)| c.is_control()) {
            problems.push(format!(
                "must only contain printable UTF-8 characters; control character found at index {i}"
            ));
        }
    }
    for p in problems {
        errs.push(FieldError::invalid(path, json!(w), p));
    }
}

fn validate_conversion(crd: &Value, errs: &mut Vec<FieldError>) {
    let Some(conv) = crd.pointer("/spec/conversion") else {
        return;
    };
    let strategy = conv.get("strategy").and_then(Value::as_str).unwrap_or("");
    match strategy {
        "" => errs.push(FieldError::required("spec.conversion.strategy", "")),
        "None" | "Webhook" => {}
        other => errs.push(FieldError::not_supported(
            "spec.conversion.strategy",
            json!(other),
            &["None".to_string(), "Webhook".to_string()],
        )),
    }
    let webhook = conv.get("webhook");
    if strategy == "Webhook" {
        let config = webhook.and_then(|w| w.get("clientConfig"));
        match config {
            None => errs.push(FieldError::required(
                "spec.conversion.webhook.clientConfig",
                "required when strategy is set to Webhook",
            )),
            Some(c) if c.get("url").is_some() == c.get("service").is_some() => {
                errs.push(FieldError::required(
                    "spec.conversion.webhook.clientConfig",
                    "exactly one of url or service is required",
                ))
            }
            Some(_) => {}
        }
        let versions = webhook
            .and_then(|w| w.get("conversionReviewVersions"))
            .and_then(Value::as_array);
        if versions.is_none_or(|v| v.is_empty()) {
            errs.push(FieldError::required(
                "spec.conversion.webhook.conversionReviewVersions",
                "",
            ));
        }
    } else if webhook.is_some_and(|w| w.get("clientConfig").is_some()) {
        errs.push(FieldError::forbidden(
            "spec.conversion.webhook.clientConfig",
            "should not be set when strategy is not set to Webhook",
        ));
    }
}

fn validate_subresources(sub: Option<&Value>, prefix: &str, errs: &mut Vec<FieldError>) {
    let Some(sub) = sub else {
        return;
    };
    if let Some(status) = sub.get("status")
        && !status.is_object()
    {
        errs.push(FieldError::invalid(
            &format!("{prefix}.status"),
            status.clone(),
            "must be an object",
        ));
    }
    let Some(scale) = sub.get("scale") else {
        return;
    };
    let sp = format!("{prefix}.scale");
    for (key, under, message) in [
        (
            "specReplicasPath",
            vec![".spec."],
            "should be a json path under .spec",
        ),
        (
            "statusReplicasPath",
            vec![".status."],
            "should be a json path under .status",
        ),
        (
            "labelSelectorPath",
            vec![".spec.", ".status."],
            "should be a json path under either .spec or .status",
        ),
    ] {
        let field = format!("{sp}.{key}");
        match scale.get(key).and_then(Value::as_str) {
            None | Some("") if key != "labelSelectorPath" => {
                errs.push(FieldError::required(&field, ""))
            }
            None | Some("") => {}
            Some(p) => match simple_json_path_error(p, &field) {
                Some(e) => errs.push(e),
                None if !under.iter().any(|u| p.starts_with(u)) => {
                    errs.push(FieldError::invalid(&field, json!(p), message))
                }
                None => {}
            },
        }
    }
}

const COLUMN_TYPES: &str = "boolean,date,integer,number,string";
const COLUMN_FORMATS: &str = "byte,date,date-time,double,float,int32,int64,password";

fn validate_columns(cols: Option<&Value>, prefix: &str, errs: &mut Vec<FieldError>) {
    let Some(cols) = cols.and_then(Value::as_array) else {
        return;
    };
    for (i, c) in cols.iter().enumerate() {
        let p = format!("{prefix}[{i}]");
        if c.get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            errs.push(FieldError::required(&format!("{p}.name"), ""));
        }
        match c.get("type").and_then(Value::as_str) {
            None | Some("") => errs.push(FieldError::required(
                &format!("{p}.type"),
                format!("must be one of {COLUMN_TYPES}"),
            )),
            Some(t) if !COLUMN_TYPES.split(',').any(|x| x == t) => errs.push(FieldError::invalid(
                &format!("{p}.type"),
                json!(t),
                format!("must be one of {COLUMN_TYPES}"),
            )),
            _ => {}
        }
        if let Some(f) = c.get("format").and_then(Value::as_str)
            && !f.is_empty()
            && !COLUMN_FORMATS.split(',').any(|x| x == f)
        {
            errs.push(FieldError::invalid(
                &format!("{p}.format"),
                json!(f),
                format!("must be one of {COLUMN_FORMATS}"),
            ));
        }
        match c.get("jsonPath").and_then(Value::as_str) {
            None | Some("") => errs.push(FieldError::required(&format!("{p}.JSONPath"), "")),
            Some(jp) => {
                if let Some(e) = simple_json_path_error(jp, &format!("{p}.JSONPath")) {
                    errs.push(e);
                }
            }
        }
    }
}

/// `validateSimpleJSONPath`: a path must start with a dot.
fn simple_json_path_error(p: &str, field: &str) -> Option<FieldError> {
    if p.is_empty() {
        Some(FieldError::invalid(field, json!(p), "must not be empty"))
    } else if !p.starts_with('.') {
        Some(FieldError::invalid(
            field,
            json!(p),
            "must be a simple json path starting with .",
        ))
    } else {
        None
    }
}
