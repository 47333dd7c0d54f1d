//! Kubernetes API emulator and test support for demoweb-operator.
