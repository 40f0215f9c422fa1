//! [`AuditEvent`]: every event the CA records, one variant each, with its fields.
//!
//! The stored form does not change with this type: an event is its action (e.g.
//! `request.created`) and its detail, a JSON object with exactly the fields below (names
//! as written, absent optional fields left out where marked). Old chains still verify
//! because verification hashes the stored text, never a re-serialisation; new events
//! serialise to the same shape as before the type existed.
//!
//! Readers (`countersign audit export`, `report`) parse events back with
//! [`AuditEvent::parse`]. Fields added over time default when an older event lacks them.
//!
//! Adding an event: a struct here, one line in the `events!` list, and the call to
//! `audit::append` in the same transaction as the change it records.

use serde::{Deserialize, Serialize};
use serde_json::Value;

mod breakglass;
mod hosts;
mod keys;
mod notify;
mod policy;
mod revoked;
mod signin;
mod state;
mod tokens;
pub use breakglass::{
    BreakglassAllowed, BreakglassOverdue, BreakglassReminded, BreakglassReminder,
    BreakglassReviewClosed, BreakglassReviewed, BreakglassUsed,
};
pub use hosts::{HostCaRecorded, HostEnrolled, HostRenewed, HostRevoked, HostTokenCreated};
pub use keys::{KeyRegistered, KeyRemoved};
pub use notify::{NotifyDead, NotifyRetried};
pub use policy::{PolicyRefused, Signoff};
pub use signin::{
    IdentityBound, IdentityUnbound, IdentityWithdrawn, SessionCreated, SessionGroupsChanged,
    SessionRevoked, SignInRefused,
};
pub use state::{CaRecorded, MarkSeen, RevocationCarried, StateMarkStarted, StateRollbackAccepted};
pub use tokens::{TokenCreated, TokenRevoked};

