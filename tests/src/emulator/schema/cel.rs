//! CEL `x-kubernetes-validations`: compiling rules as a CRD is created (with the checks the
//! real server's type checker makes that matter to users: unknown functions, variables and
//! fields) and evaluating them against objects.

use super::error::{ErrorKind, FieldError};
use super::library;
use super::node::Node;
use base64::Engine;
use cel::common::ast::{EntryExpr, Expr};
use cel::common::types::CelOptional;
use cel::common::value::Val;
use cel::objects::{Key, Map as CelMap};
use cel::{Context, Env, Program, Value as CelValue};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// Where in the schema a rule sits: at the root (where `metadata` is narrowed) and whether its
/// old value can be found on update.
#[derive(Clone, Debug, Default)]
pub(crate) struct Scope {
    pub root: bool,
    /// The schema path of the enclosing list whose items have no identity, if any.
    pub uncorrelated: Option<String>,
    /// Below the root's `metadata`, where defaults are not allowed.
    pub in_metadata: bool,
}

impl Scope {
    pub fn root() -> Scope {
        Scope {
            root: true,
            ..Scope::default()
        }
    }

    pub fn child(&self) -> Scope {
        Scope {
            root: false,
            ..self.clone()
        }
    }

    pub fn metadata(&self) -> Scope {
        Scope {
            root: false,
            in_metadata: true,
            ..self.clone()
        }
    }

    pub fn uncorrelated(&self, path: &str) -> Scope {
        let list = self
            .uncorrelated
            .clone()
            .unwrap_or_else(|| path.to_string());
        Scope {
            root: false,
            uncorrelated: Some(list),
            ..self.clone()
        }
    }
}

/// A compiled `x-kubernetes-validations` entry.
#[derive(Debug)]
pub(crate) struct CompiledRule {
    pub rule: String,
    program: Program,
    message: Option<String>,
    message_expression: Option<Program>,
    /// `fieldPath` split into the segments appended to the error's field path.
    field_path: Vec<PathSegment>,
    reason: Option<String>,
    /// The rule reads `oldSelf`: a transition rule, evaluated only on update.
    transition: bool,
    optional_old_self: bool,
    root: bool,
}

#[derive(Debug, Clone)]
enum PathSegment {
    Field(String),
    Key(String),
    Index(usize),
}

const REASONS: &[&str] = &[
    "FieldValueDuplicate",
    "FieldValueForbidden",
    "FieldValueInvalid",
    "FieldValueRequired",
];

/// The shared environment: the CEL standard library, the strings extension and the
/// Kubernetes libraries (lists, regex, URLs, IPs and CIDRs, sets).
pub(crate) fn env() -> Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Env::stdlib();
        // Registration only fails on a duplicate declaration, a bug caught by every test.
        cel::extensions::strings(&mut env).expect("strings extension");
        library::register(&mut env).expect("kubernetes CEL library");
        Arc::new(env)
    })
    .clone()
}

/// Functions a CRD rule may call: the standard library, the strings extension and the
/// Kubernetes libraries. Anything else is rejected when the CRD is created, as the real
/// server's type checker does.
const KNOWN_FUNCTIONS: &[&str] = &[
    // standard library
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "int",
    "uint",
    "double",
    "string",
    "bytes",
    "bool",
    "type",
    "dyn",
    "duration",
    "timestamp",
    "getDate",
    "getDayOfMonth",
    "getDayOfWeek",
    "getDayOfYear",
    "getFullYear",
    "getHours",
    "getMilliseconds",
    "getMinutes",
    "getMonth",
    "getSeconds",
    // optional values
    "optional.of",
    "optional.none",
    "optional.ofNonZeroValue",
    "hasValue",
    "value",
    "or",
    "orValue",
    // strings extension
    "charAt",
    "indexOf",
    "lastIndexOf",
    "join",
    "lowerAscii",
    "upperAscii",
    "trim",
    "replace",
    "split",
    "substring",
    "format",
    "strings.quote",
    "reverse",
    // Kubernetes lists, regex, sets
    "isSorted",
    "sum",
    "min",
    "max",
    "find",
    "findAll",
    "sets.contains",
    "sets.equivalent",
    "sets.intersects",
    // Kubernetes URLs
    "url",
    "isURL",
    "getScheme",
    "getHost",
    "getHostname",
    "getPort",
    "getEscapedPath",
    "getQuery",
    // Kubernetes IPs and CIDRs
    "ip",
    "isIP",
    "ip.isCanonical",
    "family",
    "isUnspecified",
    "isLoopback",
    "isLinkLocalMulticast",
    "isLinkLocalUnicast",
    "isGlobalUnicast",
    "cidr",
    "isCIDR",
    "containsIP",
    "containsCIDR",
    "prefixLength",
    "masked",
];

