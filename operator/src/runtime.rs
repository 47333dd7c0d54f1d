//! What every controller's runtime shares: waiting for a reflector store's first full list, and
//! per-object exponential backoff for transient errors.

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

/// Per-object exponential backoff for transient errors, keyed by uid, reset on success.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    pub const BASE: Duration = Duration::from_millis(500);
    pub const CAP: Duration = Duration::from_secs(300);

    /// Records one more failure and returns how long to wait before the next try.
    pub fn next_delay(&self, uid: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = failures.entry(uid.to_owned()).or_default();
        let delay = Self::BASE
            .saturating_mul(2u32.saturating_pow(*n))
            .min(Self::CAP);
        *n = n.saturating_add(1);
        delay
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
    }
}
