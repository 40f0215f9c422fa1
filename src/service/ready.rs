//! What readiness proves beyond reads (`Service::readiness`): the database takes a write,
//! and the CA key signs. Both at most every [`PROBE_EVERY`]: a load balancer asks often.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Service, ServiceError};
use crate::store::meta;

/// How long a successful probe stands for the next ones.
const PROBE_EVERY: Duration = Duration::from_secs(5);

/// The namespace of the probe's throw-away signature (never shown to anyone).
const PROBE_NAMESPACE: &str = "countersign-ready-probe";

/// When the write and the signature were last tried, and whether they succeeded.
#[derive(Debug, Default)]
pub(super) struct Probed(Mutex<Option<(Instant, Result<(), String>)>>);

/// How long a failed probe stands: a database that refuses writes is not written to
/// (nor logged about) more often, whoever asks.
const FAILURE_STANDS: Duration = Duration::from_secs(1);

impl Service {
    /// This server is shutting down (SIGTERM, `[server] shutdown_delay`): from now on
    /// readiness is `not_ready`, while requests are still served.
    pub fn begin_stopping(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// `not_ready` once [`Service::begin_stopping`] was called.
    pub(super) fn not_stopping(&self) -> Result<(), ServiceError> {
        if self.stopping.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(ServiceError::NotReady(
                "this server is shutting down: take it out of rotation".into(),
            ));
        }
        Ok(())
    }

    /// The database takes a write (a disk full or a lost write lock shows here, not only
    /// at the next approval) and the CA key signs (an agent that lost the key, or went
    /// away); each failure `not_ready` with its cause in the log. Cached for
    /// [`PROBE_EVERY`] after a success.
    pub(super) fn can_write_and_sign(&self) -> Result<(), ServiceError> {
        let mut last = self
            .probed
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &*last {
            Some((at, Ok(()))) if at.elapsed() < PROBE_EVERY => return Ok(()),
            Some((at, Err(why))) if at.elapsed() < FAILURE_STANDS => {
                return Err(ServiceError::NotReady(why.clone()));
            }
            _ => {}
        }
        let outcome = self.write_and_sign();
        *last = Some((Instant::now(), outcome.clone()));
        outcome.map_err(ServiceError::NotReady)
    }

    /// One probe: a write, then a signature; the reason to give if either fails (the
    /// cause goes to the log).
    fn write_and_sign(&self) -> Result<(), String> {
        if let Err(e) = self.store.write(meta::touch) {
            let e = anyhow::Error::new(e);
            tracing::warn!(
                error = format!("{e:#}"),
                "not ready: the database refused a write"
            );
            return Err("the database does not take writes (the server log says why)".into());
        }
        if let Err(e) = self.ca.sign_message(PROBE_NAMESPACE, b"ready?") {
            let e = anyhow::Error::new(e);
            tracing::warn!(
                error = format!("{e:#}"),
                "not ready: the CA key does not sign"
            );
            return Err("the CA key cannot sign (the server log says why)".into());
        }
        Ok(())
    }
}
