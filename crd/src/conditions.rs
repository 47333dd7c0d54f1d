//! Condition types and reasons shared by the operator and its users (kstatus-compatible).

/// True when the site is fully reconciled and every replica is ready.
pub const READY: &str = "Ready";
/// True while the operator is still converging on the latest spec (kstatus "abnormal-true").
pub const RECONCILING: &str = "Reconciling";
/// True when progress needs user action (kstatus "abnormal-true").
pub const STALLED: &str = "Stalled";

/// Reasons, in PascalCase as Kubernetes conventions ask.
pub mod reason {
    pub const RECONCILED: &str = "Reconciled";
    pub const PROGRESSING: &str = "Progressing";
    pub const WAITING_FOR_REPLICAS: &str = "WaitingForReplicas";
    pub const INVALID_SPEC: &str = "InvalidSpec";
    pub const NAME_CONFLICT: &str = "NameConflict";
    pub const CREDENTIALS_NOT_FOUND: &str = "CredentialsNotFound";
    pub const UNSUPPORTED_INGRESS_CLASS: &str = "UnsupportedIngressClass";
    /// The ingress controller's allowlist needs an API the cluster does not serve.
    pub const ALLOWLIST_API_MISSING: &str = "AllowlistApiMissing";
    /// A Kong plugin named next to the allowlist is missing or of a type that could widen access:
    /// the Ingress is withdrawn.
    pub const KONG_PLUGIN_REFUSED: &str = "KongPluginRefused";
    /// The DemoWeb carries refused Ingress annotations; the Ingress was applied without them.
    pub const ANNOTATIONS_REFUSED: &str = "AnnotationsRefused";
    pub const IDENTITY_BINDING_NOT_FOUND: &str = "IdentityBindingNotFound";
    pub const IDENTITY_NOT_FOUND: &str = "IdentityNotFound";
    pub const INVALID_IDENTITY: &str = "InvalidIdentity";
    pub const API_ERROR: &str = "ApiError";

    // Why the pods are not ready, read from their status and the Deployment's (`diagnosis.rs`).
    /// git cannot reach the repository's host (may heal by itself: InProgress).
    pub const GIT_UNREACHABLE: &str = "GitUnreachable";
    pub const GIT_AUTHENTICATION_FAILED: &str = "GitAuthenticationFailed";
    pub const GIT_REPOSITORY_NOT_FOUND: &str = "GitRepositoryNotFound";
    pub const GIT_REF_NOT_FOUND: &str = "GitRefNotFound";
    /// `spec.path` is not a directory of the synced tree.
    pub const GIT_PATH_NOT_FOUND: &str = "GitPathNotFound";
    /// Another git-sync failure (InProgress).
    pub const GIT_SYNC_FAILED: &str = "GitSyncFailed";
    pub const IMAGE_PULL_FAILED: &str = "ImagePullFailed";
    /// The scheduler places no pod (InProgress: the cluster may grow).
    pub const UNSCHEDULABLE: &str = "Unschedulable";
    pub const CRASH_LOOP_BACK_OFF: &str = "CrashLoopBackOff";
    pub const PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";
    /// The ReplicaSet cannot create pods (quota, admission).
    pub const REPLICA_FAILURE: &str = "ReplicaFailure";
}
