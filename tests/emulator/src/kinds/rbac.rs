//! `rbac.authorization.k8s.io/v1` objects as kube-apiserver stores them: defaulting and validation.
//!
//! The emulator stores roles and bindings so that charts and operators can install them; it does
//! not
//! authorize requests with them.

use k8s_openapi::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::super::errors::{FieldError, FieldErrorKind};
use super::common::{check_subdomain, roundtrip};

pub const GROUP: &str = "rbac.authorization.k8s.io";

// The `Kind` hooks of the four RBAC kinds, one instance per Go type (`decode::<Role>`, …).

/// The Go type's round trip, with the fields it holds as plain strings filled in first.
pub fn decode<K: Resource + DeserializeOwned + Serialize>(obj: &Value) -> Result<Value, String> {
    let mut obj = obj.clone();
    fill_required(K::KIND, &mut obj);
    roundtrip::<K>(&obj)
}

pub fn defaults<K: Resource>(obj: &mut Value) {
    apply_defaults(K::KIND, obj);
}

pub fn validate<K: Resource>(obj: &Value, errs: &mut Vec<FieldError>) {
    errs.extend(validate_object(K::KIND, obj));
}

pub fn validate_update<K: Resource>(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    errs.extend(validate_object_update(K::KIND, old, new));
}

/// Fields the Go types hold as plain strings and slices: a missing one decodes as empty and is then
/// reported by validation (422), not by the decoder (400). The typed round trip needs them present.
fn fill_required(kind: &str, obj: &mut Value) {
    let fill = |v: &mut Value, key: &str, empty: Value| {
        if let Some(o) = v.as_object_mut()
            && o.get(key).is_none_or(Value::is_null)
        {
            o.insert(key.to_string(), empty);
        }
    };
    match kind {
        "Role" | "ClusterRole" => {
            for r in obj
                .get_mut("rules")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                fill(r, "verbs", json!([]));
            }
        }
        "RoleBinding" | "ClusterRoleBinding" => {
            fill(obj, "roleRef", json!({}));
            fill(&mut obj["roleRef"], "kind", json!(""));
            fill(&mut obj["roleRef"], "name", json!(""));
            for s in obj
                .get_mut("subjects")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                fill(s, "kind", json!(""));
                fill(s, "name", json!(""));
            }
        }
        _ => {}
    }
}

/// `SetDefaults_*` of rbac/v1: the role reference's group and the group of User and Group subjects.
fn apply_defaults(kind: &str, obj: &mut Value) {
    if !matches!(kind, "RoleBinding" | "ClusterRoleBinding") {
        return;
    }
    if let Some(r) = obj.get_mut("roleRef").and_then(Value::as_object_mut)
        && r.get("apiGroup")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        r.insert("apiGroup".into(), json!(GROUP));
    }
    for s in obj
        .get_mut("subjects")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        // A ServiceAccount's default group is "", which `omitempty` leaves out of the stored object.
        if !matches!(s["kind"].as_str(), Some("User" | "Group")) {
            if let Some(o) = s.as_object_mut()
                && o.get("apiGroup").and_then(Value::as_str) == Some("")
            {
                o.remove("apiGroup");
            }
            continue;
        }
        if let Some(o) = s.as_object_mut()
            && o.get("apiGroup")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        {
            o.insert("apiGroup".into(), json!(GROUP));
        }
    }
}

/// Role, binding and referenced role names are path segments, not DNS names (`system:controller:x`).
pub fn check_name(name: &str) -> Option<String> {
    match name {
        "." => Some("may not be '.'".into()),
        ".." => Some("may not be '..'".into()),
        _ if name.contains('/') => Some("may not contain '/'".into()),
        _ if name.contains('%') => Some("may not contain '%'".into()),
        _ => None,
    }
}

fn len(v: &Value) -> usize {
    v.as_array().map_or(0, Vec::len)
}

fn unsupported(field: String, value: &Value, allowed: &[&str]) -> FieldError {
    FieldError {
        field,
        kind: FieldErrorKind::Unsupported(
            if value.is_null() {
                json!("")
            } else {
                value.clone()
            },
            allowed.iter().map(|s| s.to_string()).collect(),
        ),
    }
}

