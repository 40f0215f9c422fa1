//! The pages that show: the request lists and the review page.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use maud::{Markup, html};

use super::super::{AppState, blocking};
use super::layout::{Visit, error_page, page, person};
use crate::names::{RequestId, RoleName};
use crate::service::{Flag, ListFilter, RequestView, Review, Status};

/// Requests one list of the page shows at most.
const SHOWN: u32 = 200;

/// `GET /`: waiting for me, mine, recent (admins: everyone's), with filters on the last.
pub(super) async fn requests_page(
    State(state): State<AppState>,
    visit: Visit,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let me = match person(&state, &visit).await {
        Ok(p) => p,
        Err(answer) => return answer,
    };
    let status = match query.get("status").map(String::as_str) {
        None | Some("" | "all") => None,
        Some(s) => match Status::parse(s) {
            Some(s) => Some(s),
            None => {
                return error_page(
                    &crate::service::ServiceError::Invalid(format!("unknown status {s:?}")).into(),
                );
            }
        },
    };
    let role = match query.get("role").filter(|r| !r.is_empty()) {
        Some(r) => match RoleName::parse(r) {
            Ok(r) => Some(r),
            Err(e) => return error_page(&super::super::ApiError::from(e)),
        },
        None => None,
    };
    let user = me.user.clone();
    let filter = ListFilter {
        status,
        role: role.clone(),
        mine: false,
    };
    let read = blocking(&state, move |s| {
        let who = s.whoami(&user)?;
        let waiting = s.waiting_for(&user, SHOWN as usize)?;
        let mine = ListFilter {
            mine: true,
            ..filter.clone()
        };
        let mine = s.list_where(&user, &mine, SHOWN)?;
        let shown = s.list_where(&user, &filter, SHOWN)?;
        Ok((who, waiting, mine, shown))
    })
    .await;
    let (who, waiting, mine, shown) = match read {
        Ok(read) => read,
        Err(e) => return error_page(&e),
    };
    let now = state.now();
    // The roles to filter by: all for admins, else those the viewer has to do with.
    let roles: std::collections::BTreeSet<String> = if me.admin {
        let config = state.config();
        config
            .policy
            .roles
            .keys()
            .map(ToString::to_string)
            .collect()
    } else {
        who.can_request
            .iter()
            .chain(&who.can_approve)
            .cloned()
            .collect()
    };
    let role = role.map(|r| r.to_string());
    // Someone who approves nothing needs neither an inbox nor others' requests.
    let approver = me.admin || !who.can_approve.is_empty();
    let filters = html! {
        form.filters method="get" action="/" {
            div {
                label for="f-status" { "Status" }
                select #f-status name="status" {
                    option value="all" { "all" }
                    @for s in Status::ALL {
                        option value=(s.as_str()) selected[status == Some(s)] { (s.as_str()) }
                    }
                }
            }
            div {
                label for="f-role" { "Role" }
                select #f-role name="role" {
                    option value="" { "all" }
                    @for r in &roles {
                        option value=(r) selected[role.as_deref() == Some(r.as_str())] { (r) }
                    }
                }
            }
            button type="submit" { "Filter" }
        }
    };
    let body = html! {
        @if approver {
            section aria-labelledby="waiting" {
                h2 #waiting { "Waiting for me (" (waiting.len()) ")" }
                @if waiting.is_empty() {
                    p { "Nothing waits for your approval." }
                } @else {
                    (table(&waiting, now))
                }
            }
        }
        section aria-labelledby="mine" {
            h2 #mine { "Mine" }
            @if !approver { (filters) }
            @if mine.is_empty() {
                p { "You have no requests" @if status.is_some() || role.is_some() { " of this kind"
                    }
                    ". " a href="/requests/new" { "Ask for a role" } }
            } @else {
                (table(&mine, now))
            }
        }
        @if approver {
            section aria-labelledby="recent" {
                h2 #recent { @if me.admin { "All requests" } @else { "Requests I can see" } }
                (filters)
                @if shown.is_empty() { p { "No requests." } } @else { (table(&shown, now)) }
                @if shown.len() >= SHOWN as usize {
                    p.warn { "The newest " (SHOWN)
                        " are shown: choose a status or a role to see others." }
                }
            }
        }
    };
    page(StatusCode::OK, "Requests", Some(&me), body)
}

