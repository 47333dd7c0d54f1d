//! demoweb-operator library.
