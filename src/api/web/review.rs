//! The review page: everything an approver needs to decide a request, the forms to
//! decide it (posted to `forms.rs`), and for its requester the certificate.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{Markup, html};

use super::super::{AppState, blocking};
use super::layout::{Person, Visit, error_page, page, person_and_request};
use super::pages::{counted, duration, until};
use crate::service::{Flag, RequestView, Review, Status};

/// `GET /requests/{id}`: everything an approver needs to decide, and the two buttons.
pub(super) async fn review_page(
    State(state): State<AppState>,
    visit: Visit,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let (me, id) = match person_and_request(&state, &visit, &id).await {
        Ok(found) => found,
        Err(answer) => return answer,
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
        .check_step_up(me.auth.credential())
        .err()
        .map(|_| super::signin::step_up_text(&state));
    let title = format!("Request {}", review.request.id);
    page(
        StatusCode::OK,
        &title,
        Some(&me),
        review_body(
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
///
/// Said only when the request bears it out for `me` (a link with `?done=approved` sent
/// to someone who did not approve tells them nothing).
pub(super) fn done_text(done: &str, r: &RequestView, me: &str) -> Option<String> {
    let mine = r.requester == me;
    let bears_out = match done {
        "approved" => r.approvals.iter().any(|a| a.approver == me),
        "denied" => r.status == Status::Denied && r.decided_by.as_deref() == Some(me),
        "cancelled" => r.status == Status::Cancelled && r.decided_by.as_deref() == Some(me),
        "reviewed" => r
            .breakglass
            .as_ref()
            .is_some_and(|b| b.verdicts.iter().any(|v| v.reviewer == me)),
        "created" => mine,
        _ => false,
    };
    if !bears_out {
        return None;
    }
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
        "reviewed" => match r.breakglass.as_ref().and_then(|b| b.outcome.as_deref()) {
            Some(outcome) => format!("You gave your verdict: the review is closed, {outcome}."),
            None => "You gave your verdict; the review waits for more.".to_owned(),
        },
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

/// The review page's body: facts, then what approving needs and the forms, or for a
/// break-glass use its review; for the requester, the certificate.
pub(super) fn review_body(
    review: &Review,
    me: &Person,
    step_up: Option<&str>,
    certificate: Option<&str>,
    done: Option<&str>,
    now: DateTime<Utc>,
) -> Markup {
    let r = &review.request;
    let csrf = me.csrf();
    let done = done.and_then(|d| done_text(d, r, me.user.as_str()));
    html! {
        @if let Some(done) = done {
            p.notice #done role="status" { (done) }
        }
        (facts(review, now))
        @if let Some(b) = &r.breakglass {
            // Taken without approval: the review is what is left to do.
            (breakglass_section(review, b, step_up, &csrf))
        } @else {
            (approval_section(review, step_up, &csrf))
        }
        @if let Some(cert) = certificate {
            h2 { "Your certificate" }
            label for="certificate" { "Copy it, or download it" }
            textarea #certificate readonly rows="6" { (cert) }
            p {
                a #download href={ "/requests/" (r.id) "/certificate" } download {
                    "Download " (r.id) "-cert.pub"
                }
                " and save it next to the private key of the key you asked with, named as that \
                 key with " code { "-cert.pub" } " (for " code { "~/.ssh/id_ed25519" } ": "
                code { "~/.ssh/id_ed25519-cert.pub" } "); ssh uses it from there."
            }
        }
    }
}

/// What approving needs: flags, conflicts, approvals, who is still needed, why the
/// viewer cannot approve (if so), and the forms.
fn approval_section(review: &Review, step_up: Option<&str>, csrf: &str) -> Markup {
    let r = &review.request;
    let pending = r.status == Status::Pending;
    html! {
        @if !review.flags.is_empty() {
            h2 { "Worth a second look" }
            ul.flags #flags { @for f in &review.flags { li { (flag_text(f)) } } }
        }
        @if review.role_changed {
            p.warn #role-changed { "Role " (r.role)
                " changed (or was removed) since this request was made." }
        }
        @if !review.conflicts.is_empty() {
            h2 { "Conflicting roles the requester holds" }
            ul #conflicts { @for c in &review.conflicts { li.bad { (c.role) ": " (c.reason) } } }
        }
        h2 { "Approvals (" (counted(r)) " of " (r.approvals_required) ")" }
        @if r.approvals.is_empty() { p { "None yet." } } @else {
            ul #approvals { @for a in &r.approvals {
                li { strong { (a.approver) } " at " (a.at) @if let Some(c) = &a.comment { ": " (c) }
                    }
            } }
        }
        @if pending && !r.waiting_for.is_empty() {
            p #still-needed { "Still needed: "
                @for (i, step) in r.waiting_for.iter().enumerate() {
                    @if i > 0 { " AND " }
                    (step.remaining) " more of " (step.approvers.join(", "))
                }
            }
        }
        @if let Some(why) = &review.viewer.cannot_approve {
            p.why #why-not { "You cannot approve this request: " (why) "." }
        }
        @if pending && (review.viewer.cannot_approve.is_none() || review.viewer.may_deny) {
            div.decide {
                @if review.viewer.cannot_approve.is_none() {
                    @if let Some(why) = step_up {
                        p.why #step-up-needed { (why) " "
                            a href={ "/login?step_up=1&next=/requests/" (r.id) } { "Sign in again" }
                                }
                    } @else {
                        form method="post" action={ "/requests/" (r.id) "/approve" } {
                            input type="hidden" name="csrf" value=(csrf);
                            input type="hidden" name="version" value=(r.version);
                            label for="comment" { "Comment (optional)" }
                            input #comment type="text" name="comment" maxlength="1000";
                            button.approve #approve type="submit" { "Approve" }
                        }
                    }
                }
                @if review.viewer.may_deny {
                    form method="post" action={ "/requests/" (r.id) "/deny" } {
                        input type="hidden" name="csrf" value=(csrf);
                        input type="hidden" name="version" value=(r.version);
                        label for="deny-reason" { "Reason to deny (required)" }
                        input #deny-reason type="text" name="reason" required maxlength="1000";
                        button #deny type="submit" { "Deny" }
                    }
                }
            }
        }
        @if pending && review.viewer.is_requester {
            form method="post" action={ "/requests/" (r.id) "/cancel" } {
                input type="hidden" name="csrf" value=(csrf);
                button #cancel type="submit" { "Cancel my request" }
            }
        }
    }
}

