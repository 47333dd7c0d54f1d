//! Integration tests of Azure identities through kubectl: the seed's objects as written, both
//! modes, switching modes, identity changes and deletions, missing references, upstream's CRDs.

// The operator tests' launcher and helpers, shared rather than duplicated.
#[allow(dead_code)]
#[path = "operator/support.rs"]
mod operator_support;

#[path = "identity/support.rs"]
mod support;

#[path = "identity/modes.rs"]
mod modes;

#[path = "identity/references.rs"]
mod references;

#[path = "identity/seed.rs"]
mod seed;

#[path = "identity/upstream.rs"]
mod upstream;

#[path = "identity/validation.rs"]
mod validation;
