//! The HTTP layer: routing kube-apiserver's URL scheme to the verbs, content negotiation, watch
//! streams. Authentication, request counts and injected faults are [`layers`] around it.

mod layers;
mod route;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::apply::{Manager, Operation};
use super::engines;
use super::errors::ApiError;
use super::ops::{self, DeleteOpts, FieldValidation, Propagation, WriteOpts};
use super::resources::ResourceInfo;
use super::selector::{FieldSelector, LabelSelector};
use super::shared::Shared;
use super::store::{Change, EventType, Snapshot, Store};
use super::table::{self, IncludeObject};
use route::{RequestInfo, Route, Target};

type Query = HashMap<String, String>;

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(q: Option<&str>) -> Query {
    q.unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn json_response(code: u16, v: &Value, warnings: &[String]) -> Response {
    let mut r = (
        StatusCode::from_u16(code).unwrap_or(StatusCode::OK),
        [(http::header::CONTENT_TYPE, "application/json")],
        json_bytes(v),
    )
        .into_response();
    for w in warnings {
        let text = format!("299 - \"{}\"", w.replace('\\', "\\\\").replace('"', "\\\""));
        if let Ok(h) = http::HeaderValue::from_str(&text) {
            r.headers_mut().append("warning", h);
        }
    }
    r
}

/// A JSON value's text, written straight into bytes: `to_string` goes through `Display`, which
/// hands every token to the formatting machinery (a twentieth of the emulator's time in a burst).
fn json_bytes(v: &Value) -> Vec<u8> {
    // Serialising a JSON value into memory cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

/// How the client wants objects rendered (from Accept).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Output {
    Json,
    Table(IncludeObject),
    Metadata,
}

fn output(headers: &HeaderMap, q: &Query) -> Output {
    let accept = headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    for media in accept.split(',') {
        let params: Vec<&str> = media.split(';').map(str::trim).collect();
        let has = |p: &str| params.contains(&p);
        if has("as=Table") && has("g=meta.k8s.io") {
            let include = match q.get("includeObject").map(String::as_str) {
                Some("None") => IncludeObject::None,
                Some("Object") => IncludeObject::Object,
                _ => IncludeObject::Metadata,
            };
            return Output::Table(include);
        }
        if (has("as=PartialObjectMetadata") || has("as=PartialObjectMetadataList"))
            && has("g=meta.k8s.io")
        {
            return Output::Metadata;
        }
        if params
            .first()
            .is_some_and(|m| *m == "application/json" || *m == "*/*")
            && params.len() == 1
        {
            return Output::Json;
        }
    }
    Output::Json
}

/// The object as the requested version presents it.
fn present(info: &ResourceInfo, obj: &Value) -> Value {
    let mut o = match info.storage() {
        Some(s) => (s.from_stored)(obj),
        None => obj.clone(),
    };
    if let Some(m) = o.as_object_mut() {
        m.insert("apiVersion".into(), json!(info.api_version()));
        m.insert("kind".into(), json!(info.kind));
    }
    o
}

/// Whether the stored object already reads as `info` presents it, so it can be serialised as it is.
fn presents_as_stored(info: &ResourceInfo, obj: &Value) -> bool {
    info.storage().is_none()
        && obj["kind"] == info.kind.as_str()
        && obj["apiVersion"].as_str().is_some_and(|av| {
            if info.group.is_empty() {
                av == info.version
            } else {
                av.split_once('/') == Some((info.group.as_str(), info.version.as_str()))
            }
        })
}

fn render_one(info: &ResourceInfo, obj: &Value, out: Output) -> Value {
    // A kind stored as it is served has the same metadata in its presented form: no copy of
    // the whole object to read it (metadata watches send one such event per change).
    if out == Output::Metadata && info.storage().is_none() {
        return table::partial_metadata(obj);
    }
    let o = present(info, obj);
    match out {
        Output::Json => o,
        Output::Metadata => table::partial_metadata(&o),
        Output::Table(inc) => table::render(
            info,
            &[o],
            inc,
            json!({"resourceVersion": obj["metadata"]["resourceVersion"]}),
            true,
        ),
    }
}

/// The response carrying one object as `out` renders it; a stored object that already reads as
/// the requested version is serialised as it is, without a copy.
fn object_response(
    code: u16,
    info: &ResourceInfo,
    obj: &Value,
    out: Output,
    warnings: &[String],
) -> Response {
    if out == Output::Json && presents_as_stored(info, obj) {
        return json_response(code, obj, warnings);
    }
    json_response(code, &render_one(info, obj, out), warnings)
}

/// The router: every path goes to [`handle`], inside the [`layers`].
pub(crate) fn router(shared: Arc<Shared>) -> axum::Router {
    layers::wrap(
        axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone()),
        shared,
    )
}

