//! Leader election on a `coordination.k8s.io/v1` Lease, so several replicas can run and only one
//! reconciles. Writes use the Lease's resourceVersion: two candidates cannot both win.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

#[derive(Debug, Clone)]
pub struct LeaderConfig {
    pub namespace: String,
    pub name: String,
    /// This replica's name in `holderIdentity`.
    pub identity: String,
    /// How long a Lease holds without renewal.
    pub lease_duration: Duration,
    /// How often the holder renews and candidates retry.
    pub retry_period: Duration,
}

impl LeaderConfig {
    pub fn new(namespace: String, name: String, identity: String) -> Self {
        Self {
            namespace,
            name,
            identity,
            lease_duration: Duration::from_secs(15),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// What to do with the Lease as it is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Create,
    Renew,
    TakeOver,
    Wait,
}

/// Pure: what this candidate may do, given the Lease and the time.
pub fn decide(lease: Option<&Lease>, me: &str, now: jiff::Timestamp) -> Decision {
    let Some(lease) = lease else {
        return Decision::Create;
    };
    let spec = lease.spec.clone().unwrap_or_default();
    match spec.holder_identity.as_deref() {
        Some(holder) if holder == me => return Decision::Renew,
        None | Some("") => return Decision::TakeOver,
        Some(_) => {}
    }
    let last = spec
        .renew_time
        .or(spec.acquire_time)
        .map(|t| t.0)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(15));
    let expires = last
        .checked_add(jiff::SignedDuration::from_secs(duration))
        .unwrap_or(last);
    if expires < now {
        Decision::TakeOver
    } else {
        Decision::Wait
    }
}

fn held_by(mut lease: Lease, cfg: &LeaderConfig, now: jiff::Timestamp, take_over: bool) -> Lease {
    let mut spec = lease.spec.take().unwrap_or_default();
    if take_over {
        spec.acquire_time = Some(MicroTime(now));
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    spec.holder_identity = Some(cfg.identity.clone());
    spec.lease_duration_seconds = Some(cfg.lease_duration.as_secs() as i32);
    spec.renew_time = Some(MicroTime(now));
    lease.spec = Some(spec);
    lease
}

/// One round: returns whether this replica holds the Lease afterwards.
async fn try_acquire(api: &Api<Lease>, cfg: &LeaderConfig) -> Result<bool, kube::Error> {
    let now = jiff::Timestamp::now();
    let current = api.get_opt(&cfg.name).await?;
    let result = match decide(current.as_ref(), &cfg.identity, now) {
        Decision::Wait => return Ok(false),
        Decision::Create => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(cfg.name.clone()),
                    namespace: Some(cfg.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            api.create(&PostParams::default(), &held_by(lease, cfg, now, false))
                .await
                .map(|_| ())
        }
        decision @ (Decision::Renew | Decision::TakeOver) => {
            let lease = current.unwrap_or_default();
            let updated = held_by(lease, cfg, now, decision == Decision::TakeOver);
            api.replace(&cfg.name, &PostParams::default(), &updated)
                .await
                .map(|_| ())
        }
    };
    match result {
        Ok(()) => Ok(true),
        // Another candidate wrote first: not ours this round.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(err) => Err(err),
    }
}

/// Competes for the Lease until `stop` is cancelled, publishing leadership on `leading`. Once leading,
/// leadership is given up (`false`) if the Lease could not be renewed for most of its duration,
/// before any other candidate may take it over.
pub async fn run_elector(
    client: Client,
    cfg: LeaderConfig,
    leading: watch::Sender<bool>,
    metrics: std::sync::Arc<Metrics>,
    stop: CancellationToken,
) {
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    let mut last_renewal: Option<Instant> = None;
    let deadline = cfg.lease_duration.mul_f32(0.66);
    loop {
        match try_acquire(&api, &cfg).await {
            Ok(true) => {
                if last_renewal.is_none() {
                    tracing::info!(lease = %cfg.name, identity = %cfg.identity, "became leader");
                }
                last_renewal = Some(Instant::now());
                metrics.count_write("lease", "Lease");
                let _ = leading.send(true);
                metrics.set_leader(true);
            }
            Ok(false) if last_renewal.is_some() => {
                tracing::warn!(lease = %cfg.name, "another replica holds the Lease");
                let _ = leading.send(false);
                metrics.set_leader(false);
                return;
            }
            Ok(false) => {}
            Err(err) => {
                tracing::warn!(error = %err, lease = %cfg.name, "leader election");
                if last_renewal.is_some_and(|t| t.elapsed() > deadline) {
                    let _ = leading.send(false);
                    metrics.set_leader(false);
                    return;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(cfg.retry_period) => {}
            () = stop.cancelled() => break,
        }
    }
    if last_renewal.is_some() {
        release(&api, &cfg).await;
    }
}

/// Hands the Lease back on shutdown so the next replica need not wait for it to expire.
async fn release(api: &Api<Lease>, cfg: &LeaderConfig) {
    let Ok(Some(mut lease)) = api.get_opt(&cfg.name).await else {
        return;
    };
    let mut spec = lease.spec.take().unwrap_or_default();
    if spec.holder_identity.as_deref() != Some(cfg.identity.as_str()) {
        return;
    }
    spec.holder_identity = None;
    lease.spec = Some(spec);
    if let Err(err) = api.replace(&cfg.name, &PostParams::default(), &lease).await {
        tracing::warn!(error = %err, "could not release the leader Lease");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: Option<&str>, renewed: i64, duration: i32) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: holder.map(Into::into),
                renew_time: Some(MicroTime(jiff::Timestamp::from_second(renewed).unwrap())),
                lease_duration_seconds: Some(duration),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn decisions() {
        let now = jiff::Timestamp::from_second(1000).unwrap();
        let cases = [
            ("no lease", None, Decision::Create),
            ("mine", Some(lease(Some("me"), 999, 15)), Decision::Renew),
            (
                "mine even if expired",
                Some(lease(Some("me"), 1, 15)),
                Decision::Renew,
            ),
            (
                "other, fresh",
                Some(lease(Some("other"), 990, 15)),
                Decision::Wait,
            ),
            (
                "other, expired",
                Some(lease(Some("other"), 980, 15)),
                Decision::TakeOver,
            ),
            ("released", Some(lease(None, 999, 15)), Decision::TakeOver),
            (
                "released with empty holder",
                Some(lease(Some(""), 999, 15)),
                Decision::TakeOver,
            ),
        ];
        for (name, lease, expected) in cases {
            assert_eq!(decide(lease.as_ref(), "me", now), expected, "{name}");
        }
    }

    #[test]
    fn take_over_counts_transitions() {
        let cfg = LeaderConfig::new("ns".into(), "demoweb-operator".into(), "me".into());
        let now = jiff::Timestamp::from_second(1000).unwrap();
        let mut old = lease(Some("other"), 1, 15);
        old.spec.as_mut().unwrap().lease_transitions = Some(3);
        let taken = held_by(old, &cfg, now, true);
        let spec = taken.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("me"));
        assert_eq!(spec.lease_transitions, Some(4));
        assert_eq!(spec.renew_time.unwrap().0, now);
    }
}