fn validate_rule(rule: &Value, namespaced: bool, path: &str, errs: &mut Vec<FieldError>) {
    if len(&rule["verbs"]) == 0 {
        errs.push(FieldError::required(format!("{path}.verbs"), ""));
    }
    let urls = &rule["nonResourceURLs"];
    if len(urls) > 0 {
        let invalid = |d: &str| FieldError {
            field: format!("{path}.nonResourceURLs"),
            kind: FieldErrorKind::Invalid(urls.clone(), d.into()),
        };
        if namespaced {
            errs.push(invalid(
                "namespaced rules cannot apply to non-resource URLs",
            ));
        }
        if len(&rule["apiGroups"]) + len(&rule["resources"]) + len(&rule["resourceNames"]) > 0 {
            errs.push(invalid(
                "rules cannot apply to both regular resources and non-resource URLs",
            ));
        }
        return;
    }
    if len(&rule["apiGroups"]) == 0 {
        errs.push(FieldError::required(
            format!("{path}.apiGroups"),
            "resource rules must supply at least one api group",
        ));
    }
    if len(&rule["resources"]) == 0 {
        errs.push(FieldError::required(
            format!("{path}.resources"),
            "resource rules must supply at least one resource",
        ));
    }
}

fn validate_subject(s: &Value, namespaced: bool, path: &str, errs: &mut Vec<FieldError>) {
    let name = s["name"].as_str().unwrap_or_default();
    if name.is_empty() {
        errs.push(FieldError::required(format!("{path}.name"), ""));
    }
    let group = s["apiGroup"].as_str().unwrap_or_default();
    match s["kind"].as_str().unwrap_or_default() {
        "ServiceAccount" => {
            if !name.is_empty()
                && let Some(m) = check_subdomain(name)
            {
                errs.push(FieldError::invalid(format!("{path}.name"), json!(name), m));
            }
            if !group.is_empty() {
                errs.push(unsupported(
                    format!("{path}.apiGroup"),
                    &json!(group),
                    &[""],
                ));
            }
            if !namespaced && s["namespace"].as_str().is_none_or(str::is_empty) {
                errs.push(FieldError::required(format!("{path}.namespace"), ""));
            }
        }
        "User" | "Group" => {
            if group != GROUP {
                errs.push(unsupported(
                    format!("{path}.apiGroup"),
                    &json!(group),
                    &[GROUP],
                ));
            }
        }
        other => errs.push(unsupported(
            format!("{path}.kind"),
            &json!(other),
            &["ServiceAccount", "User", "Group"],
        )),
    }
}

/// `ValidateRole`, `ValidateClusterRole`, `ValidateRoleBinding`, `ValidateClusterRoleBinding`.
fn validate_object(kind: &str, obj: &Value) -> Vec<FieldError> {
    let mut errs = vec![];
    match kind {
        "Role" | "ClusterRole" => {
            let namespaced = kind == "Role";
            for (i, r) in obj["rules"].as_array().into_iter().flatten().enumerate() {
                validate_rule(r, namespaced, &format!("rules[{i}]"), &mut errs);
            }
            if !namespaced
                && obj["aggregationRule"].is_object()
                && len(&obj["aggregationRule"]["clusterRoleSelectors"]) == 0
            {
                errs.push(FieldError::required(
                    "aggregationRule.clusterRoleSelectors",
                    "at least one clusterRoleSelector required if aggregationRule is non-nil",
                ));
            }
        }
        "RoleBinding" | "ClusterRoleBinding" => {
            let namespaced = kind == "RoleBinding";
            let r = &obj["roleRef"];
            if r["apiGroup"].as_str() != Some(GROUP) {
                errs.push(unsupported(
                    "roleRef.apiGroup".into(),
                    &r["apiGroup"],
                    &[GROUP],
                ));
            }
            let kinds: &[&str] = if namespaced {
                &["Role", "ClusterRole"]
            } else {
                &["ClusterRole"]
            };
            if !kinds.contains(&r["kind"].as_str().unwrap_or_default()) {
                errs.push(unsupported("roleRef.kind".into(), &r["kind"], kinds));
            }
            match r["name"].as_str().unwrap_or_default() {
                "" => errs.push(FieldError::required("roleRef.name", "")),
                name => {
                    if let Some(m) = check_name(name) {
                        errs.push(FieldError::invalid("roleRef.name", json!(name), m));
                    }
                }
            }
            for (i, s) in obj["subjects"].as_array().into_iter().flatten().enumerate() {
                validate_subject(s, namespaced, &format!("subjects[{i}]"), &mut errs);
            }
        }
        _ => {}
    }
    errs
}

