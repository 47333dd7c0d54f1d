//! Pure status: kstatus conditions from what reconcile applied, keeping timestamps that did not
//! change, and the status patch (old, new → Option<patch>) that the writer sends.

use demoweb_crd::conditions::{READY, RECONCILING, STALLED, reason};
use demoweb_crd::demoweb::IdentityStatus;
use demoweb_crd::{DemoWeb, DemoWebStatus};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use serde_json::{Value, json};

use super::diagnosis::Diagnosis;
use crate::error::UserError;
use crate::vocabulary::APPLIED_HASH_ANNOTATION;

/// Where a Deployment is in its rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollout {
    Complete { ready: i32 },
    Progressing { message: String },
}

/// Whether `live` is the Deployment we last applied (`applied_hash`), fully rolled out.
pub fn rollout(live: Option<&Deployment>, applied_hash: &str, desired_replicas: i32) -> Rollout {
    let Some(d) = live else {
        return Rollout::Progressing {
            message: "waiting for the Deployment to be created".into(),
        };
    };
    let name = d.metadata.name.as_deref().unwrap_or_default();
    let hash = d
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(APPLIED_HASH_ANNOTATION));
    if hash.map(String::as_str) != Some(applied_hash) {
        return Rollout::Progressing {
            message: format!("waiting for Deployment {name} to be updated"),
        };
    }
    let generation = d.metadata.generation.unwrap_or_default();
    let status = d.status.clone().unwrap_or_default();
    if status.observed_generation.unwrap_or_default() < generation {
        return Rollout::Progressing {
            message: format!("waiting for the controller to observe Deployment {name}"),
        };
    }
    let updated = status.updated_replicas.unwrap_or_default();
    let ready = status.ready_replicas.unwrap_or_default();
    let available = status.available_replicas.unwrap_or_default();
    let total = status.replicas.unwrap_or_default();
    if updated == desired_replicas
        && ready == desired_replicas
        && available == desired_replicas
        && total == desired_replicas
    {
        Rollout::Complete { ready }
    } else {
        Rollout::Progressing {
            message: format!(
                "Deployment {name}: {ready} of {desired_replicas} replicas ready, {updated} updated, {available} available"
            ),
        }
    }
}

/// A merge patch that turns `old` into `new`, nulling the fields no longer set; `None` when the
/// status is already `new`, so an unchanged DemoWeb costs no write.
pub fn status_patch(old: Option<&DemoWebStatus>, new: &DemoWebStatus) -> Option<Value> {
    if old == Some(new) {
        return None;
    }
    let mut body = serde_json::to_value(new).unwrap_or_else(|_| json!({}));
    let old = serde_json::to_value(old.cloned().unwrap_or_default());
    if let (Value::Object(body), Ok(Value::Object(old))) = (&mut body, old) {
        for key in old.keys() {
            body.entry(key.clone()).or_insert(Value::Null);
        }
    }
    Some(json!({ "status": body }))
}

/// How long a rollout's progress details wait before they are written: see [`deferral`].
pub const PROGRESS_DETAIL_DELAY: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether writing `new` over `old` can wait, and until when. A rollout that has been progressing
/// for less than [`PROGRESS_DETAIL_DELAY`] gets no write for what only tells its progress (the
/// replica counts and the progress message): its conditions are the same, in status and reason, for
/// the same generation, URL and identity, and no cause the pods report (see `diagnosis`). Most new sites become Ready within that time, so their
/// status is written twice (progressing, then ready) rather than once per step of the rollout;
/// one that takes longer shows its counts from then on. Returns when to look again.
pub fn deferral(
    old: Option<&DemoWebStatus>,
    new: &DemoWebStatus,
    now: &Time,
) -> Option<std::time::Duration> {
    let old = old?;
    let same_conditions = old.conditions.len() == new.conditions.len()
        && old.conditions.iter().zip(&new.conditions).all(|(o, n)| {
            o.type_ == n.type_
                && o.status == n.status
                && o.reason == n.reason
                && o.observed_generation == n.observed_generation
        });
    // Only plain progress waits: a cause the pods report is written at once.
    new.conditions
        .iter()
        .find(|c| c.type_ == READY && c.reason == reason::WAITING_FOR_REPLICAS)?;
    let progressing_since = new
        .conditions
        .iter()
        .find(|c| c.type_ == RECONCILING && c.status == "True")?
        .last_transition_time
        .0;
    if !same_conditions
        || old.observed_generation != new.observed_generation
        || old.url != new.url
        || old.identity != new.identity
    {
        return None;
    }
    let due = progressing_since
        .checked_add(jiff::SignedDuration::try_from(PROGRESS_DETAIL_DELAY).ok()?)
        .ok()?;
    let left = now.0.duration_until(due);
    (left.is_positive())
        .then(|| std::time::Duration::try_from(left).ok())
        .flatten()
}

