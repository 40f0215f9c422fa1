//! What the front ends show of a request: stored facts plus the policy's reading of them.

use chrono::{DateTime, SecondsFormat, Utc};

use serde::{Deserialize, Serialize};

use crate::names::{Serial, UserName};
use crate::policy::rules;
use crate::policy::{Member, People, Policy, Role};
use crate::store::certificates::CertificateRow;
use crate::store::requests::{self as rq, ApprovalRow, RequestRow, Status};

/// RFC 3339 UTC, seconds precision: how every time is shown (API, CLI, audit).
pub fn rfc3339(unix: i64) -> String {
    DateTime::<Utc>::from_timestamp(unix, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A request as the API returns it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestView {
    /// The request's id (`r-` and 12 base32 characters).
    pub id: String,
    /// The role asked for.
    pub role: String,
    /// Who asked.
    pub requester: String,
    /// The requester's reason.
    pub reason: String,
    /// Where it stands: pending, or how it ended.
    pub status: Status,
    /// When it was made (RFC 3339).
    pub created_at: String,
    /// When it expires if still undecided (RFC 3339).
    pub expires_at: String,
    /// The certificate lifetime asked for, in seconds.
    pub ttl_seconds: i64,
    /// The principals the certificate will carry.
    pub principals: Vec<String>,
    /// SHA-256 fingerprint of the key to certify.
    pub public_key_fingerprint: String,
    /// The approvals given so far, oldest first.
    pub approvals: Vec<ApprovalView>,
    /// Distinct approvals the role needed in all when the request was made.
    pub approvals_required: u32,
    /// How many more are needed (0 once decided, and once its role changed).
    pub approvals_needed: u32,
    /// Its role was changed or removed since the request was made: a pending one can
    /// no longer be approved (approving ends it `policy_changed`; ask again).
    #[serde(default)]
    pub role_changed: bool,
    /// For a pending request: the steps still open.
    pub waiting_for: Vec<StepView>,
    /// When it ended (RFC 3339); `None` while pending.
    pub decided_at: Option<String>,
    /// Who ended it (a user, or the CA itself); `None` while pending.
    pub decided_by: Option<String>,
    /// Why it ended: `denied`, `cancelled`, `expired`, or a refusal code.
    pub decision_code: Option<String>,
    /// The deny reason or the refusal message.
    pub decision_note: Option<String>,
    /// The certificate issued for it, if any.
    pub certificate: Option<CertificateView>,
    /// Whether the requester is disabled (offboarded) now.
    #[serde(default)]
    pub requester_disabled: bool,
    /// What a decider reviewed: changes with every approval, the decision, and any
    /// change of the request's role. Sent back with approve or deny (`version`), a
    /// request that changed since is refused `request_changed`.
    #[serde(default)]
    pub version: String,
    /// For a break-glass use: its terms and its review (absent for other requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breakglass: Option<BreakGlassView>,
}

/// A break-glass use's terms and review.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BreakGlassView {
    /// The lifetime asked for, in seconds (`None`: the role's default).
    pub ttl_asked_seconds: Option<i64>,
    /// Whether it was cut to the table's `max_ttl` (`ttl_seconds` is what was granted).
    pub ttl_cut: bool,
    /// Who may review it (as the table named them at the use).
    pub reviewers: Vec<String>,
    /// Distinct verdicts that close the review.
    pub reviews_required: u32,
    /// When the review is due (RFC 3339).
    pub review_due: String,
    /// Whether the review is open past its due time.
    pub overdue: bool,
    /// The verdicts so far, oldest first.
    pub verdicts: Vec<VerdictView>,
    /// `justified` (every verdict was) or `unjustified`, once closed.
    pub outcome: Option<String>,
    /// When the review closed (RFC 3339).
    pub closed_at: Option<String>,
    /// The admin whose allowance this use spent, if it needed one.
    pub allowed_by: Option<String>,
}

/// One reviewer's verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerdictView {
    /// Who reviewed.
    pub reviewer: String,
    /// `justified` or `unjustified`.
    pub verdict: String,
    /// Why.
    pub comment: String,
    /// When (RFC 3339).
    pub at: String,
}

