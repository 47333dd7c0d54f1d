//! Which request this is, worked out once before anything else looks at it (kube-apiserver's
//! RequestInfo filter): a discovery page or a resource, the verb, and the names that request
//! counters and injected faults match on.

use axum::body::Bytes;
use axum::response::{IntoResponse, Response};
use http::{Method, StatusCode};
use serde_json::{Value, json};

use super::super::discovery;
use super::super::errors::ApiError;
use super::super::resources::ResourceInfo;
use super::super::shared::Shared;
use super::{Query, has_scale, json_response, parse_query};

/// A parsed resource request.
#[derive(Clone)]
pub(super) struct Target {
    pub info: ResourceInfo,
    pub ns: String,
    pub name: Option<String>,
    pub sub: Option<String>,
}

/// A path that is not a resource: the root, health, version and discovery documents.
#[derive(Clone)]
pub(super) enum Page {
    Root,
    Version,
    Health,
    Core,
    Groups,
    OpenApiRoot,
    OpenApi(String, String),
    Group(String),
    Resources(String, String),
}

/// Built once per request and moved, never copied around: boxing the larger variant would only add
/// an allocation to every resource request.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub(super) enum Route {
    Page(Page),
    Resource(Target),
}

/// What a request is; the layers insert it into the request's extensions for the ones inside.
#[derive(Clone)]
pub(crate) struct RequestInfo {
    /// None when no resource or page has this path (404).
    pub(super) route: Option<Route>,
    pub verb: &'static str,
    /// `deployments` or `deployments/status`; the path for anything but a resource.
    pub resource: String,
    pub group: String,
    pub namespace: String,
    /// The object's name; a create names it in the body.
    pub name: String,
    /// The client, as the product part of its User-Agent (`kubectl`, `demoweb-operator`).
    pub agent: String,
    pub(super) query: Query,
    /// The media type of the body, without parameters.
    pub(super) content_type: String,
    /// Watches cut from here on end, even if their stream is not set up yet.
    pub(super) cut_generation: u64,
}

/// A request header as text; empty when absent or not text.
pub(super) fn header(headers: &http::HeaderMap, name: http::header::HeaderName) -> &str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

impl RequestInfo {
    pub(crate) fn new(sh: &Shared, parts: &http::request::Parts, body: &Bytes) -> RequestInfo {
        let query = parse_query(parts.uri.query());
        let path = parts.uri.path();
        let content_type = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        let route = route(sh, path);
        let (verb, resource, group, namespace, name) = match &route {
            Some(Route::Resource(t)) => {
                let resource = match &t.sub {
                    Some(s) => format!("{}/{s}", t.info.plural),
                    None => t.info.plural.clone(),
                };
                let verb = verb_of(&parts.method, t, &query, &content_type);
                let name = match &t.name {
                    Some(n) => n.clone(),
                    None if verb == "create" => serde_json::from_slice::<Value>(body)
                        .ok()
                        .and_then(|v| v["metadata"]["name"].as_str().map(String::from))
                        .unwrap_or_default(),
                    None => String::new(),
                };
                let group = t.info.group.clone();
                (verb, resource, group, t.ns.clone(), name)
            }
            _ => (
                "get",
                path.to_string(),
                String::new(),
                String::new(),
                String::new(),
            ),
        };
        let agent = header(&parts.headers, http::header::USER_AGENT)
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        RequestInfo {
            route,
            verb,
            resource,
            group,
            namespace,
            name,
            agent,
            query,
            content_type,
            cut_generation: *sh.faults.cut_signal().borrow(),
        }
    }

    /// Whether this is a request for a served resource (not a page, not a path that is neither).
    pub fn is_resource(&self) -> bool {
        matches!(self.route, Some(Route::Resource(_)))
    }
}

