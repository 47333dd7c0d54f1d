//! Fault injection controlled from tests: error responses, latency, cut watches, forced 410, outages.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

/// Which requests a fault applies to; `None` matches anything.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    /// get, list, watch, create, update, patch, apply, delete, deletecollection.
    pub verb: Option<String>,
    /// The plural resource, e.g. `deployments`; a subresource matches as `deployments/status`.
    pub resource: Option<String>,
    pub name: Option<String>,
    pub namespace: Option<String>,
}

/// An error response injected into matching requests.
#[derive(Debug, Clone)]
pub struct ErrorRule {
    pub matcher: Matcher,
    /// 500, 503, 429, ...
    pub code: u16,
    /// Fraction of matching requests that fail, 0.0..=1.0.
    pub fraction: f64,
    /// How many more times it may fire; `None` forever.
    pub remaining: Option<u64>,
    /// Sent as `Retry-After` (seconds), e.g. with 429.
    pub retry_after: Option<u32>,
}

impl ErrorRule {
    /// Every matching request fails with `code`.
    pub fn new(code: u16) -> Self {
        ErrorRule {
            matcher: Matcher::default(),
            code,
            fraction: 1.0,
            remaining: None,
            retry_after: None,
        }
    }
    pub fn verb(mut self, verb: &str) -> Self {
        self.matcher.verb = Some(verb.into());
        self
    }
    pub fn resource(mut self, resource: &str) -> Self {
        self.matcher.resource = Some(resource.into());
        self
    }
    pub fn name(mut self, name: &str) -> Self {
        self.matcher.name = Some(name.into());
        self
    }
    pub fn namespace(mut self, ns: &str) -> Self {
        self.matcher.namespace = Some(ns.into());
        self
    }
    pub fn fraction(mut self, f: f64) -> Self {
        self.fraction = f;
        self
    }
    pub fn times(mut self, n: u64) -> Self {
        self.remaining = Some(n);
        self
    }
    pub fn retry_after(mut self, secs: u32) -> Self {
        self.retry_after = Some(secs);
        self
    }
}

#[derive(Default)]
struct State {
    rules: Vec<ErrorRule>,
    latency: Duration,
    outage: bool,
    expire_next_watches: u64,
}

/// The fault controls of one emulator. Cheap to clone.
#[derive(Clone)]
pub struct Faults {
    state: Arc<Mutex<State>>,
    cut: Arc<watch::Sender<u64>>,
}

/// What the server should do to one request.
pub(crate) struct Decision {
    pub latency: Duration,
    pub error: Option<(u16, Option<u32>)>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            state: Arc::default(),
            cut: Arc::new(watch::channel(0).0),
        }
    }
}

impl Faults {
    /// Adds an error rule; rules are checked in order.
    pub fn inject(&self, rule: ErrorRule) {
        self.lock().rules.push(rule);
    }

    /// Removes every error rule, latency and outage.
    pub fn clear(&self) {
        let mut s = self.lock();
        s.rules.clear();
        s.latency = Duration::ZERO;
        s.outage = false;
        s.expire_next_watches = 0;
    }

    /// Delay added to every request.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Ends every open watch stream (clients see the stream close and re-watch).
    pub fn cut_watches(&self) {
        self.cut.send_modify(|n| *n += 1);
    }

    /// The next watch request gets `410 Gone` (an ERROR event with reason Expired).
    pub fn expire_next_watch(&self) {
        self.lock().expire_next_watches += 1;
    }

    /// A full outage: every request answers 503 and open watches are cut, until turned off.
    pub fn set_outage(&self, on: bool) {
        self.lock().outage = on;
        if on {
            self.cut_watches();
        }
    }

    pub(crate) fn cut_signal(&self) -> watch::Receiver<u64> {
        self.cut.subscribe()
    }