/// `view` as a break-glass use: its review added, and `pending_review` while open.
pub(super) fn with_breakglass(
    mut view: RequestView,
    used: crate::store::breakglass::UseRow,
    verdicts: Vec<crate::store::breakglass::VerdictRow>,
    now: DateTime<Utc>,
) -> RequestView {
    if used.closed_at.is_none() && view.status == rq::Status::Issued {
        view.status = rq::Status::PendingReview;
    }
    // No approval was required: the review stands in its place.
    view.approvals_required = 0;
    view.approvals_needed = 0;
    view.waiting_for.clear();
    view.breakglass = Some(BreakGlassView {
        ttl_asked_seconds: used.ttl_asked,
        ttl_cut: used.cut,
        reviewers: used.reviewers,
        reviews_required: used.reviews_required,
        review_due: rfc3339(used.review_due),
        overdue: used.closed_at.is_none() && used.review_due <= now.timestamp(),
        verdicts: verdicts
            .into_iter()
            .map(|v| VerdictView {
                reviewer: v.reviewer.to_string(),
                verdict: v.verdict,
                comment: v.comment,
                at: rfc3339(v.at),
            })
            .collect(),
        outcome: used.outcome,
        closed_at: used.closed_at.map(rfc3339),
        allowed_by: used.allowed_by,
    });
    view
}

/// One approval.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApprovalView {
    /// Who approved.
    pub approver: String,
    /// When (RFC 3339).
    pub at: String,
    /// The approver's comment, if any.
    pub comment: Option<String>,
}

/// An approval step still waiting.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepView {
    /// Who may still give this step an approval: the step's `group:` and `user:`
    /// members, less a `user:` member who already approved (each person counts once) or
    /// who is the requester.
    pub approvers: Vec<String>,
    /// Approvals the step needs in all.
    pub approvals: u32,
    /// How many more it needs.
    pub remaining: u32,
    /// The approvals counted toward this step so far (user names).
    #[serde(default)]
    pub approved_by: Vec<String>,
}

/// The issued certificate's identifying facts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CertificateView {
    /// Decimal string (64-bit).
    pub serial: Serial,
    /// The key ID, `countersign:REQUEST:USER:ROLE`.
    pub key_id: String,
    /// Start of validity (RFC 3339).
    pub valid_after: String,
    /// End of validity (RFC 3339).
    pub valid_before: String,
    /// Set once the certificate was revoked (ended early); it is then in the KRL.
    pub revoked: Option<RevocationView>,
}

/// Who ended a certificate early, when and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RevocationView {
    /// When it was revoked (RFC 3339).
    pub at: String,
    /// Who revoked it.
    pub by: String,
    /// The revoker's reason.
    pub reason: String,
}

/// `GET /v1/whoami`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WhoAmI {
    /// The user asking.
    pub user: String,
    /// The user's groups: from `[users.NAME]`, and from the identity provider while they
    /// have a live session.
    pub groups: Vec<String>,
    /// Whether the user is an admin.
    pub admin: bool,
    /// Roles the user may request.
    pub can_request: Vec<String>,
    /// Roles whose requests the user may approve.
    pub can_approve: Vec<String>,
    /// Roles the user may break the glass for (their `break_glass` table lists them).
    #[serde(default)]
    pub can_break_glass: Vec<String>,
    /// Roles whose break-glass uses the user reviews (as the tables are now).
    #[serde(default)]
    pub can_review: Vec<String>,
    /// Whether the user is disabled (offboarded); a disabled user is refused before
    /// they can ask, so this reads true only in a race with the disabling.
    #[serde(default)]
    pub disabled: bool,
    /// With a service account's token: its scopes (and `can_approve` is empty: such a
    /// token never approves). Absent for people's tokens and sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// With a session from the device flow: `oidc-device` (such a session never
    /// approves, breaks the glass, reviews or registers keys, and requests only for keys
    /// registered to the user). Absent for tokens and other sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

pub(super) fn whoami(people: &People<'_>, user: &UserName, disabled: bool) -> WhoAmI {
    let policy = people.policy;
    let roles = |pick: &dyn Fn(&crate::policy::Role) -> bool| -> Vec<String> {
        policy
            .roles
            .values()
            .filter(|r| pick(r))
            .map(|r| r.name.to_string())
            .collect()
    };
    WhoAmI {
        user: user.to_string(),
        groups: people
            .groups_of(user)
            .into_iter()
            .map(ToString::to_string)
            .collect(),
        admin: people.is_admin(user),
        can_request: roles(&|r| people.is_known(user) && people.is_any_member(user, &r.requesters)),
        can_approve: roles(&|r| people.may_decide(user, r)),
        can_break_glass: roles(&|r| {
            r.break_glass.as_ref().is_some_and(|bg| {
                crate::policy::rules::break_glass::invoker_must_be_listed(people, r, bg, user)
                    .is_ok()
            })
        }),
        can_review: roles(&|r| {
            r.break_glass.as_ref().is_some_and(|bg| {
                people.is_known(user)
                    && !people.is_bot(user)
                    && people.is_any_member(user, &bg.reviewers)
            })
        }),
        disabled,
        scopes: None,
        session: None,
    }
}

