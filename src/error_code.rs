//! [`ErrorCode`]: every public error code, in one list.
//!
//! An error answer of the HTTP API (`{"error":{"code",...}}`) and an error line of the SSH
//! front door (`countersign: CODE: message`) carry one of these; the CLI prints the
//! server's code as it came. Answers are built from this enum, never from a string, so the
//! list is complete by construction, and a test (`tests/it/error_codes.rs`) holds it
//! against the documentation in both directions.
//!
//! Codes are a public contract: clients branch on them. Add one here (and to the docs);
//! never rename or remove one.

/// Defines [`ErrorCode`] with its string form, [`ErrorCode::ALL`], and the two groups.
macro_rules! error_codes {
    (
        api { $( $(#[$ad:meta])* $av:ident = $as:literal, )* }
        ssh_only { $( $(#[$sd:meta])* $sv:ident = $ss:literal, )* }
    ) => {
        /// A public error code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $( $(#[$ad])* $av, )*
            $( $(#[$sd])* $sv, )*
        }

        impl ErrorCode {
            /// The codes of HTTP API answers (the SSH front door answers with the same
            /// ones): the error table of the API reference.
            pub const API: &'static [ErrorCode] = &[ $( ErrorCode::$av, )* ];

            /// The codes only the SSH front door prints: documented with its exit statuses.
            pub const SSH_ONLY: &'static [ErrorCode] = &[ $( ErrorCode::$sv, )* ];

            /// Every code.
            pub const ALL: &'static [ErrorCode] = &[ $( ErrorCode::$av, )* $( ErrorCode::$sv, )* ];

            /// The code as clients see it.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( ErrorCode::$av => $as, )*
                    $( ErrorCode::$sv => $ss, )*
                }
            }
        }
    };
}

error_codes! {
    api {
        /// 400: the input does not parse or is out of bounds.
        InvalidRequest = "invalid_request",
        /// 401: no valid credential.
        Unauthenticated = "unauthenticated",
        /// 401: the caller's user is disabled (offboarded).
        UserDisabled = "user_disabled",
        /// 403: the caller may not request this role.
        NotARequester = "not_a_requester",
        /// 403: the caller may not approve (or deny) requests for this role.
        NotAnApprover = "not_an_approver",
        /// 403: nobody approves their own request.
        SelfApproval = "self_approval",
        /// 403: the requester holds or asked for a conflicting role.
        SodConflict = "sod_conflict",
        /// 403: the role changed since the request was made.
        PolicyChanged = "policy_changed",
        /// 403: the key is not one the requester may have certified.
        KeyNotAllowed = "key_not_allowed",
        /// 403: a `{user}` principal of the role, for this requester (signed in through
        /// the identity provider, not in `[users]`), is another role's or another user's.
        PrincipalTaken = "principal_taken",
        /// 403: a bot token (a service account) asked for what its scopes do not allow
        /// (no scope approves, denies or administers).
        ScopeNotAllowed = "scope_not_allowed",
        /// 400: registering an SSH key: the signature does not prove possession of the
        /// key (wrong key, wrong namespace, not over the challenge) or the challenge is
        /// unknown, used, expired or another person's or key's.
        KeyProofFailed = "key_proof_failed",
        /// 409: registering an SSH key that is registered already (to someone else, or
        /// in the config).
        KeyTaken = "key_taken",
        /// 401: the API token is past its expiry (`[tokens]`).
        TokenExpired = "token_expired",
        /// 403: the caller may not do this.
        Forbidden = "forbidden",
        /// 404: no such thing, or not one the caller may see.
        NotFound = "not_found",
        /// 405: the endpoint does not take that method.
        MethodNotAllowed = "method_not_allowed",
        /// 409: this person already approved.
        AlreadyApproved = "already_approved",
        /// 409: the request is no longer pending.
        AlreadyDecided = "already_decided",
        /// 409: the request (or the certificate, for `done`) expired.
        Expired = "expired",
        /// 409: no certificate was issued for the request.
        NotIssued = "not_issued",
        /// 409: approve or deny with the `version` of a request that has changed since
        /// (an approval, a decision, its role): review it again.
        RequestChanged = "request_changed",
        /// 409: the certificate is already revoked.
        AlreadyRevoked = "already_revoked",
        /// 409: `enable` of a user who is not disabled.
        NotDisabled = "not_disabled",
        /// 413: the body is too large.
        PayloadTooLarge = "payload_too_large",
        /// 415: the body is not JSON.
        UnsupportedMediaType = "unsupported_media_type",
        /// 422: the `Idempotency-Key` was used before with another body.
        IdempotencyMismatch = "idempotency_mismatch",
        /// 429: too many failed authentications.
        RateLimited = "rate_limited",
        /// 429: the requester has too many pending requests.
        TooManyPending = "too_many_pending",
        /// 500: a server-side failure (details only in the log).
        Internal = "internal",
        /// 500: the audit chain does not verify.
        AuditBroken = "audit_broken",
        /// 503: too many requests in progress.
        Overloaded = "overloaded",
        /// 503: the health check cannot read the database.
        Unavailable = "unavailable",
        /// 503: `/v1/ready`: this replica cannot serve now (the reason in the message).
        NotReady = "not_ready",
        /// 503: the request took longer than `request_timeout`.
        Timeout = "timeout",
        /// 401: a sign-in with the identity provider did not complete (refused, expired,
        /// used before, or what the provider sent does not hold).
        SigninFailed = "signin_failed",
        /// 403: the identity provider's person is not the one this user name is bound to.
        IdentityConflict = "identity_conflict",
        /// 503: the identity provider cannot be reached; sessions keep working.
        IdpUnavailable = "idp_unavailable",
        /// 401: approving needs a sign-in at the identity provider more recent than
        /// `[oidc] approval_max_auth_age`: sign in again (`countersign login`).
        ReauthRequired = "reauth_required",
        /// 401: enrolling a host: the join token is unknown, used already, or expired.
        HostTokenInvalid = "host_token_invalid",
        /// 403: a host principal is outside `[host_ca] allowed_principals`.
        PrincipalNotAllowed = "principal_not_allowed",
        /// 400: renewing a host certificate: the signature does not prove possession of
        /// the host key (wrong key, namespace or text), or the challenge is not this
        /// server's, expired, for another key, or answered before.
        HostProofFailed = "host_proof_failed",
        /// 403: renewing a host certificate: the certificate presented is not one of
        /// ours, or it expired, was revoked, or is for another key.
        HostCertificateRefused = "host_certificate_refused",
        /// 403: break-glass: the role has no `break_glass` table.
        NotBreakable = "not_breakable",
        /// 403: break-glass: the caller is not among the role's `invokers` (or is a
        /// service account).
        NotAnInvoker = "not_an_invoker",
        /// 403: break-glass: the reason does not match the role's `reason_pattern`.
        ReasonMismatch = "reason_mismatch",
        /// 409: break-glass: the caller's previous use is not reviewed yet and no admin
        /// allowed one more.
        UnreviewedBreakglass = "unreviewed_breakglass",
        /// 409: break-glass: the caller's last use was judged unjustified and no admin
        /// allowed another.
        UnjustifiedBreakglass = "unjustified_breakglass",
        /// 403: nobody reviews their own break-glass.
        SelfReview = "self_review",
        /// 403: the caller is not among the use's `reviewers` (or is a service account).
        NotAReviewer = "not_a_reviewer",
        /// 409: this reviewer gave a verdict on this use already.
        AlreadyReviewed = "already_reviewed",
        /// 409: the review is closed: every verdict it needed is in.
        ReviewClosed = "review_closed",
        /// 409: a review of a request that is not a break-glass use.
        NotBreakglass = "not_breakglass",
        /// 409: `breakglass allow` for a user with no break-glass use waiting for its
        /// review: there is nothing to allow (an allowance is never a standing pass).
        NothingToAllow = "nothing_to_allow",
    }
    ssh_only {
        /// The user already runs as many commands as allowed.
        TooManySessions = "too_many_sessions",
        /// A waiting `request` reached the connection's time limit.
        StillPending = "still_pending",
        /// A waiting `request` was denied.
        Denied = "denied",
        /// A waiting `request` was cancelled.
        Cancelled = "cancelled",
    }
}

impl ErrorCode {
    /// The code named `s`, if there is one.
    pub fn parse(s: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.iter().copied().find(|c| c.as_str() == s)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error and its sources, one line: `outer: cause: root cause` (for messages and logs
/// that must keep the cause, as `{:#}` does for anyhow).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_listed_once_and_parses_back() {
        let mut seen = std::collections::HashSet::new();
        for &c in ErrorCode::ALL {
            assert!(seen.insert(c.as_str()), "{c} twice");
            assert_eq!(ErrorCode::parse(c.as_str()), Some(c));
        }
        assert_eq!(
            ErrorCode::ALL.len(),
            ErrorCode::API.len() + ErrorCode::SSH_ONLY.len()
        );
        assert_eq!(ErrorCode::parse("no_such_code"), None);
    }
}
