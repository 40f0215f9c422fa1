//! The accept loop: connections (optionally TLS) served by hyper with the configured
//! limits on connections, header size and header read time, and graceful shutdown.
//!
//! axum's own `serve` cannot limit header size or connections, nor speak TLS; this loop
//! does the same job with those knobs. Each request carries the client's address as a
//! [`ClientAddr`] extension, for the failed-authentication limits.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::config::Limits;

/// The address of the client at the other end of the TCP connection (behind a reverse
/// proxy, the proxy's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// How long open connections get to finish their requests after shutdown begins.
const DRAIN: Duration = Duration::from_secs(10);

/// Accepts connections until `shutdown` resolves, then lets open ones finish (bounded).
pub(super) async fn accept_loop(
    listener: TcpListener,
    app: Router,
    limits: &Limits,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let http = Arc::new(http1(limits));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let conn = Connection {
            app: app.clone(),
            http: http.clone(),
            tls: tls.clone(),
            handshake_timeout: limits.request_timeout,
            peer,
        };
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            conn.serve(stream, watcher).await;
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after shutdown; closing them");
    }
    Ok(())
}

fn http1(limits: &Limits) -> hyper::server::conn::http1::Builder {
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(limits.request_timeout)
        .max_header_size(limits.max_header_bytes)
        .max_headers(100)
        .keep_alive(true);
    b
}

/// One accepted TCP connection.
struct Connection {
    app: Router,
    http: Arc<hyper::server::conn::http1::Builder>,
    tls: Option<TlsAcceptor>,
    handshake_timeout: Duration,
    peer: SocketAddr,
}

impl Connection {
    async fn serve(self, stream: TcpStream, watcher: hyper_util::server::graceful::Watcher) {
        let _ = stream.set_nodelay(true);
        match self.tls.clone() {
            None => self.run(stream, watcher).await,
            Some(acceptor) => {
                match tokio::time::timeout(self.handshake_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => self.run(tls, watcher).await,
                    Ok(Err(e)) => {
                        tracing::debug!(client = %self.peer, error = %e, "TLS handshake failed");
                    }
                    Err(_) => tracing::debug!(client = %self.peer, "TLS handshake timed out"),
                }
            }
        }
    }

    async fn run<IO>(self, io: IO, watcher: hyper_util::server::graceful::Watcher)
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let app = self.app;
        let peer = self.peer;
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ClientAddr(peer));
            app.clone().oneshot(req)
        });
        let conn = self.http.serve_connection(TokioIo::new(io), service);
        if let Err(e) = watcher.watch(conn).await {
            tracing::debug!(client = %peer, error = %e, "connection ended with an error");
        }
    }
}