/// A break-glass use: its review so far, and the verdict form for a reviewer.
fn breakglass_section(
    review: &Review,
    b: &crate::service::BreakGlassView,
    step_up: Option<&str>,
    csrf: &str,
) -> Markup {
    let r = &review.request;
    html! {
        h2 #breakglass { "Break-glass: taken without approval" }
        p.warn { (r.requester) " broke the glass: the certificate was issued at once. "
            (b.reviews_required) " review(s) by " (b.reviewers.join(", ")) " are due by "
            (b.review_due) "."
            @if b.overdue { " " strong.bad #overdue { "The review is overdue." } }
            @if b.ttl_cut { " The lifetime asked was cut to the role's break-glass max_ttl." } }
        @if b.verdicts.is_empty() { p #verdicts { "No verdict yet." } } @else {
            ul #verdicts { @for v in &b.verdicts {
                li { strong { (v.reviewer) } " at " (v.at) ": "
                    span class={ "verdict-" (v.verdict) }
                    { (v.verdict) } " — " (v.comment) }
            } }
        }
        @if let Some(outcome) = &b.outcome {
            p #outcome { "The review closed " (b.closed_at.as_deref().unwrap_or("")) ": "
                strong { (outcome) } "." }
        }
        @if let Some(why) = &review.viewer.cannot_review {
            p.why #why-not-review { "You cannot review this use: " (why) "." }
        }
        @if review.viewer.may_review {
            @if let Some(why) = step_up {
                p.why #step-up-needed { (why) " "
                    a href={ "/login?step_up=1&next=/requests/" (r.id) } { "Sign in again" } }
            } @else {
                form.decide method="post" action={ "/requests/" (r.id) "/review" } {
                    input type="hidden" name="csrf" value=(csrf);
                    label for="review-comment" { "Your verdict's comment (required)" }
                    input #review-comment type="text" name="comment" required maxlength="1000";
                    button.approve #justified type="submit" name="verdict" value="justified" {
                        "Justified" }
                    button #unjustified type="submit" name="verdict" value="unjustified" {
                        "Unjustified (revokes it now)" }
                }
            }
        }
    }
}

/// `GET /requests/{id}/certificate`: the requester's certificate, as a file.
pub(super) async fn certificate_get(
    State(state): State<AppState>,
    visit: Visit,
    Path(id): Path<String>,
) -> Response {
    let (me, id) = match person_and_request(&state, &visit, &id).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let (user, target) = (me.user.clone(), id.clone());
    match blocking(&state, move |s| s.certificate(&user, &target)).await {
        Ok(cert) => (
            [
                (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{id}-cert.pub\""),
                ),
                (header::CACHE_CONTROL, "no-store".to_owned()),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            ],
            format!("{cert}\n"),
        )
            .into_response(),
        Err(e) => error_page(&e),
    }
}