/// Dispatches a request the layers have authenticated, classified, counted and let through.
async fn handle(State(sh): State<Arc<Shared>>, req: Request) -> Response {
    let (mut parts, body) = req.into_parts();
    let Some(info) = parts.extensions.remove::<RequestInfo>() else {
        return ApiError::new(500, "InternalError", "request not classified").into_response();
    };
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let target = match info.route {
        None => return ApiError::path_not_found().into_response(),
        Some(Route::Page(page)) => {
            return page
                .render(&sh, route::header(&parts.headers, http::header::ACCEPT))
                .unwrap_or_else(IntoResponse::into_response);
        }
        Some(Route::Resource(t)) => t,
    };
    let (q, content_type, verb) = (&info.query, info.content_type.as_str(), info.verb);
    let out = output(&parts.headers, q);
    let user_agent = route::header(&parts.headers, http::header::USER_AGENT).to_string();
    let result = match verb {
        _ if target.sub.as_deref() == Some("scale") => {
            scale(&sh, &target, verb, q, content_type, &body, &user_agent)
        }
        "watch" => return watch(&sh, target, q, out, info.cut_generation),
        "get" => get(&sh, &target, out),
        "list" => list(&sh, &target, q, out),
        "create" | "update" | "patch" | "apply" => {
            write(&sh, &target, verb, q, content_type, &body, &user_agent, out)
        }
        "delete" => delete(&sh, &target, q, &body),
        "deletecollection" => delete_collection(&sh, &target, q, &body),
        _ => Err(ApiError::method_not_allowed(
            parts.method.as_str(),
            &target.info.group_resource(),
        )),
    };
    match result {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn get(sh: &Shared, t: &Target, out: Output) -> Result<Response, ApiError> {
    let name = t.name.as_deref().unwrap_or_default();
    let obj = sh
        .store()
        .get_shared(&t.info.storage_key(), &t.ns, name)
        .ok_or_else(|| {
            ApiError::not_found(
                &t.info.group_resource(),
                &t.info.group,
                &t.info.plural,
                name,
            )
        })?;
    Ok(object_response(200, &t.info, &obj, out, &[]))
}

struct Filter {
    key: String,
    info: ResourceInfo,
    api_version: String,
    ns: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn new(t: &Target, q: &Query) -> Result<Self, ApiError> {
        let labels = LabelSelector::parse(
            q.get("labelSelector")
                .map(String::as_str)
                .unwrap_or_default(),
        )
        .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
        let fields = FieldSelector::parse(
            q.get("fieldSelector")
                .map(String::as_str)
                .unwrap_or_default(),
            match t.info.builtin {
                Some(k) if k.field_selectors.is_empty() => None,
                Some(k) => Some(k.field_selectors),
                None => Some(&[]),
            },
        )
        .map_err(ApiError::bad_request)?;
        Ok(Filter {
            key: t.info.storage_key(),
            info: t.info.clone(),
            api_version: t.info.api_version(),
            ns: (t.info.namespaced && !t.ns.is_empty()).then(|| t.ns.clone()),
            labels,
            fields,
        })
    }

    fn matches(&self, o: &Value) -> bool {
        self.ns
            .as_deref()
            .is_none_or(|ns| o["metadata"]["namespace"] == ns)
            && self.labels.matches(&o["metadata"]["labels"])
            && self.fields.matches(o)
    }
}

fn list(sh: &Shared, t: &Target, q: &Query, out: Output) -> Result<Response, ApiError> {
    let filter = Filter::new(t, q)?;
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let mut st = sh.store();
    // A page: the objects, where it ends, how many there are, and the snapshot later pages read.
    let (rv, page, end, total, snapshot) = match q.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let (id, offset) = decode_continue(token).ok_or_else(|| {
                ApiError::bad_request("continue key is not valid: illegal base64 data")
            })?;
            let snap = st.snapshots.get(&id).ok_or_else(|| {
                ApiError::gone("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.")
            })?;
            let total = snap.items.len();
            let end = limit.map_or(total, |l| (offset + l).min(total));
            let page: Vec<Value> = snap.items[offset.min(total)..end]
                .iter()
                .map(|o| present(&t.info, o))
                .collect();
            (snap.rv, page, end, total, Some(id))
        }
        None => {
            let rv = st.current_rv();
            let items: Vec<Arc<Value>> = st
                .iter_shared(&filter.key, filter.ns.as_deref())
                .filter(|o| filter.matches(o))
                .cloned()
                .collect();
            let total = items.len();
            let end = limit.map_or(total, |l| l.min(total));
            let page = items[..end].iter().map(|o| present(&t.info, o)).collect();
            // Later pages read the same versions: the snapshot shares them with the store.
            let id = (end < total).then(|| st.save_snapshot(Snapshot { rv, items }));
            (rv, page, end, total, id)
        }
    };
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if let Some(id) = snapshot.filter(|_| end < total) {
        meta["continue"] = json!(encode_continue(id, end));
        meta["remainingItemCount"] = json!(total - end);
    }
    drop(st);
    let body = match out {
        Output::Json => {
            json!({"apiVersion": t.info.api_version(), "kind": t.info.list_kind, "metadata": meta, "items": page})
        }
        Output::Metadata => {
            json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList", "metadata": meta,
            "items": page.iter().map(table::partial_metadata).collect::<Vec<_>>()})
        }
        Output::Table(inc) => table::render(&t.info, &page, inc, meta, true),
    };
    Ok(json_response(200, &body, &[]))
}

