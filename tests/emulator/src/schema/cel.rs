//! CEL `x-kubernetes-validations`: compiling rules as a CRD is created (with the checks the
//! real server's type checker makes that matter to users: unknown functions, variables and
//! fields) and evaluating them against objects.

use super::error::{ErrorKind, FieldError, go_quote};
use super::library;
use super::node::Node;
use super::rule::{CompiledRule, PathSegment, escape_field};
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
    /// Below the root's `metadata`, `apiVersion` or `kind` (named), where defaults are not allowed.
    pub resource_meta: Option<String>,
    /// How many times a rule here may run for one object (product of the enclosing lists'
    /// and maps' cardinalities), for the cost budget.
    pub cardinality: f64,
}

impl Scope {
    pub fn root() -> Scope {
        Scope {
            root: true,
            cardinality: 1.0,
            ..Scope::default()
        }
    }

    /// The scope of the elements of a list or map that holds up to `n` of them.
    pub fn times(&self, n: f64) -> Scope {
        Scope {
            cardinality: self.cardinality * n,
            ..self.clone()
        }
    }

    pub fn child(&self) -> Scope {
        Scope {
            root: false,
            ..self.clone()
        }
    }

    pub fn resource_meta(&self, field: &str) -> Scope {
        Scope {
            root: false,
            resource_meta: Some(field.to_string()),
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
    // Kubernetes quantities
    "quantity",
    "isQuantity",
    "isInteger",
    "asInteger",
    "asApproximateFloat",
    "sign",
    "add",
    "sub",
    "isLessThan",
    "isGreaterThan",
    "compareTo",
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
        return Err(vec![FieldError::required(
            &format!("{path}.rule"),
            "rule is not specified",
        )]);
    }
    let message_text = raw.get("message").and_then(Value::as_str).unwrap_or("");
    if rule.trim().contains(['\n', '\r']) && message_text.trim().is_empty() {
        errors.push(FieldError::required(
            &format!("{path}.message"),
            "message must be specified if rule contains line breaks",
        ));
    }
    let env = env();
    let program = match env.compile(&rule) {
        Ok(p) => Some(p),
        Err(e) => {
            errors.push(rule_error(
                &format!("{path}.rule"),
                raw,
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
        let mut checker = Checker::new(&rule, p, node, scope.root);
        let ty = checker.check();
        transition = checker.uses_old_self;
        if let Some(problem) = checker.problems.into_iter().next() {
            errors.push(rule_error(
                &format!("{path}.rule"),
                raw,
                format!("compilation failed: {problem}"),
            ));
        } else if ty.is_some_and(|t| t != Ty::Bool) {
            errors.push(rule_error(
                &format!("{path}.rule"),
                raw,
                "cel expression must evaluate to a bool".to_string(),
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
                    let mut checker = Checker::new(me, &p, node, scope.root);
                    let ty = checker.check();
                    if let Some(problem) = checker.problems.into_iter().next() {
                        errors.push(rule_error(
                            &mpath,
                            raw,
                            format!("messageExpression compilation failed: {problem}"),
                        ));
                    } else if ty.is_some_and(|t| t != Ty::String) {
                        errors.push(rule_error(
                            &mpath,
                            raw,
                            "messageExpression must evaluate to a string".to_string(),
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

    let mut cost = 0.0;
    if let Some(p) = &program
        && errors.is_empty()
    {
        let coster = super::cost::Coster { root_node: node };
        cost = coster.estimate(p.expression());
        if cost > super::cost::RULE_LIMIT {
            errors.push(FieldError::forbidden(
                &format!("{path}.rule"),
                super::cost::exceeds_message("estimated rule cost", cost, super::cost::RULE_LIMIT),
            ));
        }
        if let Some(me) = &message_expression {
            let me_cost = coster.estimate(me.expression());
            if me_cost > super::cost::RULE_LIMIT {
                errors.push(FieldError::forbidden(
                    &format!("{path}.messageExpression"),
                    super::cost::exceeds_message(
                        "estimated messageExpression cost",
                        me_cost,
                        super::cost::RULE_LIMIT,
                    ),
                ));
            }
            // The schema budget counts both.
            cost += me_cost;
        }
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
            cost,
        }),
        _ => Err(errors),
    }
}

/// The rule as the server echoes it back in an error: Go's `%#v` of the internal
/// `ValidationRule` (as live servers print it). Go would print the addresses of the pointer
/// fields; a fixed one stands in for them.
fn rule_error(path: &str, raw: &Value, detail: String) -> FieldError {
    let s = |k: &str| go_quote(raw.get(k).and_then(Value::as_str).unwrap_or(""));
    let ptr = |k: &str, ty: &str| match raw.get(k) {
        Some(v) if !v.is_null() => format!("(*{ty})(0xc000010000)"),
        _ => format!("(*{ty})(nil)"),
    };
    let rendered = format!(
        "apiextensions.ValidationRule{{Rule:{}, Message:{}, MessageExpression:{}, Reason:{}, FieldPath:{}, OptionalOldSelf:{}}}",
        s("rule"),
        s("message"),
        s("messageExpression"),
        ptr("reason", "apiextensions.FieldValueErrorReason"),
        s("fieldPath"),
        ptr("optionalOldSelf", "bool"),
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

/// The static type of an expression, as far as the checker can tell.
#[derive(Clone, Debug, PartialEq)]
enum Ty {
    Int,
    Uint,
    Double,
    String,
    Bool,
    Bytes,
    Null,
    Timestamp,
    Duration,
    List(Box<Option<Ty>>),
    Map(Box<Option<Ty>>),
    Object,
}

impl Ty {
    /// cel-go's name for scalar types; composite types are never named in our messages.
    fn scalar_name(&self) -> Option<&'static str> {
        Some(match self {
            Ty::Int => "int",
            Ty::Uint => "uint",
            Ty::Double => "double",
            Ty::String => "string",
            Ty::Bool => "bool",
            Ty::Bytes => "bytes",
            Ty::Null => "null_type",
            Ty::Timestamp => "google.protobuf.Timestamp",
            Ty::Duration => "google.protobuf.Duration",
            _ => return None,
        })
    }

    fn numeric(&self) -> bool {
        matches!(self, Ty::Int | Ty::Uint | Ty::Double)
    }
}

/// The CEL type Kubernetes gives a schema node.
fn node_ty(n: &Node) -> Option<Ty> {
    if n.int_or_string {
        return None;
    }
    Some(match n.ty.as_deref()? {
        "integer" => Ty::Int,
        "number" => Ty::Double,
        "boolean" => Ty::Bool,
        "string" => match n.format.as_deref() {
            Some("byte") => Ty::Bytes,
            Some("date-time") => Ty::Timestamp,
            Some("duration") => Ty::Duration,
            _ => Ty::String,
        },
        "array" => Ty::List(Box::new(n.items.as_deref().and_then(node_ty))),
        "object" => match &n.additional {
            Some(add) => Ty::Map(Box::new(node_ty(add))),
            None if n.preserve_unknown && n.properties.is_empty() => return None,
            None => Ty::Object,
        },
        _ => return None,
    })
}

/// Member functions of strings (receiver type `string` only).
const STRING_METHODS: &[&str] = &[
    "startsWith",
    "endsWith",
    "contains",
    "matches",
    "lowerAscii",
    "upperAscii",
    "trim",
    "replace",
    "split",
    "substring",
    "charAt",
    "find",
    "findAll",
];

/// A variable bound by a macro: its name, the schema node it ranges over and its type.
type Bound<'a> = (String, Option<&'a Node>, Option<Ty>);

/// Walks a compiled expression looking for what the real type checker would refuse: unknown
/// functions and variables, fields the schema does not declare, operators applied to
/// mismatched types and rules that are not boolean.
struct Checker<'a> {
    source: &'a str,
    program: &'a Program,
    root_node: &'a Node,
    root: bool,
    problems: Vec<String>,
    uses_old_self: bool,
}

impl<'a> Checker<'a> {
    fn new(source: &'a str, program: &'a Program, root_node: &'a Node, root: bool) -> Self {
        Checker {
            source,
            program,
            root_node,
            root,
            problems: Vec::new(),
            uses_old_self: false,
        }
    }

    /// Checks the whole expression and returns its type.
    fn check(&mut self) -> Option<Ty> {
        let program = self.program;
        self.walk(program.expression(), &mut Vec::new())
    }

    fn report(&mut self, id: u64, msg: String) {
        let offset = self
            .program
            .source_info()
            .offset_for(id)
            .map(|(start, _)| start as usize)
            .unwrap_or(0);
        // Offsets may fall inside a multi-byte character; step back to a boundary.
        let mut offset = offset.min(self.source.len());
        while !self.source.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.source[..offset];
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

    fn no_overload(&mut self, id: u64, func: &str, receiver: Option<&Ty>, args: &[Option<Ty>]) {
        let names: Option<Vec<&str>> = args
            .iter()
            .map(|a| a.as_ref().and_then(Ty::scalar_name))
            .collect();
        let Some(names) = names else {
            return;
        };
        let sig = match receiver.and_then(Ty::scalar_name) {
            Some(r) => format!("{r}.({})", names.join(", ")),
            None => format!("({})", names.join(", ")),
        };
        self.report(
            id,
            format!("found no matching overload for '{func}' applied to '{sig}'"),
        );
    }

    fn walk(&mut self, e: &cel::IdedExpr, bound: &mut Vec<Bound<'a>>) -> Option<Ty> {
        match &e.expr {
            Expr::Ident(name) => {
                if let Some((_, _, ty)) = bound.iter().rev().find(|(b, _, _)| b == name) {
                    return ty.clone();
                }
                match name.as_str() {
                    "self" => node_ty(self.root_node),
                    "oldSelf" => {
                        self.uses_old_self = true;
                        // With optionalOldSelf it is an optional: leave it untyped.
                        None
                    }
                    n if KNOWN_IDENTS.contains(&n) => None,
                    _ => {
                        self.report(
                            e.id,
                            format!("undeclared reference to '{name}' (in container '')"),
                        );
                        None
                    }
                }
            }
            Expr::Literal(l) => Some(match l {
                cel::common::ast::LiteralValue::Boolean(_) => Ty::Bool,
                cel::common::ast::LiteralValue::Bytes(_) => Ty::Bytes,
                cel::common::ast::LiteralValue::Double(_) => Ty::Double,
                cel::common::ast::LiteralValue::Int(_) => Ty::Int,
                cel::common::ast::LiteralValue::Null => Ty::Null,
                cel::common::ast::LiteralValue::String(_) => Ty::String,
                cel::common::ast::LiteralValue::UInt(_) => Ty::Uint,
            }),
            Expr::Call(call) => self.walk_call(e.id, call, bound),
            Expr::Select(sel) => {
                self.check_field(e.id, &sel.operand.expr, &sel.field, bound);
                self.walk(&sel.operand, bound);
                if sel.test {
                    return Some(Ty::Bool);
                }
                if self.is_resource_metadata(&sel.operand.expr, bound) {
                    return Some(Ty::String);
                }
                self.resolve(&e.expr, bound).and_then(node_ty)
            }
            Expr::Comprehension(c) => {
                let range = self.walk(&c.iter_range, bound);
                let range_node = self.resolve(&c.iter_range.expr, bound);
                let (elem_node, elem_ty) = match (&range, range_node) {
                    (Some(Ty::Map(_)), _) => (None, Some(Ty::String)),
                    (Some(Ty::List(t)), n) => (n.and_then(|n| n.items.as_deref()), (**t).clone()),
                    _ => (None, None),
                };
                let accu = self.walk(&c.accu_init, bound);
                let n = bound.len();
                match &c.iter_var2 {
                    // Two-variable form: index or key, then the value.
                    Some(v2) => {
                        let key_ty = match &range {
                            Some(Ty::List(_)) => Some(Ty::Int),
                            _ => Some(Ty::String),
                        };
                        bound.push((c.iter_var.clone(), None, key_ty));
                        bound.push((v2.clone(), elem_node, elem_ty));
                    }
                    None => bound.push((c.iter_var.clone(), elem_node, elem_ty)),
                }
                bound.push((c.accu_var.clone(), None, accu));
                self.walk(&c.loop_cond, bound);
                self.walk(&c.loop_step, bound);
                let result = self.walk(&c.result, bound);
                bound.truncate(n);
                result
            }
            Expr::List(l) => {
                let tys: Vec<Option<Ty>> = l.elements.iter().map(|x| self.walk(x, bound)).collect();
                let first = tys.first().cloned().flatten();
                let same = tys.iter().all(|t| *t == first);
                Some(Ty::List(Box::new(if same { first } else { None })))
            }
            Expr::Map(m) => {
                for entry in &m.entries {
                    if let EntryExpr::MapEntry(me) = &entry.expr {
                        self.walk(&me.key, bound);
                        self.walk(&me.value, bound);
                    }
                }
                Some(Ty::Map(Box::new(None)))
            }
            Expr::Struct(s) => {
                for entry in &s.entries {
                    if let EntryExpr::StructField(f) = &entry.expr {
                        self.walk(&f.value, bound);
                    }
                }
                None
            }
            Expr::Unspecified => None,
        }
    }

    fn walk_call(
        &mut self,
        id: u64,
        call: &cel::common::ast::CallExpr,
        bound: &mut Vec<Bound<'a>>,
    ) -> Option<Ty> {
        let f = call.func_name.as_str();
        let qualified = match call.target.as_deref().map(|t| &t.expr) {
            Some(Expr::Ident(ns))
                if !bound.iter().any(|(b, _, _)| b == ns) && ns != "self" && ns != "oldSelf" =>
            {
                let q = format!("{ns}.{f}");
                KNOWN_FUNCTIONS.contains(&q.as_str()).then_some(q)
            }
            _ => None,
        };
        let is_operator = f.starts_with('_') || f.starts_with('@') || f.starts_with('!');
        if qualified.is_none() && !is_operator && !KNOWN_FUNCTIONS.contains(&f) {
            self.report(
                id,
                format!("undeclared reference to '{f}' (in container '')"),
            );
        }
        let receiver = match (&qualified, &call.target) {
            (None, Some(t)) => self.walk(t, bound),
            _ => None,
        };
        let args: Vec<Option<Ty>> = call.args.iter().map(|a| self.walk(a, bound)).collect();
        let arg = |i: usize| args.get(i).cloned().flatten();
        match f {
            "!_" | "_&&_" | "_||_" | "@in" | "@not_strictly_false" => Some(Ty::Bool),
            "_==_" | "_!=_" | "_<_" | "_<=_" | "_>_" | "_>=_" => {
                if let (Some(a), Some(b)) = (arg(0), arg(1))
                    && a != b
                    && !(a.numeric() && b.numeric())
                    && a != Ty::Null
                    && b != Ty::Null
                {
                    self.no_overload(id, f, None, &args);
                }
                Some(Ty::Bool)
            }
            "_+_" | "_-_" | "_*_" | "_/_" | "_%_" => match (arg(0), arg(1)) {
                (Some(a), Some(b)) if a == b => Some(a),
                (Some(Ty::Timestamp), Some(Ty::Duration)) => Some(Ty::Timestamp),
                (Some(Ty::Timestamp), Some(Ty::Timestamp)) if f == "_-_" => Some(Ty::Duration),
                (Some(a), Some(b)) => {
                    if a.scalar_name().is_some() && b.scalar_name().is_some() {
                        self.no_overload(id, f, None, &args);
                    }
                    None
                }
                _ => None,
            },
            "-_" => arg(0),
            "_?_:_" => {
                let (a, b) = (arg(1), arg(2));
                if a == b { a } else { None }
            }
            "_[_]" => match arg(0) {
                Some(Ty::List(t)) | Some(Ty::Map(t)) => *t,
                _ => None,
            },
            _ if qualified.is_some() => None,
            _ => {
                if let Some(r) = &receiver
                    && STRING_METHODS.contains(&f)
                    && *r != Ty::String
                    && r.scalar_name().is_some()
                {
                    self.no_overload(id, f, Some(r), &args);
                }
                function_result(f)
            }
        }
    }

    /// Whether `operand` is the `metadata` of the root or of an embedded resource.
    fn is_resource_metadata(&self, operand: &Expr, bound: &[Bound<'a>]) -> bool {
        match operand {
            Expr::Select(sel) if sel.field == "metadata" && !sel.test => {
                let grand_is_root = self.root
                    && matches!(&sel.operand.expr, Expr::Ident(n) if (n == "self" || n == "oldSelf") && !bound.iter().any(|(b, _, _)| b == n));
                grand_is_root
                    || self
                        .resolve(&sel.operand.expr, bound)
                        .is_some_and(|g| g.embedded)
            }
            _ => false,
        }
    }

    /// The schema node an expression selects from `self`, `oldSelf` or a macro variable
    /// ranging over a schema list, when it can be followed.
    fn resolve(&self, e: &Expr, bound: &[Bound<'a>]) -> Option<&'a Node> {
        match e {
            Expr::Ident(n) => match bound.iter().rev().find(|(b, _, _)| b == n) {
                Some((_, node, _)) => *node,
                None if n == "self" || n == "oldSelf" => Some(self.root_node),
                None => None,
            },
            Expr::Select(sel) if !sel.test => {
                let parent = self.resolve(&sel.operand.expr, bound)?;
                child_for_field(parent, &sel.field)
            }
            _ => None,
        }
    }

    /// Checks `operand.field` against the schema, where the operand can be followed.
    fn check_field(&mut self, id: u64, operand: &Expr, field: &str, bound: &[Bound<'a>]) {
        if self.is_resource_metadata(operand, bound) {
            if field != "name" && field != "generateName" {
                self.report(id, format!("undefined field '{field}'"));
            }
            return;
        }
        let at_root = self.root
            && matches!(operand, Expr::Ident(n) if (n == "self" || n == "oldSelf") && !bound.iter().any(|(b, _, _)| b == n));
        let Some(parent) = self.resolve(operand, bound) else {
            return;
        };
        if (at_root || parent.embedded) && ["apiVersion", "kind", "metadata"].contains(&field) {
            return;
        }
        if parent.is_object() && parent.additional.is_none() {
            // Fields kept by x-kubernetes-preserve-unknown-fields, and properties of unknown
            // type, are not visible to CEL.
            if !parent
                .properties
                .iter()
                .any(|(k, n)| escape_field(k).as_deref() == Some(field) && !unknown_type(n))
            {
                self.report(id, format!("undefined field '{field}'"));
            }
        } else if let Some(t) = node_ty(parent)
            && t.scalar_name().is_some()
        {
            self.report(
                id,
                format!(
                    "type '{}' does not support field selection",
                    t.scalar_name().unwrap_or_default()
                ),
            );
        }
    }
}

/// The result type of a (non-operator) function, by name.
fn function_result(f: &str) -> Option<Ty> {
    Some(match f {
        "size" | "indexOf" | "lastIndexOf" | "int" | "prefixLength" | "family" | "compareTo"
        | "asInteger" | "getFullYear" | "getMonth" | "getDayOfMonth" | "getDate"
        | "getDayOfWeek" | "getDayOfYear" | "getHours" | "getMinutes" | "getSeconds"
        | "getMilliseconds" => Ty::Int,
        "startsWith"
        | "endsWith"
        | "contains"
        | "matches"
        | "isSorted"
        | "isIP"
        | "isCIDR"
        | "isURL"
        | "hasValue"
        | "containsIP"
        | "containsCIDR"
        | "isUnspecified"
        | "isLoopback"
        | "isLinkLocalMulticast"
        | "isLinkLocalUnicast"
        | "isGlobalUnicast"
        | "isQuantity"
        | "isInteger"
        | "isLessThan"
        | "isGreaterThan"
        | "bool" => Ty::Bool,
        "lowerAscii" | "upperAscii" | "trim" | "replace" | "substring" | "join" | "string"
        | "format" | "charAt" | "find" | "getScheme" | "getHost" | "getHostname" | "getPort"
        | "getEscapedPath" | "reverse" => Ty::String,
        "split" | "findAll" => Ty::List(Box::new(Some(Ty::String))),
        "double" | "asApproximateFloat" => Ty::Double,
        "uint" => Ty::Uint,
        "duration" => Ty::Duration,
        "timestamp" => Ty::Timestamp,
        "bytes" => Ty::Bytes,
        _ => return None,
    })
}

/// A schema of "unknown type", which Kubernetes leaves out of CEL: no type and
/// `x-kubernetes-preserve-unknown-fields`, or a list or map of such.
fn unknown_type(n: &Node) -> bool {
    if n.int_or_string {
        return false;
    }
    match n.ty.as_deref() {
        None => n.preserve_unknown,
        Some("array") => n.items.as_deref().is_some_and(unknown_type),
        Some("object") => n.additional.as_deref().is_some_and(unknown_type),
        _ => false,
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
/// `oldSelf` become warnings: kube-apiserver ratchets them, so an object stored before a rule
/// was tightened can still be updated elsewhere.
pub(crate) fn evaluate(
    node: &Node,
    value: &Value,
    old: Option<&Value>,
    path: &str,
    unchanged: bool,
    errors: &mut Vec<FieldError>,
    warnings: &mut Vec<FieldError>,
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
                let detail = failure_message(rule, &ctx);
                // Objects and lists are not echoed back; scalars are.
                let shown = match node.ty.as_deref() {
                    Some("object" | "array") => None,
                    _ => Some(value.clone()),
                };
                let failure = error_for_reason(
                    &at(append_path(path, &rule.field_path)),
                    shown,
                    detail,
                    rule.reason.as_deref(),
                );
                if unchanged && !rule.transition {
                    warnings.push(failure);
                } else {
                    errors.push(failure);
                }
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
                    let Some(child) = node.properties.get(k).filter(|c| !unknown_type(c)) else {
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
/// compute as in the real server without a date library of our own. The two conversion
/// programs are compiled once: every date-time field of every validated object goes through here.
fn convert_with(func: &str, s: &str) -> Option<CelValue> {
    static TIMESTAMP: OnceLock<Option<Program>> = OnceLock::new();
    static DURATION: OnceLock<Option<Program>> = OnceLock::new();
    let cell = match func {
        "timestamp" => &TIMESTAMP,
        "duration" => &DURATION,
        _ => return None,
    };
    let env = env();
    let program = cell
        .get_or_init(|| env.compile(&format!("{func}(x)")).ok())
        .as_ref()?;
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
