//! The Ingress annotations a DemoWeb may not carry: one table, from which the CRD's CEL rules,
//! `DemoWeb::validate()`, the operator's clean-up of older objects and the README's table come.
//!
//! Names are taken from each controller's annotation reference: ingress-nginx ("Annotations" and
//! "Annotations Scope and Risk"), HAProxy Kubernetes Ingress (haproxy.org, which reads the same
//! keys under `haproxy.org/`, `haproxy.com/` and `ingress.kubernetes.io/`), HAProxy Ingress
//! (haproxy-ingress.github.io, also read under `ingress.kubernetes.io/`), Traefik v1 (the
//! Kubernetes Ingress provider of 1.7), Traefik v2/v3 and Kong's Ingress controller.
//!
//! Two kinds of rule. Annotations that inject raw controller configuration, or set source ranges
//! of their own, are refused always. Annotations that could widen access next to the allowlist
//! (authentication other than the reviewed keys below, `satisfy` other than `all`, redirects, a
//! client-sent address, routes around the allowlist) are refused when `allowedSourceRanges` is
//! set. The
//! schema cannot know which controller serves the DemoWeb (that depends on IngressClasses, which
//! change after admission), so it refuses every controller's: a key that means nothing to the
//! controller in use costs nothing to leave out, and a rule that depended on the cluster could
//! turn a stored DemoWeb invalid later. Traefik v3 also reads ingress-nginx's keys, which is one
//! more reason not to trust "the other controller's" annotations.
//!
//! Kong's plugin lists (`konghq.com/plugins`, `plugins.konghq.com`) are not in the table: whether a
//! list is safe depends on the types of the KongPlugins it names, which the schema cannot see. The
//! operator checks them on every reconcile against [`KONG_PLUGINS`] (see
//! `operator/src/demoweb/kong.rs`) and fails closed.

use std::collections::BTreeMap;

/// The ingress controller that reads an annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reader {
    /// Any controller (a naming convention such as `*-snippet`).
    Any,
    /// ingress-nginx (`k8s.io/ingress-nginx`; Traefik v3's NGINX provider reads these keys too).
    IngressNginx,
    /// NGINX Inc.'s controller (`nginx.org/ingress-controller`).
    NginxInc,
    /// HAProxy Technologies' Kubernetes Ingress (`haproxy.org/ingress-controller/*`).
    HaproxyOrg,
    /// HAProxy Ingress (`haproxy-ingress.github.io/controller`).
    HaproxyIngress,
    /// Traefik 1.x. (No Traefik 2/3 Ingress annotation weakens the allowlist: the operator's
    /// Middleware comes first in the chain.)
    TraefikV1,
}

/// Why an annotation is refused; each family has its own message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    /// Raw controller configuration: refused always.
    Snippet,
    /// Source ranges outside `allowedSourceRanges`: refused always.
    SourceRanges,
    /// Authentication or authorisation next to the allowlist.
    Authentication,
    /// The client address taken from a request header a client can forge.
    ClientAddress,
    /// Redirects answered before the allowlist is checked.
    Redirect,
    /// Requests routed around the allowlist (canary, TLS passthrough).
    Bypass,
}

impl Family {
    pub const ALL: [Family; 6] = [
        Family::Snippet,
        Family::SourceRanges,
        Family::Authentication,
        Family::ClientAddress,
        Family::Redirect,
        Family::Bypass,
    ];

    /// Whether the family is refused only next to `allowedSourceRanges`.
    pub fn only_with_allowlist(self) -> bool {
        !matches!(self, Family::Snippet | Family::SourceRanges)
    }

    /// The message a user sees (from the schema, `validate()` and the operator alike).
    pub fn message(self) -> &'static str {
        match self {
            Family::Snippet => {
                "ingress.annotations must not inject ingress-controller configuration (annotations ending in -snippet or -snippets, and HAProxy Ingress's config-*): such configuration runs with the controller's rights and can serve paths the allowlist does not cover"
            }
            Family::SourceRanges => {
                "ingress.annotations must not set source ranges (allow, deny or whitelist lists of any ingress controller): use ingress.allowedSourceRanges, which the operator writes in the ingress controller's own dialect"
            }
            Family::Authentication => {
                "with ingress.allowedSourceRanges set, ingress.annotations may configure authentication only with the reviewed keys (ingress-nginx basic and external auth; HAProxy and Traefik 1 basic auth) and satisfy only as \"all\": the others (satisfy: any, enable-global-auth, auth-tls-*, oauth, the rest of auth-*) can admit requests the allowlist refuses"
            }
            Family::ClientAddress => {
                "with ingress.allowedSourceRanges set, ingress.annotations must not take the client address from a request header (src-ip-header, whitelist-x-forwarded-for): a client can forge it and pass the allowlist"
            }
            Family::Redirect => {
                "with ingress.allowedSourceRanges set, ingress.annotations must not redirect requests (permanent-redirect, temporal-redirect, request-redirect, redirect-*, app-root): redirects are answered before the allowlist is checked"
            }
            Family::Bypass => {
                "with ingress.allowedSourceRanges set, ingress.annotations must not route requests around the allowlist (canary-*, ssl-passthrough): the controller ignores the allowlist for them"
            }
        }
    }
}

