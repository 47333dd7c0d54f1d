//! Pure Ingress builder and the IP-allowlist dialects of the ingress controllers we know.
//! Fails closed: an allowlist we cannot express means no Ingress at all.

use std::collections::BTreeMap;

use demoweb_crd::DemoWeb;
use demoweb_crd::annotations::{self, refused_keys};
use demoweb_crd::demoweb::IngressSpec;
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressClass, IngressRule,
    IngressServiceBackend, IngressSpec as K8sIngressSpec, IngressTLS, ServiceBackendPort,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceDefinitionVersion,
};
use kube::ResourceExt;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::json;

use demoweb_crd::conditions::reason;

use super::desired::{PORT_NAME, allowlist_name, ingress_name, service_name};
use crate::vocabulary::child_meta;

pub const TRAEFIK_V1_ANNOTATION: &str = "traefik.ingress.kubernetes.io/whitelist-source-range";
pub const TRAEFIK_MIDDLEWARES_ANNOTATION: &str = "traefik.ingress.kubernetes.io/router.middlewares";
pub const NGINX_ANNOTATION: &str = "nginx.ingress.kubernetes.io/whitelist-source-range";
pub const HAPROXY_ANNOTATION: &str = "haproxy.org/allow-list";
pub const KONG_PLUGINS_ANNOTATION: &str = "konghq.com/plugins";
pub const KONG_LEGACY_PLUGINS_ANNOTATION: &str = "plugins.konghq.com";
const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";

pub const CONTROLLER_TRAEFIK: &str = "traefik.io/ingress-controller";
pub const CONTROLLER_NGINX: &str = "k8s.io/ingress-nginx";
pub const CONTROLLER_AKS_APP_ROUTING: &str = "webapprouting.kubernetes.azure.com/nginx";
pub const CONTROLLER_KONG: &str = "ingress-controllers.konghq.com/kong";
pub const CONTROLLER_HAPROXY_PREFIX: &str = "haproxy.org/ingress-controller";

/// What the operator knows to say in the message when it cannot express an allowlist.
pub const SUPPORTED: &str = "Traefik (traefik.io/ingress-controller, or class \"traefik\"), ingress-nginx (k8s.io/ingress-nginx, AKS app routing, or class \"nginx\"), Kong (ingress-controllers.konghq.com/kong, or class \"kong\") and HAProxy (haproxy.org/ingress-controller/*, or class \"haproxy\")";

/// A Traefik Middleware API the cluster serves, with the name of its allowlist field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraefikMiddlewareApi {
    pub group: &'static str,
    /// `ipAllowList` (Traefik v3) or `ipWhiteList` (Traefik v2).
    pub field: &'static str,
}

pub const TRAEFIK_V3: TraefikMiddlewareApi = TraefikMiddlewareApi {
    group: "traefik.io",
    field: "ipAllowList",
};
pub const TRAEFIK_V2: TraefikMiddlewareApi = TraefikMiddlewareApi {
    group: "traefik.io",
    field: "ipWhiteList",
};
pub const TRAEFIK_V2_LEGACY: TraefikMiddlewareApi = TraefikMiddlewareApi {
    group: "traefik.containo.us",
    field: "ipWhiteList",
};

/// What the cluster offers for allowlists, found through discovery.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngressCapabilities {
    pub traefik_middleware: Option<TraefikMiddlewareApi>,
    pub kong_plugin: bool,
}

/// Whether a CRD serves `version` now: established, not being deleted, the version served.
pub(crate) fn served_version<'a>(
    crd: &'a CustomResourceDefinition,
    version: &str,
) -> Option<&'a CustomResourceDefinitionVersion> {
    let established = crd
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        });
    if !established || crd.metadata.deletion_timestamp.is_some() {
        return None;
    }
    crd.spec
        .versions
        .iter()
        .find(|v| v.name == version && v.served)
}

