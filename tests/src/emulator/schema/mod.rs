//! CustomResourceDefinition schemas: structural validation with kube-apiserver's error messages,
//! pruning of unknown fields, defaulting, and CEL `x-kubernetes-validations`.
