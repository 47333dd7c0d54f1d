//! Pure Ingress builder and the IP-allowlist dialects of the ingress controllers we know.
//! Fails closed: an allowlist we cannot express means no Ingress at all.

use std::collections::BTreeMap;

use demoweb_crd::DemoWeb;
use demoweb_crd::demoweb::IngressSpec;
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressClass, IngressRule,
    IngressServiceBackend, IngressSpec as K8sIngressSpec, IngressTLS, ServiceBackendPort,
};
use kube::ResourceExt;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::json;

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
enum Family {
    Traefik,
    Nginx,
    Kong,
    Haproxy,
}

fn family(class: &ResolvedClass) -> Option<Family> {
    if let Some(controller) = &class.controller {
        return match controller.as_str() {
            CONTROLLER_TRAEFIK => Some(Family::Traefik),
            CONTROLLER_NGINX | CONTROLLER_AKS_APP_ROUTING => Some(Family::Nginx),
            CONTROLLER_KONG => Some(Family::Kong),
            c if c.starts_with(CONTROLLER_HAPROXY_PREFIX) => Some(Family::Haproxy),
            _ => None,
        };
    }
    match class.name.as_deref()? {
        "traefik" => Some(Family::Traefik),
        "nginx" => Some(Family::Nginx),
        "kong" => Some(Family::Kong),
        "haproxy" => Some(Family::Haproxy),
        _ => None,
    }
}

/// Picks the dialect, or explains (for the condition) why no allowlist can be written.
pub fn choose_dialect(
    class: &ResolvedClass,
    caps: &IngressCapabilities,
) -> Result<Dialect, String> {
    let describe = || match (&class.name, &class.controller) {
        (Some(n), Some(c)) => format!("ingress class {n:?} (controller {c:?})"),
        (Some(n), None) => format!("ingress class {n:?}"),
        (None, _) => {
            "no ingress class (className is unset and the cluster has no default IngressClass)"
                .to_owned()
        }
    };
    match family(class) {
        Some(Family::Traefik) => Ok(match caps.traefik_middleware {
            Some(api) => Dialect::TraefikMiddleware(api),
            None => Dialect::TraefikV1Annotation,
        }),
        Some(Family::Nginx) => Ok(Dialect::IngressNginx),
        Some(Family::Haproxy) => Ok(Dialect::Haproxy),
        Some(Family::Kong) if caps.kong_plugin => Ok(Dialect::Kong),
        Some(Family::Kong) => Err(format!(
            "{} is Kong, but the KongPlugin API (configuration.konghq.com/v1) is not served, so the allowlist cannot be written; the site is not exposed",
            describe()
        )),
        None => Err(format!(
            "{}: no known way to write allowedSourceRanges, so the site is not exposed; supported: {SUPPORTED}",
            describe()
        )),
    }
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

/// Appends `ours` to a comma-separated annotation value the user may already have set.
fn append_list(existing: Option<&String>, ours: &str) -> String {
    let mut items: Vec<&str> = existing
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if !items.contains(&ours) {
        items.push(ours);
    }
    items.join(",")
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
                append_list(user.get(TRAEFIK_MIDDLEWARES_ANNOTATION), &reference),
            );
            let mut obj = DynamicObject::new(&name, &middleware_resource(api));
            obj.metadata = child_meta(dw, name.clone(), "allowlist");
            obj.data = json!({ "spec": { api.field: { "sourceRange": ranges } } });
            extra = Some(obj);
        }
        Dialect::Kong => {
            annotations.insert(
                KONG_PLUGINS_ANNOTATION.to_owned(),
                append_list(user.get(KONG_PLUGINS_ANNOTATION), &name),
            );
            let mut obj = DynamicObject::new(&name, &kong_plugin_resource());
            obj.metadata = child_meta(dw, name.clone(), "allowlist");
            obj.data = json!({ "plugin": "ip-restriction", "config": { "allow": ranges } });
            extra = Some(obj);
        }
    }
    Allowlist { annotations, extra }
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
    /// Fail closed: leave whatever exists, create nothing, say why.
    Blocked(String),
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
            Err(message) => return IngressPlan::Blocked(message),
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

    #[test]
    fn dialect_per_controller() {
        let classes = vec![
            class("public", CONTROLLER_NGINX, false),
            class("edge", CONTROLLER_TRAEFIK, true),
            class("kong-ext", CONTROLLER_KONG, false),
            class("ha", "haproxy.org/ingress-controller/haproxy", false),
            class("aks", CONTROLLER_AKS_APP_ROUTING, false),
            class("nginx-inc", "nginx.org/ingress-controller", false),
        ];
        let none = IngressCapabilities::default();
        let v3 = IngressCapabilities {
            traefik_middleware: Some(TRAEFIK_V3),
            kong_plugin: true,
        };
        let cases: Vec<(Option<&str>, &IngressCapabilities, Result<Dialect, &str>)> = vec![
            (Some("public"), &none, Ok(Dialect::IngressNginx)),
            (Some("aks"), &none, Ok(Dialect::IngressNginx)),
            (Some("ha"), &none, Ok(Dialect::Haproxy)),
            (Some("edge"), &none, Ok(Dialect::TraefikV1Annotation)),
            (
                Some("edge"),
                &v3,
                Ok(Dialect::TraefikMiddleware(TRAEFIK_V3)),
            ),
            (None, &v3, Ok(Dialect::TraefikMiddleware(TRAEFIK_V3))),
            (Some("kong-ext"), &v3, Ok(Dialect::Kong)),
            (Some("kong-ext"), &none, Err("KongPlugin API")),
            (Some("nginx-inc"), &v3, Err("nginx.org/ingress-controller")),
            // Well-known names when no IngressClass object exists.
            (Some("traefik"), &none, Ok(Dialect::TraefikV1Annotation)),
            (Some("nginx"), &none, Ok(Dialect::IngressNginx)),
            (Some("haproxy"), &none, Ok(Dialect::Haproxy)),
            (Some("kong"), &v3, Ok(Dialect::Kong)),
            (Some("mystery"), &v3, Err("ingress class \"mystery\"")),
        ];
        for (name, caps, expected) in cases {
            let resolved = resolve_class(name, &classes);
            let got = choose_dialect(&resolved, caps);
            match (got, expected) {
                (Ok(g), Ok(e)) => assert_eq!(g, e, "{name:?}"),
                (Err(msg), Err(needle)) => {
                    assert!(msg.contains(needle), "{name:?}: {msg}");
                    assert!(msg.contains("not exposed"), "{msg}");
                }
                (got, expected) => panic!("{name:?}: got {got:?}, expected {expected:?}"),
            }
        }
        // No class and no default class: fail closed.
        let resolved = resolve_class(None, &classes[..1]);
        assert_eq!(resolved, ResolvedClass::default());
        assert!(choose_dialect(&resolved, &v3).is_err());
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
                "default-auth@kubernetescrd,default-demoweb1-allowlist@kubernetescrd"
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
        assert_eq!(
            a.annotations[KONG_PLUGINS_ANNOTATION],
            "http-auth,demoweb1-allowlist"
        );
        let plugin = a.extra.unwrap();
        assert_eq!(
            plugin.types.as_ref().unwrap().api_version,
            "configuration.konghq.com/v1"
        );
        assert_eq!(plugin.data["plugin"], "ip-restriction");
        assert_eq!(plugin.data["config"]["allow"], json!(["52.0.0.0/8"]));
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
        assert!(matches!(plan, IngressPlan::Blocked(m) if m.contains("mystery")));

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