/// The allowlist APIs the cluster serves, from the CRDs of Traefik's two Middleware groups and
/// Kong's KongPlugin (`None` when absent). Traefik v3 renamed `ipWhiteList` to `ipAllowList`
/// in the same group: the served version's schema tells which one this cluster has, and
/// without `ipAllowList` in it the older field, which v3 still reads, is written.
pub fn capabilities_from(
    traefik: Option<&CustomResourceDefinition>,
    traefik_legacy: Option<&CustomResourceDefinition>,
    kong: Option<&CustomResourceDefinition>,
) -> IngressCapabilities {
    let traefik_middleware = match traefik.and_then(|c| served_version(c, "v1alpha1")) {
        Some(version) => {
            let schema = serde_json::to_string(&version.schema).unwrap_or_default();
            Some(if schema.contains("\"ipAllowList\"") {
                TRAEFIK_V3
            } else {
                TRAEFIK_V2
            })
        }
        None => traefik_legacy
            .and_then(|c| served_version(c, "v1alpha1"))
            .map(|_| TRAEFIK_V2_LEGACY),
    };
    IngressCapabilities {
        traefik_middleware,
        kong_plugin: kong.and_then(|c| served_version(c, "v1")).is_some(),
    }
}

/// How an allowlist is written for one ingress controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    TraefikV1Annotation,
    TraefikMiddleware(TraefikMiddlewareApi),
    IngressNginx,
    Kong,
    Haproxy,
}

/// The IngressClass an Ingress ends up with: named, or the cluster's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedClass {
    pub name: Option<String>,
    pub controller: Option<String>,
}

/// Finds the class's controller from the IngressClass objects; with no class name, the default class.
pub fn resolve_class(class_name: Option<&str>, classes: &[IngressClass]) -> ResolvedClass {
    let controller_of = |c: &IngressClass| c.spec.as_ref().and_then(|s| s.controller.clone());
    match class_name {
        Some(name) => ResolvedClass {
            name: Some(name.to_owned()),
            controller: classes
                .iter()
                .find(|c| c.metadata.name.as_deref() == Some(name))
                .and_then(controller_of),
        },
        None => classes
            .iter()
            .filter(|c| {
                c.annotations()
                    .get(DEFAULT_CLASS_ANNOTATION)
                    .is_some_and(|v| v == "true")
            })
            .min_by_key(|c| c.metadata.name.clone())
            .map(|c| ResolvedClass {
                name: c.metadata.name.clone(),
                controller: controller_of(c),
            })
            .unwrap_or_default(),
    }
}

/// Which kind of controller a class is, from its `spec.controller` or else its well-known name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControllerKind {
    /// An IngressClass with Traefik's controller name: Traefik 2.3 or later.
    Traefik,
    /// The class name `traefik` without an IngressClass object: Traefik 1.x (which predates
    /// IngressClass objects), or a later Traefik that nobody gave a class object.
    TraefikByName,
    Nginx,
    Kong,
    Haproxy,
}

/// The controller family of a class, when we know it.
pub fn family(class: &ResolvedClass) -> Option<ControllerKind> {
    if let Some(controller) = &class.controller {
        return match controller.as_str() {
            CONTROLLER_TRAEFIK => Some(ControllerKind::Traefik),
            CONTROLLER_NGINX | CONTROLLER_AKS_APP_ROUTING => Some(ControllerKind::Nginx),
            CONTROLLER_KONG => Some(ControllerKind::Kong),
            c if c.starts_with(CONTROLLER_HAPROXY_PREFIX) => Some(ControllerKind::Haproxy),
            _ => None,
        };
    }
    match class.name.as_deref()? {
        "traefik" => Some(ControllerKind::TraefikByName),
        "nginx" => Some(ControllerKind::Nginx),
        "kong" => Some(ControllerKind::Kong),
        "haproxy" => Some(ControllerKind::Haproxy),
        _ => None,
    }
}

/// Why no allowlist can be written; each kind is its own condition reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The controller is unknown: nothing is created, the last good Ingress (whose class and
    /// allowlist are unchanged) stays.
    UnsupportedClass(String),
    /// The controller's allowlist needs an API the cluster does not serve: our Ingress is
    /// withdrawn, since whatever allowlist it carried can no longer be enforced.
    MissingApi(String),
    /// A Kong plugin named next to the allowlist is missing or could widen access (see
    /// `kong.rs`): our Ingress is withdrawn, since Kong would run that plugin beside, or instead
    /// of, the allowlist.
    KongPlugin(String),
}

