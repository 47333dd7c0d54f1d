//! The layers around the router, outermost first: authentication, working out which request this
//! is ([`RequestInfo`]), counting it, and injected faults. The handler inside only dispatches.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;

use super::super::errors::ApiError;
use super::super::faults::{Access, Connection};
use super::super::shared::Shared;
use super::route::RequestInfo;

/// The largest request body accepted (kube-apiserver's limit is 3 MiB for most objects; Helm
/// release Secrets and CRDs can be larger, so this stays generous).
const BODY_LIMIT: usize = 64 << 20;

/// `router` with the layers around it.
pub(crate) fn wrap(router: Router<()>, shared: Arc<Shared>) -> Router<()> {
    router.layer(
        ServiceBuilder::new()
            .layer(from_fn_with_state(shared.clone(), authenticate))
            .layer(from_fn_with_state(shared.clone(), classify))
            .layer(from_fn_with_state(shared.clone(), count))
            .layer(from_fn_with_state(shared, inject_faults)),
    )
}

/// With a token configured, every request but the health checks must carry it (401 otherwise).
async fn authenticate(State(sh): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    if let Some(token) = &sh.token {
        let path = req.uri().path();
        let ok = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .is_some_and(|h| h == token);
        if !ok && !matches!(path, "/healthz" | "/livez" | "/readyz") {
            sh.counts.add("", "unauthorized", path);
            return ApiError::new(401, "Unauthorized", "Unauthorized").into_response();
        }
    }
    next.run(req).await
}

/// Reads the body and works out the [`RequestInfo`] the layers inside and the handler use.
async fn classify(State(sh): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(b) => b,
        Err(e) => return ApiError::bad_request(e.to_string()).into_response(),
    };
    let info = RequestInfo::new(&sh, &parts, &body);
    parts.extensions.insert(info);
    next.run(Request::from_parts(parts, Body::from(body))).await
}

/// Counts the request by client, verb and resource ([`super::super::RequestCounts`]).
async fn count(State(sh): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    if let Some(info) = req.extensions().get::<RequestInfo>() {
        sh.counts.add(&info.agent, info.verb, &info.resource);
        if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>() {
            sh.counts.add_connection(Connection {
                agent: info.agent.clone(),
                peer: *peer,
                version: format!("{:?}", req.version()),
            });
        }
        if info.is_resource() {
            sh.counts.add_access(Access {
                agent: info.agent.clone(),
                group: info.group.clone(),
                resource: info.resource.clone(),
                verb: info.verb.to_owned(),
                namespace: (!info.namespace.is_empty()).then(|| info.namespace.clone()),
            });
        }
    }
    next.run(req).await
}

/// Delays or fails the request as the fault rules say ([`super::super::Faults`]).
async fn inject_faults(State(sh): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let Some(info) = req.extensions().get::<RequestInfo>() else {
        return next.run(req).await;
    };
    let decision = sh
        .faults
        .decide(info.verb, &info.resource, &info.namespace, &info.name);
    if !decision.latency.is_zero() {
        tokio::time::sleep(decision.latency).await;
    }
    match decision.error {
        Some((code, retry)) => injected(code, retry).into_response(),
        None => next.run(req).await,
    }
}

/// The error kube-apiserver returns with this code.
fn injected(code: u16, retry: Option<u32>) -> ApiError {
    let (reason, msg) = match code {
        429 => (
            "TooManyRequests",
            "the server has received too many requests and has asked us to try again later",
        ),
        503 => (
            "ServiceUnavailable",
            "the server is currently unable to handle the request",
        ),
        500 => (
            "InternalError",
            "an error on the server (\"injected fault\") has prevented the request from succeeding",
        ),
        504 => (
            "Timeout",
            "the server was unable to return a response in the time allotted, but may still be processing the request",
        ),
        _ => ("", "injected fault"),
    };
    let mut e = ApiError::new(code, reason, msg);
    e.retry_after = retry.or(if code == 429 { Some(1) } else { None });
    e
}