/// A table of requests (on a phone, each row a block: no sideways scrolling).
fn table(rows: &[RequestView], now: DateTime<Utc>) -> Markup {
    html! {
        table.requests {
            thead { tr {
                th scope="col" { "Request" } th scope="col" { "Role" } th scope="col" { "Requester"
                    }
                th scope="col" { "Status" } th scope="col" { "Approvals" }
                th.wide scope="col" { "Asked" } th scope="col" { "Reason" }
            } }
            tbody {
                @for r in rows {
                    @let (status, class) = shown_status(r, now);
                    tr {
                        td { a href={ "/requests/" (r.id) } { (r.id) } }
                        td.nowrap { (r.role) }
                        td { (r.requester) }
                        td { span class=(class) { (status) } }
                        td.nowrap { (counted(r)) " of " (r.approvals_required) }
                        td.wide { (ago(&r.created_at, now)) }
                        td.reason { (cut(&r.reason, 80)) }
                    }
                }
            }
        }
    }
}

/// A request's status as a list shows it: an issued request whose certificate was
/// revoked or has ended says so (the access is over), with the class that colours it.
pub(super) fn shown_status(r: &RequestView, now: DateTime<Utc>) -> (String, String) {
    let status = r.status.as_str();
    let ended = r.certificate.as_ref().map(|c| {
        let over = DateTime::parse_from_rfc3339(&c.valid_before).is_ok_and(|t| t < now);
        (c.revoked.is_some(), over)
    });
    match ended {
        Some((true, _)) => ("issued, revoked".into(), "status-ended".into()),
        Some((false, true)) => ("issued, expired".into(), "status-ended".into()),
        _ => (status.to_owned(), format!("status-{status}")),
    }
}

/// `GET /requests/{id}`: everything an approver needs to decide, and the two buttons.
pub(super) async fn review_page(
    State(state): State<AppState>,
    visit: Visit,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let me = match person(&state, &visit).await {
        Ok(p) => p,
        Err(answer) => return answer,
    };
    let id = match RequestId::parse(&id) {
        Ok(id) => id,
        Err(e) => return error_page(&super::super::ApiError::from(e)),
    };
    let user = me.user.clone();
    let read = blocking(&state, move |s| {
        let review = s.review(&user, &id)?;
        // The requester's own live certificate, to copy from the page.
        let live = review
            .request
            .certificate
            .as_ref()
            .is_some_and(|c| c.revoked.is_none());
        let certificate = (review.viewer.is_requester && live)
            .then(|| s.certificate(&user, &id))
            .transpose()?;
        Ok((review, certificate))
    });
    let (review, certificate) = match read.await {
        Ok(read) => read,
        Err(e) => return error_page(&e),
    };
    // Approving is a step-up action: say so before the button, not after.
    let step_up = state
        .check_step_up(&me.credential)
        .err()
        .map(|_| super::signin::step_up_text(&state));
    let title = format!("Request {}", review.request.id);
    page(
        StatusCode::OK,
        &title,
        Some(&me),
        super::forms::review_body(
            &review,
            &me,
            step_up.as_deref(),
            certificate.as_deref(),
            query.get("done").map(String::as_str),
            state.now(),
        ),
    )
}

/// Facts about the request, as a definition list.
pub(super) fn facts(review: &Review, now: DateTime<Utc>) -> Markup {
    let r = &review.request;
    let pending = r.status == Status::Pending;
    html! {
        dl.facts {
            dt { "Requester" } dd #requester { (r.requester) @if r.requester_disabled { " " span.bad
                { "(disabled)" } } }
            dt { "Reason" } dd #reason { (r.reason) }
            dt { "Role" } dd #role { (r.role) }
            dt { "Principals" } dd #principals { @for (i, p) in r.principals.iter().enumerate() {
                @if i > 0 { ", " } code { (p) } } }
            dt { "Lifetime" } dd #ttl { (duration(r.ttl_seconds)) }
            @if let Some(c) = &r.certificate {
                dt { "Valid" } dd { (c.valid_after) " to " (c.valid_before) }
                dt { "Serial" } dd { code #serial { (c.serial) } " (key ID " code { (c.key_id) } ")"
                    }
                @if let Some(rv) = &c.revoked { dt { "Revoked" } dd.bad { (rv.at) " by " (rv.by)
                    ": " (rv.reason) } }
            } @else if pending {
                dt { "Valid" } dd { "from the last approval, for " (duration(r.ttl_seconds)) }
            }
            @if let Some(role) = &review.role {
                dt { "Force command" } dd { @if let Some(c) = &role.force_command { code { (c) } }
                    @else { "none" } }
                dt { "Source address" } dd { @if role.source_address.is_empty() { "any" } @else {
                    code { (role.source_address.join(", ")) } } }
                dt { "Extensions" } dd #extensions { @if role.extensions.is_empty() { "none" }
                    @else { code { (role.extensions.join(", ")) } } }
                dt { "Approval rule" } dd #rule { (role.approval_rule) }
            }
            dt { "Key" } dd.mono { (r.public_key_fingerprint) }
            dt { "Asked" } dd { (r.created_at)
                @if let Some(local) = &review.created_local { " (" (local) ")" } }
            dt { "Status" } dd #status { span class={ "status-" (r.status.as_str()) } {
                (r.status.as_str()) }
                @if let Some(by) = &r.decided_by { " by " (by) }
                @if let Some(at) = &r.decided_at { " at " (at) }
                @if let Some(code) = r.decision_code.as_ref().filter(|c| *c != r.status.as_str()) {
                    " (" (code) ")"
                }
            }
            @if let Some(note) = &r.decision_note {
                dt { @if r.status == Status::Denied { "Why denied" } @else { "Why" } }
                dd #decision-note { (note) }
            }
            @if pending { dt { "Expires" } dd #expires { (until(&r.expires_at, now)) " ("
                (r.expires_at) ")" } }
        }
    }
}

