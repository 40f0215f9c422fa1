//! The events of break-glass: a use, its review's verdicts and close, the reminders, and
//! the extra uses admins allow.

use serde::{Deserialize, Serialize};

/// `breakglass.used` (actor: the invoker): the glass was broken; the same transaction
/// issues the certificate (`certificate.issued` with `breakglass: true`, right after).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BreakglassUsed {
    /// The role taken.
    pub role: String,
    /// The invoker's reason.
    pub reason: String,
    /// The lifetime asked for, in seconds (`null`: the role's default).
    pub ttl_asked_seconds: Option<i64>,
    /// The lifetime granted, in seconds.
    pub ttl_seconds: i64,
    /// Whether the lifetime asked was cut to the table's `max_ttl`.
    pub cut: bool,
    /// The principals the certificate carries.
    pub principals: Vec<String>,
    /// SHA-256 fingerprint of the certified key.
    pub public_key_fingerprint: String,
    /// Digest of the role's definition at the use.
    pub role_digest: String,
    /// Who reviews it (`group:`/`user:` as the table named them at the use).
    pub reviewers: Vec<String>,
    /// Distinct verdicts that close the review.
    pub reviews_required: u32,
    /// When the review is due (RFC 3339).
    pub review_due: String,
    /// The admin whose allowance this use spent, when the invoker had an unreviewed use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_by: Option<String>,
}

/// `breakglass.reviewed` (actor: the reviewer): one verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BreakglassReviewed {
    /// The role taken.
    pub role: String,
    /// Who broke the glass.
    pub invoker: String,
    /// `justified` or `unjustified`.
    pub verdict: String,
    /// The reviewer's comment.
    pub comment: String,
}

/// `breakglass.review_closed` (actor: the reviewer whose verdict closed it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BreakglassReviewClosed {
    /// The role taken.
    pub role: String,
    /// Who broke the glass.
    pub invoker: String,
    /// `justified` only if every verdict is.
    pub outcome: String,
    /// The reviewers, in the order of their verdicts.
    pub reviewers: Vec<String>,
    /// From the use to the close, in seconds.
    pub time_to_review_seconds: i64,
}

/// `breakglass.reminded` or `breakglass.overdue` (actor: the CA itself): a review not
/// closed as its deadline approaches, or after it passed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BreakglassReminder {
    /// The role taken.
    pub role: String,
    /// Who broke the glass.
    pub invoker: String,
    /// When the review is due (RFC 3339).
    pub review_due: String,
    /// Verdicts given so far.
    pub verdicts: u32,
    /// Verdicts that close it.
    pub reviews_required: u32,
}

/// `breakglass.reminded`: the review's deadline approaches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BreakglassReminded(pub BreakglassReminder);

/// `breakglass.overdue`: the review passed its deadline unclosed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BreakglassOverdue(pub BreakglassReminder);

/// `breakglass.allowed` (actor: the admin): one more use for a user whose previous use
/// is not reviewed yet, or was judged unjustified.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BreakglassAllowed {
    /// Who may break the glass once more.
    pub user: String,
    /// Their use still under review, if any.
    pub unreviewed: Option<String>,
    /// Their last use, judged unjustified, if that is what needed it (added field).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unjustified: Option<String>,
}
