//! What every controller's errors are made of: `ApiError`, one failed API call naming the call and
//! the object; `UserError`, the problem only the user can fix; and the `run` command's
//! `StartupError`.

/// A problem only the user can fix: it becomes a condition and a Warning Event, never a retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserError {
    pub reason: &'static str,
    pub message: String,
}

/// One failed API call: what was being done ([`Call`]), to which object, and the answer of the
/// API server (or of the connection). Each controller's errors are made of these, next to its
/// own (`demoweb::Error`, `identity::Error`, the write path's `write::Error`).
#[derive(Debug, thiserror::Error)]
#[error("{} {kind} {name}", call.doing())]
pub struct ApiError {
    pub call: Call,
    pub kind: String,
    pub name: String,
    #[source]
    pub source: kube::Error,
}

/// The kinds of API call whose failure is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Read,
    Apply,
    Delete,
    PatchStatus,
    Discover,
    CreateEvent,
}

impl Call {
    fn doing(self) -> &'static str {
        match self {
            Call::Read => "reading",
            Call::Apply => "applying",
            Call::Delete => "deleting",
            Call::PatchStatus => "patching the status of",
            Call::Discover => "discovering",
            Call::CreateEvent => "creating an Event about",
        }
    }

    /// Short name for metrics labels.
    pub fn label(self) -> &'static str {
        match self {
            Call::Read => "read",
            Call::Apply => "apply",
            Call::Delete => "delete",
            Call::PatchStatus => "patch_status",
            Call::Discover => "discover",
            Call::CreateEvent => "create_event",
        }
    }
}

impl ApiError {
    pub fn new(call: Call, kind: &str, name: &str, source: kube::Error) -> Self {
        ApiError {
            call,
            kind: kind.to_owned(),
            name: name.to_owned(),
            source,
        }
    }

    /// Whether retrying with backoff may help.
    pub fn is_transient(&self) -> bool {
        is_transient_kube(&self.source)
    }

    /// Whether the API server refused the call because the object's namespace is being deleted.
    pub fn is_namespace_terminating(&self) -> bool {
        is_namespace_terminating(&self.source)
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
        let refused = |code: u16, message: &str| {
            super::ApiError::new(
                super::Call::Apply,
                "PodDisruptionBudget",
                "site",
                kube::Error::Api(Box::new(
                    kube::core::Status::failure(message, "Forbidden").with_code(code),
                )),
            )
        };
        let terminating = refused(
            403,
            "poddisruptionbudgets.policy \"site\" is forbidden: unable to create new content in namespace ns because it is being terminated",
        );
        assert!(terminating.is_namespace_terminating());
        let not_found = |kind: &str| {
            super::ApiError::new(
                super::Call::Apply,
                "ConfigMap",
                "site-nginx",
                kube::Error::Api(Box::new(
                    serde_json::from_value::<kube::core::Status>(serde_json::json!({
                        "status": "Failure", "code": 404, "reason": "NotFound",
                        "message": "not found", "details": {"name": "ns", "kind": kind}
                    }))
                    .expect("a Status"),
                )),
            )
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