fn encode_continue(id: u64, offset: usize) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!(
        "{{\"v\":\"emulator\",\"id\":{id},\"offset\":{offset}}}"
    ))
}

fn decode_continue(token: &str) -> Option<(u64, usize)> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token)
        .ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    Some((v["id"].as_u64()?, v["offset"].as_u64()? as usize))
}

fn parse_body(body: &Bytes, content_type: &str) -> Result<Value, ApiError> {
    if content_type.contains("protobuf") {
        return super::protobuf::decode(body).map_err(ApiError::unsupported_media);
    }
    if content_type.contains("cbor") {
        return Err(ApiError::unsupported_media(
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml",
        ));
    }
    // Clients send JSON text whatever the content type (kubectl's and kube-rs' apply
    // configurations too: JSON is YAML), and the JSON parser reads it at a fraction of the YAML
    // parser's cost; anything else, and its error, is the YAML parser's.
    serde_json::from_slice(body)
        .or_else(|_| serde_yaml::from_slice(body))
        .map_err(|e| {
            ApiError::bad_request(if content_type.contains("yaml") {
                format!("error decoding YAML: {e}")
            } else {
                format!("couldn't get version/kind; json parse error: {e}")
            })
        })
}

fn write_opts(q: &Query, t: &Target, verb: &str, user_agent: &str) -> Result<WriteOpts, ApiError> {
    let validation = match q.get("fieldValidation").map(String::as_str) {
        None | Some("") | Some("Warn") => FieldValidation::Warn,
        Some("Strict") => FieldValidation::Strict,
        Some("Ignore") => FieldValidation::Ignore,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "fieldValidation must be one of \"Ignore\", \"Warn\", or \"Strict\", got: {other}"
            )));
        }
    };
    let manager = match q.get("fieldManager").filter(|m| !m.is_empty()) {
        Some(m) => m.clone(),
        None if verb == "apply" => {
            return Err(ApiError::new(
                422,
                "Invalid",
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            )
            .with_details(json!({"group": "meta.k8s.io", "kind": "PatchOptions",
                "causes": [{"reason": "FieldValueRequired", "message": "Required value: is required for apply patch", "field": "fieldManager"}]})));
        }
        None => user_agent
            .split('/')
            .next()
            .unwrap_or_default()
            .chars()
            .take(128)
            .collect(),
    };
    let dry_run = match q.get("dryRun").map(String::as_str) {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid dry run option: {other}"
            )));
        }
    };
    Ok(WriteOpts {
        manager,
        validation,
        dry_run,
        subresource: t.sub.clone(),
        decoded: false,
    })
}

