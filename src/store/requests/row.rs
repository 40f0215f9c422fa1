//! Requests and approvals as stored: the row types, the status, and parsing a row back
//! into them (a value that does not parse is corrupt).

use crate::names::{RequestId, RoleName, UserName};
use crate::store::StoreError;
use crate::store::sql::{Row, corrupt};

/// Where a request is in its life; only `pending` can change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting for approvals; the only status that changes.
    Pending,
    /// Approved and signed: a certificate exists.
    Issued,
    /// An approver denied it.
    Denied,
    /// Its requester cancelled it, or disabling the requester did.
    Cancelled,
    /// It passed `pending_ttl` undecided.
    Expired,
    /// A check at signing failed; `decision_code` says which.
    Refused,
    /// Shown, never stored: a break-glass use, issued at once (stored `issued`), whose
    /// review is not closed yet.
    PendingReview,
}

impl std::fmt::Display for Status {
    /// The stored and public name.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Status {
    /// All statuses, for help texts.
    pub const ALL: [Status; 7] = [
        Status::Pending,
        Status::Issued,
        Status::Denied,
        Status::Cancelled,
        Status::Expired,
        Status::Refused,
        Status::PendingReview,
    ];

    /// The stored and public name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Issued => "issued",
            Status::Denied => "denied",
            Status::Cancelled => "cancelled",
            Status::Expired => "expired",
            Status::Refused => "refused",
            Status::PendingReview => "pending_review",
        }
    }

    /// Whether a certificate was issued: `issued`, or `pending_review` (a break-glass
    /// use, issued at once).
    pub fn has_certificate(self) -> bool {
        matches!(self, Status::Issued | Status::PendingReview)
    }

    /// Parses a public name.
    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// A list's `status` filter as given: absent or empty is none; otherwise a status name,
    /// or an error naming them all.
    pub fn filter(s: Option<&str>) -> Result<Option<Status>, String> {
        match s {
            None | Some("") => Ok(None),
            Some(s) => Status::parse(s).map(Some).ok_or_else(|| {
                let all = Status::ALL.map(Status::as_str).join(", ");
                format!("status must be one of {all}")
            }),
        }
    }
}

/// One stored request.
#[derive(Debug, Clone)]
pub struct RequestRow {
    /// The request's id.
    pub id: RequestId,
    /// The role asked for.
    pub role: RoleName,
    /// Who asked.
    pub requester: UserName,
    /// The requester's reason.
    pub reason: String,
    /// The certificate lifetime asked for, in seconds.
    pub ttl_seconds: i64,
    /// The key to certify, OpenSSH format.
    pub public_key: String,
    /// SHA-256 fingerprint of `public_key`.
    pub key_fingerprint: String,
    /// The principals the certificate will carry (stored as a JSON array).
    pub principals: Vec<String>,
    /// Digest of the role's definition when asked ([`crate::policy::Role::digest`]).
    pub role_digest: String,
    /// Where it stands.
    pub status: Status,
    /// When it was made (unix seconds).
    pub created_at: i64,
    /// When it expires if still undecided (unix seconds).
    pub expires_at: i64,
    /// When it ended (unix seconds); `None` while pending.
    pub decided_at: Option<i64>,
    /// Who ended it (a user, or the CA itself); `None` while pending.
    pub decided_by: Option<String>,
    /// The public code of the ending (`denied`, `cancelled`, `expired`, a refusal's code).
    pub decision_code: Option<String>,
    /// The deny reason or refusal message that came with the ending.
    pub decision_note: Option<String>,
    /// The distinct approvals its role needed when it was made (`None` for a request
    /// made before this was kept, and for a break-glass use, which needs none).
    pub approvals_required: Option<i64>,
}

/// One stored approval.
#[derive(Debug, Clone)]
pub struct ApprovalRow {
    /// Who approved.
    pub approver: UserName,
    /// When (unix seconds).
    pub at: i64,
    /// The approver's comment, if any.
    pub comment: Option<String>,
}

pub(super) const REQUEST_COLUMNS: &str = "id, role, requester, reason, ttl_seconds, public_key, \
     key_fingerprint, principals, role_digest, status, created_at, expires_at, decided_at, \
     decided_by, decision_code, decision_note, approvals_required";

/// How many columns [`REQUEST_COLUMNS`] names (a query's own columns come after them),
/// counted from the list itself.
pub(super) const REQUEST_COLUMN_COUNT: usize = columns_in(REQUEST_COLUMNS);

/// The names in a comma-separated list of columns.
const fn columns_in(list: &str) -> usize {
    let bytes = list.as_bytes();
    let (mut i, mut n) = (0, 1);
    while i < bytes.len() {
        if bytes[i] == b',' {
            n += 1;
        }
        i += 1;
    }
    n
}
const _: () = assert!(
    REQUEST_COLUMN_COUNT == 17,
    "request_from_row reads 17 columns"
);

pub(super) fn request_from_row(r: &Row<'_>) -> Result<RequestRow, StoreError> {
    let id: String = r.get(0)?;
    let role: String = r.get(1)?;
    let requester: String = r.get(2)?;
    let principals: String = r.get(7)?;
    let status: String = r.get(9)?;
    Ok(RequestRow {
        id: RequestId::parse(&id).map_err(|e| corrupt("request id", &id, e))?,
        role: RoleName::parse(&role).map_err(|e| corrupt("role", &role, e))?,
        requester: UserName::parse(&requester).map_err(|e| corrupt("requester", &requester, e))?,
        reason: r.get(3)?,
        ttl_seconds: r.get(4)?,
        public_key: r.get(5)?,
        key_fingerprint: r.get(6)?,
        principals: serde_json::from_str(&principals)
            .map_err(|e| corrupt("principals", &principals, e))?,
        role_digest: r.get(8)?,
        status: Status::parse(&status)
            .filter(|s| *s != Status::PendingReview)
            .ok_or_else(|| corrupt("status", &status, "not a known status"))?,
        created_at: r.get(10)?,
        expires_at: r.get(11)?,
        decided_at: r.get(12)?,
        decided_by: r.get(13)?,
        decision_code: r.get(14)?,
        decision_note: r.get(15)?,
        approvals_required: r.get(16)?,
    })
}
