//! The `DemoWeb` custom resource (`baeke.info/v1`): a static website served by nginx from a git repository.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::core::cel::Rule;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::annotations::{Family, annotations_rule, ingress_rule};

/// A CEL rule for one family of refused annotations (see `annotations.rs`).
fn refuse_always(family: Family) -> Rule {
    Rule::new(annotations_rule(family)).message(family.message())
}

fn refuse_with_allowlist(family: Family) -> Rule {
    Rule::new(ingress_rule(family)).message(family.message())
}

// CEL rules and patterns shared with `validation.rs`, which mirrors them in Rust for objects that
// reached the cluster without passing this schema (e.g. an older CRD version).
pub(crate) const NAME_RULE: &str =
    "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 63";
pub(crate) const NAME_MESSAGE: &str = "metadata.name must be a DNS-1035 label of at most 63 characters (lower-case letters, digits and '-', starting with a letter), because the Service and other children take their names from it";
pub(crate) const GITREPO_RULE: &str =
    "self.matches('^(https?://|ssh://|git@[A-Za-z0-9.-]+:)[^[:space:][:cntrl:]]+$')";
pub(crate) const GITREPO_MESSAGE: &str = "gitrepo must be an https://, http://, ssh:// or git@host:path URL without whitespace or control characters";
pub(crate) const REF_RULE: &str = "self.matches('^[A-Za-z0-9_][A-Za-z0-9._/-]*$') && !self.contains('..') && !self.endsWith('/') && !self.endsWith('.lock')";
pub(crate) const REF_MESSAGE: &str = "ref must be a branch, tag or commit SHA: letters, digits, '.', '_', '/' and '-', not starting with '-' and without '..'";
pub(crate) const PATH_RULE: &str = "self.matches('^[A-Za-z0-9._/-]*$') && !self.startsWith('/') && !self.matches('(^|/)[.][.](/|$)')";
pub(crate) const PATH_MESSAGE: &str = "path must be a relative directory inside the repository (letters, digits, '.', '_', '-' and '/'), without '..'";
pub(crate) const PERIOD_RULE: &str = "self.matches('^([0-9]+(ms|s|m|h))+$')";
pub(crate) const PERIOD_MESSAGE: &str =
    "sync.period must be a duration such as 30s, 5m or 1h30m of at least 1s";
pub(crate) const HOST_RULE: &str =
    "self.matches('^([*][.])?[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')";
pub(crate) const HOST_REQUIRED_MESSAGE: &str =
    "ingress.host is required: the host name the site answers to, such as www.example.com";
pub(crate) const HOST_MESSAGE: &str = "host must be a DNS name such as www.example.com (a leading '*.' is allowed), lower case, without a port";
pub(crate) const INGRESS_PATH_RULE: &str = "self.matches('^/[A-Za-z0-9._~/-]*$')";
pub(crate) const INGRESS_PATH_MESSAGE: &str =
    "ingress.path must start with '/' and contain only letters, digits and . _ ~ / -";
pub(crate) const IMAGE_RULE: &str = "self.matches('^[^[:space:][:cntrl:]]+$')";
pub(crate) const IMAGE_MESSAGE: &str = "image must be an image reference without whitespace";
pub(crate) const AUTOSCALING_RULE: &str = "self.minReplicas <= self.maxReplicas";
pub(crate) const AUTOSCALING_MESSAGE: &str =
    "autoscaling.minReplicas must not be greater than autoscaling.maxReplicas";
pub(crate) const REPLICAS_MESSAGE: &str = "replicas must be between 0 and 1000";
pub(crate) const MIN_REPLICAS_MESSAGE: &str = "autoscaling.minReplicas must be between 1 and 1000";
pub(crate) const MAX_REPLICAS_MESSAGE: &str = "autoscaling.maxReplicas must be between 1 and 1000";
pub(crate) const CPU_TARGET_MESSAGE: &str =
    "autoscaling.targetCPUUtilizationPercentage must be between 1 and 100";