#[allow(clippy::too_many_arguments)]
fn write(
    sh: &Shared,
    t: &Target,
    verb: &str,
    q: &Query,
    content_type: &str,
    body: &Bytes,
    user_agent: &str,
    out: Output,
) -> Result<Response, ApiError> {
    let opts = write_opts(q, t, verb, user_agent)?;
    let info = &t.info;
    let name = t.name.clone().unwrap_or_default();
    let result = {
        let mut st = sh.store();
        match verb {
            "create" => {
                if t.sub.is_some() {
                    return Err(ApiError::method_not_allowed("POST", &info.group_resource()));
                }
                let obj = check_kind(info, parse_body(body, content_type)?)?;
                ops::create(&mut st, info, &t.ns, obj, &opts, false).map(|w| (201, w))
            }
            "update" => {
                let obj = check_kind(info, parse_body(body, content_type)?)?;
                ops::update(&mut st, info, &t.ns, &name, obj, &opts, false).map(|w| (200, w))
            }
            "patch" => patch(&mut st, t, &name, content_type, body, &opts).map(|w| (200, w)),
            _ => apply(&mut st, t, &name, body, q, &opts),
        }
    };
    let (code, (obj, warnings)) = result?;
    sh.wake.notify_one();
    Ok(object_response(code, info, &obj, out, &warnings))
}

fn check_kind(info: &ResourceInfo, mut obj: Value) -> Result<Value, ApiError> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request was not a JSON object",
        ));
    }
    let kind = obj["kind"].as_str().unwrap_or_default();
    let av = obj["apiVersion"].as_str().unwrap_or_default();
    if kind.is_empty() && av.is_empty() {
        obj["kind"] = json!(info.kind);
        obj["apiVersion"] = json!(info.api_version());
    } else if kind != info.kind || av != info.api_version() {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            info.api_version()
        )));
    }
    if obj.get("metadata").is_none_or(Value::is_null) {
        obj["metadata"] = json!({});
    }
    Ok(obj)
}

fn patch(
    st: &mut Store,
    t: &Target,
    name: &str,
    content_type: &str,
    body: &Bytes,
    opts: &WriteOpts,
) -> Result<ops::Written, ApiError> {
    let info = &t.info;
    let live = st
        .get(
            &info.storage_key(),
            if info.namespaced { &t.ns } else { "" },
            name,
        )
        .map(|live| present(info, live))
        .ok_or_else(|| {
            ApiError::not_found(&info.group_resource(), &info.group, &info.plural, name)
        })?;
    let patch: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    let accepted = if info.crd.is_some() {
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    } else {
        "application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml"
    };
    let mut patched = match content_type {
        "application/merge-patch+json" => engines::merge_patch(&live, &patch)?,
        "application/json-patch+json" => engines::json_patch(&live, &patch)?,
        "application/strategic-merge-patch+json" if info.crd.is_none() => {
            engines::strategic_merge_patch(&live, &patch, &ops::merge_schema(info))?
        }
        _ => {
            return Err(ApiError::unsupported_media(format!(
                "the body of the request was in an unknown format - accepted media types include: {accepted}"
            )));
        }
    };
    // A patch that does not mention resourceVersion applies to whatever is live.
    if patched["metadata"]["resourceVersion"].is_null() {
        patched["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"].clone();
    }
    ops::update(st, info, &t.ns, name, patched, opts, false)
}