/// Identifiers that name types or namespaces rather than variables.
const KNOWN_IDENTS: &[&str] = &[
    "int",
    "uint",
    "double",
    "bool",
    "string",
    "bytes",
    "list",
    "map",
    "null_type",
    "type",
    "optional",
    "sets",
    "strings",
];

/// Compiles one `x-kubernetes-validations` entry found at `path` on schema node `node`.
pub(crate) fn compile_rule(
    raw: &Value,
    node: &Node,
    path: &str,
    scope: &Scope,
) -> Result<CompiledRule, Vec<FieldError>> {
    let mut errors = Vec::new();
    let rule = raw
        .get("rule")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if rule.trim().is_empty() {
        return Err(vec![FieldError::required(&format!("{path}.rule"), "")]);
    }
    let env = env();
    let program = match env.compile(&rule) {
        Ok(p) => Some(p),
        Err(e) => {
            errors.push(FieldError::invalid(
                &format!("{path}.rule"),
                Value::String(rule.clone()),
                format!(
                    "compilation failed: {}",
                    format_parse_errors(&e.to_string())
                ),
            ));
            None
        }
    };
    let mut transition = false;
    if let Some(p) = &program {
        let mut checker = Checker {
            source: &rule,
            program: p,
            root_node: node,
            root: scope.root,
            problems: Vec::new(),
            uses_old_self: false,
        };
        checker.walk(p.expression(), &mut Vec::new());
        transition = checker.uses_old_self;
        if let Some(problem) = checker.problems.into_iter().next() {
            errors.push(rule_error(
                &format!("{path}.rule"),
                raw,
                format!("compilation failed: {problem}"),
            ));
        }
    }
    if transition && let Some(list) = &scope.uncorrelated {
        errors.push(FieldError::invalid(
            &format!("{path}.rule"),
            Value::String(rule.clone()),
            format!(
                "oldSelf cannot be used on the uncorrelatable portion of the schema within {list}"
            ),
        ));
    }

    let message = raw.get("message").and_then(Value::as_str).map(String::from);
    if let Some(m) = &message {
        if m.contains('\n') {
            errors.push(FieldError::invalid(
                &format!("{path}.message"),
                Value::String(m.clone()),
                "message must not contain line breaks",
            ));
        } else if m.trim().is_empty() {
            errors.push(FieldError::invalid(
                &format!("{path}.message"),
                Value::String(m.clone()),
                "message must be non-empty if specified",
            ));
        }
    }
    let mut message_expression = None;
    if let Some(me) = raw.get("messageExpression").and_then(Value::as_str) {
        let mpath = format!("{path}.messageExpression");
        if me.trim().is_empty() {
            errors.push(FieldError::required(
                &mpath,
                "messageExpression must be non-empty if specified",
            ));
        } else {
            match env.compile(me) {
                Ok(p) => {
                    let mut checker = Checker {
                        source: me,
                        program: &p,
                        root_node: node,
                        root: scope.root,
                        problems: Vec::new(),
                        uses_old_self: false,
                    };
                    checker.walk(p.expression(), &mut Vec::new());
                    if let Some(problem) = checker.problems.into_iter().next() {
                        errors.push(rule_error(
                            &mpath,
                            raw,
                            format!("messageExpression compilation failed: {problem}"),
                        ));
                    } else {
                        message_expression = Some(p);
                    }
                }
                Err(e) => errors.push(rule_error(
                    &mpath,
                    raw,
                    format!(
                        "messageExpression compilation failed: {}",
                        format_parse_errors(&e.to_string())
                    ),
                )),
            }
        }
    }

    let reason = raw.get("reason").and_then(Value::as_str).map(String::from);
    if let Some(r) = &reason
        && !REASONS.contains(&r.as_str())
    {
        errors.push(FieldError::not_supported(
            &format!("{path}.reason"),
            Value::String(r.clone()),
            &REASONS.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        ));
    }

    let mut field_path = Vec::new();
    if let Some(fp) = raw.get("fieldPath").and_then(Value::as_str) {
        match parse_field_path(fp).and_then(|segs| check_field_path(node, &segs).map(|_| segs)) {
            Ok(segs) => field_path = segs,
            Err(detail) => errors.push(FieldError::invalid(
                &format!("{path}.fieldPath"),
                Value::String(fp.to_string()),
                detail,
            )),
        }
    }

    let optional_old_self = raw
        .get("optionalOldSelf")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if optional_old_self && !transition {
        errors.push(FieldError::forbidden(
            &format!("{path}.optionalOldSelf"),
            "may not be set if oldSelf is not used in rule",
        ));
    }

    match program {
        Some(program) if errors.is_empty() => Ok(CompiledRule {
            rule,
            program,
            message,
            message_expression,
            field_path,
            reason,
            transition,
            optional_old_self,
            root: scope.root,
        }),
        _ => Err(errors),
    }
}