/// Whether `problem` is news: not already the reason and message of a true Stalled condition in
/// `old`, so a resync does not repeat its Warning Event.
pub fn is_new_problem(old: Option<&DemoWebStatus>, problem: &UserError) -> bool {
    !old.iter().flat_map(|s| &s.conditions).any(|c| {
        c.type_ == STALLED
            && c.status == "True"
            && c.reason == problem.reason
            && c.message == problem.message
    })
}

/// The Warning Event to write when a diagnosis is new: its reason or message differs from the
/// `Ready` condition `old` had. A cause that stays costs no Event on later reconciles.
pub fn new_cause<'a>(old: Option<&DemoWebStatus>, new: &'a DemoWebStatus) -> Option<&'a Condition> {
    let ready = new.conditions.iter().find(|c| c.type_ == READY)?;
    let diagnosed = [
        reason::GIT_UNREACHABLE,
        reason::GIT_AUTHENTICATION_FAILED,
        reason::GIT_REPOSITORY_NOT_FOUND,
        reason::GIT_REF_NOT_FOUND,
        reason::GIT_PATH_NOT_FOUND,
        reason::GIT_SYNC_FAILED,
        reason::IMAGE_PULL_FAILED,
        reason::UNSCHEDULABLE,
        reason::CRASH_LOOP_BACK_OFF,
        reason::PROGRESS_DEADLINE_EXCEEDED,
        reason::REPLICA_FAILURE,
    ];
    if ready.status != "False" || !diagnosed.contains(&ready.reason.as_str()) {
        return None;
    }
    let same = old
        .iter()
        .flat_map(|s| &s.conditions)
        .any(|c| c.type_ == READY && c.reason == ready.reason && c.message == ready.message);
    (!same).then_some(ready)
}

/// Everything status depends on. `now` comes in so this stays pure.
pub struct StatusInput<'a> {
    pub dw: &'a DemoWeb,
    /// The live Deployment (after apply), for replica counts.
    pub deployment: Option<&'a Deployment>,
    pub rollout: Option<Rollout>,
    /// The first problem that needs the user, if any.
    pub problem: Option<UserError>,
    /// Why the pods are not ready, when they say (read only while the rollout is incomplete).
    pub diagnosis: Option<Diagnosis>,
    pub url: Option<String>,
    pub identity: Option<IdentityStatus>,
    pub now: Time,
}

fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: if status { "True" } else { "False" }.to_owned(),
        reason: reason.to_owned(),
        message,
        observed_generation: generation,
        // Filled in by `keep_transition_times`.
        last_transition_time: Time(jiff::Timestamp::UNIX_EPOCH),
    }
}

/// Keeps `lastTransitionTime` of conditions whose status did not change; stamps `now` on the rest.
fn keep_transition_times(new: &mut [Condition], old: &[Condition], now: &Time) {
    for c in new {
        c.last_transition_time = old
            .iter()
            .find(|o| o.type_ == c.type_ && o.status == c.status)
            .map(|o| o.last_transition_time.clone())
            .unwrap_or_else(|| now.clone());
    }
}

