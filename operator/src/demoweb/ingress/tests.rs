use super::*;
use crate::demoweb::desired::tests::seed;
use demoweb_crd::annotations::{Family, KONG_PLUGINS, REFUSED, Reader};
use demoweb_crd::demoweb::IngressTls;
use k8s_openapi::api::networking::v1::IngressClassSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;

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
        "nginx.ingress.kubernetes.io/auth-tls-verify-client".into(),
        "optional".into(),
    );
    annotations.insert("nginx.ingress.kubernetes.io/satisfy".into(), "any".into());
    // Reviewed authentication keys stay (see annotations::NGINX_AUTH_ALLOWED).
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
    for key in ["auth-tls-verify-client", "satisfy"] {
        assert!(
            message.contains(&format!("nginx.ingress.kubernetes.io/{key}")),
            "{message}"
        );
    }
    assert!(!message.contains("auth-url"), "{message}");
    assert!(clean.validate().is_ok(), "{:?}", clean.validate());
    let IngressPlan::Present { ingress, .. } =
        plan_ingress(&clean, &[], &IngressCapabilities::default(), None)
    else {
        panic!("expected an Ingress")
    };
    let ann = ingress.metadata.annotations.unwrap();
    assert!(!ann.contains_key("nginx.ingress.kubernetes.io/server-snippet"));
    assert!(!ann.contains_key("nginx.ingress.kubernetes.io/auth-tls-verify-client"));
    assert!(!ann.contains_key("nginx.ingress.kubernetes.io/satisfy"));
    assert_eq!(ann["nginx.ingress.kubernetes.io/auth-url"], "http://e/");
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
    assert!(kept.contains_key("nginx.ingress.kubernetes.io/auth-tls-verify-client"));
    assert!(kept.contains_key("nginx.ingress.kubernetes.io/satisfy"));
    assert!(!kept.contains_key("nginx.ingress.kubernetes.io/server-snippet"));
    assert!(!message.unwrap().contains("satisfy"));

    let (same, none) = strip_refused_annotations(&clean);
    assert_eq!(same, clean);
    assert!(none.is_none());
}

/// Every dialect × every refused annotation: the Ingress never carries the refused key, and
/// always carries the dialect's own allowlist.
#[test]
fn every_dialect_leaves_every_refused_annotation_out() {
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
            let key = rule.pattern.sample();
            let mut dw = dw_with_ingress(Some(class), &["10.0.0.0/8"]);
            let annotations = &mut dw.spec.ingress.as_mut().unwrap().annotations;
            annotations.insert(key.clone(), "0.0.0.0/0".into());
            let (clean, message) = strip_refused_annotations(&dw);
            assert!(message.is_some_and(|m| m.contains(&key)), "{class}: {key}");
            let IngressPlan::Present { ingress, .. } = plan_ingress(&clean, &[], caps, None) else {
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

/// How the README names the controller that reads an annotation.
fn reader_name(reader: Reader) -> &'static str {
    match reader {
        Reader::Any => "any controller",
        Reader::IngressNginx => "ingress-nginx",
        Reader::NginxInc => "NGINX Inc.",
        Reader::HaproxyOrg => "HAProxy Kubernetes Ingress",
        Reader::HaproxyIngress => "HAProxy Ingress",
        Reader::TraefikV1 => "Traefik 1",
    }
}

/// The README's title of a family's row.
fn family_title(family: Family) -> &'static str {
    match family {
        Family::Snippet => "Configuration snippets",
        Family::SourceRanges => "Source ranges of their own",
        Family::Authentication => "Authentication",
        Family::ClientAddress => "Client address from a request header",
        Family::Redirect => "Redirects",
        Family::Bypass => "Around the allowlist",
    }
}

