//! Requests and approvals as stored: the row types, the status, and parsing a row back
//! into them (a value that does not parse is corrupt).

use rusqlite::Row;

use crate::names::{RequestId, RoleName, UserName};

/// Where a request is in its life; only `pending` can change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Issued,
    Denied,
    Cancelled,
    Expired,
    Refused,
}

impl std::fmt::Display for Status {
    /// The stored and public name.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Status {
    /// All statuses, for help texts.
    pub const ALL: [Status; 6] = [
        Status::Pending,
        Status::Issued,
        Status::Denied,
        Status::Cancelled,
        Status::Expired,
        Status::Refused,
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
        }
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
    pub id: RequestId,
    pub role: RoleName,
    pub requester: UserName,
    pub reason: String,
    pub ttl_seconds: i64,
    pub public_key: String,
    pub key_fingerprint: String,
    pub principals: Vec<String>,
    pub role_digest: String,
    pub status: Status,
    pub created_at: i64,
    pub expires_at: i64,
    pub decided_at: Option<i64>,
    pub decided_by: Option<String>,
    pub decision_code: Option<String>,
    pub decision_note: Option<String>,
}

/// One stored approval.
#[derive(Debug, Clone)]
pub struct ApprovalRow {
    pub approver: UserName,
    pub at: i64,
    pub comment: Option<String>,
}

pub(super) const REQUEST_COLUMNS: &str = "id, role, requester, reason, ttl_seconds, public_key, \
     key_fingerprint, principals, role_digest, status, created_at, expires_at, decided_at, \
     decided_by, decision_code, decision_note";

pub(in crate::store) fn corrupt(
    what: &str,
    value: &str,
    cause: impl std::fmt::Display,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        format!("stored {what} {value:?} does not parse: {cause}").into(),
    )
}

pub(super) fn request_from_row(r: &Row<'_>) -> rusqlite::Result<RequestRow> {
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
            .ok_or_else(|| corrupt("status", &status, "not a known status"))?,
        created_at: r.get(10)?,
        expires_at: r.get(11)?,
        decided_at: r.get(12)?,
        decided_by: r.get(13)?,
        decision_code: r.get(14)?,
        decision_note: r.get(15)?,
    })
}
