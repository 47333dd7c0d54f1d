//! What kstatus — the library Flux's `wait: true` and `healthChecks` use — concludes from an object.
//!
//! The generic rules of sigs.k8s.io/cli-utils `pkg/kstatus` (its README, "Statuses" and
//! "Conditions", and the generic checks every custom resource goes through), in the order kstatus
//! applies them:
//! 1. `metadata.deletionTimestamp` set → **Terminating** ("The resource is in the process of being
//!    deleted").
//! 2. `status.observedGeneration` present and different from `metadata.generation` → **InProgress**
//!    ("there are changes that the controller has not yet seen").
//! 3. The first condition, in list order, that is `Reconciling=True` → **InProgress**, or
//!    `Stalled=True` → **Failed** (the "abnormal-true" conditions).
//! 4. No type-specific rule exists for a custom resource; the README's "The `Ready` Condition":
//!    `Ready=True` → **Current**, `Ready=False` → **InProgress**.
//! 5. Otherwise → **Current** ("the absence of any conditions means everything is normal").
//!
//! The operator does not use this to decide anything; tests use it to check that what Flux would
//! conclude about a DemoWeb is what its user should conclude.

use serde_json::Value;

/// The kstatus result of one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KStatus {
    InProgress,
    Failed,
    Current,
    Terminating,
}

impl std::fmt::Display for KStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::InProgress => "InProgress",
            Self::Failed => "Failed",
            Self::Current => "Current",
            Self::Terminating => "Terminating",
        })
    }
}

fn condition_is_true(c: &Value, type_: &str) -> bool {
    c["type"] == type_ && c["status"] == "True"
}

/// Computes the kstatus of `obj` (an object as the API returns it, in JSON).
pub fn compute(obj: &Value) -> KStatus {
    if obj["metadata"]["deletionTimestamp"]
        .as_str()
        .is_some_and(|t| !t.is_empty())
    {
        return KStatus::Terminating;
    }
    if let (Some(generation), Some(observed)) = (
        obj["metadata"]["generation"].as_i64(),
        obj["status"]["observedGeneration"].as_i64(),
    ) && generation != observed
    {
        return KStatus::InProgress;
    }
    let conditions = obj["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for c in &conditions {
        if condition_is_true(c, "Reconciling") {
            return KStatus::InProgress;
        }
        if condition_is_true(c, "Stalled") {
            return KStatus::Failed;
        }
    }
    match conditions.iter().find(|c| c["type"] == "Ready") {
        Some(ready) if ready["status"] == "False" => KStatus::InProgress,
        _ => KStatus::Current,
    }
}

#[cfg(test)]
mod tests {
    //! The DemoWeb lifecycle through the operator's own status computation, and what Flux
    //! concludes at each step.
    use super::*;
    use crate::demoweb::desired::tests::seed;
    use crate::demoweb::status::{Rollout, StatusInput, compute_status};
    use crate::error::UserError;
    use demoweb_crd::DemoWeb;
    use demoweb_crd::conditions::reason;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    fn now() -> Time {
        Time(jiff::Timestamp::from_second(1_700_000_000).expect("a time"))
    }

    /// `dw` after a reconcile that saw `rollout` and `problem`, as the API would return it.
    fn reconciled(
        mut dw: DemoWeb,
        rollout: Option<Rollout>,
        problem: Option<UserError>,
    ) -> DemoWeb {
        let status = compute_status(StatusInput {
            dw: &dw,
            deployment: None,
            rollout,
            problem,
            diagnosis: None,
            url: None,
            identity: None,
            now: now(),
        });
        dw.status = Some(status);
        dw
    }

    fn json(dw: &DemoWeb) -> Value {
        serde_json::to_value(dw).expect("a DemoWeb serialises")
    }

    fn progressing() -> Option<Rollout> {
        Some(Rollout::Progressing {
            message: "Deployment demoweb1: 0 of 2 replicas ready".into(),
        })
    }

    fn complete() -> Option<Rollout> {
        Some(Rollout::Complete { ready: 2 })
    }

    fn stalled(reason: &'static str) -> DemoWeb {
        reconciled(
            seed(),
            None,
            Some(UserError {
                reason,
                message: format!("a problem the user must fix ({reason})"),
            }),
        )
    }

