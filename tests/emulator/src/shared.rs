//! What the server, its layers and the controllers share: the store, fault rules, request counters
//! and the switches of a running emulator.

use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

use super::faults::{Faults, RequestCounts};
use super::store;

pub(crate) struct Shared {
    pub(crate) store: Mutex<store::Store>,
    pub(crate) faults: Faults,
    pub(crate) counts: RequestCounts,
    pub(crate) token: Option<String>,
    pub(crate) deployments_ready: AtomicBool,
    /// Set when the readiness switch changed: every Deployment's status needs a fresh look.
    pub(crate) recheck_deployments: AtomicBool,
    pub(crate) wake: Notify,
    pub(crate) bookmark_interval: Duration,
    pub(crate) addr: String,
}

impl Shared {
    pub(crate) fn store(&self) -> MutexGuard<'_, store::Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}
