//! The one place that writes to the API, one file per concern and nothing controller-specific:
//! [`writer`] applies children by server-side apply under one field manager (after checking that
//! we control the object and that it actually differs from what we want), hands fields over and
//! deletes them; [`drift`] decides whether a child still holds what we want; [`events`] writes
//! Events.

pub mod drift;
pub mod events;
pub mod writer;

use crate::error::ApiError;

/// Why a write (or the read before it) failed: the API call, or an object that cannot be
/// serialised (which no retry fixes).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Api(#[from] ApiError),

    #[error("serialising {kind} {name}")]
    Serialize {
        kind: String,
        name: String,
        #[source]
        source: serde_json::Error,
    },
}

use std::hash::{DefaultHasher, Hash, Hasher};

fn hash_of(value: impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}
