//! How an async front end runs an operation: reads on the blocking pool, state changes on
//! the store's writer thread. The HTTP API and the SSH front door both call through here,
//! so a change is durable, and the high-water mark holds it, before either answers.

use std::sync::Arc;

use super::{Service, ServiceError};

/// Runs `f` on the blocking pool: the store is synchronous SQLite. For reads that may
/// take a while (lists, the audit log, the KRL); state changes go through [`submit`].
pub async fn blocking<T: Send + 'static>(
    service: &Arc<Service>,
    f: impl FnOnce(&Service) -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ServiceError> {
    let service = service.clone();
    tokio::task::spawn_blocking(move || f(&service)).await?
}

/// Runs the short read `f` (a token lookup): on SQLite at once on this thread (an
/// in-process read of a few microseconds, cheaper than a hand-off), on PostgreSQL on the
/// blocking pool, since a network round trip must not hold an async worker.
pub async fn quick<T: Send + 'static>(
    service: &Arc<Service>,
    f: impl FnOnce(&Service) -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ServiceError> {
    if service.store().is_postgres() {
        blocking(service, f).await
    } else {
        f(service)
    }
}

/// Runs the state change `f` on the store's writer thread, in a group commit with the
/// other changes queued, and returns once it is durable (see `Store::submit`).
pub async fn submit<T: Send + 'static>(
    service: &Arc<Service>,
    f: impl FnOnce(&Service) -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ServiceError> {
    submit_planned(service, |_| (), move |s, ()| f(s)).await
}

/// [`submit`] in two steps on the writer thread: `plan` before the batch's transaction
/// begins (it may name a read to be sent ahead: `Store::submit_planned`), then `f` with
/// what `plan` returned.
pub async fn submit_planned<P: 'static, T: Send + 'static>(
    service: &Arc<Service>,
    plan: impl FnOnce(&Service) -> P + Send + 'static,
    f: impl FnOnce(&Service, P) -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ServiceError> {
    let (s, planner) = (service.clone(), service.clone());
    let submitted = service
        .store()
        .submit_planned(move || plan(&planner), move |p| f(&s, p));
    let result = match submitted.await {
        Ok(result) => result,
        Err(e) => Err(ServiceError::Store(e)),
    };
    // A revocation committed (by this operation or one in its batch): the high-water
    // mark must hold it before any answer of the batch leaves (`state.rs`).
    if service.state_behind() {
        blocking(service, |s| s.publish_state()).await?;
    }
    result
}
