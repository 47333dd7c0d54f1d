//! IngressClass (networking.k8s.io/v1): cluster-scoped.

use super::Kind;
use super::common::roundtrip;

pub const KIND: Kind = Kind {
    group: "networking.k8s.io",
    kind: "IngressClass",
    plural: "ingressclasses",
    namespaced: false,
    decode: roundtrip::<k8s_openapi::api::networking::v1::IngressClass>,
    ..Kind::BASE
};