/// An IPv4 address in dotted decimal, without leading zeros (as Go's `net.ParseCIDR` reads it).
const IPV4: &str = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])([.](25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}";
const HEX: &str = "[0-9a-fA-F]{1,4}";

/// An IPv6 address in any of its textual forms (RFC 4291 2.2: eight groups, one `::` for a run of
/// zero groups, the last two groups optionally as dotted IPv4), as one alternation per position
/// of the `::`, since a regular expression cannot count the groups on both sides of it.
fn ipv6_pattern() -> String {
    let left = |n: usize| match n {
        0 => String::new(),
        1 => HEX.to_owned(),
        n => format!("({HEX}:){{{}}}{HEX}", n - 1),
    };
    let mut forms = vec![
        format!("({HEX}:){{7}}{HEX}"),
        format!("({HEX}:){{6}}{IPV4}"),
    ];
    for n in 0..8 {
        let right = match 7 - n {
            0 => String::new(),
            1 => format!("({HEX})?"),
            m => format!("({HEX}(:{HEX}){{0,{}}})?", m - 1),
        };
        forms.push(format!("{}::{right}", left(n)));
    }
    for n in 0..6 {
        let right = match 5 - n {
            0 => String::new(),
            m => format!("({HEX}:){{0,{m}}}"),
        };
        forms.push(format!("{}::{right}{IPV4}", left(n)));
    }
    format!("({})", forms.join("|"))
}

const PREFIX_V4: &str = "/0*(3[0-2]|[12]?[0-9])";
const PREFIX_V6: &str = "/0*(12[0-8]|1[01][0-9]|[1-9]?[0-9])";

/// The schema of `allowedSourceRanges`, and of each entry. CEL rules instead of `format: cidr`: a format
/// error stops kube-apiserver from running any CEL rule of the object (it then adds "some
/// validation rules were not checked"), and it cannot suggest `/32` for a bare address. CEL's
/// `isCIDR` would be shorter but needs Kubernetes 1.31; this runs on 1.27.
fn source_ranges_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let ipv6 = ipv6_pattern();
    let bare_v4 = format!("^{IPV4}$");
    let bare_v6 = format!("^{ipv6}$");
    let cidr = format!("^({IPV4}{PREFIX_V4}|{ipv6}{PREFIX_V6})$");
    schemars::json_schema!({
        "type": "array",
        "maxItems": 256,
        "items": {
        "type": "string",
        "maxLength": 64,
        "x-kubernetes-validations": [
            {
                "rule": format!("!self.matches('{bare_v4}')"),
                "message": SINGLE_V4_MESSAGE,
                "messageExpression": "'\"' + self + '\" is a single address, not a range: write \"' + self + '/32\" to allow just it'",
            },
            {
                "rule": format!("!self.matches('{bare_v6}')"),
                "message": SINGLE_V6_MESSAGE,
                "messageExpression": "'\"' + self + '\" is a single address, not a range: write \"' + self + '/128\" to allow just it'",
            },
            {
                "rule": format!("self.matches('{bare_v4}') || self.matches('{bare_v6}') || self.matches('{cidr}')"),
                "message": NOT_CIDR_MESSAGE,
                "messageExpression": "'\"' + self + '\" is not a CIDR range such as 203.0.113.7/32 or 2001:db8::/48'",
            },
        ],
        },
    })
}

pub(crate) const SINGLE_V4_MESSAGE: &str =
    "a single IPv4 address is not a range: add /32 to allow just it";
pub(crate) const SINGLE_V6_MESSAGE: &str =
    "a single IPv6 address is not a range: add /128 to allow just it";
pub(crate) const NOT_CIDR_MESSAGE: &str =
    "not a CIDR range such as 203.0.113.7/32 or 2001:db8::/48";

/// Upper bound of every replica count.
pub const MAX_REPLICAS: i32 = 1000;
/// CPU utilisation the autoscaler aims at when `targetCPUUtilizationPercentage` is not set.
pub const DEFAULT_CPU_TARGET: i32 = 80;

/// A static website, served by nginx from a git repository.
///
/// The operator turns each DemoWeb into a Deployment (git-sync fetches the repository, nginx serves
/// it), a ConfigMap with the nginx configuration, a Service and, when `ingress` is set, an Ingress.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "baeke.info",
    version = "v1",
    kind = "DemoWeb",
    plural = "demowebs",
    singular = "demoweb",
    shortname = "dweb",
    namespaced,
    status = "DemoWebStatus",
    derive = "PartialEq",
    doc = "A static website served by nginx from a git repository.",
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status", description = "Whether the site serves its current spec with every replica ready (the Ready condition)"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason", description = "Why the site is or is not ready (the Ready condition's reason)"),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".status.replicas", description = "Web server pods the site runs now (with autoscaling, as many as the autoscaler chose)"),
    printcolumn(name = "ReadyReplicas", type_ = "integer", json_path = ".status.readyReplicas", description = "Web server pods ready to serve"),
    printcolumn(name = "GitRepo", type_ = "string", json_path = ".spec.gitrepo", description = "Git repository with web content"),
    printcolumn(name = "Message", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].message", priority = "1", description = "What the site is waiting for or what needs fixing (the Ready condition's message)"),
    printcolumn(name = "URL", type_ = "string", json_path = ".status.url", priority = "1", description = "Where the site is exposed"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new(NAME_RULE).message(NAME_MESSAGE),
)]
#[serde(rename_all = "camelCase")]
pub struct DemoWebSpec {
    /// Number of nginx pods serving the site. Ignored while `autoscaling` is set. With 2 or more,
    /// a PodDisruptionBudget keeps all but one serving during node drains.
    #[serde(default = "default_replicas")]
    // A CEL rule rather than minimum/maximum, for a message that names both bounds.
    #[x_kube(validation = Rule::new("self >= 0 && self <= 1000").message(REPLICAS_MESSAGE))]
    pub replicas: i32,

