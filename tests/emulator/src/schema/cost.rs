//! An estimate of what a CEL rule may cost, in the spirit of cel-go's static cost estimator as
//! kube-apiserver applies it to CRDs: unbounded lists and strings make a rule too expensive, and
//! the CRD is refused until `maxItems`, `maxProperties` and `maxLength` bound them.
//!
//! The model is coarse (traversal of strings at 0.1 per byte, regexes at 0.25 per pattern byte,
//! every iteration of a macro paid in full); it separates the rules a real server accepts from
//! the ones it refuses by orders of magnitude, not the borderline cases.

use super::node::Node;
use super::rule::escape_field;
use cel::common::ast::{EntryExpr, Expr, LiteralValue};

/// kube-apiserver's limit on the size of a request, which bounds unbounded lists and strings.
const MAX_REQUEST_SIZE: f64 = 3.0 * 1024.0 * 1024.0;
/// Per-rule limit on the estimated cost (`StaticEstimatedCostLimit`).
pub(crate) const RULE_LIMIT: f64 = 10_000_000.0;
/// Limit on the estimated cost of all rules of a schema (`StaticEstimatedCRDCostLimit`).
pub(crate) const SCHEMA_LIMIT: f64 = 100_000_000.0;

/// The smallest JSON a value of the node's type can serialize to.
fn min_size(n: Option<&Node>) -> f64 {
    match n.and_then(|n| n.ty.as_deref()) {
        Some("string") | Some("object") | Some("array") => 2.0,
        Some("boolean") => 4.0,
        _ => 1.0,
    }
}

/// How many elements a list (or entries a map) can hold: its declared maximum, else as many
/// of the smallest elements as fit in a request.
pub(crate) fn cardinality(declared: Option<u64>, element: Option<&Node>, map: bool) -> f64 {
    match declared {
        Some(n) => n as f64,
        None => {
            let entry = min_size(element) + if map { 3.0 } else { 0.0 };
            (MAX_REQUEST_SIZE / (entry + 1.0)).floor()
        }
    }
}

/// The largest size of the value at a node: characters of a string, elements of a list,
/// entries of a map.
fn node_size(n: &Node) -> Option<f64> {
    match n.ty.as_deref() {
        Some("string") => Some(n.max_length.map_or(MAX_REQUEST_SIZE - 2.0, |l| l as f64)),
        Some("array") => Some(cardinality(n.max_items, n.items.as_deref(), false)),
        Some("object") if n.additional.is_some() => {
            Some(cardinality(n.max_properties, n.additional.as_deref(), true))
        }
        _ => None,
    }
}

/// Functions whose cost grows with the length of the string they read.
const TRAVERSING: &[&str] = &[
    "contains",
    "lowerAscii",
    "upperAscii",
    "trim",
    "replace",
    "split",
    "join",
    "isCIDR",
    "cidr",
    "isIP",
    "ip",
    "isURL",
    "url",
    "quantity",
    "isQuantity",
    "indexOf",
    "lastIndexOf",
    "substring",
    "charAt",
    "format",
    "string",
];

/// Functions that run a regular expression over a string.
const REGEX: &[&str] = &["matches", "find", "findAll"];

pub(crate) struct Coster<'a> {
    pub root_node: &'a Node,
}

/// (estimated cost, largest size of the result if it is a string, list or map)
type Estimate = (f64, Option<f64>);

impl<'a> Coster<'a> {
    pub fn estimate(&self, e: &cel::IdedExpr) -> f64 {
        self.walk(e, &mut Vec::new()).0
    }