/// How a rule matches an annotation key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    Exact(&'static str),
    Prefix(&'static str),
    Suffix(&'static str),
    /// Keys with this prefix, except the prefix followed by one of the listed endings (the
    /// reviewed keys that cannot widen access).
    PrefixExcept(&'static str, &'static [&'static str]),
}

impl Pattern {
    pub fn matches(self, key: &str) -> bool {
        match self {
            Pattern::Exact(k) => key == k,
            Pattern::Prefix(p) => key.starts_with(p),
            Pattern::Suffix(s) => key.ends_with(s),
            Pattern::PrefixExcept(p, except) => key
                .strip_prefix(p)
                .is_some_and(|rest| !except.contains(&rest)),
        }
    }

    /// The CEL test of a map key `k` (prefix and suffix tests cost the length of the constant).
    fn cel(self) -> String {
        match self {
            Pattern::Exact(k) => format!("k == '{k}'"),
            Pattern::Prefix(p) => format!("k.startsWith('{p}')"),
            Pattern::Suffix(s) => format!("k.endsWith('{s}')"),
            Pattern::PrefixExcept(p, except) => {
                let mut test = format!("(k.startsWith('{p}')");
                for e in except {
                    test.push_str(&format!(" && k != '{p}{e}'"));
                }
                test.push(')');
                test
            }
        }
    }

    /// How the README shows it.
    pub fn display(self) -> String {
        match self {
            Pattern::Exact(k) => k.to_owned(),
            Pattern::Prefix(p) => format!("{p}*"),
            Pattern::Suffix(s) => format!("*{s}"),
            Pattern::PrefixExcept(p, except) => format!("{p}* except {}", except.join(", ")),
        }
    }

    /// A key the pattern matches, for tests.
    pub fn sample(self) -> String {
        match self {
            Pattern::Exact(k) => k.to_owned(),
            Pattern::Prefix(p) | Pattern::PrefixExcept(p, _) => format!("{p}x"),
            Pattern::Suffix(s) => format!("example.com/x{s}"),
        }
    }
}

/// One refused annotation (or family of annotations).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub pattern: Pattern,
    pub reader: Reader,
    pub family: Family,
    /// The one value with which the key is allowed (only with an [`Pattern::Exact`] pattern).
    pub unless_value: Option<&'static str>,
}

impl Refused {
    /// Whether this rule refuses `key` set to `value`.
    pub fn refuses(&self, key: &str, value: &str) -> bool {
        self.pattern.matches(key) && self.unless_value != Some(value)
    }
}

const fn rule(pattern: Pattern, reader: Reader, family: Family) -> Refused {
    Refused {
        pattern,
        reader,
        family,
        unless_value: None,
    }
}

/// A key refused unless set to `value`.
const fn rule_unless(
    key: &'static str,
    value: &'static str,
    reader: Reader,
    family: Family,
) -> Refused {
    Refused {
        pattern: Pattern::Exact(key),
        reader,
        family,
        unless_value: Some(value),
    }
}

/// ingress-nginx's authentication keys that may stand next to an allowlist (after
/// `nginx.ingress.kubernetes.io/auth-`), reviewed against ingress-nginx's annotation reference
/// (docs/user-guide/nginx-configuration/annotations.md) and its `internal/ingress/annotations/
/// {auth,authreq}` parsers. ingress-nginx writes the allowlist as `allow`/`deny` in the location
/// and authentication as `auth_basic`/`auth_request` in the same location, joined by nginx's
/// `satisfy`, which ingress-nginx sets to `all` unless the `satisfy` annotation says `any`
/// (refused below): a request then needs an allowed address AND valid credentials, and nginx's
/// access phase runs `allow`/`deny` first, so a refused address gets 403 before any
/// authentication answers. Each key only shapes the second test:
/// - `type`, `secret`, `secret-type`, `realm`: basic or digest auth from an htpasswd Secret;
/// - `url`, `method`: the external auth service called by `auth_request` (a subrequest whose
///   answer can only refuse: 2xx passes to the allowlist's verdict, anything else refuses);
/// - `signin`, `signin-redirect-param`: where a 401 from the auth service is redirected — the
///   redirect is only sent after the allowlist let the request through;
/// - `response-headers`, `request-redirect`, `always-set-cookie`: headers copied between the
///   auth service, the upstream and the client;
/// - `keepalive`, `keepalive-requests`, `keepalive-timeout`, `cache-duration`: connections to
///   and caching of the auth service (without `auth-cache-key`, which stays refused, nothing is
///   cached across clients).
///
/// Still refused: `auth-tls-*` (client certificates are configured per server, for every
/// Ingress of the host, and `auth-tls-error-page` redirects before the location's allowlist),
/// `auth-proxy-set-headers` (a ConfigMap reference), `auth-cache-key` (a constant key lets one
/// client's success admit others), `auth-snippet` (a snippet) and any key added later.
pub const NGINX_AUTH_ALLOWED: &[&str] = &[
    "type",
    "secret",
    "secret-type",
    "realm",
    "url",
    "method",
    "signin",
    "signin-redirect-param",
    "response-headers",
    "request-redirect",
    "always-set-cookie",
    "keepalive",
    "keepalive-requests",
    "keepalive-timeout",
    "cache-duration",
];

/// Basic authentication keys that may stand next to an allowlist for HAProxy Kubernetes Ingress
/// (`haproxy.org/auth-*`: `auth-type: basic-auth`, `auth-secret`, `auth-realm`), HAProxy
/// Ingress (`haproxy-ingress.github.io/auth-*`, basic only) and Traefik 1
/// (`ingress.kubernetes.io/auth-type: basic|digest`, `auth-secret`, `auth-realm`). Each
/// controller writes the allowlist as a rule that denies every other address (HAProxy: an
/// `http-request deny` on the source; Traefik 1: the `ipWhiteList` middleware) and basic
/// authentication as a separate rule that only refuses requests without valid credentials;
/// neither replaces nor skips the other, so access needs both. Everything else under these
/// prefixes stays refused: external auth (`auth-url`, `auth-signin`, Traefik 1's forward auth
/// with `auth-trust-headers`), client certificates (`auth-tls-*`) and OAuth were not reviewed.
pub const BASIC_AUTH_ALLOWED: &[&str] = &["type", "secret", "realm"];

use Family::*;
use Pattern::*;
use Reader::*;

/// Every refused annotation. Order only matters for which family a key is reported under when
/// two rules match it (the first wins).
pub const REFUSED: &[Refused] = &[
    // Configuration injection, any controller: ingress-nginx configuration-, server-, stream-,
    // auth- and modsecurity-snippet; haproxy.org backend-config-snippet; nginx.org
    // server-snippets and location-snippets.
    rule(Suffix("-snippet"), Any, Snippet),
    rule(Suffix("-snippets"), Any, Snippet),
    // HAProxy Ingress's configuration snippets carry no -snippet suffix.
    rule(
        Prefix("haproxy-ingress.github.io/config-"),
        HaproxyIngress,
        Snippet,
    ),
    rule(
        Prefix("ingress.kubernetes.io/config-"),
        HaproxyIngress,
        Snippet,
    ),
    // Source ranges of every dialect.
    rule(Suffix("/whitelist-source-range"), Any, SourceRanges),
    rule(Suffix("/allowlist-source-range"), Any, SourceRanges),
    rule(Suffix("/denylist-source-range"), Any, SourceRanges),
    rule(Exact("haproxy.org/allow-list"), HaproxyOrg, SourceRanges),
    rule(Exact("haproxy.org/deny-list"), HaproxyOrg, SourceRanges),
    rule(Exact("haproxy.org/whitelist"), HaproxyOrg, SourceRanges),
    rule(Exact("haproxy.org/blacklist"), HaproxyOrg, SourceRanges),
    rule(Exact("haproxy.com/allow-list"), HaproxyOrg, SourceRanges),
    rule(Exact("haproxy.com/deny-list"), HaproxyOrg, SourceRanges),
    rule(Exact("haproxy.com/whitelist"), HaproxyOrg, SourceRanges),
    rule(Exact("haproxy.com/blacklist"), HaproxyOrg, SourceRanges),
    rule(
        Exact("ingress.kubernetes.io/allow-list"),
        HaproxyOrg,
        SourceRanges,
    ),
    rule(
        Exact("ingress.kubernetes.io/deny-list"),
        HaproxyOrg,
        SourceRanges,
    ),
    rule(
        Exact("ingress.kubernetes.io/whitelist"),
        HaproxyOrg,
        SourceRanges,
    ),
    rule(
        Exact("ingress.kubernetes.io/blacklist"),
        HaproxyOrg,
        SourceRanges,
    ),
    // Authentication, except the reviewed keys (see NGINX_AUTH_ALLOWED, BASIC_AUTH_ALLOWED).
    rule(
        PrefixExcept("nginx.ingress.kubernetes.io/auth-", NGINX_AUTH_ALLOWED),
        IngressNginx,
        Authentication,
    ),
    // `enable-global-auth: "false"` turns off the external auth the controller's ConfigMap sets
    // for every Ingress.
    rule(
        Exact("nginx.ingress.kubernetes.io/enable-global-auth"),
        IngressNginx,
        Authentication,
    ),
    // `satisfy: any` admits a request that passes the allowlist OR authentication.
    rule_unless(
        "nginx.ingress.kubernetes.io/satisfy",
        "all",
        IngressNginx,
        Authentication,
    ),
    rule(
        PrefixExcept("haproxy.org/auth-", BASIC_AUTH_ALLOWED),
        HaproxyOrg,
        Authentication,
    ),
    rule(
        PrefixExcept("haproxy.com/auth-", BASIC_AUTH_ALLOWED),
        HaproxyOrg,
        Authentication,
    ),
    rule(
        PrefixExcept("haproxy-ingress.github.io/auth-", BASIC_AUTH_ALLOWED),
        HaproxyIngress,
        Authentication,
    ),
    rule(
        Prefix("haproxy-ingress.github.io/oauth"),
        HaproxyIngress,
        Authentication,
    ),
    rule(
        Prefix("ingress.kubernetes.io/oauth"),
        HaproxyIngress,
        Authentication,
    ),
    // Traefik 1.x, HAProxy Ingress and HAProxy Kubernetes Ingress share this legacy prefix.
    rule(
        PrefixExcept("ingress.kubernetes.io/auth-", BASIC_AUTH_ALLOWED),
        TraefikV1,
        Authentication,
    ),
    // Client address from a header.
    rule(
        Exact("haproxy.org/src-ip-header"),
        HaproxyOrg,
        ClientAddress,
    ),
    rule(
        Exact("haproxy.com/src-ip-header"),
        HaproxyOrg,
        ClientAddress,
    ),
    rule(
        Exact("ingress.kubernetes.io/src-ip-header"),
        HaproxyOrg,
        ClientAddress,
    ),
    rule(
        Exact("ingress.kubernetes.io/whitelist-x-forwarded-for"),
        TraefikV1,
        ClientAddress,
    ),
    rule(
        Exact("traefik.ingress.kubernetes.io/whitelist-x-forwarded-for"),
        TraefikV1,
        ClientAddress,
    ),
    // Redirects.
    rule(
        Exact("nginx.ingress.kubernetes.io/permanent-redirect"),
        IngressNginx,
        Redirect,
    ),
    rule(
        Exact("nginx.ingress.kubernetes.io/temporal-redirect"),
        IngressNginx,
        Redirect,
    ),
    rule(
        Exact("nginx.ingress.kubernetes.io/from-to-www-redirect"),
        IngressNginx,
        Redirect,
    ),
    rule(
        Exact("nginx.ingress.kubernetes.io/app-root"),
        IngressNginx,
        Redirect,
    ),
    rule(Prefix("haproxy.org/request-redirect"), HaproxyOrg, Redirect),
    rule(Prefix("haproxy.com/request-redirect"), HaproxyOrg, Redirect),
    rule(
        Prefix("ingress.kubernetes.io/request-redirect"),
        HaproxyOrg,
        Redirect,
    ),
    rule(
        Prefix("haproxy-ingress.github.io/redirect-"),
        HaproxyIngress,
        Redirect,
    ),
    rule(
        Exact("haproxy-ingress.github.io/app-root"),
        HaproxyIngress,
        Redirect,
    ),
    rule(
        Prefix("ingress.kubernetes.io/redirect-"),
        HaproxyIngress,
        Redirect,
    ),
    rule(
        Exact("ingress.kubernetes.io/app-root"),
        HaproxyIngress,
        Redirect,
    ),
    rule(
        Prefix("traefik.ingress.kubernetes.io/redirect-"),
        TraefikV1,
        Redirect,
    ),
    rule(
        Exact("traefik.ingress.kubernetes.io/app-root"),
        TraefikV1,
        Redirect,
    ),
    // Around the allowlist: a canary Ingress takes the main Ingress's annotations, not its own;
    // TLS passthrough hands the connection over before HTTP is read. (Kong's plugin lists are
    // checked by plugin type instead: KONG_PLUGINS.)
    rule(
        Prefix("nginx.ingress.kubernetes.io/canary"),
        IngressNginx,
        Bypass,
    ),
    rule(
        Exact("nginx.ingress.kubernetes.io/ssl-passthrough"),
        IngressNginx,
        Bypass,
    ),
    rule(Exact("haproxy.org/ssl-passthrough"), HaproxyOrg, Bypass),
    rule(Exact("haproxy.com/ssl-passthrough"), HaproxyOrg, Bypass),
    rule(
        Prefix("haproxy-ingress.github.io/ssl-passthrough"),
        HaproxyIngress,
        Bypass,
    ),
    rule(
        Prefix("ingress.kubernetes.io/ssl-passthrough"),
        HaproxyIngress,
        Bypass,
    ),
];

/// What Kong does with a plugin type named next to the operator's allowlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginVerdict {
    /// Runs after the operator's `ip-restriction`, or only refuses requests, or only observes:
    /// it cannot admit a request the allowlist refuses.
    Allowed,
    /// A second `ip-restriction`: Kong runs one plugin of each type on a route, so it would
    /// replace the operator's.
    ReplacesAllowlist,
    /// Runs code the DemoWeb's author supplies (Lua on the Kong nodes, or a function the request
    /// is handed to instead of the site).
    RunsCode,
    /// Answers some requests itself in Kong's access phase before `ip-restriction` (a higher
    /// priority), so those answers reach every address.
    AnswersFirst,
    /// Acts outside the request with Kong's own rights (files on the Kong nodes).
    KongRights,
}

impl PluginVerdict {
    /// Why a plugin of this type is refused next to an allowlist (`None`: it is allowed).
    pub fn refusal(self) -> Option<&'static str> {
        match self {
            PluginVerdict::Allowed => None,
            PluginVerdict::ReplacesAllowlist => Some(
                "it is an ip-restriction plugin, and Kong runs one plugin of each type on a route, so it would replace the operator's allowlist",
            ),
            PluginVerdict::RunsCode => Some(
                "it runs code of its own (serverless or custom Lua), which can answer requests the allowlist refuses",
            ),
            PluginVerdict::AnswersFirst => Some(
                "it answers some requests itself before Kong's ip-restriction plugin runs (it has a higher priority), so those answers reach every address",
            ),
            PluginVerdict::KongRights => {
                Some("it acts with the Kong nodes' own rights (writes files on them)")
            }
        }
    }
}

