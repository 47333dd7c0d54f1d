//! The HTTP endpoints of the process: `/metrics` (Prometheus), `/healthz` (liveness: the process
//! serves) and `/readyz` (readiness: the caches the controllers read have synced).

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::metrics::Metrics;

/// Whether the process is ready, and the text `/readyz` answers with either way (e.g. which
/// caches are still filling). Shared by the controllers, which set it, and the server.
#[derive(Clone, Debug)]
pub struct Readiness(Arc<Mutex<(bool, String)>>);

impl Default for Readiness {
    fn default() -> Self {
        Self::not_ready("starting")
    }
}

impl Readiness {
    pub fn not_ready(why: impl Into<String>) -> Self {
        Readiness(Arc::new(Mutex::new((false, why.into()))))
    }

    fn set(&self, ready: bool, text: String) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = (ready, text);
    }

    /// Ready; `what` says in what state (e.g. "standing by for the Lease").
    pub fn ready(&self, what: impl Into<String>) {
        self.set(true, what.into());
    }

    /// Not ready, and why.
    pub fn waiting(&self, why: impl Into<String>) {
        self.set(false, why.into());
    }

    /// (ready, text).
    pub fn get(&self) -> (bool, String) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[derive(Clone)]
pub struct ServerState {
    pub metrics: Arc<Metrics>,
    pub readiness: Readiness,
}

pub fn router(state: ServerState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// How much of a scrape's text is held at once: it is sent in pieces of about this size while it
/// is being rendered.
const CHUNK: usize = 64 * 1024;

/// The scrape's text, sent as it is written: with thousands of DemoWebs it runs to megabytes, and
/// a scrape then holds a few pieces of it rather than all of it. Written on a blocking thread:
/// `blocking_send` waits while the client has not taken the earlier pieces.
struct Chunks {
    buf: String,
    tx: mpsc::Sender<Bytes>,
}

impl Chunks {
    fn send(&mut self) -> fmt::Result {
        let piece = std::mem::replace(&mut self.buf, String::with_capacity(CHUNK));
        // The client went away: stop rendering.
        self.tx.blocking_send(piece.into()).map_err(|_| fmt::Error)
    }
}

impl fmt::Write for Chunks {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Sent before it would outgrow its room (a String that outgrows it doubles).
        if !self.buf.is_empty() && self.buf.len() + s.len() > CHUNK {
            self.send()?;
        }
        self.buf.push_str(s);
        Ok(())
    }
}

/// The text is rendered on a blocking thread: with thousands of DemoWebs it takes tens of
/// milliseconds, which on the operator's one worker thread would hold up every reconcile.
async fn metrics(State(state): State<ServerState>) -> impl IntoResponse {
    let (tx, rx) = mpsc::channel::<Bytes>(2);
    let metrics = state.metrics.clone();
    tokio::task::spawn_blocking(move || {
        let mut out = Chunks {
            buf: String::with_capacity(CHUNK),
            tx,
        };
        // An error means the client went away; there is nobody left to tell.
        if metrics.render_into(&mut out).is_ok() && !out.buf.is_empty() {
            let _ = out.send();
        }
    });
    let pieces = futures::stream::unfold(rx, |mut rx| async move {
        let piece = rx.recv().await?;
        Some((Ok::<_, Infallible>(piece), rx))
    });
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        Body::from_stream(pieces),
    )
}

async fn readyz(State(state): State<ServerState>) -> impl IntoResponse {
    let (ready, text) = state.readiness.get();
    if ready {
        (StatusCode::OK, format!("ok: {text}\n"))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {text}\n"),
        )
    }
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: ServerState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn endpoints_answer() {
        let state = ServerState {
            metrics: Arc::new(Metrics::default()),
            readiness: Readiness::not_ready("waiting for caches to sync: demowebs"),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let readiness = state.readiness.clone();
        tokio::spawn(serve(listener, state, std::future::pending()));
        let get = |path: &'static str| async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            stream
                .write_all(
                    format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .await
                .unwrap();
            let mut out = String::new();
            stream.read_to_string(&mut out).await.unwrap();
            out
        };
        assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
        let not_ready = get("/readyz").await;
        assert!(not_ready.starts_with("HTTP/1.1 503"), "{not_ready}");
        assert!(
            not_ready.ends_with("not ready: waiting for caches to sync: demowebs\n"),
            "{not_ready}"
        );
        readiness.ready("caches synced");
        let ready = get("/readyz").await;
        assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
        assert!(ready.ends_with("ok: caches synced\n"), "{ready}");
        assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
        let body = get("/metrics").await;
        assert!(
            body.contains("demoweb_reconcile_duration_seconds"),
            "{body}"
        );
    }

    /// A text of many pieces arrives whole and in order.
    #[tokio::test]
    async fn a_large_scrape_arrives_whole() {
        use kube::runtime::watcher::Event;
        let metrics = Arc::new(Metrics::default());
        let (reader, mut writer) = kube::runtime::reflector::store();
        for i in 0..2_000 {
            let mut dw = crate::demoweb::desired::tests::seed();
            dw.metadata.name = Some(format!("site-{i}"));
            writer.apply_watcher_event(&Event::Apply(dw));
        }
        metrics.watch_sites(reader);
        let want = metrics.render();
        assert!(want.len() > 4 * CHUNK, "{} bytes", want.len());

        let state = ServerState {
            metrics,
            readiness: Readiness::default(),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, state, std::future::pending()));
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // HTTP/1.0, so that the body is the bytes up to the end of the connection.
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        let (head, body) = out.split_once("\r\n\r\n").expect("head and body");
        assert!(head.contains(" 200 "), "{head}");
        assert!(
            body == want,
            "the body differs from the text ({} vs {} bytes)",
            body.len(),
            want.len()
        );
        assert!(body.ends_with("# EOF\n"));
    }
}
