//! `GET /v1/audit` and `GET /v1/audit/verify` (admins only).

use axum::Json;
use axum::extract::{Extension, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::Query;
use super::{Actor, ApiError, AppState, blocking};
use crate::audit::Filter;
use crate::names::{RequestId, Serial};

/// Most events one call returns.
pub(super) const MAX_LIMIT: u32 = 10_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditQuery {
    serial: Option<String>,
    request: Option<String>,
    since: Option<String>,
    after_seq: Option<i64>,
    limit: Option<u32>,
}

impl AuditQuery {
    fn parse(self) -> Result<Filter, ApiError> {
        let serial = self.serial.as_deref().map(Serial::parse).transpose()?;
        let request_id = self.request.as_deref().map(RequestId::parse).transpose()?;
        let since = match self.since {
            Some(t) => Some(
                chrono::DateTime::parse_from_rfc3339(&t)
                    .map_err(|e| {
                        ApiError::invalid(format!(
                            "since must be an RFC 3339 time such as 2026-01-31T00:00:00Z ({e})"
                        ))
                    })?
                    .with_timezone(&chrono::Utc),
            ),
            None => None,
        };
        let after_seq = self.after_seq.unwrap_or(0);
        if after_seq < 0 {
            return Err(ApiError::invalid("after_seq must not be negative"));
        }
        let limit = self.limit.unwrap_or(crate::service::AUDIT_PAGE);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::invalid(format!(
                "limit must be between 1 and {MAX_LIMIT}"
            )));
        }
        Ok(Filter {
            serial,
            request_id,
            since,
            after_seq,
            limit,
        })
    }
}

/// `GET /v1/audit?serial=N&request=ID&since=T&after_seq=K&limit=L`.
pub(super) async fn audit_list(
    State(state): State<AppState>,
    Actor(actor): Actor,
    Extension(credential): Extension<crate::service::Credential>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let filter = q.parse()?;
    let events = blocking(&state, move |s| {
        s.audit_events_as(&actor, &credential, &filter)
    })
    .await?;
    Ok(Json(json!({ "events": events })))
}

/// `GET /v1/audit/verify`: 200 with the head when the chain holds, 500 naming the first
/// bad event when it does not.
pub(super) async fn audit_verify(
    State(state): State<AppState>,
    Actor(actor): Actor,
) -> Result<Json<Value>, ApiError> {
    match blocking(&state, move |s| s.audit_verify(Some(&actor))).await {
        Ok(v) => Ok(Json(
            json!({ "ok": true, "events": v.events, "head": v.head }),
        )),
        Err(e) => Err(e),
    }
}