    /// Git repository holding the site: https://, http://, ssh:// or git@host:path.
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new(GITREPO_RULE).message(GITREPO_MESSAGE))]
    pub gitrepo: String,

    /// Branch, tag or full commit SHA to serve. Defaults to the repository's default branch.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "ref")]
    #[schemars(length(min = 1, max = 255))]
    #[x_kube(validation = Rule::new(REF_RULE).message(REF_MESSAGE))]
    pub git_ref: Option<String>,

    /// Sub-directory of the repository to serve, relative to its root. Defaults to the root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    #[x_kube(validation = Rule::new(PATH_RULE).message(PATH_MESSAGE))]
    pub path: Option<String>,

    /// Keep the content fresh with a git-sync sidecar. Without it the repository is synced once,
    /// when each pod starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncSpec>,

    /// Credentials for a private repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<CredentialsSpec>,

    /// Web server image. Defaults to a pinned unprivileged nginx.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    #[x_kube(validation = Rule::new(IMAGE_RULE).message(IMAGE_MESSAGE))]
    pub image: Option<String>,

    /// Compute resources of the web server container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Expose the site through an Ingress, optionally restricted to source IP ranges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSpec>,

    /// Run the pods under an Azure identity named by an AzureIdentityBinding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentitySpec>,

    /// Scale the site with its CPU load through a HorizontalPodAutoscaler. While set, `replicas`
    /// is ignored and the autoscaler owns the Deployment's replica count; removing it hands the
    /// count back to `replicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingSpec>,
}

/// Bounds and target of the HorizontalPodAutoscaler.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(AUTOSCALING_RULE).message(AUTOSCALING_MESSAGE))]
pub struct AutoscalingSpec {
    /// Fewest pods. With 2 or more, a PodDisruptionBudget keeps all but one serving during node
    /// drains.
    #[serde(default = "default_min_replicas")]
    #[schemars(range(min = 1, max = 1000))]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 1000").message(MIN_REPLICAS_MESSAGE))]
    pub min_replicas: i32,

    /// Most pods.
    #[schemars(range(min = 1, max = 1000))]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 1000").message(MAX_REPLICAS_MESSAGE))]
    pub max_replicas: i32,

    /// Average CPU use the autoscaler aims at, in percent of the web server's CPU request
    /// (default 80). When `resources` sets no CPU request or limit, the web server requests 50m.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "targetCPUUtilizationPercentage"
    )]
    #[schemars(range(min = 1, max = 100))]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 100").message(CPU_TARGET_MESSAGE))]
    pub target_cpu_utilization_percentage: Option<i32>,
}

fn default_min_replicas() -> i32 {
    1
}

fn default_replicas() -> i32 {
    1
}

/// Continuous synchronisation of the repository.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SyncSpec {
    /// How often git-sync polls the repository, as a duration such as 30s, 5m or 1h.
    #[schemars(length(min = 2, max = 32))]
    #[x_kube(validation = Rule::new(PERIOD_RULE).message(PERIOD_MESSAGE))]
    pub period: String,
}

/// Where the credentials for a private repository are.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsSpec {
    /// A Secret in the DemoWeb's namespace with keys `username` and `password` (https), or `ssh`
    /// (private key) and optionally `known_hosts` (ssh).
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
}