impl Refusal {
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::UnsupportedClass(_) => reason::UNSUPPORTED_INGRESS_CLASS,
            Refusal::MissingApi(_) => reason::ALLOWLIST_API_MISSING,
            Refusal::KongPlugin(_) => reason::KONG_PLUGIN_REFUSED,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Refusal::UnsupportedClass(m) | Refusal::MissingApi(m) | Refusal::KongPlugin(m) => m,
        }
    }
}

/// The decision table: controller family × APIs served → dialect or refusal.
///
/// | class                                   | APIs served                          | allowlist                        |
/// |-----------------------------------------|--------------------------------------|----------------------------------|
/// | controller `traefik.io/ingress-controller` | a Traefik Middleware API           | Middleware (`ipAllowList` or `ipWhiteList`) |
/// | controller `traefik.io/ingress-controller` | none                               | refused: Middleware API missing  |
/// | name `traefik`, no IngressClass object  | a Traefik Middleware API             | Middleware                       |
/// | name `traefik`, no IngressClass object  | none                                 | Traefik v1 annotation            |
/// | ingress-nginx, AKS app routing, `nginx` | any                                  | ingress-nginx annotation         |
/// | HAProxy (`haproxy.org/...`), `haproxy`  | any                                  | `haproxy.org/allow-list`         |
/// | Kong, `kong`                            | KongPlugin API                       | KongPlugin                       |
/// | Kong, `kong`                            | none                                 | refused: KongPlugin API missing  |
/// | anything else, or no class              | any                                  | refused: unsupported class       |
pub fn choose_dialect(
    class: &ResolvedClass,
    caps: &IngressCapabilities,
) -> Result<Dialect, Refusal> {
    let describe = || match (&class.name, &class.controller) {
        (Some(n), Some(c)) => format!("ingress class {n:?} (controller {c:?})"),
        (Some(n), None) => format!("ingress class {n:?}"),
        (None, _) => {
            "no ingress class (className is unset and the cluster has no default IngressClass)"
                .to_owned()
        }
    };
    match (family(class), caps.traefik_middleware) {
        (Some(ControllerKind::Traefik | ControllerKind::TraefikByName), Some(api)) => {
            Ok(Dialect::TraefikMiddleware(api))
        }
        (Some(ControllerKind::TraefikByName), None) => Ok(Dialect::TraefikV1Annotation),
        (Some(ControllerKind::Traefik), None) => Err(Refusal::MissingApi(format!(
            "{} is Traefik 2 or later, which ignores the Traefik 1 allowlist annotation, and the cluster serves no Middleware API (middlewares.traefik.io or middlewares.traefik.containo.us), so the allowlist cannot be written and the site is not exposed; install Traefik's CRDs (the Traefik Helm chart installs them, or kubectl apply the kubernetes-crd-definition-v1.yml of your Traefik version)",
            describe()
        ))),
        (Some(ControllerKind::Nginx), _) => Ok(Dialect::IngressNginx),
        (Some(ControllerKind::Haproxy), _) => Ok(Dialect::Haproxy),
        (Some(ControllerKind::Kong), _) if caps.kong_plugin => Ok(Dialect::Kong),
        (Some(ControllerKind::Kong), _) => Err(Refusal::MissingApi(format!(
            "{} is Kong, but the cluster does not serve the KongPlugin API (kongplugins.configuration.konghq.com), so the allowlist cannot be written and the site is not exposed; install Kong's CRDs (the Kong Ingress Controller Helm chart installs them)",
            describe()
        ))),
        (None, _) => Err(Refusal::UnsupportedClass(format!(
            "{}: no known way to write allowedSourceRanges, so the site is not exposed; supported: {SUPPORTED}",
            describe()
        ))),
    }
}

/// The controller family whose APIs decide this DemoWeb's allowlist, if it has one.
pub fn allowlist_family(dw: &DemoWeb, classes: &[IngressClass]) -> Option<ControllerKind> {
    let spec = dw.spec.ingress.as_ref()?;
    if spec.allowed_source_ranges.is_empty() {
        return None;
    }
    family(&resolve_class(spec.class_name.as_deref(), classes))
}

/// An allowlist in one dialect: annotations for the Ingress and possibly an extra object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Allowlist {
    pub annotations: BTreeMap<String, String>,
    pub extra: Option<DynamicObject>,
}

