//! The operator's API client: kube-rs's request layers over a connection pool that speaks HTTP/2
//! when the API server offers it (kube-apiserver does, over TLS), as client-go does.
//!
//! kube-rs's own client speaks HTTP/1.1 only: every request in flight is a connection of its own,
//! and each costs memory while open and while it idles in the pool. Over HTTP/2 the operator's
//! watches and all its requests share one connection, so how many requests it keeps in flight
//! (`--max-concurrent-reconciles`) no longer decides how many connections it holds.

use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use kube::client::retry::RetryPolicy;
use kube::client::{ClientBuilder, ConfigExt};
use kube::{Client, Config};
use tower::retry::RetryLayer;
use tower::{BoxError, ServiceBuilder};

/// How often an HTTP/2 connection is pinged, and how long an answer may take before the
/// connection is dropped (and every watch on it restarted): client-go's health check of a
/// connection, which a half-open TCP connection would otherwise escape.
const PING_EVERY: Duration = Duration::from_secs(30);
const PING_TIMEOUT: Duration = Duration::from_secs(15);

/// Which protocols the client offers the API server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocols {
    /// HTTP/2 when the server offers it in the TLS handshake, else HTTP/1.1.
    Http2OrHttp1,
    /// HTTP/1.1 only (kube-rs's own client), e.g. behind a proxy that mishandles HTTP/2.
    Http1,
}

/// A client for `config`. A proxy in the configuration (`proxy-url`) gets kube-rs's own client,
/// which tunnels HTTP/1.1 through it.
pub fn build(config: Config, protocols: Protocols) -> Result<Client, kube::Error> {
    if protocols == Protocols::Http1 || config.proxy_url.is_some() {
        return Client::try_from(config);
    }

    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(config.connect_timeout);

    // ALPN offers h2 and http/1.1; a server without TLS (a plain http:// URL) gets HTTP/1.1.
    let tls = config.rustls_client_config()?;
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    let https = match &config.tls_server_name {
        Some(name) => {
            let name = rustls_pki_types::ServerName::try_from(name.clone()).map_err(|e| {
                kube::Error::RustlsTls(kube::client::RustlsTlsError::InvalidServerName(e))
            })?;
            https.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
        }
        None => https,
    };
    let https = https.enable_all_versions().wrap_connector(tcp);

    let pool: hyper_util::client::legacy::Client<_, kube::client::Body> =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .http2_keep_alive_interval(PING_EVERY)
            .http2_keep_alive_timeout(PING_TIMEOUT)
            .build(https);

    // The layers kube-rs puts around its own pool, in its order: the server's address, retries of
    // requests the server asked to retry, credentials, the configured headers.
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(
            config
                .default_retry
                .then(|| RetryLayer::new(RetryPolicy::server_retry())),
        )
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(BoxError::from)
        .service(pool);
    Ok(ClientBuilder::new(service, config.default_namespace).build())
}
