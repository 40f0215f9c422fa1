//! The metrics' labels: their names and the values known ahead (outcomes, refusal codes,
//! the SSH front door's reasons).

use prometheus_client::encoding::EncodeLabelSet;

/// `{version, commit}` of `countersign_build_info`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct BuildLabels {
    pub(super) version: String,
    pub(super) commit: String,
}

/// `{role}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct RoleLabel {
    pub(super) role: String,
}

/// `{role, outcome}`: how a request ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct DecidedLabels {
    pub(super) role: String,
    pub(super) outcome: String,
}

/// `{code}`: a refusal's error code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct CodeLabel {
    pub(super) code: String,
}

/// `{reason}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ReasonLabel {
    pub(super) reason: String,
}

/// `{state}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct StateLabel {
    pub(super) state: String,
}

/// `{outcome}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct OutcomeLabel {
    pub(super) outcome: &'static str,
}

/// The label `{outcome}`.
pub(super) fn outcome_label(outcome: &'static str) -> OutcomeLabel {
    OutcomeLabel { outcome }
}

/// `{route, method, status}` of an HTTP request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct HttpLabels {
    pub(super) route: String,
    pub(super) method: &'static str,
    pub(super) status: u16,
}

/// `{route}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct RouteLabel {
    pub(super) route: String,
}

/// How a request ended, for `countersign_requests_decided_total{outcome}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Approved and its certificate issued.
    Approved,
    /// Denied by an approver.
    Denied,
    /// Cancelled by its requester (or by disabling them).
    Cancelled,
    /// Nobody decided in time.
    Expired,
    /// Refused when checked again at signing.
    Refused,
}

/// Every [`Outcome`].
pub(super) const OUTCOMES: [Outcome; 5] = [
    Outcome::Approved,
    Outcome::Denied,
    Outcome::Cancelled,
    Outcome::Expired,
    Outcome::Refused,
];

/// The refusal codes a policy rule gives (`policy::rules::Refusal::code`), break-glass's
/// included (each starts at 0, so that an alert on one has a series from the start).
pub(super) const REFUSAL_CODES: &[&str] = &[
    "not_a_requester",
    "not_an_approver",
    "self_approval",
    "already_approved",
    "sod_conflict",
    "policy_changed",
    "expired",
    "already_decided",
    "key_not_allowed",
    "principal_taken",
    "not_breakable",
    "not_an_invoker",
    "reason_mismatch",
    "unreviewed_breakglass",
    "unjustified_breakglass",
    "self_review",
    "not_a_reviewer",
    "already_reviewed",
    "review_closed",
    "not_breakglass",
];

/// The reasons the SSH front door refuses for (`ssh::auth::AuthRefusal` and its accept
/// loop).
pub(super) const SSH_REFUSALS: &[&str] = &[
    "unknown_key",
    "unsupported_key",
    "wrong_login",
    "not_public_key",
    "certificate",
    "rate_limited",
    "disabled",
    "unchecked",
    "max_connections_per_address",
    "max_connections",
];

impl Outcome {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Outcome::Approved => "approved",
            Outcome::Denied => "denied",
            Outcome::Cancelled => "cancelled",
            Outcome::Expired => "expired",
            Outcome::Refused => "refused",
        }
    }
}

pub(super) fn role_label(role: &str) -> RoleLabel {
    RoleLabel {
        role: role.to_owned(),
    }
}

pub(super) fn state_label(state: &str) -> StateLabel {
    StateLabel {
        state: state.to_owned(),
    }
}
