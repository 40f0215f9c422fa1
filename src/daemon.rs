//! `countersign serve`, put together: the HTTP API, the SSH front door when `[ssh]` is
//! set, and the background work (expiry sweep, state mark, reload on SIGHUP), all on one
//! [`Service`], until Ctrl-C or SIGTERM.
//!
//! The front ends know nothing of each other; this is the one place that starts them.
//! `cli/serve.rs` parses the command line and calls [`serve`]; tests call [`run`] with
//! listeners of their own.
//!
//! Layout:
//! - `pid_file.rs`: [`PidFile`], one server per data folder, found by `countersign reload`.
//! - `reload.rs`: SIGHUP re-reads the configuration.
//! - `sweep.rs`: overdue requests are expired, the high-water mark follows the audit head.
//! - `recheck.rs`: sessions are re-checked at the identity provider every hour.

mod notify;
mod pid_file;
mod recheck;
mod reload;
mod sweep;

pub use recheck::recheck_round;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use russh::keys::PrivateKey;
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;

pub use pid_file::{PidFile, pid_path, try_lock};

use crate::config::{Config, StorageSettings};
use crate::host_key;
use crate::names::Text;
use crate::service::Service;
use crate::state::Access;

/// The SSH front door's listener and host key, for [`run`].
pub struct SshDoor {
    /// Bound to `[ssh] listen`.
    pub listener: TcpListener,
    /// The host key clients pin.
    pub host_key: PrivateKey,
}

/// Opens the state, refuses to start on a broken audit chain, an unsafe CA or host key,
/// state that does not belong together or is older than what was published (unless
/// `accept_rollback` gives the operator's reason), or unusable TLS files, and serves.
/// Config warnings (e.g. `allow_plain_http`) are logged at every start. `actor` is the
/// operator recorded for what starting and reloading write to the audit log.
pub fn serve(
    config: Config,
    accept_rollback: Option<Text>,
    new_replica: bool,
    actor: String,
) -> anyhow::Result<()> {
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    let listen = config.server.listen;
    if let Some(files) = &config.server.tls {
        crate::tls::server_config(files).context("refusing to start")?;
    }
    // Until the reload handler is in place (after the state is opened and the audit
    // chain verified), a SIGHUP from `countersign reload` must not kill the server.
    // SAFETY: setting a signal's disposition to "ignore" touches no memory of ours.
    unsafe { libc::signal(libc::SIGHUP, libc::SIG_IGN) };
    if matches!(config.storage, StorageSettings::Postgres(_)) {
        no_huge_pages();
    }
    // Before the state is opened: a second server on this folder stops here. Held until
    // this function returns, after the runtime and the service are gone.
    let _pid_file = PidFile::lock(&config)?;
    let access = Access::Serve {
        accept_rollback: accept_rollback.as_ref().map(|r| r.as_str().to_owned()),
        new_replica,
    };
    let service = Service::open(config, access, &actor).context("refusing to start")?;
    tracing::info!(fingerprint = %service.ca().fingerprint(), "CA key loaded");
    tracing::info!("TrustedUserCAKeys line: {}", service.ca().public_key_line());
    if let Ok(line) = service.host_ca_public() {
        tracing::info!("host CA (for @cert-authority lines): {line}");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let service = Arc::new(service);
        let (stop, stopped) = watch::channel(false);
        // Registered before anything listens: a SIGTERM that arrives as soon as the
        // "listening" line is out must find the handler in place, not kill the process
        // with the default action (a race a spawned task's first poll would leave open).
        let signals =
            ShutdownSignals::register().context("installing the SIGINT/SIGTERM handlers")?;
        let hangups = reload::Hangups::register().context("installing the SIGHUP handler")?;
        let reloads =
            tokio::spawn(hangups.serve(service.clone(), service.config().path.clone(), actor));
        let ssh = ssh_door(&service).await?;
        let metrics = match service.config().metrics.clone() {
            Some(m) => Some(bind(m.listen).await?),
            None => None,
        };
        let listener = bind(listen).await?;
        let draining = service.clone();
        tokio::spawn(async move {
            let mut signals = signals;
            signals.received().await;
            // Out of rotation first: `/v1/ready` says 503 while requests are still
            // served, for the balancer to notice; then the listeners close.
            let delay = draining.config().server.shutdown_delay;
            if !delay.is_zero() {
                draining.begin_stopping();
                tracing::info!(
                    delay = %humantime::format_duration(delay),
                    "shutting down: not ready from now on, still serving for shutdown_delay"
                );
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = signals.received() => tracing::info!("a second signal: stopping now"),
                }
            }
            let _ = stop.send(true);
        });
        run(
            service.clone(),
            listener,
            ssh,
            metrics,
            until_stopped(stopped),
        )
        .await?;
        reloads.abort();
        // The high-water mark takes the last state this run committed.
        if let Err(e) = service.mark_head() {
            let e = anyhow::Error::new(e);
            tracing::error!(
                error = format!("{e:#}"),
                "could not write the state mark at stop"
            );
        }
        tracing::info!("shut down");
        Ok(())
    })
}

