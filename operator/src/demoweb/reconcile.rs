//! The reconcile pipeline: identify → gather → validate → build → apply → status → requeue.

use std::sync::Arc;
use std::time::{Duration, Instant};

use demoweb_crd::conditions::reason;
use demoweb_crd::demoweb::IdentityStatus;
use demoweb_crd::validation::summarize;
use demoweb_crd::{DemoWeb, IdentityMode};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use tracing::Instrument;

use super::apply::{AppliedChildren, apply_all, patch_status, writer};
use super::children::{Children, Valid, build};
use super::context::Context;
use super::desired;
use super::diagnosis;
use super::error::Error;
use super::gather::{Gathered, Id, gather, identify};
use super::ingress;
use super::status::{self, StatusInput};
use crate::error::{UserError, chain};
use crate::runtime::Backoff;
use crate::stored::stored_child;
use crate::write::events::publish;
use crate::write::writer::ChangesEvent;
use serde_json::Value;

/// Step 3: the schema's rules again (the object may predate them), credentials, identity.
fn validate(dw: &DemoWeb, found: &Gathered) -> Result<Valid, UserError> {
    dw.validate().map_err(|errors| UserError {
        reason: reason::INVALID_SPEC,
        message: summarize(&errors),
    })?;
    let auth = desired::git_auth(dw, found.secret_keys.as_ref())?;
    let identity = match &found.identity {
        None => None,
        Some(Ok(resolved)) => Some(resolved.clone()),
        Some(Err(err)) => {
            return Err(UserError {
                reason: err.reason(),
                message: err.to_string(),
            });
        }
    };
    Ok(Valid { auth, identity })
}

/// How a reconcile ended, for its requeue.
#[derive(Default)]
struct Outcome {
    /// Stalled on a problem the user must fix.
    stalled: bool,
    /// A status write that was put off ([`status::deferral`]): look again then.
    recheck: Option<Duration>,
}

/// What a reconcile has left to write once its children are applied, sent under a report turn
/// ([`super::context::Turns`]): the Event telling what changed, a Warning for a new problem or a
/// new cause, and the status patch.
#[derive(Default)]
struct Report {
    changes: Option<ChangesEvent>,
    warning: Option<(String, String)>,
    status: Option<Value>,
    outcome: Outcome,
}

impl Report {
    /// Writes the status, and at the same time the Events.
    async fn send(self, dw: &DemoWeb, ctx: &Context) -> Result<Outcome, Error> {
        let Report {
            changes,
            warning,
            status,
            outcome,
        } = self;
        let reference = dw.object_ref(&());
        let told = async {
            if let Some(changes) = changes {
                changes
                    .publish(&ctx.recorder, &reference, &ctx.metrics)
                    .await;
            }
        };
        let warned = async {
            if let Some((reason, message)) = warning {
                publish(
                    &ctx.recorder,
                    &reference,
                    &ctx.metrics,
                    EventType::Warning,
                    &reason,
                    message,
                )
                .await;
            }
        };
        let written = async {
            match (&status, dw.meta().namespace.as_deref()) {
                (Some(patch), Some(namespace)) => {
                    let api: Api<DemoWeb> = Api::namespaced(ctx.client.clone(), namespace);
                    patch_status(&api, &dw.name_any(), patch, &ctx.metrics).await
                }
                _ => Ok(()),
            }
        };
        let ((), (), written) = tokio::join!(told, warned, written);
        written.map(|()| outcome)
    }
}

