//! What every controller's runtime shares: waiting for a reflector store's first full list, the
//! per-object state map, and per-object exponential backoff for transient errors.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use kube::runtime::reflector::Store;

/// `Store::wait_until_ready`, safe to call while others wait on the same store: the store wakes
/// only the last of concurrent waiters (kube-runtime's ready signal is a one-shot channel with a
/// single waker), so each waiter looks again every 100ms instead of relying on being woken.
/// False when the store's writer is gone before it filled (its kind is not watched).
pub async fn until_ready<K>(store: &Store<K>) -> bool
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    loop {
        if let Ok(ready) =
            tokio::time::timeout(Duration::from_millis(100), store.wait_until_ready()).await
        {
            return ready.is_ok();
        }
    }
}

/// What a controller remembers about each object it reconciles, between reconciles: one map keyed
/// by the object's uid, with one eviction rule — the entry goes when the object's delete event
/// arrives ([`PerObject::evict`]), so nothing is kept for objects that are gone.
#[derive(Debug)]
pub struct PerObject<S>(Mutex<HashMap<String, S>>);

impl<S> Default for PerObject<S> {
    fn default() -> Self {
        PerObject(Mutex::new(HashMap::new()))
    }
}

impl<S: Default> PerObject<S> {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, S>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the object's state, made empty if there was none.
    pub fn with<R>(&self, uid: &str, f: impl FnOnce(&mut S) -> R) -> R {
        let mut entries = self.entries();
        match entries.get_mut(uid) {
            Some(state) => f(state),
            None => f(entries.entry(uid.to_owned()).or_default()),
        }
    }

    /// Runs `f` on the object's state if there is one (none is made).
    pub fn if_present(&self, uid: &str, f: impl FnOnce(&mut S)) {
        if let Some(state) = self.entries().get_mut(uid) {
            f(state);
        }
    }

    /// Forgets the object: its delete event arrived.
    pub fn evict(&self, uid: &str) {
        self.entries().remove(uid);
    }

    pub fn len(&self) -> usize {
        self.entries().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Per-object exponential backoff for transient errors, keyed by uid, reset on success. The
/// policy itself is [`Backoff::delay`]; a controller with a [`PerObject`] map keeps the count
/// of failures there instead.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    pub const BASE: Duration = Duration::from_millis(500);
    pub const CAP: Duration = Duration::from_secs(300);

    /// How long to wait after `failures` failures in a row (the first retry after 0), and the
    /// count to keep.
    pub fn delay(failures: &mut u32) -> Duration {
        let delay = Self::BASE
            .saturating_mul(2u32.saturating_pow(*failures))
            .min(Self::CAP);
        *failures = failures.saturating_add(1);
        delay
    }

    /// Records one more failure and returns how long to wait before the next try.
    pub fn next_delay(&self, uid: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        Self::delay(failures.entry(uid.to_owned()).or_default())
    }

    /// Keeps only the entries of the objects `live` says still exist.
    pub fn retain(&self, live: impl Fn(&str) -> bool) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|uid, _| live(uid));
    }

    pub fn reset(&self, uid: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_resets() {
        let b = Backoff::default();
        let delays: Vec<_> = (0..12).map(|_| b.next_delay("u1")).collect();
        assert_eq!(delays[0], Duration::from_millis(500));
        assert_eq!(delays[1], Duration::from_secs(1));
        assert_eq!(delays[2], Duration::from_secs(2));
        assert!(delays.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(*delays.last().unwrap(), Backoff::CAP);
        assert_eq!(b.next_delay("u2"), Duration::from_millis(500), "per object");
        b.reset("u1");
        assert_eq!(b.next_delay("u1"), Duration::from_millis(500));
        b.next_delay("u3");
        b.retain(|uid| uid != "u3");
        assert_eq!(b.next_delay("u3"), Duration::from_millis(500), "forgotten");
    }

    #[test]
    fn per_object_state_is_made_on_use_and_gone_on_eviction() {
        let state = PerObject::<u32>::default();
        state.if_present("u1", |n| *n += 1);
        assert!(state.is_empty(), "if_present makes no entry");
        let delay = state.with("u1", Backoff::delay);
        assert_eq!(delay, Backoff::BASE);
        assert_eq!(state.with("u1", Backoff::delay), Backoff::BASE * 2);
        state.if_present("u1", |n| *n = 0);
        assert_eq!(state.with("u1", |n| *n), 0);
        state.with("u2", |_| ());
        assert_eq!(state.len(), 2);
        state.evict("u1");
        assert_eq!(state.len(), 1);
        assert_eq!(state.with("u1", |n| *n), 0, "evicted: starts over");
    }
}
