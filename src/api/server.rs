//! The accept loop: connections (optionally TLS) served by hyper with the configured
//! limits on connections, header size and header read time, and graceful shutdown.
//!
//! axum's own `serve` cannot limit header size or connections, nor speak TLS; this loop
//! does the same job with those knobs. Each request carries the client's address as a
//! [`ClientAddr`] extension, for the failed-authentication limits.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
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
    let per_address = Arc::new(PerAddress {
        open: std::sync::Mutex::new(std::collections::HashMap::new()),
        max: limits.max_connections_per_address,
        exempt: limits.trusted_proxies.clone(),
    });
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
        // One client may not hold every slot (connections that send nothing until the
        // header timeout, reopened as they close).
        let Some(counted) = PerAddress::admit(&per_address, peer.ip()) else {
            tracing::debug!(client = %peer, "too many connections from this address; closed");
            drop(stream);
            continue;
        };
        let conn = Connection {
            app: app.clone(),
            http: http.clone(),
            tls: tls.clone(),
            request_timeout: limits.request_timeout,
            peer,
        };
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            conn.serve(stream, watcher).await;
            drop(counted);
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

/// Open connections per client address (IPv6: per /64).
struct PerAddress {
    open: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
    max: usize,
    /// Trusted proxies: every client behind one shares its address.
    exempt: Vec<ipnet::IpNet>,
}

/// One counted connection; dropping it gives the count back.
struct Counted {
    table: Arc<PerAddress>,
    key: Option<std::net::IpAddr>,
}

impl PerAddress {
    /// The connection's place in its address's count, or `None` when that is full.
    fn admit(table: &Arc<PerAddress>, ip: std::net::IpAddr) -> Option<Counted> {
        // On a dual-stack listener an IPv4 peer arrives as ::ffff:a.b.c.d.
        let ip = ip.to_canonical();
        if table.exempt.iter().any(|net| net.contains(&ip)) {
            return Some(Counted {
                table: table.clone(),
                key: None,
            });
        }
        let key = crate::net::network_of(ip);
        let mut open = table.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(key).or_insert(0);
        if *n >= table.max {
            return None;
        }
        *n += 1;
        Some(Counted {
            table: table.clone(),
            key: Some(key),
        })
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            let mut open = self.table.open.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = open.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    open.remove(&key);
                }
            }
        }
    }
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
    request_timeout: Duration,
    peer: SocketAddr,
}

impl Connection {
    async fn serve(self, stream: TcpStream, watcher: hyper_util::server::graceful::Watcher) {
        let _ = stream.set_nodelay(true);
        let stream = WriteDeadline::new(stream, self.request_timeout);
        match self.tls.clone() {
            None => self.run(stream, watcher).await,
            Some(acceptor) => {
                match tokio::time::timeout(self.request_timeout, acceptor.accept(stream)).await {
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

/// A stream whose writes fail once they make no progress for `limit`: a client that
/// stops reading its answer (a 10,000-row list is megabytes) is disconnected, and the
/// answer's memory freed, instead of being held for as long as the client likes.
struct WriteDeadline<IO> {
    io: IO,
    limit: Duration,
    /// Running while a write waits for the client; reset by any progress.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<IO> WriteDeadline<IO> {
    fn new(io: IO, limit: Duration) -> Self {
        WriteDeadline {
            io,
            limit,
            stalled: None,
        }
    }

    /// `Pending` while the stall is shorter than the limit, then the error.
    fn stall<T>(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<T>> {
        let limit = self.limit;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client stopped reading its answer",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progress<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        match polled {
            Poll::Ready(r) => {
                self.stalled = None;
                Poll::Ready(r)
            }
            Poll::Pending => self.stall(cx),
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for WriteDeadline<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        self.progress(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.progress(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_flush(cx);
        self.progress(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(max: usize, exempt: &[&str]) -> Arc<PerAddress> {
        Arc::new(PerAddress {
            open: std::sync::Mutex::new(std::collections::HashMap::new()),
            max,
            exempt: exempt.iter().map(|n| n.parse().unwrap()).collect(),
        })
    }

    #[test]
    fn a_v4_proxy_seen_through_a_dual_stack_listener_is_still_exempt() {
        let t = table(1, &["127.0.0.1/32"]);
        let mapped: std::net::IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let held: Vec<_> = (0..3).map(|_| PerAddress::admit(&t, mapped)).collect();
        assert!(held.iter().all(Option::is_some), "exempt, however many");
        // Another mapped address is counted, as its IPv4 self.
        let other: std::net::IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        let first = PerAddress::admit(&t, other);
        assert!(first.is_some());
        assert!(PerAddress::admit(&t, "10.0.0.1".parse().unwrap()).is_none());
        drop(first);
        assert!(
            PerAddress::admit(&t, other).is_some(),
            "the count is given back"
        );
    }

    #[test]
    fn ipv6_addresses_of_one_64_share_a_count() {
        let t = table(2, &[]);
        let a = PerAddress::admit(&t, "2001:db8::1".parse().unwrap());
        let b = PerAddress::admit(&t, "2001:db8::ffff:2".parse().unwrap());
        assert!(a.is_some() && b.is_some());
        assert!(PerAddress::admit(&t, "2001:db8::3".parse().unwrap()).is_none());
        assert!(PerAddress::admit(&t, "2001:db8:0:1::1".parse().unwrap()).is_some());
    }
}