fn route(sh: &Shared, path: &str) -> Option<Route> {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let page = |p: Page| Some(Route::Page(p));
    let (group, version, rest): (&str, &str, &[&str]) = match segs.as_slice() {
        [] => return page(Page::Root),
        ["version"] => return page(Page::Version),
        ["healthz" | "livez" | "readyz", ..] => return page(Page::Health),
        ["api"] => return page(Page::Core),
        ["apis"] => return page(Page::Groups),
        ["openapi", "v3"] => return page(Page::OpenApiRoot),
        ["openapi", "v3", "api", v] => return page(Page::OpenApi(String::new(), v.to_string())),
        ["openapi", "v3", "apis", g, v] => {
            return page(Page::OpenApi(g.to_string(), v.to_string()));
        }
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g] => return page(Page::Group(g.to_string())),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    if rest.is_empty() {
        return page(Page::Resources(group.to_string(), version.to_string()));
    }
    let st = sh.store();
    let find = |plural: &str| st.find(group, version, plural).cloned();
    let (ns, rest): (String, &[&str]) = match rest {
        ["namespaces", ns, plural, tail @ ..] if find(plural).is_some_and(|r| r.namespaced) => {
            let mut v = vec![*plural];
            v.extend_from_slice(tail);
            return finish(find(plural), ns.to_string(), &v);
        }
        _ => (String::new(), rest),
    };
    finish(find(rest[0]), ns, rest)
}

fn finish(info: Option<ResourceInfo>, ns: String, rest: &[&str]) -> Option<Route> {
    let info = info?;
    if rest.len() > 3 {
        return None;
    }
    let sub = rest.get(2).map(|s| s.to_string());
    if let Some(s) = &sub
        && !(s == "status" && info.status)
        && !(s == "scale" && has_scale(&info))
    {
        return None;
    }
    Some(Route::Resource(Target {
        info,
        ns,
        name: rest.get(1).map(|s| s.to_string()),
        sub,
    }))
}

impl Page {
    pub(super) fn render(&self, sh: &Shared, accept: &str) -> Result<Response, ApiError> {
        let st = sh.store();
        let found = |v: Option<Value>| {
            v.map(|v| json_response(200, &v, &[]))
                .ok_or_else(ApiError::path_not_found)
        };
        match self {
            Page::Root => found(Some(
                json!({"paths": ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/openapi/v2", "/openapi/v3", "/readyz", "/version"]}),
            )),
            Page::Version => found(Some(discovery::version())),
            Page::Health => Ok((
                StatusCode::OK,
                [(http::header::CONTENT_TYPE, "text/plain")],
                "ok",
            )
                .into_response()),
            Page::Core if aggregated_wanted(accept) => Ok(aggregated_response(
                discovery::aggregated(&st.resources, true),
            )),
            Page::Core => found(Some(discovery::core_versions(&sh.addr))),
            Page::Groups if aggregated_wanted(accept) => Ok(aggregated_response(
                discovery::aggregated(&st.resources, false),
            )),
            Page::Groups => found(Some(discovery::group_list(&st.resources))),
            Page::OpenApiRoot => found(Some(discovery::openapi_v3_root(
                &st.resources,
                st.current_rv(),
            ))),
            Page::OpenApi(g, v) => found(discovery::openapi_v3_gv(&st.resources, g, v)),
            Page::Group(g) => found(discovery::group(&st.resources, g)),
            Page::Resources(g, v) => found(discovery::resource_list(&st.resources, g, v)),
        }
    }
}

fn aggregated_wanted(accept: &str) -> bool {
    accept.split(',').next().is_some_and(|first| {
        first.contains("as=APIGroupDiscoveryList")
            && first.contains("v=v2")
            && !first.contains("v=v2beta1")
    })
}

fn aggregated_response(v: Value) -> Response {
    (
        StatusCode::OK,
        [(
            http::header::CONTENT_TYPE,
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
        )],
        v.to_string(),
    )
        .into_response()
}

fn verb_of(method: &Method, t: &Target, q: &Query, content_type: &str) -> &'static str {
    let watch = q.get("watch").is_some_and(|v| v == "1" || v == "true");
    match (method.as_str(), t.name.is_some()) {
        ("GET", true) => "get",
        ("GET", false) if watch => "watch",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) if content_type == "application/apply-patch+yaml" => "apply",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "unknown",
    }
}
