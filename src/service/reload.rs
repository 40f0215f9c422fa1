//! Configuration reload without a restart (SIGHUP, `countersign reload`), and the record
//! of every policy the server runs with (`policy.loaded`).
//!
//! A reload takes the new file's policy (users, groups, roles, conflicts) and `[requests]`
//! settings; what only a restart can change (listen addresses, data_dir, TLS, keys,
//! limits, the SSH front door) stays as it was and is reported. The new policy is on the
//! record before it is in force. Pending requests keep their rule: each is bound to its
//! role's digest, so a changed role ends it `policy_changed` at approval.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{Service, ServiceError, signoff};
use crate::audit::{self, NewEvent, PolicyLoaded};
use crate::config::Config;
use crate::policy::summary;
use crate::signoff::{Folder, signatures_dir};
use crate::store::meta;

/// What a reload did.
#[derive(Debug, Clone)]
pub struct Reloaded {
    /// What changed in the policy (empty object: nothing, and nothing was recorded).
    pub changes: Value,
    /// Settings that changed in the file but need a restart; left as they were.
    pub needs_restart: Vec<&'static str>,
    /// `[requests]` settings that changed and are in force now.
    pub applied: Vec<&'static str>,
}

/// The policy as recorded in `policy.loaded`: the roles, users and conflicts, and the
/// settings that change what the rules decide.
pub(super) fn policy_summary(config: &Config) -> Value {
    let mut summary = summary::summary(&config.policy);
    summary["settings"] = json!({
        "pending_ttl": config.requests.pending_ttl.as_secs(),
        "revocation_grace": config.requests.revocation_grace.as_secs(),
        "max_pending_per_user": config.requests.max_pending_per_user,
        "backdate": config.ca.backdate.as_secs(),
    });
    // Recorded only when on, so that a policy recorded before the setting existed keeps
    // its digest.
    if config.requests.require_registered_keys {
        summary["settings"]["require_registered_keys"] = json!(true);
    }
    // A signed policy names the exact file it came from: a file differing in any byte
    // (settings outside the policy too) is another policy, whose version must be greater.
    if config.policy.signing.is_some() {
        use sha2::{Digest, Sha256};
        let file = hex::encode(Sha256::digest(config.text.as_bytes()));
        summary["policy"]["file_sha256"] = json!(file);
    }
    summary
}

/// What `GET /v1/ready` learns of a replica that can serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    /// The digest of the policy in force, the one the database records as newest (for
    /// the log: the unauthenticated answer does not show it).
    pub policy: String,
}

impl Service {
    /// Whether this replica can serve: the database answers a read, and the policy it
    /// runs is the one the database records as the newest (a replica left on an older
    /// policy would decide by rules the others no longer apply). `not_ready` says which.
    /// Then it proves a write and a signature (`service/ready.rs`; at most every few
    /// seconds): a database that refuses writes (a full disk) or a CA key that cannot
    /// sign is not ready either.
    pub fn readiness(&self) -> Result<Ready, ServiceError> {
        self.not_stopping()?;
        self.clock_agrees()?;
        self.not_behind(self.store.read(crate::store::certificates::krl_version)?)?;
        let ours = summary::digest(&policy_summary(&self.config()));
        let recorded = self.store.read(signoff::recorded)?;
        match recorded.as_ref().map(summary::digest) {
            Some(newest) if newest == ours => {
                self.can_write_and_sign()?;
                Ok(Ready { policy: ours })
            }
            Some(newest) => {
                static BEHIND: crate::logging::Throttle = crate::logging::Throttle::new();
                if let Some(left_out) = BEHIND.allow() {
                    tracing::warn!(
                        ours = %ours,
                        newest = %newest,
                        left_out,
                        "not ready, and every write refused: another server recorded another \
                         policy as the newest; put its configuration file in place here and \
                         reload (countersign reload)"
                    );
                }
                Err(ServiceError::NotReady(
                    crate::store::IN_FORCE_MESSAGE.into(),
                ))
            }
            None => Err(ServiceError::NotReady(
                "no policy is recorded in the database yet".into(),
            )),
        }
    }

    /// Records the policy in force as `policy.loaded` unless it is the one last recorded;
    /// `cause` says why (`start`, `reload`). Returns what changed (empty if nothing).
    pub fn record_policy(&self, actor: &str, cause: &str) -> Result<Value, ServiceError> {
        let config = self.config();
        self.record(&config, actor, cause, None)
    }

