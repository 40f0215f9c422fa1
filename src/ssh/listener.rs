//! The accept loop and each connection's lifetime: at most `max_connections` at once,
//! no traffic for `idle_timeout` (russh's inactivity timeout) or a total of
//! `connection_timeout` ends one, and shutdown disconnects them all.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use russh::keys::PrivateKey;
use russh::server::Config;
use russh::{Disconnect, MethodKind, MethodSet, SshId};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::handler::{Connection, Shared};
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
                        let conn = connection(shared.clone(), config.clone(), stream, peer, stopped.clone(), permit);
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

/// A connection slot for `peer`, unless the server is full or the address is rate
/// limited; a refused stream is simply closed.
fn admit(
    shared: &Shared,
    permits: &Arc<Semaphore>,
    peer: SocketAddr,
) -> Option<OwnedSemaphorePermit> {
    if shared
        .failures
        .is_blocked(peer.ip(), std::time::Instant::now())
    {
        tracing::warn!(%peer, "ssh connection refused: too many failed authentications from this address");
        return None;
    }
    let permit = permits.clone().try_acquire_owned().ok();
    if permit.is_none() {
        tracing::warn!(%peer, "ssh connection refused: max_connections reached");
    }
    permit
}

/// One connection from handshake to close, holding its slot (`_permit`) throughout.
async fn connection(
    shared: Arc<Shared>,
    config: Arc<Config>,
    stream: TcpStream,
    peer: SocketAddr,
    mut stopped: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    let accepted = Instant::now();
    let limit = shared.settings.connection_timeout;
    let handler = Connection::new(shared, peer, accepted);
    let session =
        match tokio::time::timeout(limit, russh::server::run_stream(config, stream, handler)).await
        {
            Ok(Ok(session)) => session,
            Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "ssh handshake failed"),
            Err(_) => return tracing::debug!(%peer, "ssh handshake timed out"),
        };
    let handle = session.handle();
    let reason = tokio::select! {
        result = session => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "ssh connection ended with an error");
            }
            return;
        }
        () = tokio::time::sleep_until(accepted + limit) => "connection time limit reached",
        _ = stopped.wait_for(|s| *s) => "server shutting down",
    };
    tracing::info!(%peer, reason, "ssh connection closed by the server");
    let _ = handle
        .disconnect(Disconnect::ByApplication, reason.into(), "en".into())
        .await;
}
