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
//! of their own, are refused always. Annotations that authenticate, redirect, trust a client-sent
//! address or route around the allowlist are refused when `allowedSourceRanges` is set. The
//! schema cannot know which controller serves the DemoWeb (that depends on IngressClasses, which
//! change after admission), so it refuses every controller's: a key that means nothing to the
//! controller in use costs nothing to leave out, and a rule that depended on the cluster could
//! turn a stored DemoWeb invalid later. Traefik v3 also reads ingress-nginx's keys, which is one
//! more reason not to trust "the other controller's" annotations.

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
    /// Kong Ingress Controller.
    Kong,
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
    /// Requests routed around the allowlist (canary, TLS passthrough, plugin lists).
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
                "with ingress.allowedSourceRanges set, ingress.annotations must not configure authentication (auth-*, oauth, satisfy, enable-global-auth): it changes who may reach the site next to the allowlist"
            }
            Family::ClientAddress => {
                "with ingress.allowedSourceRanges set, ingress.annotations must not take the client address from a request header (src-ip-header, whitelist-x-forwarded-for): a client can forge it and pass the allowlist"
            }
            Family::Redirect => {
                "with ingress.allowedSourceRanges set, ingress.annotations must not redirect requests (permanent-redirect, temporal-redirect, request-redirect, redirect-*, app-root): redirects are answered before the allowlist is checked"
            }
            Family::Bypass => {
                "with ingress.allowedSourceRanges set, ingress.annotations must not route requests around the allowlist (canary-*, ssl-passthrough, Kong plugin lists): the controller ignores the allowlist for them, or a listed plugin may replace it"
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
}

impl Pattern {
    pub fn matches(self, key: &str) -> bool {
        match self {
            Pattern::Exact(k) => key == k,
            Pattern::Prefix(p) => key.starts_with(p),
            Pattern::Suffix(s) => key.ends_with(s),
        }
    }

    /// The CEL test of a map key `k` (prefix and suffix tests cost the length of the constant).
    fn cel(self) -> String {
        match self {
            Pattern::Exact(k) => format!("k == '{k}'"),
            Pattern::Prefix(p) => format!("k.startsWith('{p}')"),
            Pattern::Suffix(s) => format!("k.endsWith('{s}')"),
        }
    }

    /// How the README shows it.
    pub fn display(self) -> String {
        match self {
            Pattern::Exact(k) => k.to_owned(),
            Pattern::Prefix(p) => format!("{p}*"),
            Pattern::Suffix(s) => format!("*{s}"),
        }
    }
}

/// One refused annotation (or family of annotations).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub pattern: Pattern,
    pub reader: Reader,
    pub family: Family,
}

const fn rule(pattern: Pattern, reader: Reader, family: Family) -> Refused {
    Refused {
        pattern,
        reader,
        family,
    }
}

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
    // Authentication.
    rule(
        Prefix("nginx.ingress.kubernetes.io/auth-"),
        IngressNginx,
        Authentication,
    ),
    rule(
        Exact("nginx.ingress.kubernetes.io/enable-global-auth"),
        IngressNginx,
        Authentication,
    ),
    rule(
        Exact("nginx.ingress.kubernetes.io/satisfy"),
        IngressNginx,
        Authentication,
    ),
    rule(Prefix("haproxy.org/auth-"), HaproxyOrg, Authentication),
    rule(Prefix("haproxy.com/auth-"), HaproxyOrg, Authentication),
    rule(
        Prefix("haproxy-ingress.github.io/auth-"),
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
        Prefix("ingress.kubernetes.io/auth-"),
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
    // TLS passthrough hands the connection over before HTTP is read; a plugin list may name an
    // ip-restriction plugin that replaces the operator's (Kong runs one plugin of each kind).
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
    rule(Exact("konghq.com/plugins"), Kong, Bypass),
    // The key Kong Ingress Controller read before 0.8 (the seeds' form).
    rule(Exact("plugins.konghq.com"), Kong, Bypass),
];

/// The rule a key falls under, given whether the DemoWeb sets an allowlist.
pub fn refused(key: &str, with_allowlist: bool) -> Option<&'static Refused> {
    REFUSED
        .iter()
        .find(|r| (with_allowlist || !r.family.only_with_allowlist()) && r.pattern.matches(key))
}

/// The refused keys of an annotation map, each with its rule, in key order.
pub fn refused_keys(
    annotations: &BTreeMap<String, String>,
    with_allowlist: bool,
) -> Vec<(String, &'static Refused)> {
    annotations
        .keys()
        .filter_map(|k| refused(k, with_allowlist).map(|r| (k.clone(), r)))
        .collect()
}