/// What the viewer just did (`?done=` after a form), as a sentence about the request
/// as it is now.
pub(super) fn done_text(done: &str, r: &RequestView) -> Option<String> {
    let needs = || {
        r.waiting_for
            .iter()
            .map(|s| format!("{} more of {}", s.remaining, s.approvers.join(", ")))
            .collect::<Vec<_>>()
            .join(" and ")
    };
    Some(match done {
        "approved" => match &r.certificate {
            Some(c) => format!(
                "You approved it: the certificate is issued (serial {}).",
                c.serial
            ),
            None if r.status == Status::Pending => {
                format!("You approved it: it still needs {}.", needs())
            }
            None => format!("You approved it; it is {}.", r.status.as_str()),
        },
        "denied" => "You denied it.".to_owned(),
        "cancelled" => "You cancelled it.".to_owned(),
        "created" if r.status == Status::Pending => {
            format!("Your request is made: it waits for {}.", needs())
        }
        "created" => format!("Your request is made; it is {}.", r.status.as_str()),
        _ => return None,
    })
}

/// A flag in words.
pub(super) fn flag_text(flag: &Flag) -> String {
    match flag {
        Flag::RootPrincipal => "a principal is root".to_owned(),
        Flag::TtlAboveDefault { default_seconds } => format!(
            "the lifetime asked for is above the role's default of {}",
            duration(i64::try_from(*default_seconds).unwrap_or(i64::MAX))
        ),
        Flag::FirstOfRole => "the first time this person asks for this role".to_owned(),
        Flag::OutsideWorkingHours { hours } => format!("asked outside working hours ({hours})"),
        Flag::HoldsRoleAlready => "the requester holds this role already, or asked for it in \
                                   another pending request"
            .to_owned(),
    }
}

/// `3600` as `1h`.
pub(super) fn duration(seconds: i64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(
        u64::try_from(seconds).unwrap_or(0),
    ))
    .to_string()
}

/// Approvals that count toward the role's steps (an approval beyond a met step does
/// not); for a decided request, those given.
pub(super) fn counted(r: &RequestView) -> u32 {
    if r.status == Status::Pending {
        r.approvals_required.saturating_sub(r.approvals_needed)
    } else {
        u32::try_from(r.approvals.len()).unwrap_or(u32::MAX)
    }
}

/// How long ago an RFC 3339 time was: `5m ago`.
fn ago(at: &str, now: DateTime<Utc>) -> String {
    match DateTime::parse_from_rfc3339(at) {
        Ok(t) => format!("{} ago", rough((now - t.with_timezone(&Utc)).num_seconds())),
        Err(_) => at.to_owned(),
    }
}

/// How long until an RFC 3339 time: `in 23m`, or `passed`.
fn until(at: &str, now: DateTime<Utc>) -> String {
    match DateTime::parse_from_rfc3339(at) {
        Ok(t) => {
            let left = (t.with_timezone(&Utc) - now).num_seconds();
            if left > 0 {
                format!("in {}", rough(left))
            } else {
                "passed".to_owned()
            }
        }
        Err(_) => at.to_owned(),
    }
}

/// Seconds, roughly: `45s`, `23m`, `5h 10m`, `3d`.
fn rough(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d", s / 86_400),
    }
}

/// At most `n` characters of `text`, with `…` when cut.
fn cut(text: &str, n: usize) -> String {
    if text.chars().count() <= n {
        text.to_owned()
    } else {
        format!("{}…", text.chars().take(n).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_words() {
        assert_eq!(rough(5), "5s");
        assert_eq!(rough(23 * 60 + 5), "23m");
        assert_eq!(rough(5 * 3600 + 600), "5h 10m");
        assert_eq!(rough(3 * 86_400), "3d");
        assert_eq!(cut("abcdef", 3), "abc…");
        assert_eq!(duration(3600), "1h");
    }
}
