//! Integration tests of Azure identities through kubectl: the seed's objects as written, both
//! modes, switching modes, identity changes and deletions, missing references, upstream's CRDs.

mod modes;
mod references;
mod seed;
mod support;
mod upstream;
mod validation;
