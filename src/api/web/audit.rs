//! `GET /audit` (admins): a certificate's story by serial or by an sshd log line (what
//! `countersign audit explain` tells), a request's history, and the access-review report
//! (what `countersign report` tells), from the same audit log through the same service.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{TimeDelta, Utc};
use maud::{Markup, html};

use super::super::{ApiError, AppState, blocking};
use super::layout::{Visit, error_page, page, person};
use super::pages::duration;
use crate::audit::story::{grants, parse_log_line, story_line};
use crate::audit::{AuditEvent, Event, Filter};
use crate::names::{RequestId, Serial};
use crate::service::ServiceError;

/// Events one page of the log read brings; the report reads pages up to [`MOST`].
const PAGE: u32 = 5000;
const MOST: usize = 200_000;

/// `GET /audit[?q=SERIAL or LOG LINE][&request=ID][&days=N]`.
pub(super) async fn audit_page(
    State(state): State<AppState>,
    visit: Visit,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let me = match person(&state, &visit).await {
        Ok(p) => p,
        Err(answer) => return answer,
    };
    if !me.admin {
        return error_page(
            &ServiceError::Forbidden("only admins read the audit log".into()).into(),
        );
    }
    let q = query
        .get("q")
        .map(|q| q.trim().to_owned())
        .filter(|q| !q.is_empty());
    let request = query
        .get("request")
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty());
    let days = query.get("days").filter(|d| !d.is_empty());
    let answer = match (&q, &request, days) {
        (Some(q), _, _) => story(&state, &me.user, q).await,
        (None, Some(id), _) => history(&state, &me.user, id).await,
        (None, None, Some(days)) => report(&state, &me.user, days).await,
        _ => Ok(html! {}),
    };
    let found = match answer {
        Ok(found) => found,
        Err(e) => return error_page(&e),
    };
    let body = html! {
        (found)
        form method="get" action="/audit" {
            label for="q" { "A certificate: its serial, or the sshd log line of a login" }
            input #q type="text" name="q" value=[q.as_deref()]
                placeholder="Accepted publickey for ... ID countersign:... (serial 123...) CA ...";
            button type="submit" { "Explain" }
        }
        form method="get" action="/audit" {
            label for="request" { "A request's history: its id" }
            input #request type="text" name="request" value=[request.as_deref()]
                placeholder="r-...";
            button type="submit" { "Show" }
        }
        form method="get" action="/audit" {
            label for="days" { "Access review: certificates issued in the last N days" }
            input #days type="text" name="days" inputmode="numeric" value=(days.map_or("90",
                String::as_str));
            button type="submit" { "Report" }
        }
    };
    page(StatusCode::OK, "Audit", Some(&me), body)
}

/// Reads the events `filter` selects, page after page, up to [`MOST`].
async fn events(
    state: &AppState,
    actor: &crate::names::UserName,
    mut filter: Filter,
) -> Result<Vec<Event>, ApiError> {
    let mut all = Vec::new();
    filter.limit = PAGE;
    loop {
        let (actor, f) = (actor.clone(), filter.clone());
        let page = blocking(state, move |s| s.audit_events(&actor, &f)).await?;
        let full = page.len() == PAGE as usize;
        filter.after_seq = page.last().map_or(filter.after_seq, |e| e.seq);
        all.extend(page);
        if !full || all.len() >= MOST {
            return Ok(all);
        }
    }
}