/// The view of a request from its parts, for a state change that has just written them
/// (and so need not read them back): `approvals` in the store's order (time, then
/// insertion), `certificate` the request's, if issued, `requester_disabled` whether its
/// requester is disabled, `now` the time it is shown at.
pub(super) fn assemble(
    people: &People<'_>,
    mut row: RequestRow,
    approvals: Vec<ApprovalRow>,
    certificate: Option<&CertificateRow>,
    requester_disabled: bool,
    now: DateTime<Utc>,
) -> RequestView {
    let version = version(people.policy, &row, &approvals);
    if row.status == rq::Status::Pending && rules::is_expired(now.timestamp(), row.expires_at) {
        // Past its deadline it is expired, whether or not the sweep has recorded it yet.
        row.status = rq::Status::Expired;
        row.decision_code = Some("expired".into());
    }
    let certificate = certificate.map(|c| CertificateView {
        serial: c.serial,
        key_id: c.key_id.clone(),
        valid_after: rfc3339(c.valid_after),
        valid_before: rfc3339(c.valid_before),
        revoked: c.revocation.as_ref().map(|r| RevocationView {
            at: rfc3339(r.at),
            by: r.by.clone(),
            reason: r.reason.clone(),
        }),
    });
    let role = people
        .policy
        .roles
        .get(&row.role)
        .filter(|r| r.digest() == row.role_digest);
    let (required, needed, waiting_for) = match role {
        Some(role) => {
            let approvers: Vec<UserName> = approvals.iter().map(|a| a.approver.clone()).collect();
            let tally = rules::tally(people, role, &row.requester, &approvers);
            let pending = row.status == rq::Status::Pending;
            let waiting = role
                .steps
                .iter()
                .zip(&tally.missing)
                .enumerate()
                .filter(|(_, (_, m))| pending && **m > 0)
                .map(|(i, (s, m))| StepView {
                    approvers: s
                        .approvers
                        .iter()
                        .filter(|m| match m {
                            Member::User(u) => *u != row.requester && !approvers.contains(u),
                            Member::Group(_) => true,
                        })
                        .map(ToString::to_string)
                        .collect(),
                    approvals: s.approvals,
                    remaining: *m,
                    approved_by: tally
                        .counted
                        .iter()
                        .filter(|(_, step)| *step == i)
                        .map(|(u, _)| u.to_string())
                        .collect(),
                })
                .collect();
            (
                role.approvals_needed(),
                if pending { tally.still_needed() } else { 0 },
                waiting,
            )
        }
        // What the role needed when the request was made (none kept before that was).
        None => (
            row.approvals_required
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0),
            0,
            Vec::new(),
        ),
    };
    RequestView {
        id: row.id.to_string(),
        role: row.role.to_string(),
        requester: row.requester.to_string(),
        reason: row.reason,
        status: row.status,
        created_at: rfc3339(row.created_at),
        expires_at: rfc3339(row.expires_at),
        ttl_seconds: row.ttl_seconds,
        principals: row.principals,
        public_key_fingerprint: row.key_fingerprint,
        approvals: approvals
            .into_iter()
            .map(|a| ApprovalView {
                approver: a.approver.to_string(),
                at: rfc3339(a.at),
                comment: a.comment,
            })
            .collect(),
        approvals_required: required,
        approvals_needed: needed,
        role_changed: role.is_none(),
        waiting_for,
        decided_at: row.decided_at.map(rfc3339),
        decided_by: row.decided_by,
        decision_code: row.decision_code,
        decision_note: row.decision_note,
        certificate,
        requester_disabled,
        version,
        breakglass: None,
    }
}

/// The version of a request as stored: its status, its approvers, the role's digest
/// when it was made and the role's digest now (16 hex digits of their SHA-256).
pub(super) fn version(policy: &Policy, row: &RequestRow, approvals: &[ApprovalRow]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let now = policy.roles.get(&row.role).map(Role::digest);
    for part in [
        row.status.as_str(),
        &row.role_digest,
        now.as_deref().unwrap_or(""),
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    for a in approvals {
        h.update(a.approver.as_str().as_bytes());
        h.update([0]);
    }
    crate::hex_lower(&h.finalize()[..8])
}