/// Declares [`AuditEvent`] with one variant per action, and its `action()`, `detail()`,
/// `parse()` and [`AuditEvent::ACTIONS`].
macro_rules! events {
    ($($(#[$doc:meta])* $action:literal => $variant:ident,)*) => {
        /// Every event the CA records. See the module docs for the stored form.
        #[derive(Debug, Clone, PartialEq)]
        pub enum AuditEvent {
            $($(#[$doc])* $variant($variant),)*
        }

        impl AuditEvent {
            /// Every action, in the order declared.
            pub const ACTIONS: &'static [&'static str] = &[$($action),*];

            /// The stored action, e.g. `request.created`.
            pub fn action(&self) -> &'static str {
                match self {
                    $(AuditEvent::$variant(_) => $action,)*
                }
            }

            /// The stored detail: a JSON object of the variant's fields.
            pub fn detail(&self) -> Result<Value, serde_json::Error> {
                match self {
                    $(AuditEvent::$variant(d) => serde_json::to_value(d),)*
                }
            }

            /// The event stored as `action` with `detail`, exactly; `None` for an action
            /// this version does not know, else the top-level field of `detail` that does
            /// not fit its type.
            fn parse_exact(action: &str, detail: &Value) -> Option<Result<AuditEvent, String>> {
                let field = |e: serde_path_to_error::Error<serde_json::Error>| {
                    e.path().iter().next().map(|s| s.to_string()).unwrap_or_default()
                };
                Some(match action {
                    $($action => serde_path_to_error::deserialize::<_, $variant>(detail)
                        .map(AuditEvent::$variant)
                        .map_err(field),)*
                    _ => return None,
                })
            }
        }

        $(impl From<$variant> for AuditEvent {
            fn from(d: $variant) -> Self {
                AuditEvent::$variant(d)
            }
        })*
    };
}

impl AuditEvent {
    /// The event stored as `action` with `detail`; `None` for an action this version
    /// does not know.
    ///
    /// Readers show what they can of an event a version before this one wrote with a
    /// field of another type (early versions wrote `valid_after` as a number): such a
    /// field is read as text if it is a number or a boolean, and left at its default
    /// otherwise, instead of losing the whole event.
    pub fn parse(action: &str, detail: &Value) -> Option<AuditEvent> {
        let mut detail = detail.clone();
        let fields = detail.as_object().map_or(0, serde_json::Map::len);
        for _ in 0..=2 * fields {
            match AuditEvent::parse_exact(action, &detail)? {
                Ok(event) => return Some(event),
                Err(field) => repair(&mut detail, &field)?,
            }
        }
        None
    }
}

/// Makes `field` of `detail` readable: a number or boolean becomes its text, anything
/// else is removed (its default is read). `None` if there is nothing left to repair.
fn repair(detail: &mut Value, field: &str) -> Option<()> {
    let object = detail.as_object_mut()?;
    let value = object.get_mut(field)?;
    match value {
        Value::Number(_) | Value::Bool(_) => *value = Value::String(value.to_string()),
        _ => {
            object.remove(field);
        }
    }
    Some(())
}

events! {
    /// A user asked for a role (`POST /v1/requests`, SSH `request`).
    "request.created" => RequestCreated,
    /// An approver approved (one approval; the last one also issues).
    "request.approved" => RequestApproved,
    /// An approver denied; the request ends.
    "request.denied" => RequestDenied,
    /// The requester cancelled, or disabling the requester cancelled it.
    "request.cancelled" => RequestCancelled,
    /// The request passed `pending_ttl` undecided.
    "request.expired" => RequestExpired,
    /// A check at signing failed; the request ends `refused`.
    "request.refused" => RequestRefused,
    /// A who-may or state rule refused an attempt; nothing changed.
    "attempt.refused" => AttemptRefused,
    /// The CA signed a certificate.
    "certificate.issued" => CertificateIssued,
    /// A certificate was revoked (listed in the KRL from then on).
    "certificate.revoked" => CertificateRevoked,
    /// An operator created a bearer token.
    "token.created" => TokenCreated,
    /// Tokens of a user were revoked.
    "token.revoked" => TokenRevoked,
    /// A person proved they hold an SSH key and registered it (`countersign keys add`).
    "key.registered" => KeyRegistered,
    /// A registered SSH key was removed.
    "key.removed" => KeyRemoved,
    /// A notification to a `[[notify]]` sink gave up after its `give_up_after`.
    "notify.dead" => NotifyDead,
    /// An operator re-armed dead notifications.
    "notify.retried" => NotifyRetried,
    /// A user was disabled (offboarded).
    "user.disabled" => UserDisabled,
    /// A disabled user was enabled again.
    "user.enabled" => UserEnabled,
    /// The policy in force, recorded at a start or reload that changed it.
    "policy.loaded" => PolicyLoaded,
    /// A configuration file without enough valid `[policy]` signatures did not take
    /// effect.
    "policy.refused" => PolicyRefused,
    /// The database was bound to a CA key.
    "ca.recorded" => CaRecorded,
    /// A high-water mark was started for a database that had none.
    "state.mark_started" => StateMarkStarted,
    /// An operator accepted a database behind the high-water mark.
    "state.rollback_accepted" => StateRollbackAccepted,
    /// A person of the identity provider was bound to a user name, for good.
    "identity.bound" => IdentityBound,
    /// A sign-in made a session.
    "session.created" => SessionCreated,
    /// A sign-in was refused (the person, when the provider vouched for one).
    "signin.refused" => SignInRefused,
    /// An admin ended a session.
    "session.revoked" => SessionRevoked,
    /// A re-check at the identity provider found a person in other groups.
    "session.groups_changed" => SessionGroupsChanged,
    /// The identity provider no longer vouches for a person: their sessions ended.
    "identity.withdrawn" => IdentityWithdrawn,
    /// An operator removed a user name's binding to a person of the identity provider.
    "identity.unbound" => IdentityUnbound,
    /// An admin made a join token for a host.
    "host.token_created" => HostTokenCreated,
    /// A host enrolled with a join token and got a host certificate.
    "host.enrolled" => HostEnrolled,
    /// A host renewed its certificate (proof of its key and a current certificate).
    "host.renewed" => HostRenewed,
    /// A host certificate was revoked.
    "host.revoked" => HostRevoked,
    /// An admin told the CA of a revocation it forgot, for a certificate it has no row
    /// of: its serial is listed in the KRL until the end given.
    "revocation.carried" => RevocationCarried,
    /// The database was bound to a host CA key.
    "host_ca.recorded" => HostCaRecorded,
    /// Someone broke the glass: a role taken at once, reviewed afterwards.
    "breakglass.used" => BreakglassUsed,
    /// A reviewer gave a verdict on a break-glass use.
    "breakglass.reviewed" => BreakglassReviewed,
    /// A break-glass review has every verdict it needed.
    "breakglass.review_closed" => BreakglassReviewClosed,
    /// A break-glass review's deadline approaches.
    "breakglass.reminded" => BreakglassReminded,
    /// A break-glass review passed its deadline unclosed.
    "breakglass.overdue" => BreakglassOverdue,
    /// An admin allowed a user one more break-glass use before their last is reviewed.
    "breakglass.allowed" => BreakglassAllowed,
}

/// `request.created`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RequestCreated {
    /// The role asked for.
    pub role: String,
    /// The requester's reason.
    pub reason: String,
    /// The certificate lifetime asked for, in seconds.
    pub ttl_seconds: i64,
    /// The principals the certificate will carry.
    pub principals: Vec<String>,
    /// SHA-256 fingerprint of the key to certify.
    pub public_key_fingerprint: String,
    /// Digest of the role's definition when asked: a changed role refuses at signing.
    pub role_digest: String,
    /// When the request expires undecided (RFC 3339).
    pub expires_at: String,
}

/// `request.approved`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RequestApproved {
    /// The role asked for.
    pub role: String,
    /// Who made the request.
    pub requester: String,
    /// The approver's comment, `null` if none.
    pub comment: Option<String>,
}

