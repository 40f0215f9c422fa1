//! Driving a connection's runtime from whichever thread waits for an answer, and
//! sending a request without waiting for it.

use crate::store::StoreError;

/// Polls `answer` once and drops it. tokio-postgres queues a request for its connection
/// on the first poll, before it waits for any answer; the answer, when it comes, is
/// dropped by the connection. `Some` if it was ready at once (a closed connection).
pub(super) fn poll_once<T>(answer: impl std::future::Future<Output = T>) -> Option<T> {
    let answer = std::pin::pin!(answer);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match std::future::Future::poll(answer, &mut cx) {
        std::task::Poll::Ready(out) => Some(out),
        std::task::Poll::Pending => None,
    }
}

/// Runs `f` to completion on `runtime` from this thread, wherever it is: a plain thread
/// (the writer thread, the CLI) enters the runtime itself; a thread of a multi-thread
/// tokio runtime does so inside `block_in_place` (on its blocking pool that costs
/// nothing; an async worker hands its other tasks to another worker first); a thread of
/// a current-thread runtime, which can do neither, waits for a short-lived thread that
/// does it.
pub(super) fn drive_on<F: std::future::Future + Send>(
    runtime: &tokio::runtime::Runtime,
    f: F,
) -> Result<F::Output, StoreError>
where
    F::Output: Send,
{
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Err(_) => Ok(runtime.block_on(f)),
        Ok(RuntimeFlavor::MultiThread) => Ok(tokio::task::block_in_place(|| runtime.block_on(f))),
        Ok(_) => std::thread::scope(|s| s.spawn(|| runtime.block_on(f)).join())
            .map_err(|_| StoreError::Unavailable("a database wait panicked".into())),
    }
}
