//! The pages that show: the request lists and the review page.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use maud::{Markup, html};

use super::super::{ApiError, AppState, blocking};
use super::layout::{Person, Visit, error_page, page, person};
use crate::names::RoleName;
use crate::service::{ListFilter, RequestView, Status};

/// Requests one list of the page shows at most.
const SHOWN: u32 = 200;

/// The lists of the requests page, as read.
struct Lists {
    who: crate::service::WhoAmI,
    waiting: Vec<RequestView>,
    mine: Vec<RequestView>,
    shown: Vec<RequestView>,
}

/// `?status=` and `?role=`, checked.
fn filter_of(query: &HashMap<String, String>) -> Result<ListFilter, ApiError> {
    let status = match query.get("status").map(String::as_str) {
        None | Some("" | "all") => None,
        Some(s) => Some(Status::parse(s).ok_or_else(|| {
            crate::service::ServiceError::Invalid(format!("unknown status {s:?}"))
        })?),
    };
    let role = match query.get("role").filter(|r| !r.is_empty()) {
        Some(r) => Some(RoleName::parse(r)?),
        None => None,
    };
    Ok(ListFilter {
        status,
        role,
        mine: false,
    })
}

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
    let filter = match filter_of(&query) {
        Ok(f) => f,
        Err(e) => return error_page(&e),
    };
    let (user, wanted) = (me.user.clone(), filter.clone());
    let read = blocking(&state, move |s| {
        let mine = ListFilter {
            mine: true,
            ..wanted.clone()
        };
        Ok(Lists {
            who: s.whoami(&user)?,
            waiting: s.waiting_for(&user, SHOWN as usize)?,
            mine: s.list_where(&user, &mine, SHOWN)?,
            shown: s.list_where(&user, &wanted, SHOWN)?,
        })
    })
    .await;
    match read {
        Ok(lists) => page(
            StatusCode::OK,
            "Requests",
            Some(&me),
            requests_body(&state, &me, &filter, &lists),
        ),
        Err(e) => error_page(&e),
    }
}

/// The requests page's body.
fn requests_body(state: &AppState, me: &Person, filter: &ListFilter, lists: &Lists) -> Markup {
    let Lists {
        who,
        waiting,
        mine,
        shown,
    } = lists;
    let status = filter.status;
    let role = filter.role.as_ref().map(ToString::to_string);
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
    // Someone who approves nothing needs neither an inbox nor others' requests.
    let approver = me.admin || !who.can_approve.is_empty();
    let filters = filters_form(status, role.as_deref(), &roles);
    let body = html! {
        @if approver {
            section aria-labelledby="waiting" {
                h2 #waiting { "Waiting for me (" (waiting.len()) ")" }
                @if waiting.is_empty() {
                    p { "Nothing waits for your approval." }
                } @else {
                    (table(waiting, now))
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
                (table(mine, now))
            }
        }
        @if approver {
            section aria-labelledby="recent" {
                h2 #recent { @if me.admin { "All requests" } @else { "Requests I can see" } }
                (filters)
                @if shown.is_empty() { p { "No requests." } } @else { (table(shown, now)) }
                @if shown.len() >= SHOWN as usize {
                    p.warn { "The newest " (SHOWN)
                        " are shown: choose a status or a role to see others." }
                }
            }
        }
    };
    body
}

/// The status and role filters (`roles`: the ones the viewer may filter by).
fn filters_form(
    status: Option<Status>,
    role: Option<&str>,
    roles: &std::collections::BTreeSet<String>,
) -> Markup {
    html! {
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
                    @for r in roles {
                        option value=(r) selected[role == Some(r.as_str())] { (r) }
                    }
                }
            }
            button type="submit" { "Filter" }
        }
    }
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

/// `3600` as `1h`.
pub(super) fn duration(seconds: i64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(
        u64::try_from(seconds).unwrap_or(0),
    ))
    .to_string()
}

/// Approvals that count toward the role's steps (an approval beyond a met step does
/// not); for a decided request, or one whose role changed since, those given.
pub(super) fn counted(r: &RequestView) -> u32 {
    if r.status == Status::Pending && !r.role_changed {
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
pub(super) fn until(at: &str, now: DateTime<Utc>) -> String {
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
