//! [`ServiceError`]: what went wrong in an operation, with the public [`ErrorCode`] and
//! the [`ErrorKind`] each front end maps to its own terms (an HTTP status, an exit status).
//!
//! The code and the message are the same whichever front end answers; only the kind's
//! translation differs. Server-side failures keep their cause for the log and show the
//! caller a generic message ([`ServiceError::public_message`]).

use crate::audit::AuditError;
use crate::ca::CaError;
use crate::error_code::ErrorCode;
pub use crate::error_code::chain;
use crate::policy::rules::Refusal;
use crate::state::StateError;
use crate::state::mark::MarkError;
use crate::store::StoreError;

/// What went wrong, in the terms a front end maps to a response.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A separation-of-duties or state rule said no.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The input is malformed or out of bounds (`invalid_request`).
    #[error("{0}")]
    Invalid(String),
    /// A proof of possession of an SSH key does not hold (`key_proof_failed`, 400).
    #[error("{0}")]
    KeyProof(String),
    /// The caller may not do this (`forbidden`).
    #[error("{0}")]
    Forbidden(String),
    /// No such request, or not one the caller may see (`not_found`).
    #[error("{0}")]
    NotFound(String),
    /// The request is not in a state that allows this (e.g. `not_issued`).
    #[error("{message}")]
    Conflict {
        /// The public error code.
        code: ErrorCode,
        /// What the caller is told.
        message: String,
    },
    /// The user already has `limit` pending requests (`too_many_pending`, HTTP 429): a
    /// limit, not a decision, so not audited.
    #[error(
        "you already have {limit} pending requests, the most one user may have; \
         cancel one or wait for decisions"
    )]
    TooManyPending {
        /// `requests.max_pending_per_user`.
        limit: u32,
    },
    /// The idempotency key was used before for a different request
    /// (`idempotency_mismatch`, HTTP 422).
    #[error("{0}")]
    IdempotencyMismatch(String),
    /// This replica cannot serve now (`not_ready`, HTTP 503); the message says why.
    #[error("{0}")]
    NotReady(String),
    /// No valid token (`unauthenticated`).
    #[error("a valid bearer token is required")]
    Unauthenticated,
    /// A sign-in with the identity provider failed: `signin_failed` (401),
    /// `identity_conflict` (403) or `idp_unavailable` (503).
    #[error("{message}")]
    SignIn {
        /// The public error code.
        code: ErrorCode,
        /// What the person is told.
        message: String,
    },
    /// A host certificate operation was refused: `host_token_invalid` (401),
    /// `principal_not_allowed` (403), `host_proof_failed` (400) or
    /// `host_certificate_refused` (403).
    #[error("{message}")]
    Host {
        /// The public error code.
        code: ErrorCode,
        /// What the host (or admin) is told.
        message: String,
    },
    /// The caller's user is disabled (offboarded): every credential of theirs is refused
    /// (`user_disabled`).
    #[error("{0}")]
    Disabled(String),
    /// The database failed.
    #[error("storage failure")]
    Store(#[from] StoreError),
    /// The CA key could not be used, or signing failed.
    #[error("CA failure")]
    Ca(#[from] CaError),
    /// The KRL could not be built.
    #[error("building the KRL")]
    Krl(#[from] crate::krl::KrlError),
    /// The audit chain does not verify.
    #[error(transparent)]
    Audit(AuditError),
    /// The state cannot be opened as it is (`state.rs`); the message says why.
    #[error(transparent)]
    State(#[from] StateError),
    /// The high-water mark could not be written: nothing newer is published until it is.
    #[error("writing the state mark")]
    Mark(#[from] MarkError),
    /// The task running the operation panicked or was cancelled (`calls.rs`).
    #[error(transparent)]
    Task(#[from] tokio::task::JoinError),
}

impl From<AuditError> for ServiceError {
    fn from(e: AuditError) -> Self {
        match e {
            AuditError::Store(s) => ServiceError::Store(s),
            broken => ServiceError::Audit(broken),
        }
    }
}

/// What kind of failure an error is: each front end maps it to its own answer (the HTTP
/// API to a status code; the SSH front door answers every kind with exit status 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input is malformed (400).
    Invalid,
    /// No valid credential, or the user is disabled (401).
    Unauthenticated,
    /// A who-may rule or a permission said no (403).
    Forbidden,
    /// Nothing the caller may see there (404).
    NotFound,
    /// The state does not allow it (409).
    Conflict,
    /// Well-formed, but contradicts what the same request said before (422).
    Unprocessable,
    /// A limit was reached (429).
    Limited,
    /// This replica cannot serve now; another may (503).
    Unavailable,
    /// The server failed; the cause is in the log (500).
    Internal,
}

/// What the caller is told of a server-side failure; the cause goes to the log only.
const INTERNAL_MESSAGE: &str = "internal error; see the server log";

impl ServiceError {
    /// The public code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            ServiceError::Refused(r) => r.error_code(),
            ServiceError::Invalid(_) => ErrorCode::InvalidRequest,
            ServiceError::KeyProof(_) => ErrorCode::KeyProofFailed,
            ServiceError::Forbidden(_) => ErrorCode::Forbidden,
            ServiceError::NotFound(_) => ErrorCode::NotFound,
            ServiceError::Conflict { code, .. } => *code,
            ServiceError::TooManyPending { .. } => ErrorCode::TooManyPending,
            ServiceError::IdempotencyMismatch(_) => ErrorCode::IdempotencyMismatch,
            ServiceError::NotReady(_) | ServiceError::Store(StoreError::PolicyChanged) => {
                ErrorCode::NotReady
            }
            ServiceError::Store(StoreError::Unavailable(_)) => ErrorCode::Unavailable,
            ServiceError::Unauthenticated => ErrorCode::Unauthenticated,
            ServiceError::SignIn { code, .. } | ServiceError::Host { code, .. } => *code,
            ServiceError::Disabled(_) => ErrorCode::UserDisabled,
            ServiceError::Audit(_) => ErrorCode::AuditBroken,
            ServiceError::Store(_)
            | ServiceError::Ca(_)
            | ServiceError::Krl(_)
            | ServiceError::State(_)
            | ServiceError::Mark(_)
            | ServiceError::Task(_) => ErrorCode::Internal,
        }
    }

    /// The kind of failure: who-may refusals are forbidden, state refusals conflicts.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ServiceError::Refused(
                Refusal::AlreadyApproved { .. } | Refusal::AlreadyDecided { .. } | Refusal::Expired,
            ) => ErrorKind::Conflict,
            ServiceError::Refused(Refusal::BreakGlass(b)) if b.is_conflict() => ErrorKind::Conflict,
            ServiceError::Refused(_) | ServiceError::Forbidden(_) => ErrorKind::Forbidden,
            ServiceError::Invalid(_) | ServiceError::KeyProof(_) => ErrorKind::Invalid,
            ServiceError::NotFound(_) => ErrorKind::NotFound,
            ServiceError::Conflict { .. } => ErrorKind::Conflict,
            ServiceError::TooManyPending { .. } => ErrorKind::Limited,
            ServiceError::IdempotencyMismatch(_) => ErrorKind::Unprocessable,
            ServiceError::NotReady(_)
            | ServiceError::Store(StoreError::Unavailable(_) | StoreError::PolicyChanged) => {
                ErrorKind::Unavailable
            }
            ServiceError::Unauthenticated | ServiceError::Disabled(_) => ErrorKind::Unauthenticated,
            ServiceError::SignIn { code, .. } => match code {
                ErrorCode::IdentityConflict | ErrorCode::ScopeNotAllowed => ErrorKind::Forbidden,
                ErrorCode::ReauthRequired => ErrorKind::Unauthenticated,
                ErrorCode::IdpUnavailable => ErrorKind::Unavailable,
                _ => ErrorKind::Unauthenticated,
            },
            ServiceError::Host { code, .. } => match code {
                ErrorCode::HostTokenInvalid => ErrorKind::Unauthenticated,
                ErrorCode::HostProofFailed => ErrorKind::Invalid,
                _ => ErrorKind::Forbidden,
            },
            ServiceError::Audit(_)
            | ServiceError::Store(_)
            | ServiceError::Ca(_)
            | ServiceError::Krl(_)
            | ServiceError::State(_)
            | ServiceError::Mark(_)
            | ServiceError::Task(_) => ErrorKind::Internal,
        }
    }

    /// The message the caller may see: the error itself, except for a server-side
    /// failure (code `internal`), whose cause may name paths or SQL.
    pub fn public_message(&self) -> String {
        match self.code() {
            ErrorCode::Internal => INTERNAL_MESSAGE.to_owned(),
            // The cause may name the database's host or the driver's words.
            _ if matches!(self, ServiceError::Store(StoreError::Unavailable(_))) => {
                "the database is unavailable; retry shortly".to_owned()
            }
            _ if matches!(self, ServiceError::Store(StoreError::PolicyChanged)) => {
                format!(
                    "{}; another server may answer",
                    crate::store::IN_FORCE_MESSAGE
                )
            }
            _ => self.to_string(),
        }
    }

    /// Logs a server-side failure (kind [`ErrorKind::Internal`]) with its cause chain,
    /// where a front end answers it, and (once every 10 s) a database that is unavailable
    /// or a write refused to a replica left behind; the caller's own mistakes are not
    /// logged here.
    pub fn log_internal(&self) {
        match self {
            ServiceError::Audit(broken) => {
                tracing::error!(error = %broken, "audit chain does not verify");
            }
            e if e.kind() == ErrorKind::Internal => {
                tracing::error!(error = %chain(e), "internal error");
            }
            // The caller hears only "unavailable"; the operator needs the cause (the
            // server down, a refused password, a full pool).
            ServiceError::Store(StoreError::Unavailable(why)) => log_unavailable(why),
            // Every write of a replica left behind: said once every 10 s.
            ServiceError::Store(StoreError::PolicyChanged) => {
                static REFUSED: crate::logging::Throttle = crate::logging::Throttle::new();
                if let Some(left_out) = REFUSED.allow() {
                    tracing::warn!(
                        left_out,
                        "a write was refused: {}",
                        StoreError::PolicyChanged
                    );
                }
            }
            _ => {}
        }
    }
}

/// Logs that the database is unavailable, at most once every 10 s: while it is down, every
/// request and each background task of every replica meets it (the pool logs when it
/// answers again). Each line says how many were left out since the last.
fn log_unavailable(why: &str) {
    static UNAVAILABLE: crate::logging::Throttle = crate::logging::Throttle::new();
    if let Some(left_out) = UNAVAILABLE.allow() {
        tracing::warn!(cause = %why, left_out, "the database is unavailable");
    }
}
