//! The operator's errors, each naming the operation that failed and the object it failed on, and
//! `UserError`, the problem only the user can fix.

/// A problem only the user can fix: it becomes a condition and a Warning Event, never a retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserError {
    pub reason: &'static str,
    pub message: String,
}

/// Everything that can go wrong outside user input (user problems are conditions, not errors).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("DemoWeb has no {0}: cannot reconcile it")]
    MissingMetadata(&'static str),

    #[error("reading {kind} {name}")]
    Read {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },

    #[error("applying {kind} {name}")]
    Apply {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },

    #[error("deleting {kind} {name}")]
    Delete {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },

    #[error("patching the status of DemoWeb {name}")]
    PatchStatus {
        name: String,
        #[source]
        source: kube::Error,
    },

    #[error(
        "the watch of CustomResourceDefinition {crd} has not listed it yet (is the operator allowed to list and watch it?), so whether its allowlist API is served is unknown"
    )]
    CapabilitiesUnknown { crd: &'static str },

    #[error("serialising {kind} {name}")]
    Serialize {
        kind: String,
        name: String,
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    /// Whether retrying with backoff may help. Everything that reaches this enum is an API or
    /// network problem except a malformed object, which no retry fixes.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::MissingMetadata(_) | Self::Serialize { .. } => false,
            Self::CapabilitiesUnknown { .. } => true,
            Self::Read { source, .. }
            | Self::Apply { source, .. }
            | Self::Delete { source, .. }
            | Self::PatchStatus { source, .. } => is_transient_kube(source),
        }
    }

    /// Whether the API server refused a write because the object's namespace is being deleted:
    /// the DemoWeb goes with it, so this is no failure to report or retry.
    pub fn is_namespace_terminating(&self) -> bool {
        match self {
            Self::Read { source, .. }
            | Self::Apply { source, .. }
            | Self::Delete { source, .. }
            | Self::PatchStatus { source, .. } => is_namespace_terminating(source),
            _ => false,
        }
    }

    /// Short name for metrics labels.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::MissingMetadata(_) => "missing_metadata",
            Self::Read { .. } => "read",
            Self::Apply { .. } => "apply",
            Self::Delete { .. } => "delete",
            Self::PatchStatus { .. } => "patch_status",
            Self::CapabilitiesUnknown { .. } => "capabilities_unknown",
            Self::Serialize { .. } => "serialize",
        }
    }
}

/// 4xx answers other than conflicts, throttling and timeouts mean the request itself is wrong.
/// kube-apiserver's NamespaceLifecycle admission: nothing new in a namespace being deleted (a 403
/// whose cause is `NamespaceTerminating`; kube's error keeps only the message, which says so), nor
/// in one already gone (a 404 for the namespace itself, met when the DemoWeb's last events arrive
/// after its namespace is deleted).
pub fn is_namespace_terminating(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status)
        if (status.code == 403 && status.message.ends_with("because it is being terminated"))
            || (status.code == 404
                && status.details.as_ref().is_some_and(|d| d.kind == "namespaces")))
}

fn is_transient_kube(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(status) => {
            let code = status.code;
            !(400..500).contains(&code) || matches!(code, 404 | 408 | 409 | 429)
        }
        _ => true,
    }
}

/// The error message with its whole chain of causes, for Events and logs. A cause whose text is
/// already in the message is left out: some errors (kube's inferred-config error among them)
/// repeat their sources' text in their own, and the chain would say each cause two or three times.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Why the `run` command could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("no Kubernetes configuration (in-cluster or KUBECONFIG)")]
    Config(#[source] kube::Error),

    #[error(
        "the DemoWeb CRD (demowebs.baeke.info) is not served by this cluster; install it with `demoweb-operator crd | kubectl apply -f -` or the Helm chart (charts/demoweb-operator), then start the operator again"
    )]
    CrdNotInstalled,

    #[error("checking that the DemoWeb CRD is served")]
    CheckCrd(#[source] kube::Error),

    #[error("listening on {addr}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },

    #[error("lost the leader Lease {namespace}/{name}; exiting so that only one replica acts")]
    LostLeadership { namespace: String, name: String },
}

#[cfg(test)]
mod tests {
    use super::chain;

    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct Link {
        text: &'static str,
        #[source]
        source: Option<Box<Link>>,
    }

    fn link(text: &'static str, source: Option<Link>) -> Link {
        Link {
            text,
            source: source.map(Box::new),
        }
    }

    #[test]
    fn each_cause_is_said_once() {
        let plain = link(
            "starting",
            Some(link("connecting", Some(link("refused", None)))),
        );
        assert_eq!(chain(&plain), "starting: connecting: refused");
        // kube's inferred-config error names both of its causes in its own text, and its source
        // is one of them again.
        let repeating = link(
            "no configuration",
            Some(link(
                "failed to infer config: in-cluster: (not in a pod), kubeconfig: (no file)",
                Some(link("no file", None)),
            )),
        );
        assert_eq!(
            chain(&repeating),
            "no configuration: failed to infer config: in-cluster: (not in a pod), kubeconfig: (no file)"
        );
    }

    #[test]
    fn a_write_into_a_namespace_being_deleted_is_no_failure() {
        let refused = |code: u16, message: &str| super::Error::Apply {
            kind: "PodDisruptionBudget".into(),
            name: "site".into(),
            source: kube::Error::Api(Box::new(
                kube::core::Status::failure(message, "Forbidden").with_code(code),
            )),
        };
        let terminating = refused(
            403,
            "poddisruptionbudgets.policy \"site\" is forbidden: unable to create new content in namespace ns because it is being terminated",
        );
        assert!(terminating.is_namespace_terminating());
        let not_found = |kind: &str| super::Error::Apply {
            kind: "ConfigMap".into(),
            name: "site-nginx".into(),
            source: kube::Error::Api(Box::new(
                serde_json::from_value::<kube::core::Status>(serde_json::json!({
                    "status": "Failure", "code": 404, "reason": "NotFound",
                    "message": "not found", "details": {"name": "ns", "kind": kind}
                }))
                .expect("a Status"),
            )),
        };
        assert!(not_found("namespaces").is_namespace_terminating());
        assert!(!not_found("configmaps").is_namespace_terminating());
        assert!(
            !refused(
                403,
                "poddisruptionbudgets.policy \"site\" is forbidden: User cannot create"
            )
            .is_namespace_terminating()
        );
    }
}
