//! Validation in Rust that mirrors the CRD schemas, so the operator can give the same message for
//! an object that reached the cluster without passing the schema (an older CRD, upstream's CRD).

use std::collections::BTreeSet;
use std::fmt;

use crate::annotations::refused_keys;
use crate::azure_identity::{AzureIdentityBindingSpec, AzureIdentitySpec, IdentityType};
use crate::demoweb::{self as d, DemoWeb};

/// One invalid field, named by its path as the API server would name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the field, e.g. `spec.ingress.allowedSourceRanges[1]`.
    pub field: String,
    /// What is wrong, in words a user understands.
    pub message: String,
}

impl FieldError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Joins errors into one line for a condition message or an Event.
pub fn summarize(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl DemoWeb {
    /// Every rule of the CRD schema, checked in Rust. Returns all problems, not just the first.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        let name = self.metadata.name.as_deref().unwrap_or_default();
        if !is_dns1035_label(name) {
            errors.push(FieldError::new("metadata.name", d::NAME_MESSAGE));
        }
        let spec = &self.spec;
        if !(0..=1000).contains(&spec.replicas) {
            errors.push(FieldError::new("spec.replicas", d::REPLICAS_MESSAGE));
        }
        if let Some(a) = &spec.autoscaling {
            if !(1..=d::MAX_REPLICAS).contains(&a.min_replicas) {
                errors.push(FieldError::new(
                    "spec.autoscaling.minReplicas",
                    d::MIN_REPLICAS_MESSAGE,
                ));
            }
            if !(1..=d::MAX_REPLICAS).contains(&a.max_replicas) {
                errors.push(FieldError::new(
                    "spec.autoscaling.maxReplicas",
                    d::MAX_REPLICAS_MESSAGE,
                ));
            }
            if a.min_replicas > a.max_replicas {
                errors.push(FieldError::new("spec.autoscaling", d::AUTOSCALING_MESSAGE));
            }
            if a.target_cpu_utilization_percentage
                .is_some_and(|t| !(1..=100).contains(&t))
            {
                errors.push(FieldError::new(
                    "spec.autoscaling.targetCPUUtilizationPercentage",
                    d::CPU_TARGET_MESSAGE,
                ));
            }
        }
        if !is_valid_gitrepo(&spec.gitrepo) {
            errors.push(FieldError::new("spec.gitrepo", d::GITREPO_MESSAGE));
        }
        if spec.git_ref.as_deref().is_some_and(|r| !is_valid_ref(r)) {
            errors.push(FieldError::new("spec.ref", d::REF_MESSAGE));
        }
        if spec.path.as_deref().is_some_and(|p| !is_valid_repo_path(p)) {
            errors.push(FieldError::new("spec.path", d::PATH_MESSAGE));
        }
        if spec
            .sync
            .as_ref()
            .is_some_and(|sync| parse_duration_secs(&sync.period).is_none_or(|secs| secs < 1.0))
        {
            errors.push(FieldError::new("spec.sync.period", d::PERIOD_MESSAGE));
        }
        if spec
            .credentials
            .as_ref()
            .is_some_and(|c| !is_dns1123_subdomain(&c.secret_name))
        {
            errors.push(FieldError::new(
                "spec.credentials.secretName",
                "secretName must be the name of a Secret (a DNS-1123 subdomain)",
            ));
        }
        if spec.image.as_deref().is_some_and(|image| {
            image.is_empty()
                || image.len() > 512
                || image.chars().any(|c| c.is_whitespace() || c.is_control())
        }) {
            errors.push(FieldError::new("spec.image", d::IMAGE_MESSAGE));
        }
        if let Some(ingress) = &spec.ingress {
            if ingress.host.is_empty() {
                errors.push(FieldError::new("spec.ingress", d::HOST_REQUIRED_MESSAGE));
            } else if !is_valid_host(&ingress.host) {
                errors.push(FieldError::new("spec.ingress.host", d::HOST_MESSAGE));
            }
            if !is_valid_ingress_path(&ingress.path) {
                errors.push(FieldError::new(
                    "spec.ingress.path",
                    d::INGRESS_PATH_MESSAGE,
                ));
            }
            if ingress
                .class_name
                .as_deref()
                .is_some_and(|c| !is_dns1123_subdomain(c))
            {
                errors.push(FieldError::new(
                    "spec.ingress.className",
                    "className must be the name of an IngressClass (a DNS-1123 subdomain)",
                ));
            }
            if ingress
                .tls
                .as_ref()
                .is_some_and(|tls| !is_dns1123_subdomain(&tls.secret_name))
            {
                errors.push(FieldError::new(
                    "spec.ingress.tls.secretName",
                    "secretName must be the name of a Secret (a DNS-1123 subdomain)",
                ));
            }
            for (key, rule) in refused_keys(
                &ingress.annotations,
                !ingress.allowed_source_ranges.is_empty(),
            ) {
                errors.push(FieldError::new(
                    format!("spec.ingress.annotations[{key}]"),
                    rule.family.message(),
                ));
            }
            let mut seen = BTreeSet::new();
            for (i, range) in ingress.allowed_source_ranges.iter().enumerate() {
                let field = format!("spec.ingress.allowedSourceRanges[{i}]");
                match parse_cidr(range) {
                    None => errors.push(FieldError::new(field, source_range_message(range))),
                    Some(_) if !seen.insert(range.as_str()) => {
                        errors.push(FieldError::new(field, format!("duplicate range {range:?}")))
                    }
                    Some(_) => {}
                }
            }
            if ingress.allowed_source_ranges.len() > 256 {
                errors.push(FieldError::new(
                    "spec.ingress.allowedSourceRanges",
                    "at most 256 ranges are allowed",
                ));
            }
        }
        if spec
            .identity
            .as_ref()
            .is_some_and(|id| !is_dns1123_subdomain(&id.binding))
        {
            errors.push(FieldError::new(
                "spec.identity.binding",
                "binding must be the name of an AzureIdentityBinding (a DNS-1123 subdomain)",
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

impl AzureIdentitySpec {
    /// Checks the fields each identity type needs and their formats (ARM resource ID, GUIDs).
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if self.resource_id.is_some() && self.resource_id_deprecated.is_some() {
            errors.push(FieldError::new(
                "spec.ResourceID",
                "set resourceID or its deprecated spelling ResourceID, not both",
            ));
        }
        if self.client_id.is_some() && self.client_id_deprecated.is_some() {
            errors.push(FieldError::new(
                "spec.ClientID",
                "set clientID or its deprecated spelling ClientID, not both",
            ));
        }
        match self.kind() {
            None => errors.push(FieldError::new(
                "spec.type",
                format!(
                    "type {} is not supported: use 0 (user-assigned managed identity), 1 (service principal) or 2 (service principal with certificate)",
                    self.identity_type
                ),
            )),
            Some(IdentityType::UserAssignedMsi) => match self.resource_id() {
                None => errors.push(FieldError::new("spec.resourceID", "a user-assigned managed identity (type 0) needs resourceID")),
                Some(id) => {
                    if let Err(problem) = check_user_assigned_identity_id(id) {
                        errors.push(FieldError::new("spec.resourceID", problem));
                    }
                }
            },
            Some(IdentityType::ServicePrincipal | IdentityType::ServicePrincipalCertificate) => {
                if self.tenant_id.is_none() {
                    errors.push(FieldError::new("spec.tenantID", "a service principal (type 1 or 2) needs tenantID"));
                }
                if self.client_password.is_none() {
                    errors.push(FieldError::new(
                        "spec.clientPassword",
                        "a service principal (type 1 or 2) needs clientPassword, a reference to the Secret holding its credential",
                    ));
                }
            }
        }
        match self.client_id() {
            None => errors.push(FieldError::new("spec.clientID", "clientID is required")),
            Some(id) if !is_guid(id) => errors.push(FieldError::new(
                "spec.clientID",
                format!(
                    "clientID {id:?} is not a GUID such as 00000000-0000-0000-0000-000000000000"
                ),
            )),
            Some(_) => {}
        }
        if let Some(tenant) = self.tenant_id.as_deref().filter(|t| !is_guid(t)) {
            errors.push(FieldError::new(
                "spec.tenantID",
                format!("tenantID {tenant:?} is not a GUID"),
            ));
        }
        for (i, tenant) in self.auxiliary_tenant_ids.iter().flatten().enumerate() {
            if !is_guid(tenant) {
                errors.push(FieldError::new(
                    format!("spec.auxiliaryTenantIDs[{i}]"),
                    format!("{tenant:?} is not a GUID"),
                ));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

impl AzureIdentityBindingSpec {
    /// Checks that the binding names an identity and a selector, each spelled once.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if self.azure_identity.is_some() && self.azure_identity_deprecated.is_some() {
            errors.push(FieldError::new(
                "spec.AzureIdentity",
                "set azureIdentity or its deprecated spelling AzureIdentity, not both",
            ));
        }
        if self.selector.is_some() && self.selector_deprecated.is_some() {
            errors.push(FieldError::new(
                "spec.Selector",
                "set selector or its deprecated spelling Selector, not both",
            ));
        }
        match self.azure_identity() {
            None => errors.push(FieldError::new(
                "spec.azureIdentity",
                "azureIdentity is required: the name of an AzureIdentity in this namespace",
            )),
            Some(name) if !is_dns1123_subdomain(name) => errors.push(FieldError::new(
                "spec.azureIdentity",
                format!("{name:?} is not a valid AzureIdentity name"),
            )),
            Some(_) => {}
        }
        match self.selector() {
            None => errors.push(FieldError::new("spec.selector", "selector is required: the value of the pods' aadpodidbinding label")),
            Some(selector) if !is_label_value(selector) || selector.is_empty() => errors.push(FieldError::new(
                "spec.selector",
                format!("{selector:?} is not a valid label value (at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit)"),
            )),
            Some(_) => {}
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// A DNS-1035 label: what Service names must be.
pub fn is_dns1035_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[b.len() - 1] != b'-'
}

/// A DNS-1123 subdomain: what most object names must be.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && !s.is_empty() && s.split('.').all(is_dns1123_label)
}

fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// A label value: empty, or up to 63 of `[A-Za-z0-9._-]` starting and ending alphanumeric.
pub fn is_label_value(s: &str) -> bool {
    let b = s.as_bytes();
    b.is_empty()
        || (b.len() <= 63
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.')))
}

fn is_valid_gitrepo(s: &str) -> bool {
    if s.is_empty() || s.len() > 2048 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let rest = if let Some(rest) = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .or_else(|| s.strip_prefix("ssh://"))
    {
        rest
    } else if let Some(rest) = s.strip_prefix("git@") {
        match rest.split_once(':') {
            Some((host, path))
                if !host.is_empty()
                    && host
                        .bytes()
                        .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'-') =>
            {
                path
            }
            _ => return false,
        }
    } else {
        return false;
    };
    !rest.is_empty()
}

fn is_valid_ref(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 255
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'/' | b'-'))
        && !s.contains("..")
        && !s.ends_with('/')
        && !s.ends_with(".lock")
}

fn is_valid_repo_path(s: &str) -> bool {
    s.len() <= 1024
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'/' | b'-'))
        && !s.starts_with('/')
        && !s.split('/').any(|segment| segment == "..")
}

fn is_valid_host(s: &str) -> bool {
    let name = s.strip_prefix("*.").unwrap_or(s);
    s.len() <= 253 && is_dns1123_subdomain(name)
}

fn is_valid_ingress_path(s: &str) -> bool {
    s.starts_with('/')
        && s.len() <= 1024
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'~' | b'/' | b'-'))
}

/// Why `range` is not a CIDR range, in the words of the CRD's CEL rules: a single address gets
/// the prefix length that allows just it.
fn source_range_message(range: &str) -> String {
    match range.parse::<std::net::IpAddr>() {
        Ok(ip) => {
            let bits = if ip.is_ipv4() { 32 } else { 128 };
            format!(
                "\"{range}\" is a single address, not a range: write \"{range}/{bits}\" to allow just it"
            )
        }
        Err(_) => {
            format!("\"{range}\" is not a CIDR range such as 203.0.113.7/32 or 2001:db8::/48")
        }
    }
}

/// Parses a CIDR range the way Go's `net.ParseCIDR` accepts it (host bits may be set).
pub fn parse_cidr(s: &str) -> Option<ipnet::IpNet> {
    s.parse().ok()
}

/// Parses a Go-style duration made of `<n>ms`, `<n>s`, `<n>m` and `<n>h` parts into seconds.
pub fn parse_duration_secs(s: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (0.001, 2)
        } else if rest.starts_with('s') {
            (1.0, 1)
        } else if rest.starts_with('m') {
            (60.0, 1)
        } else if rest.starts_with('h') {
            (3600.0, 1)
        } else {
            return None;
        };
        total += n * unit;
        rest = &rest[len..];
    }
    Some(total)
}