fn apply(
    st: &mut Store,
    t: &Target,
    name: &str,
    body: &Bytes,
    q: &Query,
    opts: &WriteOpts,
) -> Result<(u16, ops::Written), ApiError> {
    let info = &t.info;
    let mut config = check_kind(info, parse_body(body, "application/apply-patch+yaml")?)?;
    // Each endpoint owns its part of the object: status through /status, the rest through the main one.
    if info.status
        && let Some(o) = config.as_object_mut()
    {
        if t.sub.is_some() {
            o.retain(|k, _| matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status"));
        } else {
            o.remove("status");
        }
    }
    // As kube-apiserver: a configuration may leave the name out when it updates an object (the
    // URL names it), but may not name another object; creating one needs the name.
    let config_name = config["metadata"]["name"].as_str().unwrap_or_default();
    let unnamed = config_name.is_empty();
    if !unnamed && config_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({config_name}) does not match the name on the URL ({name})"
        )));
    }
    let force = q.get("force").is_some_and(|f| f == "true" || f == "1");
    let live = st
        .get(
            &info.storage_key(),
            if info.namespaced { &t.ns } else { "" },
            name,
        )
        .map(|live| present(info, live));
    let time = ops::now();
    let av = info.api_version();
    let mgr = Manager {
        name: &opts.manager,
        operation: Operation::Apply,
        subresource: t.sub.as_deref(),
        api_version: &av,
        time: &time,
    };
    let schema = ops::merge_schema(info);
    match live {
        None if t.sub.is_some() => Err(ApiError::not_found(
            &info.group_resource(),
            &info.group,
            &info.plural,
            name,
        )),
        None if unnamed => Err(ApiError::bad_request(format!(
            "the name of the object ({name} based on URL) was undeterminable: name must be provided"
        ))),
        // A uid in the configuration is a precondition that no absent object meets (a
        // resourceVersion is not: the apply creates whatever version it names).
        None if !ops::meta_str(&config, "uid").is_empty() => Err(ApiError::conflict(
            &info.group_resource(),
            &info.group,
            &info.plural,
            name,
            &format!(
                "uid mismatch: the provided object specified uid {}, and no existing object was found",
                ops::meta_str(&config, "uid")
            ),
        )),
        None => {
            let obj = engines::server_side_apply(None, &config, &mgr, force, &schema)?;
            ops::create(st, info, &t.ns, obj, opts, true).map(|w| (201, w))
        }
        Some(live) => {
            let mut obj = engines::server_side_apply(Some(&live), &config, &mgr, force, &schema)?;
            if config["metadata"]["resourceVersion"].is_null() {
                obj["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"].clone();
            }
            ops::update(st, info, &t.ns, name, obj, opts, true).map(|w| (200, w))
        }
    }
}

fn delete_opts(q: &Query, body: &Bytes) -> Result<DeleteOpts, ApiError> {
    let b: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(body).unwrap_or(json!({}))
    };
    let policy = q
        .get("propagationPolicy")
        .cloned()
        .or_else(|| b["propagationPolicy"].as_str().map(String::from));
    let orphan = q
        .get("orphanDependents")
        .map(|v| v == "true")
        .or_else(|| b["orphanDependents"].as_bool());
    let propagation = match (policy.as_deref(), orphan) {
        (Some("Foreground"), _) => Some(Propagation::Foreground),
        (Some("Background"), _) => Some(Propagation::Background),
        (Some("Orphan"), _) | (None, Some(true)) => Some(Propagation::Orphan),
        (Some(other), _) => {
            return Err(ApiError::new(
                422,
                "Invalid",
                format!(
                    "propagationPolicy: Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
                ),
            ));
        }
        (None, _) => None,
    };
    let dry_run = q.get("dryRun").is_some_and(|d| d == "All")
        || b["dryRun"]
            .as_array()
            .is_some_and(|a| a.iter().any(|d| d == "All"));
    Ok(DeleteOpts {
        propagation,
        uid: b["preconditions"]["uid"].as_str().map(String::from),
        resource_version: b["preconditions"]["resourceVersion"]
            .as_str()
            .map(String::from),
        dry_run,
    })
}

fn delete(sh: &Shared, t: &Target, q: &Query, body: &Bytes) -> Result<Response, ApiError> {
    let opts = delete_opts(q, body)?;
    let name = t.name.clone().unwrap_or_default();
    let (obj, pending) = ops::delete(&mut sh.store(), &t.info, &t.ns, &name, &opts)?;
    sh.wake.notify_one();
    if pending || opts.dry_run {
        return Ok(json_response(200, &present(&t.info, &obj), &[]));
    }
    Ok(json_response(
        200,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": {"name": name, "group": t.info.group, "kind": t.info.plural, "uid": obj["metadata"]["uid"]}}),
        &[],
    ))
}