/// The README's table of refused annotations, rendered from the API crate's [`REFUSED`] and
/// [`KONG_PLUGINS`]: presentation lives with the test that writes it, not in the API crate.
fn readme_table() -> String {
    let mut out = String::from("| What | Refused | Annotations (controller) |\n|---|---|---|\n");
    for family in Family::ALL {
        let mut by_reader: BTreeMap<Reader, Vec<String>> = BTreeMap::new();
        for r in REFUSED.iter().filter(|r| r.family == family) {
            let shown = match r.unless_value {
                Some(v) => format!("`{}` (other than `{v}`)", r.pattern.display()),
                None => format!("`{}`", r.pattern.display()),
            };
            by_reader.entry(r.reader).or_default().push(shown);
        }
        let keys = by_reader
            .iter()
            .map(|(reader, keys)| format!("{} ({})", keys.join(", "), reader_name(*reader)))
            .collect::<Vec<_>>()
            .join("; ");
        let when = if family.only_with_allowlist() {
            "with `allowedSourceRanges`"
        } else {
            "always"
        };
        out.push_str(&format!("| {} | {when} | {keys} |\n", family_title(family)));
    }
    out.push_str(
        "\nKong plugins named in `konghq.com/plugins` or `plugins.konghq.com` next to `allowedSourceRanges` (checked by the operator; any type not listed is refused as a custom plugin):\n\n| Plugin types | Next to the allowlist |\n|---|---|\n",
    );
    // One row per verdict, the types in the table's order: the README stays short.
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    for (plugin, verdict) in KONG_PLUGINS {
        let verdict = match verdict.refusal() {
            None => "allowed".to_owned(),
            Some(why) => format!("refused: {why}"),
        };
        let shown = format!("`{plugin}`");
        match rows.iter_mut().find(|(v, _)| *v == verdict) {
            Some((_, plugins)) => plugins.push(shown),
            None => rows.push((verdict, vec![shown])),
        }
    }
    for (verdict, plugins) in rows {
        out.push_str(&format!("| {} | {verdict} |\n", plugins.join(", ")));
    }
    out
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
    let table = readme_table();
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
    // The user's plugins follow the operator's (their types are checked in kong.rs).
    assert_eq!(
        a.annotations[KONG_PLUGINS_ANNOTATION],
        "demoweb1-allowlist,http-auth"
    );
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
    assert_eq!(plan_ingress(&seed(), &[], &caps, None), IngressPlan::Absent);

    // No allowlist: any class works, even an unknown one.
    let plan = plan_ingress(&dw_with_ingress(Some("mystery"), &[]), &[], &caps, None);
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
        None,
    );
    assert!(
        matches!(plan, IngressPlan::Blocked(Refusal::UnsupportedClass(m)) if m.contains("mystery"))
    );

    // Allowlist with ingress-nginx: the annotation is there, user annotations kept.
    let plan = plan_ingress(
        &dw_with_ingress(Some("nginx"), &["10.0.0.0/8"]),
        &[],
        &caps,
        None,
    );
    let IngressPlan::Present { ingress, .. } = plan else {
        panic!("expected an Ingress")
    };
    let ann = ingress.metadata.annotations.unwrap();
    assert_eq!(ann[NGINX_ANNOTATION], "10.0.0.0/8");
    assert_eq!(ann["example.com/team"], "web");

    // A Kong plugin that may not stand next to the allowlist: blocked, with the message.
    let plan = plan_ingress(
        &dw_with_ingress(Some("kong"), &["10.0.0.0/8"]),
        &[],
        &IngressCapabilities {
            traefik_middleware: None,
            kong_plugin: true,
        },
        Some("KongPlugin \"code\" ... pre-function"),
    );
    assert!(
        matches!(&plan, IngressPlan::Blocked(Refusal::KongPlugin(m)) if m.contains("code")),
        "{plan:?}"
    );
    // Without an allowlist the plugin list is not the operator's to judge.
    let plan = plan_ingress(
        &dw_with_ingress(Some("kong"), &[]),
        &[],
        &caps,
        Some("ignored"),
    );
    assert!(matches!(plan, IngressPlan::Present { .. }), "{plan:?}");
}

#[test]
fn kong_lists_the_operators_plugin_first_under_either_key() {
    let mut dw = dw_with_ingress(Some("kong"), &["10.0.0.0/8"]);
    let annotations = &mut dw.spec.ingress.as_mut().unwrap().annotations;
    annotations.insert("konghq.com/plugins".into(), "http-auth".into());
    let ranges = vec!["10.0.0.0/8".to_owned()];
    let a = allowlist(&dw, Dialect::Kong, &ranges);
    assert_eq!(
        a.annotations[KONG_PLUGINS_ANNOTATION],
        "demoweb1-allowlist,http-auth"
    );
    assert!(!a.annotations.contains_key(KONG_LEGACY_PLUGINS_ANNOTATION));

    // The seeds' legacy key: merged, and written with ours first too.
    let annotations = &mut dw.spec.ingress.as_mut().unwrap().annotations;
    annotations.remove("konghq.com/plugins");
    annotations.insert(
        "plugins.konghq.com".into(),
        "http-auth, demoweb1-allowlist".into(),
    );
    let a = allowlist(&dw, Dialect::Kong, &ranges);
    assert_eq!(
        a.annotations[KONG_PLUGINS_ANNOTATION],
        "demoweb1-allowlist,http-auth"
    );
    assert_eq!(
        a.annotations[KONG_LEGACY_PLUGINS_ANNOTATION],
        "demoweb1-allowlist,http-auth"
    );
    let ingress = desired_ingress(&dw, dw.spec.ingress.as_ref().unwrap(), &a);
    let ann = ingress.metadata.annotations.unwrap();
    assert_eq!(ann["plugins.konghq.com"], "demoweb1-allowlist,http-auth");
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