/// How the site is exposed outside the cluster.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.host)").message(HOST_REQUIRED_MESSAGE),
    validation = refuse_with_allowlist(Family::Authentication),
    validation = refuse_with_allowlist(Family::ClientAddress),
    validation = refuse_with_allowlist(Family::Redirect),
    validation = refuse_with_allowlist(Family::Bypass)
)]
pub struct IngressSpec {
    /// Host name the site answers to, e.g. www.example.com. Required.
    // Required by a CEL rule on `ingress` rather than by `required`: a missing required field
    // stops kube-apiserver from running every CEL rule of the object, which it then reports in a
    // second, puzzling line ("some validation rules were not checked").
    #[serde(default)]
    #[schemars(length(min = 1, max = 253), transform = without_default)]
    #[x_kube(validation = Rule::new(HOST_RULE).message(HOST_MESSAGE))]
    pub host: String,

    /// URL path prefix of the site.
    #[serde(default = "default_ingress_path")]
    #[schemars(length(min = 1, max = 1024))]
    #[x_kube(validation = Rule::new(INGRESS_PATH_RULE).message(INGRESS_PATH_MESSAGE))]
    pub path: String,

    /// IngressClass to use. Its controller decides how the allowlist is written. Defaults to the
    /// cluster's default IngressClass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub class_name: Option<String>,

    /// Serve the site over TLS with a certificate from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<IngressTls>,

    /// Source IP ranges (CIDR, IPv4 or IPv6, e.g. 203.0.113.7/32) allowed to reach the site.
    /// Empty means everyone. When set and the ingress controller's allowlist dialect is unknown,
    /// the site is not exposed at all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "source_ranges_schema")]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub allowed_source_ranges: Vec<String>,

    /// Extra annotations for the Ingress. Refused: annotations that inject controller
    /// configuration (`*-snippet`) or set source ranges; with `allowedSourceRanges`, also those
    /// that could widen access: authentication other than the reviewed basic and external auth
    /// keys, `satisfy` other than `all`, redirects, a client-sent address, canaries and TLS
    /// passthrough. Kong plugins named next to `allowedSourceRanges` must exist and be of a type
    /// that cannot widen access; the operator checks them, and exposes nothing until they are.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    // Bounded so the API server's CEL cost estimate for the rules stays within budget.
    #[schemars(extend("maxProperties" = 64))]
    #[x_kube(
        validation = refuse_always(Family::Snippet),
        validation = refuse_always(Family::SourceRanges)
    )]
    pub annotations: BTreeMap<String, String>,
}

/// Leaves a field's `default` out of the schema: the API server would otherwise fill in a missing
/// field that must be written.
fn without_default(schema: &mut schemars::Schema) {
    schema.remove("default");
}

fn default_ingress_path() -> String {
    "/".to_owned()
}

/// TLS for the Ingress.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct IngressTls {
    /// A Secret of type kubernetes.io/tls in the DemoWeb's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
}

/// The Azure identity the pods run under.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct IdentitySpec {
    /// Name of an AzureIdentityBinding in the DemoWeb's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub binding: String,

    /// PodIdentity labels the pods for aad-pod-identity; WorkloadIdentity runs them under a
    /// ServiceAccount annotated for Azure Workload Identity.
    #[serde(default)]
    pub mode: IdentityMode,
}

/// How pods obtain the Azure identity.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq,
)]
pub enum IdentityMode {
    /// aad-pod-identity: pods labelled `aadpodidbinding: <selector>` (needs MIC and NMI).
    #[default]
    PodIdentity,
    /// Azure Workload Identity: pods run under a ServiceAccount annotated with the client id
    /// (needs the workload identity webhook and a federated credential).
    WorkloadIdentity,
}

/// What the operator observed and did.
// The default `observedGeneration: -1` is what a DemoWeb the operator has not seen yet reads
// back as (kube-apiserver defaults on every read): generation 1 is then visibly unobserved, so
// kstatus (Flux's `wait`/`healthChecks`) says InProgress instead of Current for a new site.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("default" = {"observedGeneration": -1}))]
pub struct DemoWebStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Pods the Deployment runs now; with autoscaling, as many as the autoscaler chose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,

    /// Pods ready to serve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,

    /// Where the site is exposed, when it has an Ingress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,

    /// The Azure identity the pods run under, once resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentityStatus>,

    /// Ready, Reconciling and Stalled, following kstatus conventions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// The resolved Azure identity.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct IdentityStatus {
    /// PodIdentity or WorkloadIdentity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<IdentityMode>,
    /// The `aadpodidbinding` label value (PodIdentity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Client id of the managed identity or service principal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The ServiceAccount the pods run under (WorkloadIdentity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
}