fn delete_collection(
    sh: &Shared,
    t: &Target,
    q: &Query,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let opts = delete_opts(q, body)?;
    let filter = Filter::new(t, q)?;
    let mut st = sh.store();
    let targets: Vec<Value> = st
        .iter(&filter.key, filter.ns.as_deref())
        .filter(|o| filter.matches(o))
        .cloned()
        .collect();
    let mut items = vec![];
    for o in targets {
        let name = o["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let ns = o["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if let Ok((obj, _)) = ops::delete(&mut st, &t.info, &ns, &name, &opts) {
            items.push(present(&t.info, &obj));
        }
    }
    let rv = st.current_rv();
    drop(st);
    sh.wake.notify_one();
    Ok(json_response(
        200,
        &json!({"apiVersion": t.info.api_version(), "kind": t.info.list_kind, "metadata": {"resourceVersion": rv.to_string()}, "items": items}),
        &[],
    ))
}

fn event_line(kind: &str, object: Value) -> Bytes {
    let mut s = json_bytes(&json!({"type": kind, "object": object}));
    s.push(b'\n');
    Bytes::from(s)
}

/// The watch line of a metadata-only view ([`table::partial_metadata`]'s shape), serialised from
/// the stored metadata itself: copying it first (managed fields and all) cost the emulator a
/// fifteenth of its time in a burst of new objects.
fn metadata_line(kind: &str, metadata: &Value) -> Bytes {
    #[derive(serde::Serialize)]
    struct Line<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        object: Partial<'a>,
    }
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Partial<'a> {
        api_version: &'static str,
        kind: &'static str,
        metadata: &'a Value,
    }
    let line = Line {
        kind,
        object: Partial {
            api_version: "meta.k8s.io/v1",
            kind: PARTIAL_METADATA,
            metadata,
        },
    };
    // Serialising borrowed JSON values cannot fail.
    let mut s = serde_json::to_string(&line).unwrap_or_default();
    s.push('\n');
    Bytes::from(s)
}

fn expired_line(requested: u64, oldest: u64) -> Bytes {
    let e = ApiError::gone(format!("too old resource version: {requested} ({oldest})"));
    event_line("ERROR", e.to_status())
}

