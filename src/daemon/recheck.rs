//! The hourly re-check of sessions at the identity provider (`service/recheck.rs` says
//! what it does): a round every minute takes the sessions due.

use std::sync::Arc;
use std::time::Duration;

use crate::service::{Recheck, Service, blocking};

/// How often a round looks for sessions due.
const ROUND_EVERY: Duration = Duration::from_secs(60);

/// Re-checks sessions at the provider, a round every minute, for as long as it runs.
pub(super) async fn recheck_sessions(service: Arc<Service>) {
    if service.identity_provider().is_none() {
        return;
    }
    let mut tick = tokio::time::interval(ROUND_EVERY);
    tick.tick().await;
    loop {
        tick.tick().await;
        recheck_round(&service).await;
    }
}

/// One round: every session due, claimed by this replica, asked about at the provider;
/// what each came to.
pub async fn recheck_round(service: &Arc<Service>) -> Vec<Recheck> {
    let Some(provider) = service.identity_provider() else {
        return Vec::new();
    };
    let due = match blocking(service, |s| s.claim_due_sessions()).await {
        Ok(due) => due,
        Err(e) => {
            e.log_internal();
            return Vec::new();
        }
    };
    let mut done = Vec::new();
    for session in due {
        let Some(token) = provider
            .seal_key()
            .open(&session.refresh_token, session.user.as_str())
        else {
            if let Err(e) = blocking(service, move |s| s.recheck_unusable(&session)).await {
                e.log_internal();
            }
            continue;
        };
        let answer = provider
            .recheck(&token, &session.subject, service.now())
            .await;
        let user = session.user.clone();
        match blocking(service, move |s| s.record_recheck(&session, answer)).await {
            Ok(outcome) => {
                match &outcome {
                    Recheck::Changed => {
                        tracing::info!(%user, "groups changed at the identity provider")
                    }
                    Recheck::Withdrawn(n) => {
                        tracing::warn!(%user, sessions = n, "the identity provider no longer vouches for this person: sessions ended")
                    }
                    Recheck::Unchanged | Recheck::Retry => {}
                }
                done.push(outcome);
            }
            Err(e) => e.log_internal(),
        }
    }
    done
}