    pub(crate) fn take_expire_watch(&self) -> bool {
        let mut s = self.lock();
        if s.expire_next_watches > 0 {
            s.expire_next_watches -= 1;
            true
        } else {
            false
        }
    }

    pub(crate) fn decide(
        &self,
        verb: &str,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> Decision {
        let mut s = self.lock();
        if s.outage {
            return Decision {
                latency: s.latency,
                error: Some((503, None)),
            };
        }
        let latency = s.latency;
        for rule in s.rules.iter_mut() {
            let m = &rule.matcher;
            let ok = m.verb.as_deref().is_none_or(|v| v == verb)
                && m.resource.as_deref().is_none_or(|r| r == resource)
                && m.name.as_deref().is_none_or(|n| n == name)
                && m.namespace.as_deref().is_none_or(|n| n == namespace);
            if !ok || rule.remaining == Some(0) {
                continue;
            }
            if rule.fraction < 1.0 && rand::random::<f64>() >= rule.fraction {
                continue;
            }
            if let Some(r) = rule.remaining.as_mut() {
                *r -= 1;
            }
            return Decision {
                latency,
                error: Some((rule.code, rule.retry_after)),
            };
        }
        Decision {
            latency,
            error: None,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Requests served, by client, verb and resource (`list` / `watch` / `get` counted apart;
/// non-resource paths by path). The client is the User-Agent's product (`kubectl`, `demoweb-operator`).
#[derive(Clone, Default)]
pub struct RequestCounts(
    pub(crate) Arc<Mutex<BTreeMap<ClientRequest, u64>>>,
    pub(crate) Arc<Mutex<std::collections::BTreeSet<Access>>>,
    pub(crate) Arc<Mutex<BTreeMap<Connection, u64>>>,
);

/// A connection a client's requests came over: the client (the User-Agent's product), the
/// client's address and port (one per TCP connection), and the HTTP version it speaks.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Connection {
    pub agent: String,
    pub peer: std::net::SocketAddr,
    pub version: String,
}

/// (client, verb, resource).
pub type ClientRequest = (String, String, String);

/// A resource request as RBAC authorizes it: who asked, the API group, the resource (with its
/// subresource, e.g. `demowebs/status`), the verb, and the namespace it was made in — `None` for
/// a cluster-scoped kind or a request across all namespaces, which only a ClusterRole can grant.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Access {
    pub agent: String,
    pub group: String,
    pub resource: String,
    pub verb: String,
    pub namespace: Option<String>,
}

impl RequestCounts {
    pub(crate) fn add(&self, agent: &str, verb: &str, resource: &str) {
        *self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((agent.into(), verb.into(), resource.into()))
            .or_default() += 1;
    }

    pub(crate) fn add_access(&self, access: Access) {
        self.1
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(access);
    }

    pub(crate) fn add_connection(&self, connection: Connection) {
        *self
            .2
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(connection)
            .or_default() += 1;
    }

    /// The connections requests came over, with how many requests each carried.
    pub fn connections(&self) -> BTreeMap<Connection, u64> {
        self.2.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Every distinct resource request served, as RBAC would see it.
    pub fn accesses(&self) -> std::collections::BTreeSet<Access> {
        self.1.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A copy of the counters, all clients together: (verb, resource) → requests.
    pub fn snapshot(&self) -> BTreeMap<(String, String), u64> {
        let mut out = BTreeMap::new();
        for ((_, verb, resource), n) in self.by_agent() {
            *out.entry((verb, resource)).or_default() += n;
        }
        out
    }

    /// A copy of the counters: (client, verb, resource) → requests.
    pub fn by_agent(&self) -> BTreeMap<ClientRequest, u64> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Total requests with this verb, over all resources.
    pub fn by_verb(&self, verb: &str) -> u64 {
        self.snapshot()
            .iter()
            .filter(|((v, _), _)| v == verb)
            .map(|(_, n)| n)
            .sum()
    }

    pub fn reset(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.1.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}