/// `request.denied`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RequestDenied {
    /// The role asked for.
    pub role: String,
    /// Who made the request.
    pub requester: String,
    /// The approver's reason.
    pub reason: String,
}

/// `request.cancelled`: by its requester (role only), or by disabling the requester
/// (with who and why).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RequestCancelled {
    /// The role asked for.
    pub role: String,
    /// Present when the cancellation came with a reason (disabling).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requester: Option<String>,
    /// Why, when not the requester's own cancellation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `request.expired` (actor: the CA itself).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RequestExpired {
    /// The role asked for.
    pub role: String,
    /// Who made the request.
    pub requester: String,
    /// The deadline it passed (RFC 3339).
    pub expires_at: String,
}

/// `request.refused`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RequestRefused {
    /// The role asked for.
    pub role: String,
    /// Who made the request.
    pub requester: String,
    /// The refusal's error code (e.g. `sod_conflict`).
    pub code: String,
    /// The refusal's message.
    pub message: String,
}

/// `attempt.refused`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AttemptRefused {
    /// What was attempted: `request.create`, `request.approve`, `request.deny`, ...
    pub attempt: String,
    /// The role named in the attempt.
    pub role: String,
    /// The refusal's error code.
    pub code: String,
    /// The refusal's message.
    pub message: String,
}

/// One approval counted toward an issuance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CountedApproval {
    /// Who approved.
    pub approver: String,
    /// The approval step it counted toward, from 1.
    pub step: usize,
}

/// `certificate.issued`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CertificateIssued {
    /// The serial, decimal (serials are 64-bit; JSON numbers are not).
    pub serial: String,
    /// The certificate's key ID, `countersign:REQUEST:USER:ROLE`.
    pub key_id: String,
    /// Who made the request.
    pub requester: String,
    /// The role granted.
    pub role: String,
    /// The principals the certificate carries.
    pub principals: Vec<String>,
    /// Start of validity, RFC 3339.
    pub valid_after: String,
    /// End of validity, RFC 3339.
    pub valid_before: String,
    /// SHA-256 fingerprint of the certified key.
    pub public_key_fingerprint: String,
    /// The approvals that made it, by step.
    pub approvals: Vec<CountedApproval>,
    /// The request's reason.
    pub reason: String,
    /// What each step required (absent from events of older versions).
    pub approvals_required: Vec<u32>,
    /// Issued by break-glass, with no approvals (absent otherwise).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub breakglass: bool,
}

/// `certificate.revoked`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CertificateRevoked {
    /// The serial, decimal.
    pub serial: String,
    /// Who made the request the certificate was issued for.
    pub requester: String,
    /// The role it granted.
    pub role: String,
    /// Why it was revoked, as the revoker gave it.
    pub reason: String,
    /// The KRL version that first lists it.
    pub krl_version: u64,
    /// The certificate's end (RFC 3339): the KRL lists it until then.
    pub valid_before: String,
}

/// `user.disabled`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UserDisabled {
    /// The user disabled.
    pub user: String,
    /// The admin's reason.
    pub reason: String,
    /// How many of the user's tokens were revoked.
    pub tokens_revoked: usize,
    /// How many of the user's certificates were revoked.
    pub certificates_revoked: usize,
    /// How many of the user's pending requests were cancelled.
    pub requests_cancelled: usize,
}

/// `user.enabled`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UserEnabled {
    /// The user enabled again.
    pub user: String,
    /// The admin's reason, `null` if none.
    pub reason: Option<String>,
    /// When the user had been disabled (RFC 3339).
    pub disabled_at: String,
    /// Who had disabled the user.
    pub disabled_by: String,
}

/// `policy.loaded`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PolicyLoaded {
    /// `start` or `reload`.
    pub cause: String,
    /// Digest of `policy`.
    pub digest: String,
    /// What changed since the policy recorded before (`policy/summary.rs`).
    pub changes: Value,
    /// The policy in force (`policy/summary.rs`).
    pub policy: Value,
    /// The `[policy]` signatures that let it take effect (added field; absent for an
    /// unsigned policy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signoff: Option<Signoff>,
    /// The server that recorded it, `HOST:CONFIG_FILE` (added field; absent before).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub server: String,
}

#[cfg(test)]
mod tests;
