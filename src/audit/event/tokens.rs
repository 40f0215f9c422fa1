//! The events of API tokens.

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
