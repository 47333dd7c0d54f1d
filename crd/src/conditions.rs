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
}