fn watch(sh: &Arc<Shared>, t: Target, q: &Query, out: Output, cut_generation: u64) -> Response {
    let filter = match Filter::new(&t, q) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let bookmarks = q
        .get("allowWatchBookmarks")
        .is_some_and(|v| v == "true" || v == "1");
    let initial_events = q.get("sendInitialEvents").is_some_and(|v| v == "true");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map_or(Duration::from_secs(1800), Duration::from_secs);
    let requested = q.get("resourceVersion").cloned().unwrap_or_default();
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let force_gone = sh.faults.take_expire_watch();
    let mut first_lines: Vec<Bytes> = vec![];
    let info = t.info.clone();
    let mut columns_sent = false;
    let render = move |obj: &Value, columns_sent: &mut bool| -> Value {
        match out {
            Output::Table(inc) => {
                let o = present(&info, obj);
                let v = table::render(
                    &info,
                    &[o],
                    inc,
                    json!({"resourceVersion": obj["metadata"]["resourceVersion"]}),
                    !*columns_sent,
                );
                *columns_sent = true;
                v
            }
            other => render_one(&info, obj, other),
        }
    };
    let bookmark = {
        let info = t.info.clone();
        move |rv: u64, end: bool| -> Bytes {
            let mut meta = json!({"resourceVersion": rv.to_string()});
            if end {
                meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
            }
            let obj = match out {
                Output::Json => {
                    json!({"kind": info.kind, "apiVersion": info.api_version(), "metadata": meta})
                }
                _ => {
                    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta})
                }
            };
            event_line("BOOKMARK", obj)
        }
    };
    let (mut sub, start_rv) = {
        let st = sh.store();
        let now = st.current_rv();
        let parsed: Option<u64> = requested.parse().ok();
        let from_scratch = requested.is_empty() || requested == "0" || initial_events;
        if force_gone || (!from_scratch && parsed.is_some_and(|r| r < st.compacted)) {
            let r = parsed.unwrap_or(0);
            first_lines.push(expired_line(r, st.compacted.max(r + 1)));
            drop(st);
            return stream_response(rx, tx, first_lines);
        }
        if from_scratch {
            for o in st
                .iter(&filter.key, filter.ns.as_deref())
                .filter(|o| filter.matches(o))
            {
                first_lines.push(event_line("ADDED", render(o, &mut columns_sent)));
            }
            if initial_events && bookmarks {
                first_lines.push(bookmark(now, true));
            }
        } else {
            let from = parsed.unwrap_or(now);
            for c in st.history_since(from) {
                if let Some(line) = change_line(&c, &filter, out, &render, &mut columns_sent) {
                    first_lines.push(line);
                }
            }
        }
        (st.tx.subscribe(), now)
    };
    let mut cut = sh.faults.cut_signal();
    let already_cut = *cut.borrow_and_update() != cut_generation;
    let interval = sh.bookmark_interval;
    tokio::spawn(async move {
        if already_cut {
            return;
        }
        for l in first_lines {
            if tx.send(l).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut last_rv = start_rv;
        let mut ticker = tokio::time::interval(interval);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = cut.changed() => return,
                _ = tx.closed() => return,
                _ = ticker.tick(), if bookmarks => {
                    if tx.send(bookmark(last_rv, false)).await.is_err() { return; }
                }
                c = sub.recv() => match c {
                    Ok(c) => {
                        if c.rv <= last_rv { continue; }
                        last_rv = c.rv;
                        if let Some(line) = change_line(&c, &filter, out, &render, &mut columns_sent)
                            && tx.send(line).await.is_err() {
                                return;
                        }
                    }
                    // A watcher that falls behind is closed; the client resumes from its last version.
                    Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    });
    stream_body(rx)
}

/// The kind of a metadata-only view, and the key of its watch lines among a change's lines
/// (which are otherwise keyed by apiVersion).
const PARTIAL_METADATA: &str = "PartialObjectMetadata";

fn change_line(
    c: &Change,
    filter: &Filter,
    out: Output,
    render: &impl Fn(&Value, &mut bool) -> Value,
    columns_sent: &mut bool,
) -> Option<Bytes> {
    if c.key != filter.key {
        return None;
    }
    let now = filter.matches(&c.object);
    let before = c.old.as_ref().is_some_and(|o| filter.matches(o));
    let kind = match (c.kind, before, now) {
        (EventType::Deleted, _, true) => "DELETED",
        (EventType::Added, _, true) => "ADDED",
        (EventType::Modified, true, true) => "MODIFIED",
        (EventType::Modified, false, true) => "ADDED",
        (EventType::Modified, true, false) => "DELETED",
        _ => return None,
    };
    if out == Output::Metadata && filter.info.storage().is_none() {
        // Metadata watches of a kind stored as it is served get the same line: serialised once,
        // straight from the stored metadata.
        return Some(c.line(PARTIAL_METADATA, kind, || {
            metadata_line(kind, &c.object["metadata"])
        }));
    }
    if out != Output::Json {
        return Some(event_line(kind, render(&c.object, columns_sent)));
    }
    // Plain JSON is the same for every watcher of this resource and version: serialise it once.
    let info = &filter.info;
    Some(c.line(&filter.api_version, kind, || {
        if presents_as_stored(info, &c.object) {
            let mut s = format!("{{\"type\":\"{kind}\",\"object\":").into_bytes();
            // Serialising a JSON value into memory cannot fail.
            let _ = serde_json::to_writer(&mut s, &*c.object);
            s.extend_from_slice(b"}\n");
            Bytes::from(s)
        } else {
            event_line(kind, present(info, &c.object))
        }
    }))
}

fn stream_response(
    rx: mpsc::Receiver<Bytes>,
    tx: mpsc::Sender<Bytes>,
    lines: Vec<Bytes>,
) -> Response {
    tokio::spawn(async move {
        for l in lines {
            let _ = tx.send(l).await;
        }
    });
    stream_body(rx)
}

fn stream_body(rx: mpsc::Receiver<Bytes>) -> Response {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    Response::builder()
        .status(200)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| ApiError::internal("stream").into_response())
}

fn has_scale(info: &ResourceInfo) -> bool {
    info.scale()
}

