//! An in-memory stand-in for kube-apiserver that speaks the real wire protocol over HTTP.

pub mod apply;
pub mod schema;
