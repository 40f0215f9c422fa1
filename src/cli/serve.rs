//! `countersign serve`: the HTTP API, and the SSH front door when `[ssh]` is configured,
//! until Ctrl-C or SIGTERM; SIGHUP reloads the configuration (`cli/reload.rs`).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;

use crate::config::Config;
use crate::host_key;
use crate::service::Service;
use crate::state::Access;

use super::reload::{Hangups, PidFile};

/// `countersign serve` options.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Start on a database older than the state this CA already published (a restore
    /// from an older copy): recorded in the audit log as state.rollback_accepted, and the
    /// KRL version jumps above every version published. Revocations made after the copy
    /// are lost: make them again.
    #[arg(long, requires = "reason")]
    pub accept_rollback: bool,
    /// Why the older database is accepted (with --accept-rollback; recorded with it).
    #[arg(long, requires = "accept_rollback")]
    pub reason: Option<String>,
}

/// Loads everything, refuses to start on a broken audit chain, an unsafe CA or host key,
/// state that does not belong together or is older than what was published, or unusable
/// TLS files, serves. Config warnings (e.g. `allow_plain_http`) are logged at every start.
pub fn serve(config: &Path, args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    let listen = config.server.listen;
    if let Some(files) = &config.server.tls {
        crate::tls::server_config(files).context("refusing to start")?;
    }
    let reason = args
        .reason
        .as_deref()
        .map(|r| crate::names::Text::parse(r, "reason"))
        .transpose()?;
    // Until the reload handler is in place (after the state is opened and the audit
    // chain verified), a SIGHUP from `countersign reload` must not kill the server.
    // SAFETY: setting a signal's disposition to "ignore" touches no memory of ours.
    unsafe { libc::signal(libc::SIGHUP, libc::SIG_IGN) };
    // Before the state is opened: a second server on this folder stops here. Held until
    // this function returns, after the runtime and the service are gone.
    let _pid_file = PidFile::lock(&config)?;
    let access = Access::Serve {
        accept_rollback: reason.as_ref().map(|r| r.as_str().to_owned()),
    };
    let service =
        Service::open(config, access, &super::token::operator()).context("refusing to start")?;
    tracing::info!(fingerprint = %service.ca().fingerprint(), "CA key loaded");
    tracing::info!("TrustedUserCAKeys line: {}", service.ca().public_key_line());
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
        let hangups = Hangups::register().context("installing the SIGHUP handler")?;
        let reloads = tokio::spawn(hangups.serve(
            service.clone(),
            service.config().path.clone(),
            super::token::operator(),
        ));
        let ssh = start_ssh(&service, stopped.clone()).await?;
        let listener = bind(listen).await?;
        tokio::spawn(async move {
            signals.received().await;
            let _ = stop.send(true);
        });
        crate::api::serve(listener, service.clone(), until_stopped(stopped)).await?;
        reloads.abort();
        if let Some(ssh) = ssh {
            ssh.await??;
        }
        // The high-water mark takes the last state this run committed.
        if let Err(e) = service.mark_head() {
            let e = anyhow::Error::new(e);
            tracing::error!(
                error = format!("{e:#}"),
                "could not write the state mark at stop"
            );
        }
        tracing::info!("shut down");
        Ok(ExitCode::SUCCESS)
    })
}

/// Binds and spawns the SSH front door if `[ssh]` is set; its host key is created on the
/// first start and its fingerprint logged, for users to check on their first login.
async fn start_ssh(
    service: &Arc<Service>,
    stopped: watch::Receiver<bool>,
) -> anyhow::Result<Option<tokio::task::JoinHandle<std::io::Result<()>>>> {
    let Some(settings) = service.config().ssh.clone() else {
        return Ok(None);
    };
    let key = host_key::load_or_create(&settings.host_key_file).context("refusing to start")?;
    tracing::info!(fingerprint = %host_key::fingerprint(&key), "SSH host key loaded");
    let listener = bind(settings.listen).await?;
    tracing::info!(address = %listener.local_addr()?, "SSH front door listening");
    let service = service.clone();
    Ok(Some(tokio::spawn(crate::ssh::serve(
        listener,
        service,
        key,
        until_stopped(stopped),
    ))))
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
    async fn received(mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {},
            _ = self.terminate.recv() => {},
        }
    }
}
