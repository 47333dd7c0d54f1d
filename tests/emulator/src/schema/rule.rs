//! A compiled `x-kubernetes-validations` rule as a schema node carries it, and the names schema
//! properties have in CEL. Compiling and evaluating rules is the work of `cel`.

use cel::Program;

/// A compiled `x-kubernetes-validations` entry.
#[derive(Debug)]
pub(crate) struct CompiledRule {
    pub rule: String,
    pub program: Program,
    pub message: Option<String>,
    pub message_expression: Option<Program>,
    /// `fieldPath` split into the segments appended to the error's field path.
    pub field_path: Vec<PathSegment>,
    pub reason: Option<String>,
    /// The rule reads `oldSelf`: a transition rule, evaluated only on update.
    pub transition: bool,
    pub optional_old_self: bool,
    /// The rule sits at the schema root, where `self.metadata` is narrowed.
    pub root: bool,
    /// The estimated cost of one evaluation.
    pub cost: f64,
}

/// One step of a rule's `fieldPath`.
#[derive(Debug, Clone)]
pub(crate) enum PathSegment {
    Field(String),
    Key(String),
    Index(usize),
}

/// CEL's reserved words: a property so named is read as `__name__`.
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