/// Step 6: compute the status, to be written only when it differs (progress details of a young
/// rollout wait), and what to tell the user about new problems.
fn report_status(dw: &DemoWeb, id: &Id, ctx: &Context, applied: AppliedChildren) -> Report {
    let AppliedChildren {
        deployment,
        deployment_hash,
        problems,
        url,
        identity,
    } = applied;
    let problem = problems.first().map(|first| UserError {
        reason: first.reason,
        message: problems
            .iter()
            .map(|p| p.message.as_str())
            .collect::<Vec<_>>()
            .join("; "),
    });
    let rollout = deployment_hash.as_deref().map(|hash| {
        let wanted = match &dw.spec.autoscaling {
            // The autoscaler's choice, as the live Deployment carries it.
            Some(_) => deployment
                .as_ref()
                .and_then(|d| d.spec.as_ref()?.replicas)
                .unwrap_or(1),
            None => dw.spec.replicas,
        };
        status::rollout(deployment.as_ref(), hash, wanted)
    });
    let now = Time(jiff::Timestamp::now());
    let diagnosis = match &rollout {
        Some(status::Rollout::Progressing { .. }) => diagnosis::diagnose(
            dw,
            deployment.as_ref(),
            &ctx.stores.pods.pods(&id.namespace, &id.name),
        ),
        _ => None,
    };
    let new = status::compute_status(StatusInput {
        dw,
        deployment: deployment.as_ref(),
        rollout,
        problem: problem.clone(),
        diagnosis,
        url,
        identity,
        now: now.clone(),
    });
    let stalled = problem.is_some();
    if let Some(recheck) = status::deferral(dw.status.as_ref(), &new, &now) {
        return Report {
            outcome: Outcome {
                stalled,
                recheck: Some(recheck),
            },
            ..Report::default()
        };
    }
    // A new problem, or a new cause the pods report, is told in a Warning Event, sent with the
    // status write rather than before it.
    let warning = problem
        .as_ref()
        .filter(|p| status::is_new_problem(dw.status.as_ref(), p))
        .map(|p| (p.reason.to_owned(), p.message.clone()))
        .or_else(|| {
            status::new_cause(dw.status.as_ref(), &new)
                .map(|c| (c.reason.clone(), c.message.clone()))
        });
    Report {
        changes: None,
        warning,
        status: status::status_patch(dw.status.as_ref(), &new),
        outcome: Outcome {
            stalled,
            recheck: None,
        },
    }
}

/// The identity the pods run under, as status reports it.
fn identity_status(valid: &Valid, children: &Children, id: &Id) -> Option<IdentityStatus> {
    valid.identity.as_ref().map(|r| IdentityStatus {
        mode: Some(r.mode),
        selector: Some(r.selector.clone()),
        client_id: r.client_id.clone(),
        service_account_name: (r.mode == IdentityMode::WorkloadIdentity
            && children.service_account.is_some())
        .then(|| id.name.clone()),
    })
}

/// The pipeline up to the report: identify, gather, validate, build, apply, and the status and
/// Events still to be written.
async fn prepare(dw: &DemoWeb, ctx: &Context) -> Result<Report, Error> {
    let id = identify(dw)?;
    if dw.metadata.deletion_timestamp.is_some() {
        // Owner references let the garbage collector remove the children.
        return Ok(Report::default());
    }
    let found = gather(dw, &id, ctx).await?;
    // Refused annotations are left off the Ingress, and the rest of the spec applies: the site
    // keeps serving, without the part that could weaken its allowlist.
    let (clean, refused) = ingress::strip_refused_annotations(dw);
    let dw = &clean;
    let refused = refused.map(|message| UserError {
        reason: reason::ANNOTATIONS_REFUSED,
        message,
    });
    let applied = match validate(dw, &found) {
        Ok(valid) => {
            let children = build(dw, &valid, &found);
            let identity = identity_status(&valid, &children, &id);
            let owner_ref = dw.object_ref(&());
            let w = writer(dw, &id, &owner_ref, ctx);
            let mut applied = match apply_all(dw, &id, ctx, children, &found.discovered, &w).await {
                Ok(applied) => applied,
                Err(err) => {
                    w.publish_changes().await;
                    return Err(err);
                }
            };
            applied.identity = identity;
            applied.problems.splice(0..0, refused);
            // The Event telling what changed goes out with the status: the status says where
            // the site is now (for new children: waiting for them), and the children's own
            // watch events reconcile this DemoWeb again as they settle.
            let mut report = report_status(dw, &id, ctx, applied);
            report.changes = w.take_changes();
            return Ok(report);
        }
        // Keep the last good children: nothing is applied or deleted.
        Err(problem) => AppliedChildren {
            deployment: stored_child(
                &ctx.stores.deployments,
                &desired::deployment_name(&id.name),
                &id.namespace,
            ),
            problems: std::iter::once(problem).chain(refused).collect(),
            url: dw.status.as_ref().and_then(|s| s.url.clone()),
            identity: dw.status.as_ref().and_then(|s| s.identity.clone()),
            ..AppliedChildren::default()
        },
    };
    Ok(report_status(dw, &id, ctx, applied))
}