/// The rule as the server echoes it back in an error: Go's JSON of the internal
/// `ValidationRule`, which has no JSON tags, so fields appear under their Go names, in order.
fn rule_error(path: &str, raw: &Value, detail: String) -> FieldError {
    let s = |k: &str| raw.get(k).and_then(Value::as_str).unwrap_or("");
    let opt = |k: &str| raw.get(k).map_or("null".to_string(), Value::to_string);
    let rendered = format!(
        "{{\"Rule\":{},\"Message\":{},\"MessageExpression\":{},\"Reason\":{},\"FieldPath\":{},\"OptionalOldSelf\":{}}}",
        Value::from(s("rule")),
        Value::from(s("message")),
        Value::from(s("messageExpression")),
        opt("reason"),
        Value::from(s("fieldPath")),
        opt("optionalOldSelf"),
    );
    let mut e = FieldError::invalid(path, raw.clone(), detail);
    e.rendered = Some(rendered);
    e
}

/// cel-rust renders a parse error's snippet as `| line`; cel-go, and so kube-apiserver, as ` | line`.
fn format_parse_errors(s: &str) -> String {
    s.lines()
        .map(|l| {
            if l.starts_with("| ") {
                format!(" {l}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Walks a compiled expression looking for what the real type checker would refuse.
struct Checker<'a> {
    source: &'a str,
    program: &'a Program,
    root_node: &'a Node,
    root: bool,
    problems: Vec<String>,
    uses_old_self: bool,
}

impl<'a> Checker<'a> {
    fn report(&mut self, id: u64, msg: String) {
        let offset = self
            .program
            .source_info()
            .offset_for(id)
            .map(|(start, _)| start as usize)
            .unwrap_or(0);
        let before = &self.source[..offset.min(self.source.len())];
        let line_no = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let col = before[line_start..].chars().count();
        let line_text = self.source[line_start..].lines().next().unwrap_or("");
        self.problems.push(format!(
            "ERROR: <input>:{line_no}:{}: {msg}\n | {line_text}\n | {}^",
            col + 1,
            ".".repeat(col)
        ));
    }

    fn walk(&mut self, e: &cel::IdedExpr, bound: &mut Vec<String>) {
        match &e.expr {
            Expr::Ident(name) => {
                if name == "oldSelf" {
                    self.uses_old_self = true;
                } else if name != "self"
                    && !bound.iter().any(|b| b == name)
                    && !KNOWN_IDENTS.contains(&name.as_str())
                {
                    self.report(
                        e.id,
                        format!("undeclared reference to '{name}' (in container '')"),
                    );
                }
            }
            Expr::Call(call) => {
                let qualified = match call.target.as_deref().map(|t| &t.expr) {
                    Some(Expr::Ident(ns))
                        if !bound.contains(ns) && ns != "self" && ns != "oldSelf" =>
                    {
                        let q = format!("{ns}.{}", call.func_name);
                        KNOWN_FUNCTIONS.contains(&q.as_str()).then_some(q)
                    }
                    _ => None,
                };
                let is_operator = call.func_name.starts_with('_')
                    || call.func_name.starts_with('@')
                    || call.func_name.starts_with('!');
                if qualified.is_none()
                    && !is_operator
                    && !KNOWN_FUNCTIONS.contains(&call.func_name.as_str())
                {
                    self.report(
                        e.id,
                        format!(
                            "undeclared reference to '{}' (in container '')",
                            call.func_name
                        ),
                    );
                }
                if qualified.is_none()
                    && let Some(t) = &call.target
                {
                    self.walk(t, bound);
                }
                for a in &call.args {
                    self.walk(a, bound);
                }
            }
            Expr::Select(sel) => {
                self.check_field(e.id, &sel.operand.expr, &sel.field);
                self.walk(&sel.operand, bound);
            }
            Expr::Comprehension(c) => {
                self.walk(&c.iter_range, bound);
                self.walk(&c.accu_init, bound);
                let n = bound.len();
                bound.push(c.iter_var.clone());
                if let Some(v2) = &c.iter_var2 {
                    bound.push(v2.clone());
                }
                bound.push(c.accu_var.clone());
                self.walk(&c.loop_cond, bound);
                self.walk(&c.loop_step, bound);
                self.walk(&c.result, bound);
                bound.truncate(n);
            }
            Expr::List(l) => {
                for x in &l.elements {
                    self.walk(x, bound);
                }
            }
            Expr::Map(m) => {
                for entry in &m.entries {
                    if let EntryExpr::MapEntry(me) = &entry.expr {
                        self.walk(&me.key, bound);
                        self.walk(&me.value, bound);
                    }
                }
            }
            Expr::Struct(s) => {
                for entry in &s.entries {
                    if let EntryExpr::StructField(f) = &entry.expr {
                        self.walk(&f.value, bound);
                    }
                }
            }
            Expr::Literal(_) | Expr::Unspecified => {}
        }
    }

    /// The schema node an expression selects from `self` or `oldSelf`, when it can be followed.
    fn resolve(&self, e: &Expr) -> Option<&'a Node> {
        match e {
            Expr::Ident(n) if n == "self" || n == "oldSelf" => Some(self.root_node),
            Expr::Select(sel) => {
                let parent = self.resolve(&sel.operand.expr)?;
                child_for_field(parent, &sel.field)
            }
            _ => None,
        }
    }

    /// Checks `operand.field` against the schema, where the operand can be followed from `self`.
    fn check_field(&mut self, id: u64, operand: &Expr, field: &str) {
        let at_root =
            self.root && matches!(operand, Expr::Ident(n) if n == "self" || n == "oldSelf");
        let metadata_of_resource = match operand {
            Expr::Select(sel) if sel.field == "metadata" => {
                let grand = self.resolve(&sel.operand.expr);
                let grand_is_root = self.root
                    && matches!(&sel.operand.expr, Expr::Ident(n) if n == "self" || n == "oldSelf");
                grand_is_root || grand.is_some_and(|g| g.embedded)
            }
            _ => false,
        };
        if metadata_of_resource {
            if field != "name" && field != "generateName" {
                self.report(id, format!("undefined field '{field}'"));
            }
            return;
        }
        let Some(parent) = self.resolve(operand) else {
            return;
        };
        if (at_root || parent.embedded) && ["apiVersion", "kind", "metadata"].contains(&field) {
            return;
        }
        if parent.is_object() && parent.additional.is_none() {
            if parent.preserve_unknown && parent.properties.is_empty() {
                return;
            }
            if !parent
                .properties
                .keys()
                .any(|k| escape_field(k).as_deref() == Some(field))
            {
                self.report(id, format!("undefined field '{field}'"));
            }
        }
    }
}

fn child_for_field<'n>(parent: &'n Node, field: &str) -> Option<&'n Node> {
    if let Some(add) = &parent.additional {
        return Some(add);
    }
    parent
        .properties
        .iter()
        .find(|(k, _)| escape_field(k).as_deref() == Some(field))
        .map(|(_, v)| v)
}

const RESERVED: &[&str] = &[
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// The name a property has in CEL (Kubernetes escapes keywords and `_ . - /`), or `None` when
/// it cannot be accessed as a field.
pub(crate) fn escape_field(name: &str) -> Option<String> {
    if RESERVED.contains(&name) {
        return Some(format!("__{name}__"));
    }
    let mut chars = name.chars();
    let first = chars.next()?;
    if !(first.is_ascii_alphabetic() || "_.-/".contains(first)) {
        return None;
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c))
    {
        return None;
    }
    Some(
        name.replace("__", "__underscores__")
            .replace('.', "__dot__")
            .replace('-', "__dash__")
            .replace('/', "__slash__"),
    )
}

fn parse_field_path(fp: &str) -> Result<Vec<PathSegment>, String> {
    let invalid = || "fieldPath must be a valid path".to_string();
    let mut out = Vec::new();
    let b = fp.as_bytes();
    let mut i = 0;
    if fp.is_empty() {
        return Err(invalid());
    }
    while i < b.len() {
        match b[i] {
            b'.' => {
                let start = i + 1;
                let mut j = start;
                while j < b.len() && b[j] != b'.' && b[j] != b'[' {
                    j += 1;
                }
                if j == start {
                    return Err(invalid());
                }
                out.push(PathSegment::Field(fp[start..j].to_string()));
                i = j;
            }
            b'[' => {
                let close = fp[i..].find(']').map(|c| c + i).ok_or_else(invalid)?;
                let inner = &fp[i + 1..close];
                if let Some(key) = inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
                    out.push(PathSegment::Key(key.to_string()));
                } else if let Ok(n) = inner.parse::<usize>() {
                    out.push(PathSegment::Index(n));
                } else {
                    return Err(invalid());
                }
                i = close + 1;
            }
            _ => return Err(invalid()),
        }
    }
    Ok(out)
}

