//! The accept loop and each connection's lifetime: at most `max_connections` at once and
//! `max_connections_per_address` from one source address; no login within
//! `auth_timeout`, no traffic for `idle_timeout` (russh's inactivity timeout) or a total
//! of `connection_timeout` ends one, and shutdown disconnects them all.
//!
//! A connection keeps its places in the counts until its socket is closed: a client that
//! ignores the goodbye (or stalls the key exchange, which holds russh's queue) has its
//! socket shut down from here, since russh runs the session on a task of its own.

use std::future::Future;
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use russh::keys::PrivateKey;
use russh::server::Config;
use russh::{Disconnect, MethodKind, MethodSet, SshId};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::handler::{Connection, Shared};
use super::limits::AddressSlot;
use crate::config::SshSettings;
use crate::service::Service;

/// Serves the SSH front door on `listener` until `shutdown` resolves, then disconnects
/// every client and returns once their connections are closed. Limits come from the
/// service's `[ssh]` settings (their defaults if the section is absent).
pub async fn serve(
    listener: TcpListener,
    service: Arc<Service>,
    host_key: PrivateKey,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let settings = service.config().ssh.clone().unwrap_or_default();
    let config = Arc::new(russh_config(&settings, host_key));
    let permits = Arc::new(Semaphore::new(settings.max_connections as usize));
    let shared = Arc::new(Shared::new(service, settings));
    let (stop, stopped) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if let Some(permit) = admit(&shared, &permits, peer) {
                        let conn = connection(
                            shared.clone(),
                            config.clone(),
                            stream,
                            peer,
                            stopped.clone(),
                            permit,
                        );
                        connections.spawn(conn);
                    }
                }
                Err(e) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(error = %e, "ssh accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next() => {}
        }
    }
    let _ = stop.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// How long a client gets to take the server's goodbye before its socket is shut.
const GOODBYE: Duration = Duration::from_secs(2);

/// A connection's places: one of its address's, one of the server's.
type Places = (AddressSlot, OwnedSemaphorePermit);

/// The russh settings: our host key, public key authentication only, idle timeout.
fn russh_config(settings: &SshSettings, host_key: PrivateKey) -> Config {
    Config {
        server_id: SshId::Standard(
            format!("SSH-2.0-countersign_{}", env!("CARGO_PKG_VERSION")).into(),
        ),
        methods: MethodSet::from(&[MethodKind::PublicKey][..]),
        // Every refusal takes this long (russh pads it), which also slows down guessing.
        auth_rejection_time: Duration::from_secs(1),
        // OpenSSH always starts with a "none" probe; refusing it needs no delay.
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![host_key],
        max_auth_attempts: 6,
        inactivity_timeout: Some(settings.idle_timeout),
        keepalive_interval: None,
        nodelay: true,
        ..Config::default()
    }
}

/// Places for a connection from `peer`, unless the address is rate limited or has
/// `max_connections_per_address` open, or the server is full; a refused stream is simply
/// closed.
fn admit(shared: &Shared, permits: &Arc<Semaphore>, peer: SocketAddr) -> Option<Places> {
    let metrics = shared.service.metrics();
    if shared
        .failures
        .is_blocked(peer.ip(), std::time::Instant::now())
    {
        tracing::warn!(%peer, "ssh connection refused: too many failed authentications from this address");
        metrics.ssh_refused("rate_limited");
        return None;
    }
    let Some(counted) = shared.per_address.try_admit(peer.ip()) else {
        tracing::warn!(%peer, "ssh connection refused: max_connections_per_address reached");
        metrics.ssh_refused("max_connections_per_address");
        return None;
    };
    let Ok(permit) = permits.clone().try_acquire_owned() else {
        tracing::warn!(%peer, "ssh connection refused: max_connections reached");
        metrics.ssh_refused("max_connections");
        return None;
    };
    metrics.ssh_connection();
    Some((counted, permit))
}

/// One connection from handshake to close, holding its places (`_places`) until its
/// socket is closed.
async fn connection(
    shared: Arc<Shared>,
    config: Arc<Config>,
    stream: TcpStream,
    peer: SocketAddr,
    mut stopped: watch::Receiver<bool>,
    _places: Places,
) {
    let accepted = Instant::now();
    let end = accepted + shared.settings.connection_timeout;
    let auth_deadline = (accepted + shared.settings.auth_timeout).min(end);
    let (stream, socket) = match with_second_handle(stream) {
        Ok(pair) => pair,
        Err(e) => return tracing::debug!(%peer, error = %e, "ssh connection setup failed"),
    };
    let authenticated = Arc::new(AtomicBool::new(false));
    let handler = Connection::new(shared, peer, accepted, authenticated.clone());
    let handshake = russh::server::run_stream(config, stream, handler);
    // Dropping the handshake at the deadline drops its stream; `socket` goes on return.
    let session = match tokio::time::timeout_at(auth_deadline, handshake).await {
        Ok(Ok(session)) => session,
        Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "ssh handshake failed"),
        Err(_) => return tracing::debug!(%peer, "ssh handshake timed out"),
    };
    let handle = session.handle();
    tokio::pin!(session);
    let reason = tokio::select! {
        result = &mut session => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "ssh connection ended with an error");
            }
            return;
        }
        () = tokio::time::sleep_until(end) => "connection time limit reached",
        () = unauthenticated_at(auth_deadline, &authenticated) => {
            "authentication time limit reached"
        }
        _ = stopped.wait_for(|s| *s) => "server shutting down",
    };
    tracing::info!(%peer, reason, "ssh connection closed by the server");
    let goodbye = async {
        let _ = handle
            .disconnect(Disconnect::ByApplication, reason.into(), "en".into())
            .await;
        let _ = (&mut session).await;
    };
    if tokio::time::timeout(GOODBYE, goodbye).await.is_err() {
        tracing::debug!(%peer, "ssh client ignored the goodbye; shutting its socket");
        let _ = socket.shutdown(Shutdown::Both);
        let _ = tokio::time::timeout(GOODBYE, &mut session).await;
    }
}

/// Resolves at `deadline` unless the client has logged in by then.
async fn unauthenticated_at(deadline: Instant, authenticated: &AtomicBool) {
    tokio::time::sleep_until(deadline).await;
    if authenticated.load(Ordering::Acquire) {
        std::future::pending::<()>().await;
    }
}

/// `stream`, and a second handle on its socket (a duplicated descriptor) to shut it down
/// while russh's session task owns the first.
fn with_second_handle(stream: TcpStream) -> std::io::Result<(TcpStream, std::net::TcpStream)> {
    let stream = stream.into_std()?;
    let second = stream.try_clone()?;
    Ok((TcpStream::from_std(stream)?, second))
}