    /// Records `config`'s policy, and with `swap` puts `swap` in force inside the same
    /// write. A write made from outside the writer thread holds the write connection, so
    /// no state change runs while the configuration is replaced: each one decides with
    /// one policy, and every one that commits after `policy.loaded` decided with it. If
    /// the write does not commit, the configuration in force before comes back.
    fn record(
        &self,
        config: &Config,
        actor: &str,
        cause: &str,
        swap: Option<Arc<Config>>,
    ) -> Result<Value, ServiceError> {
        let now = self.now();
        let new = policy_summary(config);
        let digest = summary::digest(&new);
        let before = self.config();
        let put = |c: Arc<Config>| {
            *self
                .config
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = c;
        };
        // Read before the write: the folder is not read under the write lock.
        let folder = Folder::read(&signatures_dir(&config.path));
        let by = signoff::Loading { actor, cause, now };
        let mut superseded = None;
        // Recording runs whatever policy the database records (it is how a replica left
        // on an older one catches up); every other write is refused meanwhile on
        // PostgreSQL (`store/in_force.rs`).
        let recorded = self.store.write_recording_policy(|tx| {
            // Signed by enough of the signers of the policy in force (the one recorded),
            // or refused: on the record, and the policy in force stays.
            let (old, outcome) = match signoff::judge_or_refuse(tx, config, &new, &folder, &by)? {
                Ok(judged) => judged,
                Err(stop) => return Ok(Err(stop)),
            };
            if let (Some(a), Some(s)) = (&outcome.authority, &outcome.signing) {
                let by: Vec<&str> = outcome
                    .tally
                    .valid
                    .iter()
                    .map(|v| v.user.as_str())
                    .collect();
                tracing::info!(
                    version = s.version,
                    in_force = outcome.in_force,
                    signed_by = by.join(", "),
                    bootstrap = matches!(a.basis, crate::signoff::Basis::Bootstrap),
                    "the policy's signatures are valid"
                );
            }
            if let Some(next) = &swap {
                put(next.clone());
                self.store.set_policy_in_force(&digest);
            }
            if old.as_ref().is_some_and(|o| summary::digest(o) == digest) {
                return Ok(Ok(json!({})));
            }
            // A start with a policy recorded before and replaced since by another server:
            // most likely an out-of-date file (a replica's copy not updated, a restored
            // config). Replaced by this one (same host and file), it is its operator
            // going back.
            // A reload is the operator's word: recorded, with the same warning.
            let before = match old {
                Some(_) => crate::store::audit::policy_recorded(tx, &digest)?,
                None => None,
            };
            // (The cheaper question first: most changed policies were never recorded.)
            if let Some(at) = before
                && !replaced_here(tx, config)?
            {
                superseded = Some(at);
                // Replicas: not recorded, so the newest stays in force and this replica
                // writes nothing until reloaded (`store/in_force.rs`).
                if cause == "start" && self.store.is_postgres() {
                    return Ok(Ok(json!({})));
                }
            }
            let changes = summary::changes(old.as_ref(), &new);
            meta::record_policy(tx, &new.to_string())?;
            audit::append(
                tx,
                now,
                &NewEvent::general(
                    actor,
                    PolicyLoaded {
                        cause: cause.to_owned(),
                        digest: digest.clone(),
                        changes: changes.clone(),
                        policy: new.clone(),
                        signoff: signoff::signoff_of(&outcome),
                        server: server_name(config),
                    },
                ),
            )?;
            Ok::<_, ServiceError>(Ok(changes))
        });
        // A refusal committed its `policy.refused`; it is an error all the same.
        let recorded = recorded.and_then(|r| r);
        if let (Ok(_), Some((seq, at))) = (&recorded, &superseded) {
            self.warn_superseded(cause, *seq, at);
        }
        if recorded.is_err() && swap.is_some() {
            self.store
                .set_policy_in_force(&summary::digest(&policy_summary(&before)));
            put(before);
        } else {
            if recorded.is_ok() {
                self.store.set_policy_in_force(&digest);
            }
            self.warn_key_clashes(config);
        }
        recorded
    }

    /// Puts `new`'s policy and `[requests]` settings in force, after recording the
    /// policy; reports the settings that need a restart, which keep their running values.
    pub fn reload(&self, new: Config, actor: &str) -> Result<Reloaded, ServiceError> {
        let old = self.config();
        let needs_restart = restart_only_changes(&old, &new);
        let (o, n) = (&old.requests, &new.requests);
        let applied = [
            ("[requests] pending_ttl", o.pending_ttl != n.pending_ttl),
            (
                "[requests] revocation_grace",
                o.revocation_grace != n.revocation_grace,
            ),
            (
                "[requests] max_pending_per_user",
                o.max_pending_per_user != n.max_pending_per_user,
            ),
            (
                "[requests] require_registered_keys",
                o.require_registered_keys != n.require_registered_keys,
            ),
            ("[ca] backdate", old.ca.backdate != new.ca.backdate),
        ]
        .into_iter()
        .filter_map(|(name, changed)| changed.then_some(name))
        .collect();
        // `[ca] backdate` is part of the recorded policy (it decides how long a
        // certificate counts as held): taken like the policy, so that a reload records
        // what a restart with the same file would (replicas then agree on the digest).
        let ca = crate::config::CaSettings {
            backdate: new.ca.backdate,
            ..old.ca.clone()
        };
        let merged = Config {
            policy: new.policy,
            requests: new.requests,
            ca,
            warnings: new.warnings,
            // The file the policy came from, whose signatures are checked.
            path: new.path,
            text: new.text,
            ..(*old).clone()
        };
        let merged = Arc::new(merged);
        let changes = self.record(&merged, actor, "reload", Some(merged.clone()))?;
        self.metrics
            .know_roles(merged.policy.roles.keys().map(|r| r.as_str()));
        Ok(Reloaded {
            changes,
            needs_restart,
            applied,
        })
    }
}