/// Serves the HTTP API on `http`, the SSH front door on `ssh` and the metrics on
/// `metrics` (if given), with the expiry sweep beside them, until `shutdown` resolves and
/// all have stopped.
pub async fn run(
    service: Arc<Service>,
    http: TcpListener,
    ssh: Option<SshDoor>,
    metrics: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let ssh = ssh.map(|door| {
        tokio::spawn(crate::ssh::serve(
            door.listener,
            service.clone(),
            door.host_key,
            until_stopped(stopped.clone()),
        ))
    });
    let metrics = metrics.map(|listener| {
        tokio::spawn(crate::api::serve_metrics(
            listener,
            service.clone(),
            until_stopped(stopped.clone()),
        ))
    });
    let sweeper = tokio::spawn(sweep::sweep_expired(service.clone()));
    let rechecker = tokio::spawn(recheck::recheck_sessions(service.clone()));
    let dispatcher = tokio::spawn(notify::dispatch(service.clone()));
    let served = crate::api::serve(http, service, until_stopped(stopped)).await;
    sweeper.abort();
    rechecker.abort();
    dispatcher.abort();
    served?;
    if let Some(ssh) = ssh {
        ssh.await.map_err(std::io::Error::other)??;
    }
    if let Some(metrics) = metrics {
        metrics.await.map_err(std::io::Error::other)??;
    }
    Ok(())
}

/// Loads the host key and binds the SSH front door if `[ssh]` is set; the key is created
/// on the first start and its fingerprint logged, for users to check on their first login.
async fn ssh_door(service: &Service) -> anyhow::Result<Option<SshDoor>> {
    let Some(settings) = service.config().ssh.clone() else {
        return Ok(None);
    };
    let (host_key, created) =
        host_key::load_or_create(&settings.host_key_file).context("refusing to start")?;
    let fingerprint = host_key::fingerprint(&host_key);
    if created {
        // Users who logged in before see a new key: they should hear why from the operator.
        tracing::warn!(
            %fingerprint, path = %settings.host_key_file.display(),
            "SSH host key created (there was none): tell users its fingerprint"
        );
    } else {
        tracing::info!(%fingerprint, "SSH host key loaded");
    }
    let listener = bind(settings.listen).await?;
    tracing::info!(address = %listener.local_addr()?, "SSH front door listening");
    Ok(Some(SshDoor { listener, host_key }))
}

async fn bind(address: std::net::SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))
}

/// Resolves once `stop` has been sent (or its sender is gone).
async fn until_stopped(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

/// SIGINT (Ctrl-C) and SIGTERM, with their handlers installed at construction.
struct ShutdownSignals {
    interrupt: Signal,
    terminate: Signal,
}

impl ShutdownSignals {
    fn register() -> std::io::Result<ShutdownSignals> {
        Ok(ShutdownSignals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Resolves on the first of either signal.
    async fn received(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {},
            _ = self.terminate.recv() => {},
        }
    }
}

/// Asks Linux not to back this process's memory with transparent huge pages, on
/// PostgreSQL. The allocator asks for them (mimalloc's default), and each first touch of
/// a 2 MiB page zeroes all of it: a replica's memory comes and goes on many threads (the
/// blocking pool's reads, the driver's buffers), and that zeroing was 4-12% of its CPU
/// under load; without huge pages it served 6-14% more flows a second, while the SQLite
/// server, whose memory stays put, served about 6% fewer (docs/benchmark.md, session
/// 26). Best effort: a kernel without the call changes nothing.
fn no_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes integers only and touches no memory of ours.
    if unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) } != 0 {
        tracing::debug!(
            "transparent huge pages stay on: {}",
            std::io::Error::last_os_error()
        );
    }
}