/// A GUID in its 8-4-4-4-12 hexadecimal form.
pub fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.bytes().all(|c| c.is_ascii_hexdigit()))
}

/// Checks `/subscriptions/<guid>/resourcegroups/<group>/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>`
/// (segment names are case-insensitive, as in ARM).
fn check_user_assigned_identity_id(id: &str) -> Result<(), String> {
    const FORM: &str = "/subscriptions/<subscription GUID>/resourcegroups/<group>/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>";
    let parts: Vec<&str> = id.split('/').collect();
    let shape_ok = parts.len() == 9
        && parts[0].is_empty()
        && parts[1].eq_ignore_ascii_case("subscriptions")
        && parts[3].eq_ignore_ascii_case("resourcegroups")
        && parts[5].eq_ignore_ascii_case("providers")
        && parts[6].eq_ignore_ascii_case("Microsoft.ManagedIdentity")
        && parts[7].eq_ignore_ascii_case("userAssignedIdentities")
        && !parts[4].is_empty()
        && !parts[8].is_empty();
    if !shape_ok {
        return Err(format!(
            "resourceID {id:?} is not the ARM ID of a user-assigned managed identity: expected {FORM}"
        ));
    }
    if !is_guid(parts[2]) {
        return Err(format!(
            "resourceID {id:?} names subscription {:?}, which is not a GUID",
            parts[2]
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gitrepo_rules() {
        let cases = [
            ("https://github.com/gbaeke/static-web.git", true),
            ("http://example.com/site.git", true),
            ("ssh://git@example.com/site.git", true),
            ("git@github.com:gbaeke/static-web.git", true),
            ("file:///etc/passwd", false),
            ("/srv/repo", false),
            ("../repo", false),
            ("--upload-pack=touch /tmp/x", false),
            ("-https://x", false),
            ("https://example.com/a b", false),
            ("https://example.com/a\tb", false),
            ("https://", false),
            ("ftp://example.com/x", false),
            ("git@:path", false),
            ("", false),
        ];
        for (repo, ok) in cases {
            assert_eq!(is_valid_gitrepo(repo), ok, "{repo}");
        }
        assert!(!is_valid_gitrepo(&format!(
            "https://example.com/{}",
            "a".repeat(2048)
        )));
    }

    #[test]
    fn path_and_ref_rules() {
        for (path, ok) in [
            ("docs", true),
            ("site/public", true),
            ("", true),
            ("/abs", false),
            ("a/../b", false),
            ("..", false),
            ("a/..", false),
            ("a..b", true),
            ("a;b", false),
        ] {
            assert_eq!(is_valid_repo_path(path), ok, "{path}");
        }
        for (r, ok) in [
            ("main", true),
            ("v1.2.3", true),
            ("feature/x", true),
            ("-main", false),
            ("a..b", false),
            ("a b", false),
            ("x.lock", false),
            ("0123456789abcdef0123456789abcdef01234567", true),
        ] {
            assert_eq!(is_valid_ref(r), ok, "{r}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_secs("60s"), Some(60.0));
        assert_eq!(parse_duration_secs("1h30m"), Some(5400.0));
        assert_eq!(parse_duration_secs("500ms"), Some(0.5));
        assert_eq!(parse_duration_secs("10"), None);
        assert_eq!(parse_duration_secs("1d"), None);
        assert_eq!(parse_duration_secs(""), None);
    }

    #[test]
    fn names_and_guids() {
        assert!(is_dns1035_label("demoweb1"));
        assert!(!is_dns1035_label("1demoweb"));
        assert!(!is_dns1035_label("demo.web"));
        assert!(!is_dns1035_label(&"a".repeat(64)));
        assert!(is_guid("c35040d0-f73c-4c4e-a376-9bb1c5532fda"));
        assert!(!is_guid("c35040d0f73c4c4ea3769bb1c5532fda"));
        assert!(check_user_assigned_identity_id("/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id").is_ok());
        let err = check_user_assigned_identity_id("/subscriptions/SUBID/resourcegroups/RESOURCEGROUP/providers/Microsoft.ManagedIdentity/userAssignedIdentities/demo-pod-id").unwrap_err();
        assert!(err.contains("\"SUBID\", which is not a GUID"), "{err}");
        assert!(check_user_assigned_identity_id("/subscriptions/x/resourceGroups/rg").is_err());
    }

    #[test]
    fn cidrs() {
        for (c, ok) in [
            ("203.0.113.7/32", true),
            ("10.0.0.0/8", true),
            ("2001:db8::/48", true),
            ("10.0.0.1", false),
            ("10.0.0.0/33", false),
            ("YOURIP/32", false),
            ("::/0", true),
        ] {
            assert_eq!(parse_cidr(c).is_some(), ok, "{c}");
        }
    }

    #[test]
    fn a_bare_address_gets_its_prefix_length_suggested() {
        for (range, want) in [
            (
                "203.0.113.7",
                r#""203.0.113.7" is a single address, not a range: write "203.0.113.7/32" to allow just it"#,
            ),
            (
                "2001:db8::1",
                r#""2001:db8::1" is a single address, not a range: write "2001:db8::1/128" to allow just it"#,
            ),
            (
                "YOURIP/32",
                r#""YOURIP/32" is not a CIDR range such as 203.0.113.7/32 or 2001:db8::/48"#,
            ),
        ] {
            assert_eq!(super::source_range_message(range), want);
        }
    }
}