/// Why a plugin type not in [`KONG_PLUGINS`] is refused.
pub const UNKNOWN_PLUGIN: &str = "it is not a plugin Kong ships with that was reviewed: a custom plugin runs Lua code of its own, which can answer requests the allowlist refuses";

/// Kong plugin types, with what they may do next to the operator's `ip-restriction` plugin.
/// A type not listed is refused ([`UNKNOWN_PLUGIN`]): custom plugins are Lua code.
///
/// From Kong's plugin reference (developer.konghq.com/plugins) and its plugin priorities
/// (kong/plugins/*/handler.lua, `PRIORITY`; ip-restriction is 990): plugins of a higher
/// priority run first in the access phase. The authentication plugins (basic-auth 1100, key-auth
/// 1250, jwt 1450, ...) run first but can only refuse (401/403) or name a consumer, even with
/// `anonymous` set; `bot-detection` (2500) only refuses. `cors` (2000) answers preflight
/// requests, `acme` (1705) ACME challenges, `oauth2` (1400) its token and authorize endpoints and
/// `session` (1900) logout requests before ip-restriction runs. `pre-function`/`post-function`
/// run Lua from the plugin's config; `aws-lambda`, `azure-functions` and `openwhisk` hand the
/// request to a function instead of the site; `file-log` writes any path on the Kong nodes.
pub const KONG_PLUGINS: &[(&str, PluginVerdict)] = &[
    ("ip-restriction", PluginVerdict::ReplacesAllowlist),
    ("pre-function", PluginVerdict::RunsCode),
    ("post-function", PluginVerdict::RunsCode),
    ("aws-lambda", PluginVerdict::RunsCode),
    ("azure-functions", PluginVerdict::RunsCode),
    ("openwhisk", PluginVerdict::RunsCode),
    ("exit-transformer", PluginVerdict::RunsCode),
    ("cors", PluginVerdict::AnswersFirst),
    ("acme", PluginVerdict::AnswersFirst),
    ("oauth2", PluginVerdict::AnswersFirst),
    ("session", PluginVerdict::AnswersFirst),
    ("file-log", PluginVerdict::KongRights),
    ("basic-auth", PluginVerdict::Allowed),
    ("key-auth", PluginVerdict::Allowed),
    ("hmac-auth", PluginVerdict::Allowed),
    ("jwt", PluginVerdict::Allowed),
    ("ldap-auth", PluginVerdict::Allowed),
    ("acl", PluginVerdict::Allowed),
    ("bot-detection", PluginVerdict::Allowed),
    ("rate-limiting", PluginVerdict::Allowed),
    ("response-ratelimiting", PluginVerdict::Allowed),
    ("request-size-limiting", PluginVerdict::Allowed),
    ("request-termination", PluginVerdict::Allowed),
    ("proxy-cache", PluginVerdict::Allowed),
    ("request-transformer", PluginVerdict::Allowed),
    ("response-transformer", PluginVerdict::Allowed),
    ("correlation-id", PluginVerdict::Allowed),
    ("grpc-gateway", PluginVerdict::Allowed),
    ("grpc-web", PluginVerdict::Allowed),
    ("http-log", PluginVerdict::Allowed),
    ("tcp-log", PluginVerdict::Allowed),
    ("udp-log", PluginVerdict::Allowed),
    ("syslog", PluginVerdict::Allowed),
    ("loggly", PluginVerdict::Allowed),
    ("datadog", PluginVerdict::Allowed),
    ("statsd", PluginVerdict::Allowed),
    ("prometheus", PluginVerdict::Allowed),
    ("zipkin", PluginVerdict::Allowed),
    ("opentelemetry", PluginVerdict::Allowed),
];