/// The settings of `new` that differ from `old` and only a restart can apply.
fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let differs =
        |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
    let (o, n) = (&old.server, &new.server);
    [
        ("[server] listen", differs(&o.listen, &n.listen)),
        ("[server] data_dir", differs(&o.data_dir, &n.data_dir)),
        ("[server] tls_cert/tls_key", differs(&o.tls, &n.tls)),
        (
            "[server] allow_plain_http",
            differs(&o.allow_plain_http, &n.allow_plain_http),
        ),
        ("[server] limits", differs(&o.limits, &n.limits)),
        (
            "[ca]",
            differs(
                &old.ca,
                &crate::config::CaSettings {
                    backdate: old.ca.backdate,
                    ..new.ca.clone()
                },
            ),
        ),
        // The host CA key is opened at start; its settings go with it.
        ("[host_ca]", differs(&old.host_ca, &new.host_ca)),
        ("[ssh]", differs(&old.ssh, &new.ssh)),
        ("[metrics]", differs(&old.metrics, &new.metrics)),
        ("[server] log_format", differs(&o.log_format, &n.log_format)),
        (
            "[server] shutdown_delay",
            differs(&o.shutdown_delay, &n.shutdown_delay),
        ),
        ("[storage]", differs(&old.storage, &new.storage)),
        // The provider client and its secret are made at start (`Service::open`).
        ("[oidc]", differs(&old.oidc, &new.oidc)),
        // The sinks' URLs and signing keys are read at start.
        ("[[notify]]", differs(&old.notify, &new.notify)),
    ]
    .into_iter()
    .filter_map(|(name, changed)| changed.then_some(name))
    .collect()
}

impl Service {
    /// Says that the policy this start or reload (`cause`) took is one recorded before
    /// (event `seq`, at `at`) and replaced since by another server: what it means on each
    /// backend, and what to do.
    fn warn_superseded(&self, cause: &str, seq: i64, at: &str) {
        if cause != "start" {
            tracing::warn!(
                recorded_seq = seq,
                recorded_at = at,
                "this reload put back a policy that was in force before and was replaced \
                 since by another server (audit event {seq}, {at}): it is the newest now, and \
                 replicas on the newer one are not ready until reloaded with it. If that was \
                 not meant, put the newer file in place here and reload again"
            );
        } else if self.store.is_postgres() {
            tracing::warn!(
                recorded_seq = seq,
                recorded_at = at,
                "this file's policy was in force before and has been replaced since (audit \
                 event {seq}, {at}): it is not recorded, so the newest policy stays in force \
                 and this replica is not ready and writes nothing. Update the file to the \
                 current one and run countersign reload; to go back to this policy on \
                 purpose, run countersign reload with it"
            );
        } else {
            tracing::warn!(
                recorded_seq = seq,
                recorded_at = at,
                "this file's policy was in force before and has been replaced since (audit \
                 event {seq}, {at}): starting with it takes back every change made after it \
                 (policy.loaded says which). If the file is out of date, put the current \
                 one back and run countersign reload"
            );
        }
    }
}

/// This server as `policy.loaded` records it: `HOST:CONFIG_FILE`.
fn server_name(config: &Config) -> String {
    let path = std::fs::canonicalize(&config.path).unwrap_or_else(|_| config.path.clone());
    format!("{}:{}", crate::state::files::host_name(), path.display())
}

/// Whether the newest policy on record was recorded by this server (`server_name`).
fn replaced_here(tx: &crate::store::Tx<'_>, config: &Config) -> Result<bool, ServiceError> {
    let Some(detail) = crate::store::audit::newest_policy_event(tx)? else {
        return Ok(false);
    };
    let event: PolicyLoaded = serde_json::from_str(&detail).map_err(|e| {
        crate::store::StoreError::Corrupt(format!("the newest policy.loaded event: {e}"))
    })?;
    Ok(!event.server.is_empty() && event.server == server_name(config))
}
