//! Field errors as apimachinery's `field.Error` renders them, and the 422 `Status` text built from them.

use serde_json::{Value, json};
use std::fmt;

/// What is wrong with a field; mirrors apimachinery's `field.ErrorType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    Required,
    Duplicate,
    Invalid,
    NotSupported,
    Forbidden,
    TooLong,
    TooMany,
    Internal,
    TypeInvalid,
}

impl ErrorKind {
    /// The `reason` of a `details.causes` entry (apimachinery's `CauseType`).
    pub fn reason(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "FieldValueNotFound",
            ErrorKind::Required => "FieldValueRequired",
            ErrorKind::Duplicate => "FieldValueDuplicate",
            ErrorKind::Invalid => "FieldValueInvalid",
            ErrorKind::NotSupported => "FieldValueNotSupported",
            ErrorKind::Forbidden => "FieldValueForbidden",
            ErrorKind::TooLong => "FieldValueTooLong",
            ErrorKind::TooMany => "FieldValueTooMany",
            ErrorKind::Internal => "InternalError",
            ErrorKind::TypeInvalid => "FieldValueTypeInvalid",
        }
    }

    fn text(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "Not found",
            ErrorKind::Required => "Required value",
            ErrorKind::Duplicate => "Duplicate value",
            ErrorKind::Invalid | ErrorKind::TypeInvalid => "Invalid value",
            ErrorKind::NotSupported => "Unsupported value",
            ErrorKind::Forbidden => "Forbidden",
            ErrorKind::TooLong => "Too long",
            ErrorKind::TooMany => "Too many",
            ErrorKind::Internal => "Internal error",
        }
    }
}

/// One validation failure: `field` is the dotted path (`spec.ingress.allowedSourceRanges[0]`),
/// `value` the offending value as the server echoes it (`None`: not shown).
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    pub field: String,
    pub kind: ErrorKind,
    pub value: Option<Value>,
    pub detail: String,
    /// How Go prints `value` when it is not plain JSON (a Go struct, fields in declaration order).
    pub(crate) rendered: Option<String>,
}

impl FieldError {
    pub fn new(
        kind: ErrorKind,
        field: &str,
        value: Option<Value>,
        detail: impl Into<String>,
    ) -> Self {
        FieldError {
            field: field.to_string(),
            kind,
            value,
            detail: detail.into(),
            rendered: None,
        }
    }

    pub fn required(field: &str, detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Required, field, None, detail)
    }

    pub fn invalid(field: &str, value: Value, detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, field, Some(value), detail)
    }

    pub fn forbidden(field: &str, detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, field, None, detail)
    }

    pub fn duplicate(field: &str, value: Value) -> Self {
        Self::new(ErrorKind::Duplicate, field, Some(value), "")
    }

    pub fn type_invalid(field: &str, value: Value, detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::TypeInvalid, field, Some(value), detail)
    }

    /// `field.NotSupported`: the detail lists the supported values, each Go-quoted.
    pub fn not_supported(field: &str, value: Value, supported: &[String]) -> Self {
        let detail = if supported.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        Self::new(ErrorKind::NotSupported, field, Some(value), detail)
    }

    /// `field.TooLong`; the value is never echoed.
    pub fn too_long(field: &str, max: Option<u64>) -> Self {
        let detail = match max {
            Some(1) => "may not be more than 1 byte".to_string(),
            Some(n) => format!("may not be more than {n} bytes"),
            None => "value is too long".to_string(),
        };
        Self::new(ErrorKind::TooLong, field, None, detail)
    }

    /// `field.TooMany`.
    pub fn too_many(field: &str, actual: Option<u64>, max: Option<u64>) -> Self {
        let detail = match max {
            Some(1) => "must have at most 1 item".to_string(),
            Some(n) => format!("must have at most {n} items"),
            None => "has too many items".to_string(),
        };
        Self::new(ErrorKind::TooMany, field, actual.map(Value::from), detail)
    }

    /// The message without the field, as in `details.causes[].message` (`ErrorBody` in Go).
    pub fn body(&self) -> String {
        let mut s = match self.kind {
            ErrorKind::Required
            | ErrorKind::Forbidden
            | ErrorKind::TooLong
            | ErrorKind::Internal => self.kind.text().to_string(),
            _ => match &self.value {
                None => self.kind.text().to_string(),
                Some(v) => {
                    let shown = self.rendered.clone().unwrap_or_else(|| render_value(v));
                    format!("{}: {shown}", self.kind.text())
                }
            },
        };
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }

    /// One `details.causes` entry of the 422 Status.
    pub fn cause(&self) -> Value {
        json!({"reason": self.kind.reason(), "message": self.body(), "field": self.field})
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

impl std::error::Error for FieldError {}

/// A bad value as Go's `ErrorBody` prints it: strings quoted, scalars bare, the rest as JSON.
fn render_value(v: &Value) -> String {
    match v {
        Value::String(s) => go_quote(s),
        Value::Number(n) => format_number(n),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".to_string(),
        other => other.to_string(),
    }
}

/// Go's `%v` of a float64 for values that came in as JSON numbers.
pub(crate) fn format_number(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    format_float(f)
}

pub(crate) fn format_float(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e21 {
        format!("{}", f as i128)
    } else {
        format!("{f}")
    }
}

/// Go's `strconv.Quote`.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The `message` of the 422 Status kube-apiserver returns for an invalid object, e.g.
/// `DemoWeb.baeke.info "web" is invalid: [spec.replicas: Invalid value: ..., spec.x: ...]`.
///
/// `kind` is the qualified kind (`Kind.group`, or just `Kind` for the core group). Identical
/// messages are reported once, and brackets appear only around more than one, as
/// apimachinery's error aggregate does.
pub fn status_message(kind: &str, name: &str, errors: &[FieldError]) -> String {
    let mut seen = std::collections::HashSet::new();
    let msgs: Vec<String> = errors
        .iter()
        .map(|e| e.to_string())
        .filter(|m| seen.insert(m.clone()))
        .collect();
    let quoted = go_quote(name);
    match msgs.len() {
        0 => format!("{kind} {quoted} is invalid"),
        1 => format!("{kind} {quoted} is invalid: {}", msgs[0]),
        _ => format!("{kind} {quoted} is invalid: [{}]", msgs.join(", ")),
    }
}

/// `details.causes` of that Status: one `{reason, message, field}` per error.
pub fn status_causes(errors: &[FieldError]) -> Vec<Value> {
    errors.iter().map(FieldError::cause).collect()
}