/// The two phases, each under its turn ([`super::context::Turns`]), and the time they held their
/// turns. Each phase is boxed: a reconcile waiting for a turn holds only this small future, not
/// the room the phases need for the children and the API's answers.
async fn run_phases(dw: &DemoWeb, ctx: &Context) -> (Result<Outcome, Error>, Duration) {
    let report = {
        let _turn = ctx.turns.apply.acquire().await;
        let started = Instant::now();
        (Box::pin(prepare(dw, ctx)).await, started.elapsed())
    };
    let (report, applying) = match report {
        (Ok(report), applying) => (report, applying),
        (Err(err), applying) => return (Err(err), applying),
    };
    let _turn = ctx.turns.report.acquire().await;
    let started = Instant::now();
    let outcome = Box::pin(report.send(dw, ctx)).await;
    (outcome, applying + started.elapsed())
}

/// Entry point for the controller runtime.
pub async fn reconcile(dw: Arc<DemoWeb>, ctx: Arc<Context>) -> Result<Action, Error> {
    let span = tracing::info_span!(
        "reconcile",
        namespace = dw.namespace().unwrap_or_default(),
        name = dw.name_any()
    );
    let (result, busy) = run_phases(&dw, &ctx).instrument(span).await;
    let seconds = busy.as_secs_f64();
    match result {
        Ok(Outcome { stalled, recheck }) => {
            if let Some(uid) = &dw.metadata.uid {
                ctx.sites.if_present(uid, |s| s.failures = 0);
            }
            ctx.metrics
                .count_reconcile(if stalled { "stalled" } else { "ok" }, seconds);
            let requeue = if stalled {
                ctx.stalled_requeue
            } else {
                ctx.requeue
            };
            Ok(Action::requeue(recheck.map_or(requeue, |r| r.min(requeue))))
        }
        Err(err) => {
            ctx.metrics.count_reconcile("error", seconds);
            ctx.metrics.count_error(err.metric_label());
            Err(err)
        }
    }
}

/// Transient errors back off per object; the Warning Event says what failed.
pub fn error_policy(dw: Arc<DemoWeb>, err: &Error, ctx: Arc<Context>) -> Action {
    if err.is_namespace_terminating() {
        // The namespace, and this DemoWeb with it, is being deleted: routine, not a failure.
        tracing::debug!(
            namespace = dw.namespace().unwrap_or_default(),
            name = dw.name_any(),
            error = %chain(err),
            "namespace is being deleted; not retrying"
        );
        return Action::await_change();
    }
    let uid = dw.metadata.uid.clone().unwrap_or_default();
    let delay = ctx.sites.with(&uid, |s| Backoff::delay(&mut s.failures));
    let delay = if err.is_transient() {
        delay
    } else {
        delay.max(Duration::from_secs(60))
    };
    let message = chain(err);
    tracing::warn!(
        namespace = dw.namespace().unwrap_or_default(),
        name = dw.name_any(),
        error = %message,
        retry_in = ?delay,
        "reconcile failed"
    );
    let reference: ObjectReference = dw.object_ref(&());
    let ctx2 = ctx.clone();
    tokio::spawn(async move {
        publish(
            &ctx2.recorder,
            &reference,
            &ctx2.metrics,
            EventType::Warning,
            "ReconcileFailed",
            format!("{message}; retrying in {}s", delay.as_secs_f64().ceil()),
        )
        .await;
    });
    Action::requeue(delay)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demoweb::desired::tests::seed;
    use crate::demoweb::ingress::IngressCapabilities;
    use crate::identity;

    fn gathered() -> Gathered {
        Gathered {
            secret_keys: None,
            identity: None,
            classes: vec![],
            capabilities: IngressCapabilities::default(),
            discovered: Ok(IngressCapabilities::default()),
            kong_refusal: None,
        }
    }

    #[test]
    fn validation_outcomes() {
        let mut bad = seed();
        bad.spec.gitrepo = "file:///etc/passwd".into();
        bad.spec.replicas = -1;
        let err = validate(&bad, &gathered()).err().expect("invalid");
        assert_eq!(err.reason, reason::INVALID_SPEC);
        assert!(
            err.message.contains("spec.gitrepo") && err.message.contains("spec.replicas"),
            "{}",
            err.message
        );

        let mut unresolved = seed();
        unresolved.spec.identity = Some(demoweb_crd::demoweb::IdentitySpec {
            binding: "mymsi".into(),
            mode: IdentityMode::PodIdentity,
        });
        let found = Gathered {
            identity: Some(Err(identity::ResolveError::BindingNotFound {
                namespace: "default".into(),
                binding: "mymsi".into(),
            })),
            ..gathered()
        };
        let err = validate(&unresolved, &found).err().expect("unresolved");
        assert_eq!(err.reason, reason::IDENTITY_BINDING_NOT_FOUND);

        assert!(validate(&seed(), &gathered()).is_ok());
    }
}