fn check_field_path(node: &Node, segs: &[PathSegment]) -> Result<(), String> {
    let mut cur = node;
    for s in segs {
        let next = match s {
            PathSegment::Field(f) | PathSegment::Key(f) => {
                cur.properties.get(f).or(cur.additional.as_deref())
            }
            PathSegment::Index(_) => cur.items.as_deref(),
        };
        match next {
            Some(n) => cur = n,
            None if cur.preserve_unknown => return Ok(()),
            None => return Err("fieldPath must be a valid path: field does not exist".into()),
        }
    }
    Ok(())
}

fn append_path(base: &str, segs: &[PathSegment]) -> String {
    let mut out = base.to_string();
    for s in segs {
        match s {
            PathSegment::Field(f) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(f);
            }
            PathSegment::Key(k) => out.push_str(&format!("[{k}]")),
            PathSegment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// The JSON type name of a schema node, echoed as the "value" of a failed rule.
fn type_name(node: &Node) -> &str {
    node.ty.as_deref().unwrap_or("")
}

/// Evaluates the rules of `node` on `value` (old value `old`, if the object is being updated and
/// the value can be correlated), appending failures at `path`. When `unchanged` (the value, or
/// its nearest correlatable ancestor, equals the old one) failures of rules that do not read
/// `oldSelf` are dropped: kube-apiserver ratchets them, so an object stored before a rule was
/// tightened can still be updated elsewhere.
pub(crate) fn evaluate(
    node: &Node,
    value: &Value,
    old: Option<&Value>,
    path: &str,
    unchanged: bool,
    errors: &mut Vec<FieldError>,
) {
    if node.rules.is_empty() {
        return;
    }
    let env = env();
    let resource = node.rules[0].root || node.embedded;
    let self_val = to_cel(value, node, resource);
    let old_val = old.map(|o| to_cel(o, node, resource));
    // A rule at the root reports on a nil field path, which apimachinery prints so.
    let at = |p: String| if p.is_empty() { "<nil>".to_string() } else { p };
    for rule in &node.rules {
        if rule.transition && old_val.is_none() && !rule.optional_old_self {
            continue;
        }
        let mut ctx = Context::with_env(env.clone());
        ctx.add_variable_from_value("self", self_val.clone());
        if rule.transition {
            if rule.optional_old_self {
                let opt = match &old_val {
                    Some(v) => match Box::<dyn Val>::try_from(v.clone()) {
                        Ok(b) => CelOptional::of(b),
                        Err(_) => CelOptional::none(),
                    },
                    None => CelOptional::none(),
                };
                ctx.add_variable_as_val("oldSelf", Box::new(opt));
            } else if let Some(o) = &old_val {
                ctx.add_variable_from_value("oldSelf", o.clone());
            }
        }
        match rule.program.execute(&ctx) {
            Ok(CelValue::Bool(true)) => {}
            Ok(CelValue::Bool(false)) => {
                if unchanged && !rule.transition {
                    continue;
                }
                let detail = failure_message(rule, &ctx);
                // Objects and lists are not echoed back; scalars are.
                let shown = match node.ty.as_deref() {
                    Some("object" | "array") => None,
                    _ => Some(value.clone()),
                };
                errors.push(error_for_reason(
                    &at(append_path(path, &rule.field_path)),
                    shown,
                    detail,
                    rule.reason.as_deref(),
                ));
            }
            Ok(other) => errors.push(FieldError::invalid(
                &at(path.to_string()),
                json!(type_name(node)),
                format!(
                    "rule did not evaluate to a bool (got {other:?}) evaluating rule: {}",
                    rule_error_string(rule)
                ),
            )),
            Err(e) => errors.push(FieldError::invalid(
                &at(path.to_string()),
                json!(type_name(node)),
                format!(
                    "{} evaluating rule: {}",
                    eval_error(&e),
                    rule_error_string(rule)
                ),
            )),
        }
    }
}

/// A runtime error as cel-go words the common ones.
fn eval_error(e: &cel::ExecutionError) -> String {
    match e {
        cel::ExecutionError::NoSuchKey(k) => format!("no such key: {k}"),
        cel::ExecutionError::NoSuchOverload(_) => "no such overload".to_string(),
        cel::ExecutionError::DivisionByZero(_) => "division by zero".to_string(),
        cel::ExecutionError::RemainderByZero(_) => "modulus by zero".to_string(),
        other => other.to_string(),
    }
}

/// The rule's message, or the rule itself (`ruleErrorString` in apiextensions).
fn rule_error_string(rule: &CompiledRule) -> String {
    match &rule.message {
        Some(m) if !m.is_empty() => m.trim().to_string(),
        _ => rule.rule.trim().to_string(),
    }
}

/// The message of a failed rule (`ruleMessageOrDefault` in apiextensions).
fn default_message(rule: &CompiledRule) -> String {
    match &rule.message {
        Some(m) if !m.is_empty() => m.trim().to_string(),
        _ => format!("failed rule: {}", rule_error_string(rule)),
    }
}

fn failure_message(rule: &CompiledRule, ctx: &Context) -> String {
    if let Some(me) = &rule.message_expression
        && let Ok(CelValue::String(s)) = me.execute(ctx)
    {
        let s = s.trim();
        if !s.is_empty() && !s.contains('\n') {
            return s.to_string();
        }
    }
    default_message(rule)
}

fn error_for_reason(
    field: &str,
    shown: Option<Value>,
    detail: String,
    reason: Option<&str>,
) -> FieldError {
    match reason {
        Some("FieldValueForbidden") => FieldError::forbidden(field, detail),
        Some("FieldValueRequired") => FieldError::required(field, detail),
        // apimachinery's Duplicate carries no detail.
        Some("FieldValueDuplicate") => FieldError::new(ErrorKind::Duplicate, field, shown, ""),
        _ => FieldError::new(ErrorKind::Invalid, field, shown, detail),
    }
}

/// Converts a JSON value to CEL following its schema: integers and numbers by declared type,
/// absent and null fields left out, property names escaped, `metadata` narrowed to `name`
/// and `generateName` at the root and in embedded resources.
pub(crate) fn to_cel(v: &Value, node: &Node, resource: bool) -> CelValue {
    match v {
        Value::Null => CelValue::Null,
        Value::Bool(b) => CelValue::Bool(*b),
        Value::Number(n) => {
            if node.ty.as_deref() == Some("number") {
                CelValue::Float(n.as_f64().unwrap_or(0.0))
            } else if let Some(i) = n.as_i64() {
                CelValue::Int(i)
            } else if let Some(u) = n.as_u64() {
                CelValue::UInt(u)
            } else {
                CelValue::Float(n.as_f64().unwrap_or(0.0))
            }
        }
        Value::String(s) => string_to_cel(s, node),
        Value::Array(a) => {
            let items: Vec<CelValue> = a
                .iter()
                .map(|x| match &node.items {
                    Some(it) => to_cel(x, it, it.embedded),
                    None => to_cel_dyn(x),
                })
                .collect();
            CelValue::List(Arc::new(items))
        }
        Value::Object(o) => {
            let mut map: HashMap<Key, CelValue> = HashMap::new();
            if let Some(add) = &node.additional {
                for (k, x) in o {
                    if !x.is_null() {
                        map.insert(Key::from(k.as_str()), to_cel(x, add, add.embedded));
                    }
                }
            } else if node.properties.is_empty() && node.preserve_unknown && !resource {
                return to_cel_dyn(v);
            } else {
                for (k, x) in o {
                    if x.is_null() {
                        continue;
                    }
                    if resource && (k == "apiVersion" || k == "kind") {
                        map.insert(Key::from(k.as_str()), to_cel_dyn(x));
                        continue;
                    }
                    if resource && k == "metadata" {
                        let mut meta: HashMap<Key, CelValue> = HashMap::new();
                        for f in ["name", "generateName"] {
                            if let Some(Value::String(s)) = x.get(f) {
                                meta.insert(Key::from(f), CelValue::String(Arc::new(s.clone())));
                            }
                        }
                        map.insert(Key::from("metadata"), CelValue::Map(CelMap::from(meta)));
                        continue;
                    }
                    let Some(child) = node.properties.get(k) else {
                        continue;
                    };
                    let Some(name) = escape_field(k) else {
                        continue;
                    };
                    map.insert(Key::from(name), to_cel(x, child, child.embedded));
                }
            }
            CelValue::Map(CelMap::from(map))
        }
    }
}

/// Strings with `format: byte`, `duration` or `date-time` are bytes, durations and timestamps in CEL.
fn string_to_cel(s: &str, node: &Node) -> CelValue {
    let plain = || CelValue::String(Arc::new(s.to_string()));
    match node.format.as_deref() {
        Some("byte") => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map(|b| CelValue::Bytes(Arc::new(b)))
            .unwrap_or_else(|_| plain()),
        Some("date-time") => convert_with("timestamp", s).unwrap_or_else(plain),
        Some("duration") => convert_with("duration", s).unwrap_or_else(plain),
        _ => plain(),
    }
}

/// Converts through CEL's own `timestamp()` / `duration()`, so that values compare and
/// compute as in the real server without a date library of our own.
fn convert_with(func: &str, s: &str) -> Option<CelValue> {
    let env = env();
    let program = env.compile(&format!("{func}(x)")).ok()?;
    let mut ctx = Context::with_env(env);
    ctx.add_variable_from_value("x", s.to_string());
    program.execute(&ctx).ok()
}

/// Schema-less conversion, for `x-kubernetes-preserve-unknown-fields` subtrees.
fn to_cel_dyn(v: &Value) -> CelValue {
    match v {
        Value::Null => CelValue::Null,
        Value::Bool(b) => CelValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => CelValue::Int(i),
            None => match n.as_u64() {
                Some(u) => CelValue::UInt(u),
                None => CelValue::Float(n.as_f64().unwrap_or(0.0)),
            },
        },
        Value::String(s) => CelValue::String(Arc::new(s.clone())),
        Value::Array(a) => CelValue::List(Arc::new(a.iter().map(to_cel_dyn).collect())),
        Value::Object(o) => {
            let map: HashMap<Key, CelValue> = o
                .iter()
                .filter(|(_, x)| !x.is_null())
                .map(|(k, x)| (Key::from(k.as_str()), to_cel_dyn(x)))
                .collect();
            CelValue::Map(CelMap::from(map))
        }
    }
}