/// Why a plugin of type `plugin` may not stand next to an allowlist (`None`: it may).
pub fn plugin_refusal(plugin: &str) -> Option<&'static str> {
    match KONG_PLUGINS.iter().find(|(name, _)| *name == plugin) {
        Some((_, verdict)) => verdict.refusal(),
        None => Some(UNKNOWN_PLUGIN),
    }
}

/// The Ingress annotations that name Kong plugins: today's key and the one Kong Ingress
/// Controller read before 0.8 (the seeds' form).
pub const KONG_PLUGIN_KEYS: [&str; 2] = ["konghq.com/plugins", "plugins.konghq.com"];

/// The rule an annotation falls under, given whether the DemoWeb sets an allowlist.
pub fn refused(key: &str, value: &str, with_allowlist: bool) -> Option<&'static Refused> {
    REFUSED
        .iter()
        .find(|r| (with_allowlist || !r.family.only_with_allowlist()) && r.refuses(key, value))
}

/// The refused keys of an annotation map, each with its rule, in key order.
pub fn refused_keys(
    annotations: &BTreeMap<String, String>,
    with_allowlist: bool,
) -> Vec<(String, &'static Refused)> {
    annotations
        .iter()
        .filter_map(|(k, v)| refused(k, v, with_allowlist).map(|r| (k.clone(), r)))
        .collect()
}