pub fn middleware_resource(api: TraefikMiddlewareApi) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(api.group, "v1alpha1", "Middleware"),
        "middlewares",
    )
}

pub fn kong_plugin_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("configuration.konghq.com", "v1", "KongPlugin"),
        "kongplugins",
    )
}

/// The API resource of an allowlist object built by [`allowlist`], and its kind.
pub fn allowlist_resource(obj: &DynamicObject) -> (ApiResource, String) {
    let types = obj.types.clone().unwrap_or_default();
    let resource = match types.api_version.split_once('/') {
        Some((group, _)) if types.kind == "Middleware" => {
            // Only the group matters for the resource; v2 and v3 share `traefik.io`.
            let api = if group == TRAEFIK_V2_LEGACY.group {
                TRAEFIK_V2_LEGACY
            } else {
                TRAEFIK_V3
            };
            middleware_resource(api)
        }
        _ => kong_plugin_resource(),
    };
    (resource, types.kind)
}

/// Puts `ours` first in a comma-separated annotation value the user may already have set: a
/// chain runs in order, so nothing the user adds runs before the allowlist.
fn prepend_list(existing: Option<&String>, ours: &str) -> String {
    let others = existing
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty() && *s != ours);
    std::iter::once(ours)
        .chain(others)
        .collect::<Vec<_>>()
        .join(",")
}

/// The allowlist for `ranges` in `dialect`, merged with the user's annotations.
pub fn allowlist(dw: &DemoWeb, dialect: Dialect, ranges: &[String]) -> Allowlist {
    let user = dw
        .spec
        .ingress
        .as_ref()
        .map(|i| &i.annotations)
        .cloned()
        .unwrap_or_default();
    let joined = ranges.join(",");
    let mut annotations = BTreeMap::new();
    let name = allowlist_name(&dw.name_any());
    let mut extra = None;
    match dialect {
        Dialect::TraefikV1Annotation => {
            annotations.insert(TRAEFIK_V1_ANNOTATION.to_owned(), joined);
        }
        Dialect::IngressNginx => {
            annotations.insert(NGINX_ANNOTATION.to_owned(), joined);
        }
        Dialect::Haproxy => {
            annotations.insert(HAPROXY_ANNOTATION.to_owned(), joined);
        }
        Dialect::TraefikMiddleware(api) => {
            let reference = format!(
                "{}-{name}@kubernetescrd",
                dw.namespace().unwrap_or_default()
            );
            annotations.insert(
                TRAEFIK_MIDDLEWARES_ANNOTATION.to_owned(),
                prepend_list(user.get(TRAEFIK_MIDDLEWARES_ANNOTATION), &reference),
            );
            let mut obj = DynamicObject::new(&name, &middleware_resource(api));
            obj.metadata = child_meta(dw, name.clone(), "allowlist");
            obj.data = json!({ "spec": { api.field: { "sourceRange": ranges } } });
            extra = Some(obj);
        }
        Dialect::Kong => {
            // Ours first, then the user's plugins from either key (their types were checked:
            // kong.rs). The legacy key, when set, carries the same list, so whichever key the
            // controller reads names the allowlist.
            let user_plugins = [KONG_PLUGINS_ANNOTATION, KONG_LEGACY_PLUGINS_ANNOTATION]
                .iter()
                .filter_map(|k| user.get(*k))
                .cloned()
                .collect::<Vec<_>>()
                .join(",");
            let list = prepend_list(Some(&user_plugins), &name);
            if user.contains_key(KONG_LEGACY_PLUGINS_ANNOTATION) {
                annotations.insert(KONG_LEGACY_PLUGINS_ANNOTATION.to_owned(), list.clone());
            }
            annotations.insert(KONG_PLUGINS_ANNOTATION.to_owned(), list);
            let mut obj = DynamicObject::new(&name, &kong_plugin_resource());
            obj.metadata = child_meta(dw, name.clone(), "allowlist");
            obj.data = json!({ "plugin": "ip-restriction", "config": { "allow": ranges } });
            extra = Some(obj);
        }
    }
    Allowlist { annotations, extra }
}

