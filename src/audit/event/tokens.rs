//! The events of credentials (API tokens, registered SSH keys) and of notifications.

use serde::{Deserialize, Serialize};

/// `token.created`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TokenCreated {
    /// Whose token it is.
    pub user: String,
    /// `human` or `bot` (added field; events written before it lack it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// A bot token's scopes, comma-separated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<String>,
    /// When it expires (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// `token.revoked`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TokenRevoked {
    /// Whose tokens.
    pub user: String,
    /// How many tokens.
    pub tokens: usize,
    /// Why, when revoked as part of disabling a user already disabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

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

/// `notify.dead`: a notification that could not be delivered gave up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NotifyDead {
    /// The `[[notify]]` sink.
    pub sink: String,
    /// The event's id (`msg_...`), as the receiver would have seen it.
    pub event_id: String,
    /// The event (`request.created`, ...).
    pub event: String,
    /// How many times it was tried.
    pub attempts: i64,
    /// Why the last try failed (a status or an error kind; never the URL).
    pub error: String,
}

/// `notify.retried`: an operator re-armed dead notifications (`notify retry`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NotifyRetried {
    /// The event's id.
    pub event_id: String,
    /// The sink, when only one was re-armed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sink: Option<String>,
    /// How many deliveries were re-armed.
    pub deliveries: u64,
}
