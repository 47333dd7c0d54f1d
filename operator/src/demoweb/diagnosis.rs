//! Pure diagnosis: why a site that is not ready is not, from its pods' container states and its
//! Deployment's conditions, in words a user can act on; and whether that needs them (kstatus'
//! Stalled) or may still resolve itself (InProgress). No I/O; every message is redacted.

use std::sync::Arc;

use demoweb_crd::DemoWeb;
use demoweb_crd::conditions::reason;
use k8s_openapi::api::apps::v1::Deployment;

use super::desired::{CHECK_PATH_CONTAINER, GIT_CLONE_CONTAINER, GIT_SYNC_CONTAINER};
use super::pods::{ContainerSummary, PodSummary};

/// Why the site is not ready.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnosis {
    pub reason: &'static str,
    pub message: String,
    /// kstatus: true when progress needs a change by the user (Stalled), false while the cluster
    /// may still get there by itself (InProgress).
    pub stalled: bool,
}

/// The longest piece of a git or kubelet message quoted in a status message.
const DETAIL_MAX: usize = 300;

/// Removes the user-info part of every URL in `text` (`https://user:secret@host` →
/// `https://REDACTED@host`): a token may stand as the user name alone, so the whole part goes.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let authority_end = tail
            .find(|c: char| {
                c == '/' || c == '?' || c == '#' || c.is_whitespace() || "\"'`<>".contains(c)
            })
            .unwrap_or(tail.len());
        match tail[..authority_end].rfind('@') {
            Some(userinfo_end) => {
                out.push_str("REDACTED");
                rest = &tail[userinfo_end..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

fn shorten(text: &str) -> String {
    let text = text.trim();
    if text.len() <= DETAIL_MAX {
        return text.to_owned();
    }
    let mut end = DETAIL_MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Undoes Go's `%q` quoting of a string (the escapes git-sync's error text uses).
fn unquote_go(quoted: &str) -> String {
    let mut out = String::with_capacity(quoted.len());
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => {}
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// git-sync's error from a termination message (the tail of its JSON log, or plain text): the
/// `error` of its last error line, and in it git's own message (`stderr: "…"`), best line first.
pub fn git_sync_error(message: &str) -> String {
    let line = message
        .lines()
        .rev()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .find_map(|l| {
            let value: serde_json::Value = serde_json::from_str(l).ok()?;
            value.get("error")?.as_str().map(str::to_owned)
        })
        .or_else(|| {
            message
                .lines()
                .rev()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with('{'))
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let git = match (line.find("stderr: \""), line.rfind("\" }")) {
        (Some(start), Some(end)) if end > start + 9 => unquote_go(&line[start + 9..end]),
        _ => return shorten(&line),
    };
    let lines: Vec<&str> = git
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let best = lines
        .iter()
        .find(|l| l.starts_with("fatal:"))
        .or_else(|| lines.iter().find(|l| l.starts_with("error:")))
        .or(lines.last())
        .copied()
        .unwrap_or(line.as_str());
    shorten(best)
}

/// What a git failure is, from git's words.
fn git_failure_reason(error: &str) -> &'static str {
    let e = error.to_ascii_lowercase();
    let any = |needles: &[&str]| needles.iter().any(|n| e.contains(n));
    if any(&[
        "couldn't find remote ref",
        "not our ref",
        "unadvertised object",
        "unknown revision",
    ]) {
        reason::GIT_REF_NOT_FOUND
    } else if any(&[
        "authentication failed",
        "could not read username",
        "could not read password",
        "terminal prompts disabled",
        "permission denied",
        "access denied",
        "invalid username or password",
        "host key verification failed",
        "returned error: 401",
        "returned error: 403",
    ]) {
        reason::GIT_AUTHENTICATION_FAILED
    } else if any(&[
        "repository not found",
        "does not appear to be a git repository",
        "returned error: 404",
        "not found",
    ]) {
        reason::GIT_REPOSITORY_NOT_FOUND
    } else if any(&[
        "could not resolve host",
        "failed to connect",
        "connection refused",
        "timed out",
        "no route to host",
        "network is unreachable",
        "connection reset",
        "deadline exceeded",
        "could not read from remote repository",
    ]) {
        reason::GIT_UNREACHABLE
    } else {
        reason::GIT_SYNC_FAILED
    }
}

fn git_diagnosis(dw: &DemoWeb, pod: &str, message: &str) -> Diagnosis {
    let error = git_sync_error(message);
    let repo = &dw.spec.gitrepo;
    let reason = git_failure_reason(&error);
    let message = match reason {
        reason::GIT_REF_NOT_FOUND => format!(
            "pod {pod}: ref {:?} not found in {repo}: {error}",
            dw.spec.git_ref.as_deref().unwrap_or_default()
        ),
        reason::GIT_AUTHENTICATION_FAILED => match &dw.spec.credentials {
            Some(c) => format!(
                "pod {pod}: git cannot authenticate to {repo} with the credentials in Secret {:?}: {error}",
                c.secret_name
            ),
            None => format!(
                "pod {pod}: git cannot authenticate to {repo}; a private repository needs spec.credentials: {error}"
            ),
        },
        reason::GIT_REPOSITORY_NOT_FOUND => format!(
            "pod {pod}: repository {repo} not found (or not readable with the credentials given): {error}"
        ),
        reason::GIT_UNREACHABLE => {
            format!("pod {pod}: cannot reach {repo} (retrying): {error}")
        }
        _ => format!("pod {pod}: git-sync cannot sync {repo}: {error}"),
    };
    Diagnosis {
        reason,
        message,
        stalled: !matches!(reason, reason::GIT_UNREACHABLE | reason::GIT_SYNC_FAILED),
    }
}

/// A container that failed and is not running now: its last termination, when it failed.
fn failed_termination(c: &ContainerSummary) -> Option<&super::pods::Terminated> {
    c.terminated
        .as_ref()
        .filter(|t| t.exit_code != 0 && !c.ready)
}

const IMAGE_PULL_REASONS: [&str; 4] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
];

/// The cause shown by one pod, if it shows one.
fn pod_cause(dw: &DemoWeb, pod: &PodSummary) -> Option<Diagnosis> {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    if let Some(message) = &pod.unschedulable {
        return Some(Diagnosis {
            reason: reason::UNSCHEDULABLE,
            message: format!("pod {name} cannot be scheduled: {}", shorten(message)),
            stalled: false,
        });
    }
    for c in &pod.containers {
        let waiting = c.waiting.as_ref().map(|w| w.reason.as_str());
        if let Some(pull) = waiting.filter(|w| IMAGE_PULL_REASONS.contains(w)) {
            // The kubelet alternates ErrImagePull and ImagePullBackOff, with other messages:
            // the status names both, so it does not change with every retry.
            let image = c.image.as_deref().unwrap_or("its image");
            let detail = if pull == "InvalidImageName" {
                "the image name is invalid"
            } else {
                "ErrImagePull/ImagePullBackOff"
            };
            return Some(Diagnosis {
                reason: reason::IMAGE_PULL_FAILED,
                message: format!(
                    "pod {name}: container {} cannot pull image {image} ({detail}); kubectl describe pod {name} shows the registry's answer",
                    c.name
                ),
                stalled: true,
            });
        }
        let git = c.name == GIT_CLONE_CONTAINER || c.name == GIT_SYNC_CONTAINER;
        if git && let Some(t) = failed_termination(c) {
            return Some(git_diagnosis(dw, name, &t.message));
        }
        if c.init && c.name == CHECK_PATH_CONTAINER && failed_termination(c).is_some() {
            return Some(Diagnosis {
                reason: reason::GIT_PATH_NOT_FOUND,
                message: format!(
                    "pod {name}: path {:?} is not a directory of {} at {}",
                    dw.spec.path.as_deref().unwrap_or_default(),
                    dw.spec.gitrepo,
                    dw.spec
                        .git_ref
                        .as_deref()
                        .map_or("the default branch".to_owned(), |r| format!("ref {r:?}"))
                ),
                stalled: true,
            });
        }
        if !c.init && waiting == Some("CrashLoopBackOff") {
            let last = c
                .terminated
                .as_ref()
                .map(|t| format!(" (last exit code {}, {})", t.exit_code, t.reason))
                .unwrap_or_default();
            return Some(Diagnosis {
                reason: reason::CRASH_LOOP_BACK_OFF,
                message: format!(
                    "pod {name}: container {} keeps crashing{last}; kubectl logs {name} -c {} --previous shows why",
                    c.name, c.name
                ),
                stalled: true,
            });
        }
    }
    None
}

/// The Deployment's own verdict: a ReplicaSet that cannot create pods, or a rollout past its
/// deadline. (The stored Deployment keeps only these conditions, see `crate::stored`.)
fn deployment_cause(deployment: &Deployment) -> (Option<Diagnosis>, bool) {
    let name = deployment.metadata.name.as_deref().unwrap_or_default();
    let conditions = deployment
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref());
    let mut failure = None;
    let mut deadline = None;
    for c in conditions.into_iter().flatten() {
        let message = shorten(c.message.as_deref().unwrap_or_default());
        if c.type_ == "ReplicaFailure" && c.status == "True" {
            failure = Some(Diagnosis {
                reason: reason::REPLICA_FAILURE,
                message: format!("Deployment {name} cannot create pods: {message}"),
                stalled: true,
            });
        }
        if c.type_ == "Progressing"
            && c.status == "False"
            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        {
            deadline = Some(Diagnosis {
                reason: reason::PROGRESS_DEADLINE_EXCEEDED,
                message: format!("Deployment {name} exceeded its progress deadline: {message}"),
                stalled: true,
            });
        }
    }
    let past_deadline = deadline.is_some();
    (failure.or(deadline), past_deadline)
}

/// Why a site whose rollout is not complete is not ready, when its pods or Deployment say: the
/// first pod (by name) of the Deployment that shows a cause, else the Deployment's conditions.
/// A cause the cluster may still resolve is stalled anyway once the rollout is past its deadline.
pub fn diagnose(
    dw: &DemoWeb,
    deployment: Option<&Deployment>,
    pods: &[Arc<PodSummary>],
) -> Option<Diagnosis> {
    let deployment = deployment?;
    let name = deployment.metadata.name.as_deref().unwrap_or_default();
    let (from_deployment, past_deadline) = deployment_cause(deployment);
    let from_pods = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none() && p.is_of_deployment(name))
        .find_map(|p| pod_cause(dw, p));
    let mut found = match from_pods {
        Some(mut d) => {
            d.stalled |= past_deadline;
            d
        }
        None => from_deployment?,
    };
    found.message = redact(&found.message);
    Some(found)
}

#[cfg(test)]
mod tests;