pub fn compute_status(input: StatusInput<'_>) -> DemoWebStatus {
    let generation = input.dw.metadata.generation;
    let old = input.dw.status.clone().unwrap_or_default();
    let dep_status = input.deployment.and_then(|d| d.status.clone());
    let mut conditions = match (&input.problem, &input.rollout, &input.diagnosis) {
        (Some(problem), _, _) => vec![
            condition(
                READY,
                false,
                problem.reason,
                problem.message.clone(),
                generation,
            ),
            condition(
                RECONCILING,
                false,
                problem.reason,
                String::new(),
                generation,
            ),
            condition(
                STALLED,
                true,
                problem.reason,
                problem.message.clone(),
                generation,
            ),
        ],
        (None, Some(Rollout::Complete { ready }), _) => vec![
            condition(
                READY,
                true,
                reason::RECONCILED,
                format!("{ready} of {ready} replicas ready"),
                generation,
            ),
            condition(
                RECONCILING,
                false,
                reason::RECONCILED,
                String::new(),
                generation,
            ),
            condition(
                STALLED,
                false,
                reason::RECONCILED,
                String::new(),
                generation,
            ),
        ],
        (None, Some(Rollout::Progressing { .. }), Some(d)) => {
            // kstatus: Stalled=True (and Reconciling=False) when the cause needs the user,
            // Reconciling=True while the cluster may still get there.
            vec![
                condition(READY, false, d.reason, d.message.clone(), generation),
                condition(
                    RECONCILING,
                    !d.stalled,
                    d.reason,
                    if d.stalled {
                        String::new()
                    } else {
                        d.message.clone()
                    },
                    generation,
                ),
                condition(
                    STALLED,
                    d.stalled,
                    d.reason,
                    if d.stalled {
                        d.message.clone()
                    } else {
                        String::new()
                    },
                    generation,
                ),
            ]
        }
        (None, rollout, _) => {
            let message = match rollout {
                Some(Rollout::Progressing { message }) => message.clone(),
                _ => "applying children".to_owned(),
            };
            vec![
                condition(
                    READY,
                    false,
                    reason::WAITING_FOR_REPLICAS,
                    message.clone(),
                    generation,
                ),
                condition(RECONCILING, true, reason::PROGRESSING, message, generation),
                condition(
                    STALLED,
                    false,
                    reason::PROGRESSING,
                    String::new(),
                    generation,
                ),
            ]
        }
    };
    keep_transition_times(&mut conditions, &old.conditions, &input.now);
    DemoWebStatus {
        observed_generation: generation,
        replicas: dep_status
            .as_ref()
            .map(|s| s.replicas.unwrap_or_default())
            .or(old.replicas),
        ready_replicas: dep_status
            .as_ref()
            .map(|s| s.ready_replicas.unwrap_or_default())
            .or(old.ready_replicas),
        url: input.url,
        identity: input.identity,
        conditions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demoweb::desired::tests::seed;
    use k8s_openapi::api::apps::v1::DeploymentStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use std::collections::BTreeMap;

    fn t(secs: i64) -> Time {
        Time(jiff::Timestamp::from_second(secs).unwrap())
    }

    fn deployment(hash: &str, generation: i64, observed: i64, counts: [i32; 4]) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                name: Some("demoweb1".into()),
                generation: Some(generation),
                annotations: Some(BTreeMap::from([(
                    APPLIED_HASH_ANNOTATION.to_owned(),
                    hash.to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            status: Some(DeploymentStatus {
                observed_generation: Some(observed),
                replicas: Some(counts[0]),
                updated_replicas: Some(counts[1]),
                ready_replicas: Some(counts[2]),
                available_replicas: Some(counts[3]),
                ..DeploymentStatus::default()
            }),
            ..Deployment::default()
        }
    }

    #[test]
    fn rollout_rules() {
        let cases: Vec<(&str, Option<Deployment>, i32, bool)> = vec![
            ("missing", None, 2, false),
            (
                "complete",
                Some(deployment("h", 3, 3, [2, 2, 2, 2])),
                2,
                true,
            ),
            (
                "zero replicas are ready at once",
                Some(deployment("h", 1, 1, [0, 0, 0, 0])),
                0,
                true,
            ),
            (
                "stale hash",
                Some(deployment("old", 3, 3, [2, 2, 2, 2])),
                2,
                false,
            ),
            (
                "not observed",
                Some(deployment("h", 4, 3, [2, 2, 2, 2])),
                2,
                false,
            ),
            (
                "not ready",
                Some(deployment("h", 3, 3, [2, 2, 1, 1])),
                2,
                false,
            ),
            (
                "old pods still there",
                Some(deployment("h", 3, 3, [3, 2, 3, 3])),
                2,
                false,
            ),
            (
                "scaled but not observed in counts",
                Some(deployment("h", 3, 3, [2, 2, 2, 2])),
                3,
                false,
            ),
        ];
        for (name, d, replicas, complete) in cases {
            let got = rollout(d.as_ref(), "h", replicas);
            assert_eq!(
                matches!(got, Rollout::Complete { .. }),
                complete,
                "{name}: {got:?}"
            );
        }
    }

    fn cond<'a>(s: &'a DemoWebStatus, t: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == t).unwrap()
    }

    #[test]
    fn conditions_follow_kstatus() {
        let dw = seed();
        let d = deployment("h", 1, 1, [2, 2, 2, 2]);
        struct Case {
            name: &'static str,
            rollout: Option<Rollout>,
            problem: Option<UserError>,
            ready: &'static str,
            reconciling: &'static str,
            stalled: &'static str,
            reason: &'static str,
        }
        let cases = [
            Case {
                name: "ready",
                rollout: Some(Rollout::Complete { ready: 2 }),
                problem: None,
                ready: "True",
                reconciling: "False",
                stalled: "False",
                reason: reason::RECONCILED,
            },
            Case {
                name: "rolling out",
                rollout: Some(Rollout::Progressing {
                    message: "1 of 2".into(),
                }),
                problem: None,
                ready: "False",
                reconciling: "True",
                stalled: "False",
                reason: reason::WAITING_FOR_REPLICAS,
            },
            Case {
                name: "user error wins",
                rollout: Some(Rollout::Complete { ready: 2 }),
                problem: Some(UserError {
                    reason: reason::NAME_CONFLICT,
                    message: "Deployment demoweb1 is controlled by Helm".into(),
                }),
                ready: "False",
                reconciling: "False",
                stalled: "True",
                reason: reason::NAME_CONFLICT,
            },
        ];
        for case in cases {
            let s = compute_status(StatusInput {
                dw: &dw,
                deployment: Some(&d),
                rollout: case.rollout,
                problem: case.problem,
                diagnosis: None,
                url: None,
                identity: None,
                now: t(100),
            });
            assert_eq!(s.observed_generation, Some(1), "{}", case.name);
            assert_eq!(cond(&s, READY).status, case.ready, "{}", case.name);
            assert_eq!(cond(&s, READY).reason, case.reason, "{}", case.name);
            assert_eq!(
                cond(&s, RECONCILING).status,
                case.reconciling,
                "{}",
                case.name
            );
            assert_eq!(cond(&s, STALLED).status, case.stalled, "{}", case.name);
            assert_eq!((s.replicas, s.ready_replicas), (Some(2), Some(2)));
        }
    }

    #[test]
    fn transition_times_survive_unchanged_conditions() {
        let mut dw = seed();
        let d = deployment("h", 1, 1, [2, 2, 2, 2]);
        let input = |dw: &DemoWeb, now: i64, rollout: Rollout| {
            compute_status(StatusInput {
                dw,
                deployment: Some(&d),
                rollout: Some(rollout),
                problem: None,
                diagnosis: None,
                url: Some("http://www.example.com/".into()),
                identity: None,
                now: t(now),
            })
        };
        let first = input(&dw, 100, Rollout::Complete { ready: 2 });
        dw.status = Some(first.clone());
        let second = input(&dw, 200, Rollout::Complete { ready: 2 });
        assert_eq!(first, second, "same input, same status: nothing to write");
        let third = input(
            &dw,
            300,
            Rollout::Progressing {
                message: "1 of 2".into(),
            },
        );
        assert_eq!(cond(&third, READY).last_transition_time, t(300));
        assert_eq!(cond(&third, STALLED).last_transition_time, t(100));
    }

    #[test]
    fn progress_details_wait_but_transitions_do_not() {
        let dw = seed();
        let progressing = |counts: [i32; 4], now: i64| {
            compute_status(StatusInput {
                dw: &dw,
                deployment: Some(&deployment("h", 1, 1, counts)),
                rollout: Some(rollout(Some(&deployment("h", 1, 1, counts)), "h", 1)),
                problem: None,
                diagnosis: None,
                url: None,
                identity: None,
                now: t(now),
            })
        };
        let started = progressing([0, 0, 0, 0], 100);
        let mut with_started = dw.clone();
        with_started.status = Some(started.clone());
        // One pod created, none ready: only the counts and the message moved.
        let counted = compute_status(StatusInput {
            dw: &with_started,
            deployment: Some(&deployment("h", 1, 1, [1, 1, 0, 0])),
            rollout: Some(rollout(Some(&deployment("h", 1, 1, [1, 1, 0, 0])), "h", 1)),
            problem: None,
            diagnosis: None,
            url: None,
            identity: None,
            now: t(103),
        });
        assert_ne!(counted, started);
        assert_eq!(
            deferral(Some(&started), &counted, &t(103)),
            Some(std::time::Duration::from_secs(7)),
            "written once the rollout has been progressing for 10s"
        );
        assert_eq!(deferral(Some(&started), &counted, &t(110)), None);
        assert_eq!(deferral(None, &counted, &t(103)), None, "the first status");
        // Ready is a transition: written at once.
        let ready = compute_status(StatusInput {
            dw: &with_started,
            deployment: Some(&deployment("h", 1, 1, [1, 1, 1, 1])),
            rollout: Some(rollout(Some(&deployment("h", 1, 1, [1, 1, 1, 1])), "h", 1)),
            problem: None,
            diagnosis: None,
            url: None,
            identity: None,
            now: t(103),
        });
        assert_eq!(deferral(Some(&started), &ready, &t(103)), None);
        // A new generation is written at once too.
        let mut next = counted.clone();
        next.observed_generation = Some(2);
        assert_eq!(deferral(Some(&started), &next, &t(103)), None);
    }

    #[test]
    fn a_diagnosis_follows_kstatus_and_is_told_once() {
        let mut dw = seed();
        let d = deployment("h", 1, 1, [2, 0, 0, 0]);
        let status = |dw: &DemoWeb, diagnosis: Diagnosis| {
            compute_status(StatusInput {
                dw,
                deployment: Some(&d),
                rollout: Some(Rollout::Progressing {
                    message: "0 of 2".into(),
                }),
                problem: None,
                diagnosis: Some(diagnosis),
                url: None,
                identity: None,
                now: t(100),
            })
        };
        let auth = Diagnosis {
            reason: reason::GIT_AUTHENTICATION_FAILED,
            message: "pod demoweb1-x: git cannot authenticate".into(),
            stalled: true,
        };
        let s = status(&dw, auth.clone());
        assert_eq!(cond(&s, READY).status, "False");
        assert_eq!(cond(&s, READY).reason, reason::GIT_AUTHENTICATION_FAILED);
        assert_eq!(cond(&s, READY).message, auth.message);
        assert_eq!(cond(&s, STALLED).status, "True");
        assert_eq!(cond(&s, RECONCILING).status, "False");
        assert!(new_cause(dw.status.as_ref(), &s).is_some(), "a new cause");
        dw.status = Some(s.clone());
        let again = status(&dw, auth);
        assert_eq!(again, s, "the same cause: nothing to write");
        assert!(new_cause(dw.status.as_ref(), &again).is_none(), "told once");

        let waiting = status(
            &dw,
            Diagnosis {
                reason: reason::UNSCHEDULABLE,
                message: "pod demoweb1-x cannot be scheduled".into(),
                stalled: false,
            },
        );
        assert_eq!(cond(&waiting, READY).reason, reason::UNSCHEDULABLE);
        assert_eq!(cond(&waiting, RECONCILING).status, "True");
        assert_eq!(cond(&waiting, STALLED).status, "False");
        assert!(
            new_cause(dw.status.as_ref(), &waiting).is_some(),
            "the cause changed"
        );
    }

    #[test]
    fn status_patch_nulls_dropped_fields() {
        let old = DemoWebStatus {
            url: Some("http://x/".into()),
            replicas: Some(1),
            ..DemoWebStatus::default()
        };
        let new = DemoWebStatus {
            replicas: Some(2),
            ..DemoWebStatus::default()
        };
        let patch = status_patch(Some(&old), &new).expect("the status changed");
        assert_eq!(
            status_patch(Some(&new), &new),
            None,
            "no write when unchanged"
        );
        assert_eq!(patch["status"]["url"], Value::Null);
        assert_eq!(patch["status"]["replicas"], json!(2));
    }
}