    #[test]
    fn flux_concludes_what_the_user_should_along_the_demoweb_lifecycle() {
        let mut rows: Vec<(String, Value, KStatus)> = Vec::new();

        // Created, the operator has not written a status yet. The CRD defaults
        // `status.observedGeneration` to -1 (kube-apiserver applies defaults when it reads the
        // object), so rule 2 applies.
        let mut created = json(&seed());
        created["status"] = json!({"observedGeneration": -1});
        rows.push((
            "created, not yet observed".into(),
            created,
            KStatus::InProgress,
        ));
        // Without that default kstatus could not tell (rule 5, the README's corner case "the
        // library sees the resource before the controller has had a chance to update the
        // conditions"): this row is why the CRD carries it.
        rows.push((
            "created, no status at all".into(),
            json(&seed()),
            KStatus::Current,
        ));

        rows.push((
            "children applied, pods not ready".into(),
            json(&reconciled(seed(), progressing(), None)),
            KStatus::InProgress,
        ));
        rows.push((
            "children being created (no Deployment yet)".into(),
            json(&reconciled(seed(), None, None)),
            KStatus::InProgress,
        ));
        let ready = reconciled(seed(), complete(), None);
        rows.push(("ready".into(), json(&ready), KStatus::Current));

        let mut changed = ready.clone();
        changed.metadata.generation = Some(2);
        rows.push((
            "spec changed, not yet observed".into(),
            json(&changed),
            KStatus::InProgress,
        ));
        rows.push((
            "spec change observed, rolling out".into(),
            json(&reconciled(changed.clone(), progressing(), None)),
            KStatus::InProgress,
        ));
        rows.push((
            "spec change rolled out".into(),
            json(&reconciled(changed, complete(), None)),
            KStatus::Current,
        ));

        for reason in [
            reason::INVALID_SPEC,
            reason::NAME_CONFLICT,
            reason::CREDENTIALS_NOT_FOUND,
            reason::UNSUPPORTED_INGRESS_CLASS,
            reason::IDENTITY_BINDING_NOT_FOUND,
            reason::IDENTITY_NOT_FOUND,
            reason::INVALID_IDENTITY,
        ] {
            rows.push((
                format!("stalled: {reason}"),
                json(&stalled(reason)),
                KStatus::Failed,
            ));
        }
        // A stalled site stays stalled even when its old pods are all ready.
        rows.push((
            "stalled with the last good children ready".into(),
            json(&reconciled(
                seed(),
                complete(),
                Some(UserError {
                    reason: reason::NAME_CONFLICT,
                    message: "Service demoweb1 is controlled by someone else".into(),
                }),
            )),
            KStatus::Failed,
        ));

        let mut fix_committed = stalled(reason::INVALID_SPEC);
        fix_committed.metadata.generation = Some(2);
        rows.push((
            "stalled, fix committed but not yet observed".into(),
            json(&fix_committed),
            KStatus::InProgress,
        ));
        rows.push((
            "stalled, fix observed and rolled out".into(),
            json(&reconciled(fix_committed, complete(), None)),
            KStatus::Current,
        ));

        for (name, base) in [("ready", ready), ("stalled", stalled(reason::INVALID_SPEC))] {
            let mut deleting = json(&base);
            deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
            rows.push((format!("deleting ({name})"), deleting, KStatus::Terminating));
        }

        let failures: Vec<String> = rows
            .iter()
            .filter_map(|(name, obj, want)| {
                let got = compute(obj);
                (got != *want).then(|| format!("{name}: kstatus {got}, want {want}\n  {obj}"))
            })
            .collect();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn the_generic_rules_in_their_order() {
        let cases = [
            (
                "deletion wins over everything",
                json!({"metadata": {"generation": 2, "deletionTimestamp": "2026-01-01T00:00:00Z"},
                       "status": {"observedGeneration": 1, "conditions": [{"type": "Stalled", "status": "True"}]}}),
                KStatus::Terminating,
            ),
            (
                "unobserved generation wins over conditions",
                json!({"metadata": {"generation": 2},
                       "status": {"observedGeneration": 1, "conditions": [{"type": "Stalled", "status": "True"}]}}),
                KStatus::InProgress,
            ),
            (
                "first abnormal-true condition in list order",
                json!({"metadata": {"generation": 1},
                       "status": {"observedGeneration": 1, "conditions": [
                           {"type": "Stalled", "status": "True"}, {"type": "Reconciling", "status": "True"}]}}),
                KStatus::Failed,
            ),
            (
                "Ready=False alone",
                json!({"metadata": {"generation": 1},
                       "status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
                KStatus::InProgress,
            ),
            (
                "abnormal conditions False",
                json!({"metadata": {"generation": 1},
                       "status": {"observedGeneration": 1, "conditions": [
                           {"type": "Reconciling", "status": "False"}, {"type": "Stalled", "status": "False"}]}}),
                KStatus::Current,
            ),
        ];
        for (name, obj, want) in cases {
            assert_eq!(compute(&obj), want, "{name}");
        }
    }
}