/// `/scale`: read or change a Deployment's replicas, as `kubectl scale` and the
/// HorizontalPodAutoscaler do. Writes go through the Scale object with the owners of
/// `spec.replicas` carried over, so updates, patches and server-side apply record ownership
/// (and apply conflicts) the way kube-apiserver's scale handler does.
fn scale(
    sh: &Shared,
    t: &Target,
    verb: &str,
    q: &Query,
    content_type: &str,
    body: &Bytes,
    user_agent: &str,
) -> Result<Response, ApiError> {
    let name = t.name.clone().unwrap_or_default();
    let key = t.info.storage_key();
    let mut st = sh.store();
    let live = st.get(&key, &t.ns, &name).cloned().ok_or_else(|| {
        ApiError::not_found(
            &t.info.group_resource(),
            &t.info.group,
            &t.info.plural,
            &name,
        )
    })?;
    let current = ops::scale_of(&live);
    if verb == "get" {
        return Ok(json_response(200, &current, &[]));
    }
    let live_scale = ops::scale_with_owners(&t.info, &live);
    let opts = write_opts(q, t, verb, user_agent)?;
    let time = ops::now();
    let manager = |operation| Manager {
        name: &opts.manager,
        operation,
        subresource: Some("scale"),
        api_version: "autoscaling/v1",
        time: &time,
    };
    let updated = |wanted: Value| -> Result<Value, ApiError> {
        let want_rv = wanted["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default();
        if !want_rv.is_empty() && want_rv != live["metadata"]["resourceVersion"] {
            return Err(ApiError::stale(
                &t.info.group_resource(),
                &t.info.group,
                &t.info.plural,
                &name,
            ));
        }
        let mut next = live_scale.clone();
        next["spec"]["replicas"] = wanted["spec"]["replicas"].clone();
        Ok(engines::track_update(
            Some(&live_scale),
            next,
            &manager(Operation::Update),
            &ops::scale_schema(),
        ))
    };
    let new_scale = match verb {
        "update" => updated(parse_body(body, content_type)?)?,
        "patch" => {
            let patch = parse_body(body, "application/json")?;
            updated(match content_type {
                "application/json-patch+json" => engines::json_patch(&current, &patch)?,
                _ => engines::merge_patch(&current, &patch)?,
            })?
        }
        "apply" => {
            let config = parse_body(body, "application/apply-patch+yaml")?;
            let force = q.get("force").is_some_and(|f| f == "true" || f == "1");
            engines::server_side_apply(
                Some(&live_scale),
                &config,
                &manager(Operation::Apply),
                force,
                &ops::scale_schema(),
            )?
        }
        _ => return Err(ApiError::method_not_allowed(verb, &t.info.group_resource())),
    };
    // `opts` names the scale subresource, so the Deployment write keeps its managedFields as
    // folded back above and leaves defaults alone.
    let (stored, warnings) =
        ops::store_scale(&mut st, &t.info, &t.ns, &name, &live, &new_scale, &opts)?;
    drop(st);
    sh.wake.notify_one();
    Ok(json_response(200, &ops::scale_of(&stored), &warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_apply_body_reads_the_same_as_json_text_or_yaml() {
        const APPLY: &str = "application/apply-patch+yaml";
        let json_text = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","labels":{"a":"b"}},"data":{"n":"1","s":"x\ty"},"binaryData":null,"x":[1,2.5,-3,true]}"#;
        let yaml_text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  labels: {a: b}\ndata:\n  n: \"1\"\n  s: \"x\\ty\"\nbinaryData: null\nx: [1, 2.5, -3, true]\n";
        let from_json = parse_body(&Bytes::from(json_text), APPLY).unwrap();
        let from_yaml = parse_body(&Bytes::from(yaml_text), APPLY).unwrap();
        assert_eq!(from_json, from_yaml);
        assert_eq!(
            from_json,
            serde_yaml::from_str::<Value>(json_text).unwrap(),
            "JSON text reads as the YAML parser reads it"
        );
        let err = parse_body(&Bytes::from("a: [b"), APPLY).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(
            err.message.starts_with("error decoding YAML: "),
            "{}",
            err.message
        );
    }

    #[test]
    fn a_protobuf_field_without_a_table_entry_is_refused_with_415() {
        // A v1 ConfigMap named "c" with field 9 set to "x": ConfigMap has no field 9.
        let type_meta = b"\x0a\x02v1\x12\x09ConfigMap";
        let config_map = b"\x0a\x03\x0a\x01c\x4a\x01x";
        let mut body = b"k8s\0".to_vec();
        body.extend([0x0a, type_meta.len() as u8]);
        body.extend(type_meta);
        body.extend([0x12, config_map.len() as u8]);
        body.extend(config_map);
        let err =
            parse_body(&Bytes::from(body), "application/vnd.kubernetes.protobuf").unwrap_err();
        assert_eq!((err.code, err.reason), (415, "UnsupportedMediaType"));
        assert!(
            err.message.starts_with(
                "the emulator cannot decode field 9 of protobuf message ConfigMap in this ConfigMap"
            ),
            "{}",
            err.message
        );
    }
}
