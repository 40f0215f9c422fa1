//! The commit listener: one connection of its own per store that LISTENs on the commit
//! channel, wakes waiters on every notification, and tells the token rows remembered
//! (`store/credentials.rs`) of every change they must forget.

use std::sync::Arc;

use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{AsyncMessage, Socket};

use super::pool::POLL_WHILE_DEAF;
use crate::store::credentials::Credentials;

/// Makes the token rows remembered unusable when dropped (the listener's end).
struct Deaf(Arc<Credentials>);

impl Drop for Deaf {
    fn drop(&mut self) {
        self.0.hearing(false);
    }
}

/// The listener's loop (see [`Pool::listen`]).
pub(super) async fn listen_with<T>(
    config: tokio_postgres::Config,
    tls: T,
    channel: &'static str,
    (commits, credentials): (tokio::sync::watch::Sender<u64>, Arc<Credentials>),
) where
    T: MakeTlsConnect<Socket> + Clone + Send + 'static,
    T::Stream: Send + 'static,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    let bump = || commits.send_modify(|n| *n = n.wrapping_add(1));
    // However this task ends (the runtime shut down, a panic), nothing is remembered
    // after it: nobody would hear the other replicas' changes.
    let _deaf = Deaf(credentials.clone());
    loop {
        match config.connect(tls.clone()).await {
            Ok((client, mut connection)) => {
                let listened = async { client.batch_execute(&format!("LISTEN {channel}")).await };
                let mut listened = std::pin::pin!(listened);
                // Drive the connection while LISTEN runs, then forever.
                let mut ok = false;
                loop {
                    let message = std::future::poll_fn(|cx| {
                        if !ok && let std::task::Poll::Ready(r) = listened.as_mut().poll(cx) {
                            ok = true;
                            if r.is_err() {
                                return std::task::Poll::Ready(None);
                            }
                            credentials.hearing(true);
                            bump();
                        }
                        connection.poll_message(cx)
                    })
                    .await;
                    match message {
                        Some(Ok(AsyncMessage::Notification(n))) => {
                            if n.payload() != super::txn::KEPT {
                                credentials.changed();
                            }
                            bump();
                        }
                        Some(Ok(_)) => {}
                        Some(Err(_)) | None => break,
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "the commit listener cannot connect"),
        }
        credentials.hearing(false);
        bump();
        tokio::time::sleep(POLL_WHILE_DEAF).await;
    }
}