/// A binding's role reference never changes: granting another role means a new binding.
fn validate_object_update(kind: &str, old: &Value, new: &Value) -> Vec<FieldError> {
    if !matches!(kind, "RoleBinding" | "ClusterRoleBinding") || old["roleRef"] == new["roleRef"] {
        return vec![];
    }
    let r = &new["roleRef"];
    let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
    // kube-apiserver renders its internal RoleRef as JSON, with the Go field names.
    vec![FieldError::invalid(
        "roleRef",
        json!({"APIGroup": s("apiGroup"), "Kind": s("kind"), "Name": s("name")}),
        "field is immutable",
    )]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn rules_need_verbs_groups_and_resources() {
        let cases = [
            (
                "Role",
                json!({"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}),
                vec![],
            ),
            (
                "Role",
                json!({"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": []}]}),
                vec!["rules[0].verbs: Required value"],
            ),
            (
                "ClusterRole",
                json!({"rules": [{"verbs": ["get"]}]}),
                vec![
                    "rules[0].apiGroups: Required value: resource rules must supply at least one api group",
                    "rules[0].resources: Required value: resource rules must supply at least one resource",
                ],
            ),
            (
                "ClusterRole",
                json!({"rules": [{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]}),
                vec![],
            ),
            (
                "Role",
                json!({"rules": [{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]}),
                vec![
                    "rules[0].nonResourceURLs: Invalid value: [\"/healthz\"]: namespaced rules cannot apply to non-resource URLs",
                ],
            ),
            (
                "ClusterRole",
                json!({"aggregationRule": {}}),
                vec![
                    "aggregationRule.clusterRoleSelectors: Required value: at least one clusterRoleSelector required if aggregationRule is non-nil",
                ],
            ),
        ];
        for (kind, obj, want) in cases {
            assert_eq!(texts(&validate_object(kind, &obj)), want, "{kind} {obj}");
        }
    }

    #[test]
    fn bindings_check_the_role_reference_and_subjects() {
        let sa = json!({"kind": "ServiceAccount", "name": "op", "namespace": "ops"});
        let cases = [
            (
                "RoleBinding",
                json!({"roleRef": {"kind": "ClusterRole", "name": "view"}, "subjects": [{"kind": "ServiceAccount", "name": "op"}]}),
                vec![],
            ),
            (
                "RoleBinding",
                json!({"roleRef": {"kind": "Deployment", "name": "x"}, "subjects": [sa]}),
                vec![
                    "roleRef.kind: Unsupported value: \"Deployment\": supported values: \"Role\", \"ClusterRole\"",
                ],
            ),
            (
                "ClusterRoleBinding",
                json!({"roleRef": {"kind": "Role", "name": "x"}, "subjects": [{"kind": "ServiceAccount", "name": "op"}]}),
                vec![
                    "roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\"",
                    "subjects[0].namespace: Required value",
                ],
            ),
            (
                "RoleBinding",
                json!({"roleRef": {"kind": "Role", "name": ""}, "subjects": [{"kind": "Robot", "name": "r"}]}),
                vec![
                    "roleRef.name: Required value",
                    "subjects[0].kind: Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\"",
                ],
            ),
            (
                "ClusterRoleBinding",
                json!({"roleRef": {"kind": "ClusterRole", "name": "system:controller:x"}, "subjects": [{"kind": "User", "name": "alice"}]}),
                vec![],
            ),
        ];
        for (kind, mut obj, want) in cases {
            fill_required(kind, &mut obj);
            apply_defaults(kind, &mut obj);
            assert_eq!(texts(&validate_object(kind, &obj)), want, "{kind} {obj}");
        }
    }

    #[test]
    fn defaults_fill_in_api_groups() {
        let mut b = json!({"roleRef": {"kind": "Role", "name": "r"}, "subjects": [
            {"kind": "ServiceAccount", "name": "a", "apiGroup": ""}, {"kind": "User", "name": "u"}, {"kind": "Group", "name": "g"}]});
        apply_defaults("RoleBinding", &mut b);
        assert_eq!(b["roleRef"]["apiGroup"], GROUP);
        assert!(b["subjects"][0].get("apiGroup").is_none());
        assert_eq!(b["subjects"][1]["apiGroup"], GROUP);
        assert_eq!(b["subjects"][2]["apiGroup"], GROUP);
    }

    #[test]
    fn role_ref_is_immutable_with_the_real_message() {
        let old = json!({"roleRef": {"apiGroup": GROUP, "kind": "Role", "name": "a"}});
        let new = json!({"roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": "view"}, "subjects": []});
        assert!(validate_object_update("RoleBinding", &old, &old).is_empty());
        assert_eq!(
            texts(&validate_object_update("RoleBinding", &old, &new)),
            [
                "roleRef: Invalid value: {\"APIGroup\":\"rbac.authorization.k8s.io\",\"Kind\":\"ClusterRole\",\"Name\":\"view\"}: field is immutable"
            ]
        );
    }

    #[test]
    fn names_are_path_segments() {
        for (name, ok) in [
            ("system:controller:x", true),
            ("Web", true),
            ("a/b", false),
            ("..", false),
            ("50%", false),
        ] {
            assert_eq!(check_name(name).is_none(), ok, "{name}");
        }
    }
}
