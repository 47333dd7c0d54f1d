//! What can fail in a DemoWeb reconcile outside user input (user problems are conditions,
//! `crate::error::UserError`, not errors).

use crate::error::ApiError;
use crate::write;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("DemoWeb has no {0}: cannot reconcile it")]
    MissingMetadata(&'static str),

    #[error(
        "the watch of CustomResourceDefinition {crd} has not listed it yet (is the operator allowed to list and watch it?), so whether its allowlist API is served is unknown"
    )]
    CapabilitiesUnknown { crd: &'static str },

    /// A write of a child, or the read before it.
    #[error(transparent)]
    Write(#[from] write::Error),

    /// The status patch.
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl Error {
    fn api(&self) -> Option<&ApiError> {
        match self {
            Self::Write(write::Error::Api(api)) | Self::Api(api) => Some(api),
            _ => None,
        }
    }

    /// Whether retrying with backoff may help. Everything that reaches this enum is an API or
    /// network problem except a malformed object, which no retry fixes.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::MissingMetadata(_) | Self::Write(write::Error::Serialize { .. }) => false,
            Self::CapabilitiesUnknown { .. } => true,
            _ => self.api().is_some_and(ApiError::is_transient),
        }
    }

    /// Whether the API server refused a write because the object's namespace is being deleted:
    /// the DemoWeb goes with it, so this is no failure to report or retry.
    pub fn is_namespace_terminating(&self) -> bool {
        self.api().is_some_and(ApiError::is_namespace_terminating)
    }

    /// Short name for metrics labels.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::MissingMetadata(_) => "missing_metadata",
            Self::CapabilitiesUnknown { .. } => "capabilities_unknown",
            Self::Write(write::Error::Serialize { .. }) => "serialize",
            Self::Write(write::Error::Api(api)) | Self::Api(api) => api.call.label(),
        }
    }
}
