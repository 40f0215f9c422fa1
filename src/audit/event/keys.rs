//! The events of SSH keys registered by their owners.

use serde::{Deserialize, Serialize};

/// `key.registered`: a person proved they hold an SSH key and registered it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KeyRegistered {
    /// Whose key it is now.
    pub user: String,
    /// Its SHA-256 fingerprint.
    pub fingerprint: String,
    /// Its type (`ssh-ed25519`, ...).
    pub key_type: String,
}

/// `key.removed`: a registered SSH key was taken back (by its owner or an admin).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KeyRemoved {
    /// Whose key it was.
    pub user: String,
    /// Its SHA-256 fingerprint.
    pub fingerprint: String,
}
