//! The operator's errors: each names the operation that failed and the object it failed on.

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
fn is_transient_kube(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(status) => {
            let code = status.code;
            !(400..500).contains(&code) || matches!(code, 404 | 408 | 409 | 429)
        }
        _ => true,
    }
}

/// The error message with its whole chain of causes, for Events and logs.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
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