/// The CEL test "key `k` is in this family", for the rules that refuse a key whatever its value.
fn family_predicate(family: Family) -> String {
    REFUSED
        .iter()
        .filter(|r| r.family == family && r.unless_value.is_none())
        .map(|r| r.pattern.cel())
        .collect::<Vec<_>>()
        .join(" || ")
}

/// The CEL tests "`map` does not hold a key of this family with a refused value", one per
/// value rule: a lookup of the one key rather than a comparison per entry, so the cost estimate
/// counts one value, not `maxProperties` of them.
fn value_clauses(family: Family, map: &str) -> String {
    REFUSED
        .iter()
        .filter(|r| r.family == family)
        .filter_map(|r| match (r.pattern, r.unless_value) {
            (Pattern::Exact(k), Some(v)) => {
                Some(format!(" && (!('{k}' in {map}) || {map}['{k}'] == '{v}')"))
            }
            _ => None,
        })
        .collect()
}

/// The CEL rule on `ingress.annotations` (the map) for a family refused always.
pub fn annotations_rule(family: Family) -> String {
    format!(
        "!self.exists(k, {}){}",
        family_predicate(family),
        value_clauses(family, "self")
    )
}

/// The CEL rule on `ingress` for a family refused next to an allowlist.
pub fn ingress_rule(family: Family) -> String {
    format!(
        "!has(self.allowedSourceRanges) || size(self.allowedSourceRanges) == 0 || !has(self.annotations) || (!self.annotations.exists(k, {}){})",
        family_predicate(family),
        value_clauses(family, "self.annotations")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (controller, key, family it is refused under) — one row per controller and family it has.
    const EXAMPLES: &[(Reader, &str, Family)] = &[
        (
            IngressNginx,
            "nginx.ingress.kubernetes.io/configuration-snippet",
            Snippet,
        ),
        (
            IngressNginx,
            "nginx.ingress.kubernetes.io/server-snippet",
            Snippet,
        ),
        (
            IngressNginx,
            "nginx.ingress.kubernetes.io/stream-snippet",
            Snippet,
        ),
        (
            IngressNginx,
            "nginx.ingress.kubernetes.io/modsecurity-snippet",
            Snippet,
        ),
        (
            IngressNginx,
            "nginx.ingress.kubernetes.io/whitelist-source-range",
            SourceRanges,
        ),
        (
            IngressNginx,
            "nginx.ingress.kubernetes.io/allowlist-source-range",
            SourceRanges,
        ),
        (
            IngressNginx,
            "nginx.ingress.kubernetes.io/denylist-source-range",
            SourceRanges,
        ),
        (
            IngressNginx,
            "nginx.ingress.kubernetes.io/auth-tls-verify-client",
            Authentication,
        ),
        (
            IngressNginx,
            "nginx.ingress.kubernetes.io/auth-cache-key",
            Authentication,
        ),
        (
            IngressNginx,
            "nginx.ingress.kubernetes.io/auth-proxy-set-headers",
            Authentication,
        ),
        (
            IngressNginx,
            "nginx.ingress.kubernetes.io/enable-global-auth",
            Authentication,
        ),
        (
            IngressNginx,
            "nginx.ingress.kubernetes.io/satisfy",
            Authentication,
        ),
        (
            IngressNginx,
            "nginx.ingress.kubernetes.io/permanent-redirect",
            Redirect,
        ),
        (
            IngressNginx,
            "nginx.ingress.kubernetes.io/app-root",
            Redirect,
        ),
        (IngressNginx, "nginx.ingress.kubernetes.io/canary", Bypass),
        (
            IngressNginx,
            "nginx.ingress.kubernetes.io/canary-by-header",
            Bypass,
        ),
        (
            IngressNginx,
            "nginx.ingress.kubernetes.io/ssl-passthrough",
            Bypass,
        ),
        (NginxInc, "nginx.org/server-snippets", Snippet),
        (NginxInc, "nginx.org/location-snippets", Snippet),
        (HaproxyOrg, "haproxy.org/backend-config-snippet", Snippet),
        (HaproxyOrg, "haproxy.org/allow-list", SourceRanges),
        (HaproxyOrg, "haproxy.com/allow-list", SourceRanges),
        (HaproxyOrg, "ingress.kubernetes.io/allow-list", SourceRanges),
        (HaproxyOrg, "haproxy.org/whitelist", SourceRanges),
        (HaproxyOrg, "haproxy.org/deny-list", SourceRanges),
        (HaproxyOrg, "haproxy.org/blacklist", SourceRanges),
        (HaproxyOrg, "haproxy.org/auth-url", Authentication),
        (HaproxyOrg, "haproxy.com/auth-other", Authentication),
        (HaproxyOrg, "haproxy.org/src-ip-header", ClientAddress),
        (HaproxyOrg, "haproxy.org/request-redirect", Redirect),
        (HaproxyOrg, "haproxy.org/ssl-passthrough", Bypass),
        (
            HaproxyIngress,
            "haproxy-ingress.github.io/config-backend",
            Snippet,
        ),
        (
            HaproxyIngress,
            "ingress.kubernetes.io/config-backend",
            Snippet,
        ),
        (
            HaproxyIngress,
            "haproxy-ingress.github.io/allowlist-source-range",
            SourceRanges,
        ),
        (
            HaproxyIngress,
            "haproxy-ingress.github.io/whitelist-source-range",
            SourceRanges,
        ),
        (
            HaproxyIngress,
            "haproxy-ingress.github.io/denylist-source-range",
            SourceRanges,
        ),
        (
            HaproxyIngress,
            "haproxy-ingress.github.io/auth-url",
            Authentication,
        ),
        (
            HaproxyIngress,
            "haproxy-ingress.github.io/oauth",
            Authentication,
        ),
        (
            HaproxyIngress,
            "haproxy-ingress.github.io/redirect-to",
            Redirect,
        ),
        (
            HaproxyIngress,
            "haproxy-ingress.github.io/ssl-passthrough",
            Bypass,
        ),
        (
            TraefikV1,
            "traefik.ingress.kubernetes.io/whitelist-source-range",
            SourceRanges,
        ),
        (
            TraefikV1,
            "ingress.kubernetes.io/whitelist-source-range",
            SourceRanges,
        ),
        (
            TraefikV1,
            "ingress.kubernetes.io/whitelist-x-forwarded-for",
            ClientAddress,
        ),
        (TraefikV1, "ingress.kubernetes.io/auth-url", Authentication),
        (
            TraefikV1,
            "ingress.kubernetes.io/auth-trust-headers",
            Authentication,
        ),
        (
            TraefikV1,
            "traefik.ingress.kubernetes.io/redirect-regex",
            Redirect,
        ),
        (
            TraefikV1,
            "traefik.ingress.kubernetes.io/app-root",
            Redirect,
        ),
    ];

    /// Keys that stay allowed, with or without an allowlist.
    const ALLOWED: &[&str] = &[
        "nginx.ingress.kubernetes.io/proxy-body-size",
        "nginx.ingress.kubernetes.io/rewrite-target",
        "nginx.ingress.kubernetes.io/ssl-redirect",
        "nginx.ingress.kubernetes.io/limit-rps",
        "haproxy.org/timeout-server",
        "haproxy.org/ssl-redirect",
        "traefik.ingress.kubernetes.io/router.middlewares",
        "traefik.ingress.kubernetes.io/router.entrypoints",
        "traefik.ingress.kubernetes.io/router.tls",
        "konghq.com/strip-path",
        "konghq.com/protocols",
        "example.com/team",
        "snippet",
        "example.com/snippet-count",
        // Checked by plugin type by the operator (KONG_PLUGINS), not by key.
        "konghq.com/plugins",
        "plugins.konghq.com",
        // The reviewed authentication keys.
        "nginx.ingress.kubernetes.io/auth-type",
        "nginx.ingress.kubernetes.io/auth-secret",
        "nginx.ingress.kubernetes.io/auth-secret-type",
        "nginx.ingress.kubernetes.io/auth-realm",
        "nginx.ingress.kubernetes.io/auth-url",
        "nginx.ingress.kubernetes.io/auth-method",
        "nginx.ingress.kubernetes.io/auth-signin",
        "nginx.ingress.kubernetes.io/auth-response-headers",
        "haproxy.org/auth-type",
        "haproxy.com/auth-secret",
        "haproxy.org/auth-realm",
        "haproxy-ingress.github.io/auth-type",
        "haproxy-ingress.github.io/auth-secret",
        "ingress.kubernetes.io/auth-type",
        "ingress.kubernetes.io/auth-secret",
        "ingress.kubernetes.io/auth-realm",
    ];

    #[test]
    fn every_controller_and_family_is_refused_with_or_without_an_allowlist() {
        for (reader, key, family) in EXAMPLES {
            let with = refused(key, "x", true).unwrap_or_else(|| panic!("{key} is not refused"));
            assert_eq!(with.family, *family, "{key}");
            assert!(
                with.reader == *reader || with.reader == Any,
                "{key}: read by {:?}, expected {reader:?}",
                with.reader
            );
            let without = refused(key, "x", false);
            if family.only_with_allowlist() {
                assert_eq!(without, None, "{key} is refused without an allowlist");
            } else {
                assert_eq!(without.map(|r| r.family), Some(*family), "{key}");
            }
        }
        for key in ALLOWED {
            assert_eq!(refused(key, "x", true), None, "{key}");
        }
        // Every family is exercised, and every controller that has rules.
        for family in Family::ALL {
            assert!(EXAMPLES.iter().any(|(_, _, f)| *f == family), "{family:?}");
        }
        for r in REFUSED {
            assert!(
                r.reader == Any || EXAMPLES.iter().any(|(reader, _, _)| *reader == r.reader),
                "{:?}",
                r.reader
            );
        }
    }

    #[test]
    fn satisfy_is_refused_unless_all() {
        let key = "nginx.ingress.kubernetes.io/satisfy";
        assert_eq!(refused(key, "all", true), None);
        for value in ["any", "ANY", "", "all "] {
            assert_eq!(
                refused(key, value, true).map(|r| r.family),
                Some(Authentication),
                "{value:?}"
            );
            assert_eq!(refused(key, value, false), None, "{value:?}");
        }
        // Value rules are exact keys only, and never refused always (annotations_rule has no
        // `self.annotations`).
        for r in REFUSED.iter().filter(|r| r.unless_value.is_some()) {
            assert!(matches!(r.pattern, Exact(_)), "{r:?}");
            assert!(r.family.only_with_allowlist(), "{r:?}");
        }
        let rule = ingress_rule(Authentication);
        assert!(
            rule.contains("(!('nginx.ingress.kubernetes.io/satisfy' in self.annotations) || self.annotations['nginx.ingress.kubernetes.io/satisfy'] == 'all')"),
            "{rule}"
        );
        assert!(
            rule.contains("k != 'nginx.ingress.kubernetes.io/auth-url'"),
            "{rule}"
        );
    }

    #[test]
    fn kong_plugin_types() {
        for refused_type in [
            "ip-restriction",
            "pre-function",
            "post-function",
            "aws-lambda",
            "cors",
            "oauth2",
            "file-log",
            "my-custom-lua",
            "",
        ] {
            assert!(plugin_refusal(refused_type).is_some(), "{refused_type}");
        }
        assert!(
            plugin_refusal("ip-restriction")
                .unwrap()
                .contains("replace")
        );
        assert!(plugin_refusal("pre-function").unwrap().contains("code"));
        assert!(plugin_refusal("my-custom-lua").unwrap().contains("custom"));
        for allowed in [
            "basic-auth",
            "key-auth",
            "acl",
            "rate-limiting",
            "prometheus",
        ] {
            assert_eq!(plugin_refusal(allowed), None, "{allowed}");
        }
        let mut names: Vec<&str> = KONG_PLUGINS.iter().map(|(n, _)| *n).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), KONG_PLUGINS.len(), "each type once");
    }

    #[test]
    fn every_rule_is_reachable() {
        // A rule shadowed by an earlier one would report the wrong family.
        for (i, r) in REFUSED.iter().enumerate() {
            let sample = r.pattern.sample();
            let first = REFUSED
                .iter()
                .position(|o| o.pattern.matches(&sample))
                .expect("matches itself");
            assert!(
                first == i || REFUSED[first].family == r.family,
                "{sample}: rule {i} is shadowed by rule {first} of another family"
            );
        }
    }

    #[test]
    fn cel_rules_name_every_pattern() {
        let rule = ingress_rule(Bypass);
        assert!(rule.contains("k.startsWith('nginx.ingress.kubernetes.io/canary')"));
        assert!(!rule.contains("konghq.com/plugins"));
        assert!(annotations_rule(Snippet).contains("k.endsWith('-snippet')"));
        for r in REFUSED {
            assert!(!r.pattern.display().contains('\''), "{r:?}");
        }
    }
}
