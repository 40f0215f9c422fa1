//! What an SSH command runs with ([`Context`]), how it fails ([`CommandError`]), and
//! how it calls the [`Service`]: reads on the blocking pool, changes on the store's writer
//! thread, as the HTTP API does.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::auth::Identity;
use super::terminal::Disconnected;
use crate::error_code::ErrorCode;
use crate::names::UserName;
use crate::service::{ErrorKind, Service, ServiceError, SteppedUp};

/// What a command runs with.
#[derive(Clone)]
pub(super) struct Context {
    /// The operations.
    pub service: Arc<Service>,
    /// Who is asking, and the key certificates are issued for.
    pub identity: Identity,
    /// A waiting `request` gives up here, just before the connection's time limit.
    pub wait_until: Instant,
    /// How often a waiting `request` reads its request again (and shows it is alive).
    pub recheck: Duration,
}

/// Why a command did not complete.
#[derive(Debug, thiserror::Error)]
pub(super) enum CommandError {
    /// Refused or failed, with its public code.
    #[error("{code}: {message}")]
    Failed { code: ErrorCode, message: String },
    /// The client went away.
    #[error(transparent)]
    Disconnected(#[from] Disconnected),
}

impl CommandError {
    /// A failure with its code.
    pub(super) fn failed(code: ErrorCode, message: impl Into<String>) -> Self {
        CommandError::Failed {
            code,
            message: message.into(),
        }
    }

    /// `invalid_request`, as the API answers malformed input.
    pub(super) fn invalid(message: impl Into<String>) -> Self {
        Self::failed(ErrorCode::InvalidRequest, message)
    }
}

/// The code and message the HTTP API would answer with; a server-side failure is logged
/// with its cause, and the user gets the generic message.
impl From<ServiceError> for CommandError {
    fn from(e: ServiceError) -> Self {
        e.log_internal();
        Self::failed(e.code(), e.public_message())
    }
}

/// The command's failure; a who-may refusal is logged with the user (as the HTTP API logs
/// its `refused` lines), a server-side failure with its cause.
fn failed_as(ctx: &Context, e: ServiceError) -> CommandError {
    if e.kind() == ErrorKind::Forbidden {
        tracing::warn!(
            user = %ctx.identity.user,
            code = e.code().as_str(),
            reason = %e.public_message(),
            "refused"
        );
    }
    e.into()
}

/// Runs one service operation as the caller, on the blocking pool.
pub(super) async fn call<T: Send + 'static>(
    ctx: &Context,
    f: impl FnOnce(&Service, &UserName) -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, CommandError> {
    let actor = ctx.identity.user.clone();
    let answer = crate::service::blocking(&ctx.service, move |s| f(s, &actor)).await;
    answer.map_err(|e| failed_as(ctx, e))
}

/// Runs a state change for the authenticated user on the store's writer thread (group
/// commit, as the HTTP API does).
pub(super) async fn change<T: Send + 'static>(
    ctx: &Context,
    f: impl FnOnce(&Service, &UserName) -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, CommandError> {
    let actor = ctx.identity.user.clone();
    let answer = crate::service::submit(&ctx.service, move |s| f(s, &actor)).await;
    answer.map_err(|e| failed_as(ctx, e))
}

/// [`change`] for a decision (approving, breaking the glass, a verdict): the key the
/// caller proved at the connection is the step-up the service asks for.
pub(super) async fn decide<T: Send + 'static>(
    ctx: &Context,
    f: impl FnOnce(&Service, &SteppedUp) -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, CommandError> {
    let who = SteppedUp::at_front_door(ctx.identity.user.clone());
    let answer = crate::service::submit(&ctx.service, move |s| f(s, &who)).await;
    answer.map_err(|e| failed_as(ctx, e))
}