/// The DemoWeb without the Ingress annotations it may not carry (objects stored before the schema
/// refused them, or under a CRD that does not), and a message naming what was left out.
pub fn strip_refused_annotations(dw: &DemoWeb) -> (DemoWeb, Option<String>) {
    let Some(spec) = &dw.spec.ingress else {
        return (dw.clone(), None);
    };
    let refused = refused_keys(&spec.annotations, !spec.allowed_source_ranges.is_empty());
    if refused.is_empty() {
        return (dw.clone(), None);
    }
    let mut clean = dw.clone();
    if let Some(ingress) = clean.spec.ingress.as_mut() {
        for (key, _) in &refused {
            ingress.annotations.remove(key);
        }
    }
    let mut by_family: BTreeMap<annotations::Family, Vec<&str>> = BTreeMap::new();
    for (key, rule) in &refused {
        by_family.entry(rule.family).or_default().push(key);
    }
    let message = by_family
        .iter()
        .map(|(family, keys)| {
            format!(
                "the Ingress is applied without {}: {}",
                keys.join(", "),
                family.message()
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    (clean, Some(message))
}

/// The site's URL as users reach it through the Ingress.
pub fn url(spec: &IngressSpec) -> String {
    let scheme = if spec.tls.is_some() { "https" } else { "http" };
    format!("{scheme}://{}{}", spec.host, spec.path)
}

/// The Ingress: user annotations first, then ours on top (the allowlist cannot be overridden).
pub fn desired_ingress(dw: &DemoWeb, spec: &IngressSpec, allowlist: &Allowlist) -> Ingress {
    let name = dw.name_any();
    let mut annotations = spec.annotations.clone();
    annotations.extend(allowlist.annotations.clone());
    let mut meta = child_meta(dw, ingress_name(&name), "web");
    meta.annotations = (!annotations.is_empty()).then_some(annotations);
    Ingress {
        metadata: meta,
        spec: Some(K8sIngressSpec {
            ingress_class_name: spec.class_name.clone(),
            rules: Some(vec![IngressRule {
                host: Some(spec.host.clone()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some(spec.path.clone()),
                        path_type: "Prefix".to_owned(),
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend {
                                name: service_name(&name),
                                port: Some(ServiceBackendPort {
                                    name: Some(PORT_NAME.to_owned()),
                                    ..ServiceBackendPort::default()
                                }),
                            }),
                            ..IngressBackend::default()
                        },
                    }],
                }),
            }]),
            tls: spec.tls.as_ref().map(|tls| {
                vec![IngressTLS {
                    hosts: Some(vec![spec.host.clone()]),
                    secret_name: Some(tls.secret_name.clone()),
                }]
            }),
            ..K8sIngressSpec::default()
        }),
        ..Ingress::default()
    }
}

/// The Ingress (and allowlist object) a spec asks for, or why it cannot be built safely.
#[derive(Debug, Clone, PartialEq)]
pub enum IngressPlan {
    /// `spec.ingress` is unset: our Ingress and allowlist objects go.
    Absent,
    Present {
        ingress: Box<Ingress>,
        extra: Option<Box<DynamicObject>>,
    },
    /// Fail closed: create nothing, say why (and withdraw our Ingress when the refusal says so).
    Blocked(Refusal),
}

/// `kong_refusal`: why the Kong plugins the DemoWeb names may not stand next to its allowlist
/// (`kong::check`), if they may not.
pub fn plan_ingress(
    dw: &DemoWeb,
    classes: &[IngressClass],
    caps: &IngressCapabilities,
    kong_refusal: Option<&str>,
) -> IngressPlan {
    let Some(spec) = &dw.spec.ingress else {
        return IngressPlan::Absent;
    };
    let allow = if spec.allowed_source_ranges.is_empty() {
        Allowlist::default()
    } else if let Some(message) = kong_refusal {
        return IngressPlan::Blocked(Refusal::KongPlugin(message.to_owned()));
    } else {
        let class = resolve_class(spec.class_name.as_deref(), classes);
        match choose_dialect(&class, caps) {
            Ok(dialect) => allowlist(dw, dialect, &spec.allowed_source_ranges),
            Err(refusal) => return IngressPlan::Blocked(refusal),
        }
    };
    IngressPlan::Present {
        ingress: Box::new(desired_ingress(dw, spec, &allow)),
        extra: allow.extra.map(Box::new),
    }
}

#[cfg(test)]
mod tests;
