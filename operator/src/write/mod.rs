//! The one place that writes to the API, one file per concern and nothing controller-specific:
//! [`writer`] applies children by server-side apply under one field manager (after checking that
//! we control the object and that it actually differs from what we want), hands fields over and
//! deletes them; [`drift`] decides whether a child still holds what we want; [`events`] writes
//! Events.

pub mod drift;
pub mod events;
pub mod writer;

use std::hash::{DefaultHasher, Hash, Hasher};

fn hash_of(value: impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}
