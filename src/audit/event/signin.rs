//! The events of sign-in with the identity provider (`[oidc]`).

use serde::{Deserialize, Serialize};

/// `identity.bound`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IdentityBound {
    /// The user name.
    pub user: String,
    /// The identity provider (`iss`).
    pub issuer: String,
    /// The person there (`sub`).
    pub subject: String,
}

/// `session.created`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionCreated {
    /// Whose session.
    pub user: String,
    /// The session's id (never its token).
    pub session: String,
    /// How it was made (`oidc`).
    pub via: String,
    /// The countersign groups the identity provider gave (through `group_map`).
    pub groups: Vec<String>,
    /// When the person authenticated at the provider (RFC 3339), if it said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<String>,
    /// When the session ends (RFC 3339).
    pub expires_at: String,
}

/// `signin.refused`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SignInRefused {
    /// The error code (`identity_conflict`, `signin_failed`).
    pub code: String,
    /// Why.
    pub message: String,
    /// The identity provider (`iss`).
    pub issuer: String,
    /// The person there (`sub`).
    pub subject: String,
    /// The user name the provider gave, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claimed_user: Option<String>,
}

/// `session.revoked`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionRevoked {
    /// Whose session.
    pub user: String,
    /// The session's id.
    pub session: String,
}

/// `session.groups_changed`: a re-check at the provider found other groups.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionGroupsChanged {
    /// Whose.
    pub user: String,
    /// The session whose refresh token asked.
    pub session: String,
    /// The countersign groups before.
    pub before: Vec<String>,
    /// The countersign groups now (on all the person's live sessions).
    pub after: Vec<String>,
}

/// `identity.withdrawn`: the provider no longer vouches for a person (a re-check was
/// refused with `invalid_grant`): their live sessions ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IdentityWithdrawn {
    /// Whose.
    pub user: String,
    /// What the provider said.
    pub reason: String,
    /// How many live sessions ended.
    pub sessions_ended: usize,
}

/// `identity.unbound`: an operator removed a user name's binding to a person of the
/// provider (after an issuer change, or a person's account re-created there); the next
/// sign-in with that name binds it afresh. Their live sessions ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IdentityUnbound {
    /// The user name.
    pub user: String,
    /// The provider it was bound at (`iss`).
    pub issuer: String,
    /// The person it was bound to (`sub`).
    pub subject: String,
    /// Why, as the operator said.
    pub reason: String,
    /// How many live sessions ended.
    pub sessions_ended: usize,
}