    fn resolve(&self, e: &Expr, bound: &[(String, Option<&'a Node>)]) -> Option<&'a Node> {
        match e {
            Expr::Ident(n) => match bound.iter().rev().find(|(b, _)| b == n) {
                Some((_, node)) => *node,
                None if n == "self" || n == "oldSelf" => Some(self.root_node),
                None => None,
            },
            Expr::Select(sel) if !sel.test => {
                let parent = self.resolve(&sel.operand.expr, bound)?;
                parent
                    .properties
                    .get(&sel.field)
                    .or(parent.additional.as_deref())
                    .or_else(|| {
                        parent
                            .properties
                            .iter()
                            .find(|(k, _)| escape_field(k).as_deref() == Some(sel.field.as_str()))
                            .map(|(_, v)| v)
                    })
            }
            Expr::Call(c) if c.func_name == "_[_]" => {
                let parent = self.resolve(&c.args.first()?.expr, bound)?;
                parent.items.as_deref().or(parent.additional.as_deref())
            }
            _ => None,
        }
    }

    fn walk(&self, e: &cel::IdedExpr, bound: &mut Vec<(String, Option<&'a Node>)>) -> Estimate {
        let size_of = |me: &Self, bound: &[(String, Option<&'a Node>)]| {
            me.resolve(&e.expr, bound).and_then(node_size)
        };
        match &e.expr {
            Expr::Literal(l) => match l {
                LiteralValue::String(s) => (0.0, Some(s.chars().count() as f64)),
                LiteralValue::Bytes(b) => (0.0, Some(b.len() as f64)),
                _ => (0.0, None),
            },
            Expr::Ident(_) => (1.0, size_of(self, bound)),
            Expr::Select(sel) => {
                let (c, _) = self.walk(&sel.operand, bound);
                (c + 1.0, size_of(self, bound))
            }
            Expr::List(l) => {
                let cost: f64 = l.elements.iter().map(|x| self.walk(x, bound).0).sum();
                (cost + 10.0, Some(l.elements.len() as f64))
            }
            Expr::Map(m) => {
                let mut cost = 30.0;
                for entry in &m.entries {
                    if let EntryExpr::MapEntry(me) = &entry.expr {
                        cost += self.walk(&me.key, bound).0 + self.walk(&me.value, bound).0;
                    }
                }
                (cost, Some(m.entries.len() as f64))
            }
            Expr::Struct(_) | Expr::Unspecified => (40.0, None),
            Expr::Comprehension(c) => {
                let (range_cost, range_size) = self.walk(&c.iter_range, bound);
                let range_node = self.resolve(&c.iter_range.expr, bound);
                let elem = range_node.and_then(|n| n.items.as_deref().or(n.additional.as_deref()));
                let iterations = range_size.unwrap_or(1.0);
                let (init, _) = self.walk(&c.accu_init, bound);
                let n = bound.len();
                match &c.iter_var2 {
                    Some(v2) => {
                        bound.push((c.iter_var.clone(), None));
                        bound.push((v2.clone(), elem));
                    }
                    None => bound.push((c.iter_var.clone(), elem)),
                }
                bound.push((c.accu_var.clone(), None));
                let (cond, _) = self.walk(&c.loop_cond, bound);
                let (step, _) = self.walk(&c.loop_step, bound);
                let (result, _) = self.walk(&c.result, bound);
                bound.truncate(n);
                (
                    range_cost + init + iterations * (cond + step) + result,
                    Some(iterations),
                )
            }
            Expr::Call(call) => {
                let target = call.target.as_deref().map(|t| self.walk(t, bound));
                let args: Vec<Estimate> = call.args.iter().map(|a| self.walk(a, bound)).collect();
                let mut cost: f64 =
                    target.map_or(0.0, |t| t.0) + args.iter().map(|a| a.0).sum::<f64>();
                let f = call.func_name.as_str();
                // The string a function reads: its receiver, else its first argument.
                let subject = target
                    .and_then(|t| t.1)
                    .or_else(|| args.first().and_then(|a| a.1));
                let traverse = |len: Option<f64>| (0.1 * len.unwrap_or(0.0)).ceil().max(1.0);
                let size = match f {
                    "_?_:_" => {
                        let branch = |i: usize| args.get(i).copied().unwrap_or((0.0, None));
                        let (a, b) = (branch(1), branch(2));
                        cost = args.first().map_or(0.0, |c| c.0) + a.0.max(b.0);
                        a.1.zip(b.1).map(|(x, y)| x.max(y))
                    }
                    "_==_" | "_!=_" | "_<_" | "_<=_" | "_>_" | "_>=_" => {
                        let sizes: Vec<f64> = args.iter().filter_map(|a| a.1).collect();
                        cost += match sizes.as_slice() {
                            [a, b] => (0.1 * a.min(*b)).ceil().max(1.0),
                            _ => 1.0,
                        };
                        None
                    }
                    "_+_" => {
                        cost += 1.0;
                        match (
                            args.first().and_then(|a| a.1),
                            args.get(1).and_then(|a| a.1),
                        ) {
                            (Some(a), Some(b)) => Some(a + b),
                            _ => None,
                        }
                    }
                    "@in" => {
                        cost += args.get(1).and_then(|a| a.1).unwrap_or(1.0);
                        None
                    }
                    "_[_]" => {
                        cost += 1.0;
                        size_of(self, bound)
                    }
                    // cel-go charges a prefix or suffix test by the length of the prefix or
                    // suffix, not of the string tested.
                    "startsWith" | "endsWith" => {
                        cost += traverse(args.first().and_then(|a| a.1));
                        None
                    }
                    _ if REGEX.contains(&f) => {
                        let pattern = args.last().and_then(|a| a.1).unwrap_or(1.0);
                        cost += traverse(subject) * (0.25 * pattern).ceil().max(1.0);
                        subject
                    }
                    _ if TRAVERSING.contains(&f) => {
                        cost += traverse(subject);
                        subject
                    }
                    _ => {
                        cost += 1.0;
                        None
                    }
                };
                (cost, size)
            }
        }
    }
}

/// kube-apiserver's wording of a budget overrun.
pub(crate) fn exceeds_message(what: &str, cost: f64, limit: f64) -> String {
    let factor = cost / limit;
    let shown = if factor > 100.0 {
        "more than 100x".to_string()
    } else if factor < 1.5 {
        format!("{factor:.6}x")
    } else {
        format!("{factor:.1}x")
    };
    format!(
        "{what} exceeds budget by factor of {shown} (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)"
    )
}
