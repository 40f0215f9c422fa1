//! `countersign serve`: the HTTP API until Ctrl-C or SIGTERM.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use crate::config::Config;
use crate::service::Service;

/// Loads everything, refuses to start on a broken audit chain, an unsafe CA key or
/// unusable TLS files, serves. Config warnings (e.g. `allow_plain_http`) are logged at
/// every start.
pub fn serve(config: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    let listen = config.server.listen;
    if let Some(files) = &config.server.tls {
        crate::tls::server_config(files).context("refusing to start")?;
    }
    let service = Service::open(config, true).context("refusing to start")?;
    tracing::info!(fingerprint = %service.ca().fingerprint(), "CA key loaded");
    tracing::info!("TrustedUserCAKeys line: {}", service.ca().public_key_line());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        crate::api::serve(listener, Arc::new(service), shutdown_signal()).await?;
        tracing::info!("shut down");
        Ok(ExitCode::SUCCESS)
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
