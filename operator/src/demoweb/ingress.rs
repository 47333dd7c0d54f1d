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

use super::desired::{PORT_NAME, allowlist_name, child_meta, ingress_name, service_name};

pub const TRAEFIK_V1_ANNOTATION: &str = "traefik.ingress.kubernetes.io/whitelist-source-range";
pub const TRAEFIK_MIDDLEWARES_ANNOTATION: &str = "traefik.ingress.kubernetes.io/router.middlewares";
pub const NGINX_ANNOTATION: &str = "nginx.ingress.kubernetes.io/whitelist-source-range";
pub const HAPROXY_ANNOTATION: &str = "haproxy.org/allow-list";
pub const KONG_PLUGINS_ANNOTATION: &str = "konghq.com/plugins";
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
fn served_version<'a>(
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
}

impl Refusal {
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::UnsupportedClass(_) => reason::UNSUPPORTED_INGRESS_CLASS,
            Refusal::MissingApi(_) => reason::ALLOWLIST_API_MISSING,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Refusal::UnsupportedClass(m) | Refusal::MissingApi(m) => m,
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
            // The user's own plugins are refused next to an allowlist (annotations.rs).
            annotations.insert(KONG_PLUGINS_ANNOTATION.to_owned(), name.clone());
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

pub fn plan_ingress(
    dw: &DemoWeb,
    classes: &[IngressClass],
    caps: &IngressCapabilities,
) -> IngressPlan {
    let Some(spec) = &dw.spec.ingress else {
        return IngressPlan::Absent;
    };
    let allow = if spec.allowed_source_ranges.is_empty() {
        Allowlist::default()
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
mod tests {
    use super::*;
    use crate::demoweb::desired::tests::seed;
    use demoweb_crd::demoweb::IngressTls;
    use k8s_openapi::api::networking::v1::IngressClassSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn class(name: &str, controller: &str, default: bool) -> IngressClass {
        IngressClass {
            metadata: ObjectMeta {
                name: Some(name.into()),
                annotations: default.then(|| {
                    BTreeMap::from([(DEFAULT_CLASS_ANNOTATION.to_owned(), "true".to_owned())])
                }),
                ..ObjectMeta::default()
            },
            spec: Some(IngressClassSpec {
                controller: Some(controller.into()),
                ..IngressClassSpec::default()
            }),
        }
    }

    fn dw_with_ingress(class: Option<&str>, ranges: &[&str]) -> DemoWeb {
        let mut dw = seed();
        dw.spec.ingress = Some(IngressSpec {
            host: "www.example.com".into(),
            path: "/".into(),
            class_name: class.map(Into::into),
            tls: None,
            allowed_source_ranges: ranges.iter().map(|s| s.to_string()).collect(),
            annotations: BTreeMap::from([("example.com/team".to_owned(), "web".to_owned())]),
        });
        dw
    }

    /// One row per line of `choose_dialect`'s decision table.
    #[test]
    fn decision_table() {
        let classes = vec![
            class("public", CONTROLLER_NGINX, false),
            class("edge", CONTROLLER_TRAEFIK, true),
            class("kong-ext", CONTROLLER_KONG, false),
            class("ha", "haproxy.org/ingress-controller/haproxy", false),
            class("aks", CONTROLLER_AKS_APP_ROUTING, false),
            class("nginx-inc", "nginx.org/ingress-controller", false),
        ];
        let caps = |traefik: Option<TraefikMiddlewareApi>, kong: bool| IngressCapabilities {
            traefik_middleware: traefik,
            kong_plugin: kong,
        };
        let none = caps(None, false);
        let all = caps(Some(TRAEFIK_V3), true);
        type Row<'a> = (
            Option<&'a str>,
            IngressCapabilities,
            Result<Dialect, (&'a str, &'a str)>,
        );
        let rows: Vec<Row> = vec![
            // Traefik's controller name: Traefik >= 2.3, which only knows Middlewares.
            (
                Some("edge"),
                caps(Some(TRAEFIK_V3), false),
                Ok(Dialect::TraefikMiddleware(TRAEFIK_V3)),
            ),
            (
                Some("edge"),
                caps(Some(TRAEFIK_V2), false),
                Ok(Dialect::TraefikMiddleware(TRAEFIK_V2)),
            ),
            (
                Some("edge"),
                caps(Some(TRAEFIK_V2_LEGACY), false),
                Ok(Dialect::TraefikMiddleware(TRAEFIK_V2_LEGACY)),
            ),
            (
                Some("edge"),
                caps(None, true),
                Err((reason::ALLOWLIST_API_MISSING, "middlewares.traefik.io")),
            ),
            // The default class is Traefik's too.
            (
                None,
                caps(None, false),
                Err((reason::ALLOWLIST_API_MISSING, "Traefik 2 or later")),
            ),
            (
                None,
                all.clone(),
                Ok(Dialect::TraefikMiddleware(TRAEFIK_V3)),
            ),
            // The name "traefik" without a class object: v1 unless a Middleware API is served.
            (
                Some("traefik"),
                none.clone(),
                Ok(Dialect::TraefikV1Annotation),
            ),
            (
                Some("traefik"),
                all.clone(),
                Ok(Dialect::TraefikMiddleware(TRAEFIK_V3)),
            ),
            // ingress-nginx and AKS application routing, whatever is served.
            (Some("public"), none.clone(), Ok(Dialect::IngressNginx)),
            (Some("aks"), all.clone(), Ok(Dialect::IngressNginx)),
            (Some("nginx"), none.clone(), Ok(Dialect::IngressNginx)),
            // HAProxy.
            (Some("ha"), none.clone(), Ok(Dialect::Haproxy)),
            (Some("haproxy"), all.clone(), Ok(Dialect::Haproxy)),
            // Kong needs the KongPlugin API.
            (Some("kong-ext"), caps(None, true), Ok(Dialect::Kong)),
            (Some("kong"), caps(None, true), Ok(Dialect::Kong)),
            (
                Some("kong-ext"),
                caps(Some(TRAEFIK_V3), false),
                Err((reason::ALLOWLIST_API_MISSING, "KongPlugin API")),
            ),
            // Anything else.
            (
                Some("nginx-inc"),
                all.clone(),
                Err((
                    reason::UNSUPPORTED_INGRESS_CLASS,
                    "nginx.org/ingress-controller",
                )),
            ),
            (
                Some("mystery"),
                all.clone(),
                Err((
                    reason::UNSUPPORTED_INGRESS_CLASS,
                    "ingress class \"mystery\"",
                )),
            ),
        ];
        for (name, caps, expected) in rows {
            let resolved = resolve_class(name, &classes);
            match (choose_dialect(&resolved, &caps), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{name:?} with {caps:?}"),
                (Err(refusal), Err((reason, needle))) => {
                    assert_eq!(refusal.reason(), reason, "{name:?} with {caps:?}");
                    assert!(refusal.message().contains(needle), "{name:?}: {refusal:?}");
                    assert!(refusal.message().contains("not exposed"), "{refusal:?}");
                }
                (got, want) => panic!("{name:?} with {caps:?}: got {got:?}, expected {want:?}"),
            }
        }
        // No class and no default class: fail closed.
        let resolved = resolve_class(None, &classes[..1]);
        assert_eq!(resolved, ResolvedClass::default());
        assert!(matches!(
            choose_dialect(&resolved, &all),
            Err(Refusal::UnsupportedClass(_))
        ));
    }

    #[test]
    fn refused_annotations_are_left_off_the_ingress() {
        let mut dw = dw_with_ingress(Some("nginx"), &["10.0.0.0/8"]);
        let annotations = &mut dw.spec.ingress.as_mut().unwrap().annotations;
        annotations.insert(
            "nginx.ingress.kubernetes.io/server-snippet".into(),
            "x".into(),
        );
        annotations.insert(
            "nginx.ingress.kubernetes.io/auth-url".into(),
            "http://e/".into(),
        );
        annotations.insert(
            "nginx.ingress.kubernetes.io/proxy-body-size".into(),
            "1m".into(),
        );
        let (clean, message) = strip_refused_annotations(&dw);
        let message = message.expect("refused");
        assert!(
            message.contains("nginx.ingress.kubernetes.io/server-snippet"),
            "{message}"
        );
        assert!(
            message.contains("nginx.ingress.kubernetes.io/auth-url"),
            "{message}"
        );
        assert!(clean.validate().is_ok(), "{:?}", clean.validate());
        let IngressPlan::Present { ingress, .. } =
            plan_ingress(&clean, &[], &IngressCapabilities::default())
        else {
            panic!("expected an Ingress")
        };
        let ann = ingress.metadata.annotations.unwrap();
        assert!(!ann.contains_key("nginx.ingress.kubernetes.io/server-snippet"));
        assert!(!ann.contains_key("nginx.ingress.kubernetes.io/auth-url"));
        assert_eq!(ann["nginx.ingress.kubernetes.io/proxy-body-size"], "1m");
        assert_eq!(ann[NGINX_ANNOTATION], "10.0.0.0/8");

        // Without an allowlist only the always-refused ones go.
        dw.spec
            .ingress
            .as_mut()
            .unwrap()
            .allowed_source_ranges
            .clear();
        let (clean, message) = strip_refused_annotations(&dw);
        let kept = &clean.spec.ingress.as_ref().unwrap().annotations;
        assert!(kept.contains_key("nginx.ingress.kubernetes.io/auth-url"));
        assert!(!kept.contains_key("nginx.ingress.kubernetes.io/server-snippet"));
        assert!(!message.unwrap().contains("auth-url"));

        let (same, none) = strip_refused_annotations(&clean);
        assert_eq!(same, clean);
        assert!(none.is_none());
    }

    /// Every dialect × every refused annotation: the Ingress never carries the refused key, and
    /// always carries the dialect's own allowlist.
    #[test]
    fn every_dialect_leaves_every_refused_annotation_out() {
        use demoweb_crd::annotations::{Pattern, REFUSED};
        let kong_and_traefik = IngressCapabilities {
            traefik_middleware: Some(TRAEFIK_V3),
            kong_plugin: true,
        };
        let dialects: [(&str, &IngressCapabilities, &str); 5] = [
            ("nginx", &kong_and_traefik, NGINX_ANNOTATION),
            ("haproxy", &kong_and_traefik, HAPROXY_ANNOTATION),
            (
                "traefik",
                &IngressCapabilities::default(),
                TRAEFIK_V1_ANNOTATION,
            ),
            ("traefik", &kong_and_traefik, TRAEFIK_MIDDLEWARES_ANNOTATION),
            ("kong", &kong_and_traefik, KONG_PLUGINS_ANNOTATION),
        ];
        for (class, caps, allowlist_key) in dialects {
            for rule in REFUSED {
                let key = match rule.pattern {
                    Pattern::Exact(k) => k.to_owned(),
                    Pattern::Prefix(p) => format!("{p}x"),
                    Pattern::Suffix(s) => format!("example.com/x{s}"),
                };
                let mut dw = dw_with_ingress(Some(class), &["10.0.0.0/8"]);
                let annotations = &mut dw.spec.ingress.as_mut().unwrap().annotations;
                annotations.insert(key.clone(), "0.0.0.0/0".into());
                let (clean, message) = strip_refused_annotations(&dw);
                assert!(message.is_some_and(|m| m.contains(&key)), "{class}: {key}");
                let IngressPlan::Present { ingress, .. } = plan_ingress(&clean, &[], caps) else {
                    panic!("{class}: expected an Ingress")
                };
                let ann = ingress.metadata.annotations.unwrap();
                // The operator's own key may coincide with a refused one: it carries our value.
                if key == allowlist_key {
                    assert_ne!(ann[&key], "0.0.0.0/0", "{class}: {key}");
                } else {
                    assert!(
                        !ann.contains_key(&key),
                        "{class}: {key} reached the Ingress"
                    );
                }
                assert!(ann.contains_key(allowlist_key), "{class}: {key}");
            }
        }
    }

    #[test]
    fn capabilities_from_the_watched_crds() {
        use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
        let crd = |name: &str, version: &str, field: &str, established: bool| {
            serde_json::from_value::<CustomResourceDefinition>(json!({
                "metadata": {"name": name},
                "spec": {"group": "g", "scope": "Namespaced",
                    "names": {"kind": "K", "plural": "ks"},
                    "versions": [{"name": version, "served": true, "storage": true,
                        "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec":
                            {"type": "object", "properties": {field: {"type": "object"}}}}}}}]},
                "status": {"conditions": [{"type": "Established",
                    "status": if established { "True" } else { "False" }}]}
            }))
            .unwrap()
        };
        let v3 = crd("middlewares.traefik.io", "v1alpha1", "ipAllowList", true);
        let v2 = crd("middlewares.traefik.io", "v1alpha1", "ipWhiteList", true);
        let legacy = crd(
            "middlewares.traefik.containo.us",
            "v1alpha1",
            "ipWhiteList",
            true,
        );
        let kong = crd("kongplugins.configuration.konghq.com", "v1", "config", true);
        let pending = crd("middlewares.traefik.io", "v1alpha1", "ipAllowList", false);
        let mut deleting = v3.clone();
        deleting.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
        );
        let caps = |t, l, k| capabilities_from(t, l, k);
        assert_eq!(caps(None, None, None), IngressCapabilities::default());
        assert_eq!(
            caps(Some(&v3), Some(&legacy), None).traefik_middleware,
            Some(TRAEFIK_V3)
        );
        assert_eq!(
            caps(Some(&v2), None, None).traefik_middleware,
            Some(TRAEFIK_V2)
        );
        assert_eq!(
            caps(None, Some(&legacy), None).traefik_middleware,
            Some(TRAEFIK_V2_LEGACY)
        );
        assert_eq!(caps(Some(&pending), None, None).traefik_middleware, None);
        assert_eq!(caps(Some(&deleting), None, None).traefik_middleware, None);
        assert!(caps(None, None, Some(&kong)).kong_plugin);
        let kong_v2 = crd("kongplugins.configuration.konghq.com", "v2", "config", true);
        assert!(!caps(None, None, Some(&kong_v2)).kong_plugin);
    }

    /// The README shows the refused annotations as the code has them.
    /// `DEMOWEB_UPDATE_GENERATED=1 cargo test -p demoweb-operator generated` rewrites the table.
    #[test]
    fn generated_readme_annotation_table_is_up_to_date() {
        const BEGIN: &str = "<!-- refused-annotations:begin (generated) -->\n";
        const END: &str = "<!-- refused-annotations:end -->";
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../README.md");
        let readme = std::fs::read_to_string(&path).expect("README.md");
        let (Some(start), Some(end)) = (readme.find(BEGIN), readme.find(END)) else {
            panic!("README.md lacks the {BEGIN:?} … {END:?} markers")
        };
        let table = demoweb_crd::annotations::readme_table();
        let current = &readme[start + BEGIN.len()..end];
        if std::env::var_os("DEMOWEB_UPDATE_GENERATED").is_some() {
            let updated = format!("{}{BEGIN}{table}{}", &readme[..start], &readme[end..]);
            std::fs::write(&path, updated).expect("write README.md");
            return;
        }
        assert!(
            current == table,
            "README.md's refused-annotations table is stale: run `DEMOWEB_UPDATE_GENERATED=1 cargo test -p demoweb-operator generated` and commit the result"
        );
    }

    #[test]
    fn allowlist_families_follow_the_class() {
        let classes = vec![class("edge", CONTROLLER_TRAEFIK, false)];
        let dw = dw_with_ingress(Some("edge"), &["10.0.0.0/8"]);
        assert_eq!(
            allowlist_family(&dw, &classes),
            Some(ControllerKind::Traefik)
        );
        assert_eq!(allowlist_family(&dw, &[]), None);
        let dw = dw_with_ingress(Some("kong"), &["10.0.0.0/8"]);
        assert_eq!(allowlist_family(&dw, &classes), Some(ControllerKind::Kong));
        let dw = dw_with_ingress(Some("kong"), &[]);
        assert_eq!(
            allowlist_family(&dw, &classes),
            None,
            "no allowlist, no dependency"
        );
    }

    #[test]
    fn annotation_dialects() {
        let ranges = vec!["203.0.113.7/32".to_owned(), "2001:db8::/48".to_owned()];
        let cases = [
            (Dialect::TraefikV1Annotation, TRAEFIK_V1_ANNOTATION),
            (Dialect::IngressNginx, NGINX_ANNOTATION),
            (Dialect::Haproxy, HAPROXY_ANNOTATION),
        ];
        for (dialect, key) in cases {
            let a = allowlist(&dw_with_ingress(None, &[]), dialect, &ranges);
            assert_eq!(a.annotations[key], "203.0.113.7/32,2001:db8::/48");
            assert_eq!(a.annotations.len(), 1);
            assert!(a.extra.is_none());
        }
    }

    #[test]
    fn traefik_middleware_dialects() {
        let ranges = vec!["10.0.0.0/8".to_owned()];
        for api in [TRAEFIK_V3, TRAEFIK_V2, TRAEFIK_V2_LEGACY] {
            let mut dw = dw_with_ingress(Some("traefik"), &[]);
            dw.spec.ingress.as_mut().unwrap().annotations.insert(
                TRAEFIK_MIDDLEWARES_ANNOTATION.into(),
                "default-auth@kubernetescrd".into(),
            );
            let a = allowlist(&dw, Dialect::TraefikMiddleware(api), &ranges);
            assert_eq!(
                a.annotations[TRAEFIK_MIDDLEWARES_ANNOTATION],
                "default-demoweb1-allowlist@kubernetescrd,default-auth@kubernetescrd"
            );
            let mw = a.extra.unwrap();
            assert_eq!(
                mw.types.as_ref().unwrap().api_version,
                format!("{}/v1alpha1", api.group)
            );
            assert_eq!(mw.types.as_ref().unwrap().kind, "Middleware");
            assert_eq!(mw.metadata.name.as_deref(), Some("demoweb1-allowlist"));
            assert_eq!(
                mw.data["spec"][api.field]["sourceRange"],
                json!(["10.0.0.0/8"])
            );
            assert!(mw.metadata.owner_references.is_some());
            let (resource, kind) = allowlist_resource(&mw);
            assert_eq!(
                (
                    resource.group.as_str(),
                    resource.plural.as_str(),
                    kind.as_str()
                ),
                (api.group, "middlewares", "Middleware")
            );
        }
    }

    #[test]
    fn kong_plugin_dialect() {
        let mut dw = dw_with_ingress(Some("kong"), &[]);
        dw.spec
            .ingress
            .as_mut()
            .unwrap()
            .annotations
            .insert(KONG_PLUGINS_ANNOTATION.into(), "http-auth".into());
        let a = allowlist(&dw, Dialect::Kong, &["52.0.0.0/8".to_owned()]);
        assert_eq!(a.annotations[KONG_PLUGINS_ANNOTATION], "demoweb1-allowlist");
        let plugin = a.extra.unwrap();
        assert_eq!(
            plugin.types.as_ref().unwrap().api_version,
            "configuration.konghq.com/v1"
        );
        assert_eq!(plugin.data["plugin"], "ip-restriction");
        assert_eq!(plugin.data["config"]["allow"], json!(["52.0.0.0/8"]));
        let (resource, kind) = allowlist_resource(&plugin);
        assert_eq!(
            (resource.plural.as_str(), kind.as_str()),
            ("kongplugins", "KongPlugin")
        );
    }

    #[test]
    fn plans() {
        let caps = IngressCapabilities::default();
        assert_eq!(plan_ingress(&seed(), &[], &caps), IngressPlan::Absent);

        // No allowlist: any class works, even an unknown one.
        let plan = plan_ingress(&dw_with_ingress(Some("mystery"), &[]), &[], &caps);
        let IngressPlan::Present { ingress, extra } = plan else {
            panic!("expected an Ingress")
        };
        assert!(extra.is_none());
        let spec = ingress.spec.as_ref().unwrap();
        assert_eq!(spec.ingress_class_name.as_deref(), Some("mystery"));
        let path = &spec.rules.as_ref().unwrap()[0].http.as_ref().unwrap().paths[0];
        assert_eq!(path.path_type, "Prefix");
        assert_eq!(path.backend.service.as_ref().unwrap().name, "demoweb1");
        assert_eq!(
            ingress.metadata.annotations.as_ref().unwrap()["example.com/team"],
            "web"
        );

        // Allowlist with an unknown class: blocked.
        let plan = plan_ingress(
            &dw_with_ingress(Some("mystery"), &["10.0.0.0/8"]),
            &[],
            &caps,
        );
        assert!(
            matches!(plan, IngressPlan::Blocked(Refusal::UnsupportedClass(m)) if m.contains("mystery"))
        );

        // Allowlist with ingress-nginx: the annotation is there, user annotations kept.
        let plan = plan_ingress(&dw_with_ingress(Some("nginx"), &["10.0.0.0/8"]), &[], &caps);
        let IngressPlan::Present { ingress, .. } = plan else {
            panic!("expected an Ingress")
        };
        let ann = ingress.metadata.annotations.unwrap();
        assert_eq!(ann[NGINX_ANNOTATION], "10.0.0.0/8");
        assert_eq!(ann["example.com/team"], "web");
    }

    #[test]
    fn tls_and_url() {
        let mut dw = dw_with_ingress(None, &[]);
        let spec = dw.spec.ingress.as_mut().unwrap();
        assert_eq!(url(spec), "http://www.example.com/");
        spec.tls = Some(IngressTls {
            secret_name: "www-tls".into(),
        });
        spec.path = "/docs".into();
        assert_eq!(url(spec), "https://www.example.com/docs");
        let ing = desired_ingress(
            &dw,
            dw.spec.ingress.as_ref().unwrap(),
            &Allowlist::default(),
        );
        let tls = &ing.spec.unwrap().tls.unwrap()[0];
        assert_eq!(tls.secret_name.as_deref(), Some("www-tls"));
        assert_eq!(tls.hosts, Some(vec!["www.example.com".to_owned()]));
    }
}