/// The CEL test "key `k` is in this family".
fn family_predicate(family: Family) -> String {
    REFUSED
        .iter()
        .filter(|r| r.family == family)
        .map(|r| r.pattern.cel())
        .collect::<Vec<_>>()
        .join(" || ")
}

/// The CEL rule on `ingress.annotations` (the map) for a family refused always.
pub fn annotations_rule(family: Family) -> String {
    format!("!self.exists(k, {})", family_predicate(family))
}

/// The CEL rule on `ingress` for a family refused next to an allowlist.
pub fn ingress_rule(family: Family) -> String {
    format!(
        "!has(self.allowedSourceRanges) || size(self.allowedSourceRanges) == 0 || !has(self.annotations) || !self.annotations.exists(k, {})",
        family_predicate(family)
    )
}

impl Reader {
    fn name(self) -> &'static str {
        match self {
            Any => "any controller",
            IngressNginx => "ingress-nginx",
            NginxInc => "NGINX Inc.",
            HaproxyOrg => "HAProxy Kubernetes Ingress",
            HaproxyIngress => "HAProxy Ingress",
            TraefikV1 => "Traefik 1",
            Kong => "Kong",
        }
    }
}

impl Family {
    fn title(self) -> &'static str {
        match self {
            Snippet => "Configuration snippets",
            SourceRanges => "Source ranges of their own",
            Authentication => "Authentication",
            ClientAddress => "Client address from a request header",
            Redirect => "Redirects",
            Bypass => "Around the allowlist",
        }
    }
}

/// The README's table of refused annotations, rendered from [`REFUSED`].
pub fn readme_table() -> String {
    let mut out = String::from("| What | Refused | Annotations (controller) |\n|---|---|---|\n");
    for family in Family::ALL {
        let mut by_reader: BTreeMap<Reader, Vec<String>> = BTreeMap::new();
        for r in REFUSED.iter().filter(|r| r.family == family) {
            by_reader
                .entry(r.reader)
                .or_default()
                .push(format!("`{}`", r.pattern.display()));
        }
        let keys = by_reader
            .iter()
            .map(|(reader, keys)| format!("{} ({})", keys.join(", "), reader.name()))
            .collect::<Vec<_>>()
            .join("; ");
        let when = if family.only_with_allowlist() {
            "with `allowedSourceRanges`"
        } else {
            "always"
        };
        out.push_str(&format!("| {} | {when} | {keys} |\n", family.title()));
    }
    out
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
            "nginx.ingress.kubernetes.io/auth-url",
            Authentication,
        ),
        (
            IngressNginx,
            "nginx.ingress.kubernetes.io/auth-signin",
            Authentication,
        ),
        (
            IngressNginx,
            "nginx.ingress.kubernetes.io/auth-tls-verify-client",
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
        (HaproxyOrg, "haproxy.org/auth-type", Authentication),
        (HaproxyOrg, "haproxy.com/auth-secret", Authentication),
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
        (TraefikV1, "ingress.kubernetes.io/auth-type", Authentication),
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
        (Kong, "konghq.com/plugins", Bypass),
        (Kong, "plugins.konghq.com", Bypass),
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
    ];

    #[test]
    fn every_controller_and_family_is_refused_with_or_without_an_allowlist() {
        for (reader, key, family) in EXAMPLES {
            let with = refused(key, true).unwrap_or_else(|| panic!("{key} is not refused"));
            assert_eq!(with.family, *family, "{key}");
            assert!(
                with.reader == *reader || with.reader == Any,
                "{key}: read by {:?}, expected {reader:?}",
                with.reader
            );
            let without = refused(key, false);
            if family.only_with_allowlist() {
                assert_eq!(without, None, "{key} is refused without an allowlist");
            } else {
                assert_eq!(without.map(|r| r.family), Some(*family), "{key}");
            }
        }
        for key in ALLOWED {
            assert_eq!(refused(key, true), None, "{key}");
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
    fn every_rule_is_reachable() {
        // A rule shadowed by an earlier one would report the wrong family.
        for (i, r) in REFUSED.iter().enumerate() {
            let sample = match r.pattern {
                Exact(k) => k.to_owned(),
                Prefix(p) => format!("{p}x"),
                Suffix(s) => format!("example.com/x{s}"),
            };
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
        assert!(rule.contains("k == 'konghq.com/plugins'"));
        assert!(annotations_rule(Snippet).contains("k.endsWith('-snippet')"));
        for r in REFUSED {
            assert!(!r.pattern.display().contains('\''), "{r:?}");
        }
    }
}