/// A certificate's story, by serial or sshd log line.
async fn story(
    state: &AppState,
    actor: &crate::names::UserName,
    q: &str,
) -> Result<Markup, ApiError> {
    let (serial, named_id, ca) = if q.bytes().all(|b| b.is_ascii_digit()) {
        (
            Serial::parse(q).map_err(|e| ServiceError::Invalid(format!("serial: {e}")))?,
            None,
            None,
        )
    } else {
        let line = parse_log_line(q).map_err(ServiceError::Invalid)?;
        (line.serial, line.key_id, line.ca_fingerprint)
    };
    let ours = state.ca().fingerprint();
    if let Some(ca) = ca.filter(|ca| *ca != ours) {
        return Err(ServiceError::Invalid(format!(
            "the certificate was signed by CA {ca}, not by this countersign ({ours})"
        ))
        .into());
    }
    let filter = Filter {
        serial: Some(serial),
        ..Filter::default()
    };
    let found = events(state, actor, filter).await?;
    let issued = found.iter().find(|e| {
        e.action == "certificate.issued" && e.serial.as_deref() == Some(&serial.to_string())
    });
    let issued_key_id = issued.and_then(|e| match e.parsed() {
        Some(AuditEvent::CertificateIssued(d)) => Some(d.key_id),
        _ => None,
    });
    let request = issued.and_then(|e| e.request_id.clone());
    Ok(html! {
        h2 { "Certificate serial " (serial) }
        @if let Some(id) = &request {
            p { "Request " a #request-link href={ "/requests/" (id) } { (id) } }
        }
        (truncated(&found))
        @if issued.is_none() {
            p.bad #no-such { "No certificate with serial " (serial) " in the audit log." }
        }
        @if let (Some(named), Some(issued)) = (&named_id, issued_key_id) {
            @if *named != issued {
                p.warn #key-id-mismatch { "The log line names key ID " code { (named) }
                    ", which is not the issued certificate's (" code { (issued) } ")." }
            }
        }
        (lines(&found))
    })
}

/// A request's history.
async fn history(
    state: &AppState,
    actor: &crate::names::UserName,
    id: &str,
) -> Result<Markup, ApiError> {
    let id = RequestId::parse(id)?;
    let filter = Filter {
        request_id: Some(id.clone()),
        ..Filter::default()
    };
    let found = events(state, actor, filter).await?;
    Ok(html! {
        h2 { "Request " a href={ "/requests/" (id) } { (id) } }
        @if found.is_empty() { p { "No events of this request." } }
        (lines(&found))
    })
}

/// The access-review report of the last `days` days.
async fn report(
    state: &AppState,
    actor: &crate::names::UserName,
    days: &str,
) -> Result<Markup, ApiError> {
    let days: i64 = days
        .parse()
        .ok()
        .filter(|d| (1..=3660).contains(d))
        .ok_or_else(|| ServiceError::Invalid("days must be a number from 1 to 3660".into()))?;
    let since = state.now() - TimeDelta::days(days);
    let filter = Filter {
        since: Some(since.with_timezone(&Utc)),
        ..Filter::default()
    };
    let found = events(state, actor, filter).await?;
    let by_role = grants(&found);
    Ok(html! {
        h2 { "Access review: the last " (days) " days" }
        (truncated(&found))
        @if by_role.is_empty() { p { "No certificates were issued in this time." } }
        @for (role, list) in &by_role {
            h3 { "Role " (role) ": " (list.len()) " certificate(s)" }
            div.scroll { table {
                thead { tr {
                    th scope="col" { "User" } th scope="col" { "From" } th scope="col" { "Until" }
                    th scope="col" { "For" } th scope="col" { "Approved by" }
                    th scope="col" { "Serial" } th scope="col" { "Reason" }
                } }
                tbody { @for g in list { tr {
                    td { (g.user) } td.nowrap { (g.from) } td.nowrap { (g.until) }
                    td { (duration(g.seconds)) } td { (g.approved_by.join(", ")) }
                    td.mono {
                        a href={ "/audit?q=" (g.serial) } { (g.serial) }
                    }
                    td { (g.reason) @if let Some(r) = &g.revoked {
                        " " span.bad { "(ended early: " (r) ")" } } }
                } } }
            } }
        }
    })
}

/// A warning when [`events`] stopped at [`MOST`]: what follows is not all there is.
fn truncated(events: &[Event]) -> Markup {
    html! {
        @if events.len() >= MOST {
            p.warn { "Only the first " (MOST) " events were read: use " code { "countersign report"
                }
                " or " code { "countersign audit export" } " for all of them." }
        }
    }
}

/// Events as sentences, oldest first.
fn lines(events: &[Event]) -> Markup {
    html! {
        ol.story #story { @for e in events { li.mono { (story_line(e).trim()) } } }
    }
}
