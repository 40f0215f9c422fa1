//! Ending certificates early: by serial, every active one of a user (offboarding, which
//! also disables the user: `users.rs`), or the requester's own "I'm finished"; and the
//! KRL that makes sshd enforce it.
//!
//! Each revocation is one transaction: the certificate row, the KRL version and the
//! `certificate.revoked` audit event.

use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};

use sha2::{Digest, Sha256};

use super::{RequestView, Service, ServiceError, unix};
use crate::audit::{self, CertificateRevoked, NewEvent};
use crate::krl::{self, KrlContents};
use crate::names::{RequestId, Serial, Text, UserName};
use crate::store::certificates::{self as certs, Holding};
use crate::store::requests as rq;
use crate::store::{StoreError, Tx};

/// What revoking a user ended. The user is disabled afterwards, either way.
#[derive(Debug, Clone, Default)]
pub struct UserRevocation {
    /// Serials of the certificates revoked.
    pub revoked: Vec<Serial>,
    /// Their pending requests, cancelled.
    pub cancelled: Vec<RequestId>,
    /// Their tokens revoked for good (live ones only).
    pub tokens_revoked: usize,
    /// Whether they were disabled already (by an earlier revocation).
    pub already_disabled: bool,
}

/// SSHSIG namespace of the KRL's signature (`GET /v1/krl.sig`).
pub const KRL_NAMESPACE: &str = "countersign-krl";

/// A KRL ready to serve.
#[derive(Debug, Clone)]
pub struct Krl {
    /// The file's bytes (cheap to clone).
    pub bytes: bytes::Bytes,
    /// The KRL version: it only grows (revocations, and restores an operator accepted).
    pub version: u64,
    /// Strong validator of the bytes, for `ETag` / `If-None-Match`.
    pub etag: String,
    /// The CA's SSH signature (armored SSHSIG, namespace [`KRL_NAMESPACE`]) over the
    /// bytes, so that a KRL fetched over plain HTTP can be checked with the CA key.
    pub signature: String,
    /// How many certificate serials it lists.
    pub entries: usize,
}

/// How long (seconds) a KRL is served before it is made (and signed) again with a new
/// generated date, even when nothing changed: what a fetcher's `--max-age` measures.
const KRL_REFRESH: i64 = 60;

/// The last KRL built and the time span (unix seconds) it stays exact in if no
/// revocation happens: from when it was built (a clock stepped back before that would
/// list certificates it left out as expired) to the first expiry among its serials, or
/// [`KRL_REFRESH`] after it was built, whichever comes first.
#[derive(Debug)]
pub(super) struct CachedKrl {
    krl: Arc<Krl>,
    built_at: i64,
    exact_until: i64,
}

/// What sets one KRL apart from the other ([`Service::cached_krl`]): the user CA's or
/// the host CA's.
pub(super) struct KrlKind<'a> {
    /// Before the version in the ETag (`h` for the host KRL's).
    pub(super) etag_prefix: &'static str,
    /// The KRL's comment.
    pub(super) comment: &'static str,
    /// The CA whose certificates it revokes.
    pub(super) ca: &'a ssh_key::public::KeyData,
}

/// Where the KRL comes from: the cache, or the revocations read (at this KRL version).
enum KrlSource {
    Cached(Arc<Krl>),
    Build(u64, certs::Revoked),
}

/// The cache's lock; a panic while holding it leaves nothing half-written (the entry is
/// replaced whole), so a poisoned lock is still usable.
fn lock(m: &Mutex<Option<CachedKrl>>) -> MutexGuard<'_, Option<CachedKrl>> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Service {
    pub(super) fn revoke_one(
        &self,
        tx: &Tx<'_>,
        now: DateTime<Utc>,
        actor: &UserName,
        cert: &Holding,
        reason: &Text,
    ) -> Result<bool, ServiceError> {
        let Some(version) =
            certs::revoke(tx, cert.serial, unix(now), actor.as_str(), reason.as_str())?
        else {
            return Ok(false);
        };
        // The answer must not leave before the high-water mark holds this version.
        self.guard.note_revocation(version);
        audit::append(
            tx,
            now,
            &NewEvent {
                actor: actor.as_str(),
                request_id: Some(cert.request_id.as_str()),
                serial: Some(cert.serial),
                event: CertificateRevoked::of(cert, reason.as_str(), version).into(),
            },
        )?;
        self.tell(
            tx,
            now,
            crate::config::NotifyEvent::CertificateRevoked,
            &cert.request_id,
        )?;
        self.count(tx, |m| m.revoked());
        Ok(true)
    }

    /// Revokes one certificate (admins).
    pub fn revoke_serial(
        &self,
        actor: &UserName,
        serial: Serial,
        reason: Text,
    ) -> Result<Serial, ServiceError> {
        self.require_admin(actor, "revoke certificates")?;
        let now = self.now();
        self.store.write(|tx| {
            self.require_enabled(tx, actor)?;
            let cert = certs::by_serial(tx, serial)?.ok_or_else(|| {
                ServiceError::NotFound(format!(
                    "no certificate with serial {serial} (one a server's `krl sync` named as \
                     forgotten by this CA is listed again with `countersign krl forgotten`)"
                ))
            })?;
            if !self.revoke_one(tx, now, actor, &cert, &reason)? {
                return Err(ServiceError::Conflict {
                    code: crate::error_code::ErrorCode::AlreadyRevoked,
                    message: format!("certificate {serial} is already revoked"),
                });
            }
            Ok(serial)
        })
    }

    /// Offboards `user` (admins), in one transaction: disables them (every credential
    /// refused, their tokens revoked for good, until an admin enables them again), revokes
    /// every unexpired, unrevoked certificate of theirs and cancels their pending requests
    /// (a request made for a lost laptop's key must not be approved later). The user need
    /// not be in the config any more, but must be known (config or database): a
    /// misspelled name is `not_found`, not a silent success. Idempotent: revoking a user
    /// already disabled ends whatever is left and answers the same way.
    pub fn revoke_user(
        &self,
        actor: &UserName,
        user: &UserName,
        reason: Text,
    ) -> Result<UserRevocation, ServiceError> {
        self.require_admin(actor, "revoke certificates")?;
        if actor == user {
            // Nobody would be left to enable them if they were the last admin.
            return Err(ServiceError::Forbidden(
                "you cannot revoke (and so disable) yourself; ask another admin".into(),
            ));
        }
        let now = self.now();
        self.store.write(|tx| {
            self.require_enabled(tx, actor)?;
            self.require_known(tx, user)?;
            let mut done = UserRevocation::default();
            super::users::disable(tx, now, actor, user, &reason, &mut done)?;
            // Still accepted by a server whose clock lags by the backdate: revoke those too.
            for cert in certs::active_of_user(tx, user, unix(now) - self.skew())? {
                if self.revoke_one(tx, now, actor, &cert, &reason)? {
                    done.revoked.push(cert.serial);
                }
            }
            // Overdue ones are left to the expiry sweep: they ended by themselves.
            for row in rq::pending_of(tx, user, unix(now))? {
                if self.cancel_pending(tx, now, actor, &row, Some(&reason))? {
                    done.cancelled.push(row.id);
                }
            }
            super::users::record_disabling(tx, now, actor, user, &reason, &done)?;
            Ok(done)
        })
    }

    /// The requester ends their own certificate early ("I'm finished").
    pub fn done(
        &self,
        actor: &UserName,
        id: &RequestId,
        reason: Option<Text>,
    ) -> Result<RequestView, ServiceError> {
        let now = self.now();
        let reason = match reason {
            Some(r) => r,
            None => Text::parse("finished early by the requester", "reason")
                .map_err(|e| ServiceError::Invalid(e.to_string()))?,
        };
        self.store.write(|tx| {
            self.require_enabled(tx, actor)?;
            let row = self.visible(tx, actor, id)?;
            if &row.requester != actor {
                return Err(ServiceError::Forbidden(
                    "only the requester may end their own certificate".into(),
                ));
            }
            let cert = certs::for_request(tx, id)?.ok_or_else(|| ServiceError::Conflict {
                code: crate::error_code::ErrorCode::NotIssued,
                message: format!(
                    "request {id} is {}, no certificate was issued",
                    row.status.as_str()
                ),
            })?;
            let holding = certs::by_serial(tx, cert.serial)?
                .ok_or_else(|| ServiceError::NotFound(format!("no certificate for {id}")))?;
            if holding.valid_before <= unix(now) - self.skew() {
                return Err(ServiceError::Conflict {
                    code: crate::error_code::ErrorCode::Expired,
                    message: format!("the certificate of {id} has already expired"),
                });
            }
            if !self.revoke_one(tx, now, actor, &holding, &reason)? {
                return Err(ServiceError::Conflict {
                    code: crate::error_code::ErrorCode::AlreadyRevoked,
                    message: format!("the certificate of {id} is already revoked"),
                });
            }
            let row = rq::get(tx, id)?
                .ok_or_else(|| ServiceError::NotFound(format!("no request {id}")))?;
            self.request_view(tx, row, now)
        })
    }

    /// The current KRL: every revoked certificate until the backdate after its expiry.
    pub fn krl(&self) -> Result<Arc<Krl>, ServiceError> {
        // A clock ahead of the database's would leave out revocations still valid.
        self.clock_agrees()?;
        self.krl_at(self.now())
    }

    /// Refuses a KRL version older than this server's mark holds: the database went
    /// back under it (restored or replaced while it ran), and an older KRL would
    /// un-revoke. A restart checks the database against the mark and says what to do.
    pub(super) fn not_behind(&self, version: u64) -> Result<(), ServiceError> {
        if self.guard.database_behind(version) {
            tracing::error!(
                version,
                "the database's KRL version is older than this server published: it was \
                 restored or replaced under the running server"
            );
            return Err(ServiceError::NotReady(
                "the database is older than what this server has published (restored or \
                 replaced while it ran): restart it to have the state checked"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The KRL as the clock reads `now`: every revoked certificate whose `valid_before`
    /// plus the backdate (a lagging server's clock) is after `now`.
    pub fn krl_at(&self, now: DateTime<Utc>) -> Result<Arc<Krl>, ServiceError> {
        let kind = KrlKind {
            etag_prefix: "",
            comment: "countersign",
            ca: self.ca.public_key_data(),
        };
        self.cached_krl(&self.krl, unix(now), &kind, certs::revoked_unexpired, |b| {
            self.ca.sign_message(KRL_NAMESPACE, b)
        })
    }

    /// A KRL of `kind` from `cache` if it is still exact at `now`, else built anew from
    /// the revocations `read` returns, signed by `sign`, and cached. Servers poll every
    /// minute or so; a KRL changes only when a certificate is revoked (the version goes
    /// up, whichever process revoked it) or when a listed certificate expires and drops
    /// out, so until then the last one built is exact.
    pub(super) fn cached_krl(
        &self,
        cache: &Mutex<Option<CachedKrl>>,
        now: i64,
        kind: &KrlKind<'_>,
        read: impl FnOnce(&Tx<'_>, i64) -> Result<certs::Revoked, StoreError>,
        sign: impl FnOnce(&[u8]) -> Result<ssh_key::SshSig, crate::ca::CaError>,
    ) -> Result<Arc<Krl>, ServiceError> {
        // Dated the start of the current [`KRL_REFRESH`] period, not the second: replicas
        // sharing one database then build the same bytes, version and ETag (Ed25519
        // signatures are deterministic too), unless a listed certificate drops out
        // between their builds.
        let period = now - now.rem_euclid(KRL_REFRESH);
        // One snapshot: the version checked against the cache is the one built from.
        let (version, revoked) = match self.store.read(|tx| {
            let version = certs::krl_version(tx)?;
            if let Some(cached) = lock(cache).as_ref()
                && cached.krl.version == version
                && (cached.built_at..cached.exact_until).contains(&now)
            {
                return Ok::<_, ServiceError>(KrlSource::Cached(cached.krl.clone()));
            }
            // Listed until expiry plus the backdate: a server whose clock lags by that
            // much still accepts the certificate until then.
            Ok(KrlSource::Build(version, read(tx, now - self.skew())?))
        })? {
            KrlSource::Cached(krl) => return self.published(krl),
            KrlSource::Build(version, revoked) => (version, revoked),
        };
        self.not_behind(version)?;
        let serials: Vec<u64> = revoked.serials.iter().map(|s| s.get()).collect();
        // When each expires, in the signed bytes: a server's `krl --out` keeps a
        // revocation that a later KRL drops before then (a CA that forgot it).
        let expires: Vec<u64> = revoked
            .valid_before
            .iter()
            .map(|&t| u64::try_from(t).unwrap_or(0))
            .collect();
        let bytes = krl::encode(&KrlContents {
            version,
            // The time it was made: signed with the bytes, it tells `krl --out` how old an
            // answer is, so a KRL replayed from the past is refused, not kept.
            generated_date: u64::try_from(period).unwrap_or(0),
            comment: kind.comment,
            ca: kind.ca,
            serials: &serials,
            expires: &expires,
        })?;
        let signature = sign(&bytes)?
            .to_pem(ssh_key::LineEnding::LF)
            .map_err(|e| ServiceError::Ca(crate::ca::CaError::Sign(e)))?;
        let etag = format!(
            "\"{}{version}-{}\"",
            kind.etag_prefix,
            &hex::encode(Sha256::digest(&bytes))[..32]
        );
        let krl = Arc::new(Krl {
            bytes: bytes.into(),
            version,
            etag,
            signature,
            entries: serials.len(),
        });
        // Two polls that both missed may finish in either order: keep the newer KRL.
        let mut cached = lock(cache);
        if cached.as_ref().is_none_or(|c| c.krl.version <= version) {
            *cached = Some(CachedKrl {
                krl: krl.clone(),
                built_at: now,
                exact_until: revoked
                    .first_expiry
                    .map_or(i64::MAX, |t| t.saturating_add(self.skew()))
                    .min(period.saturating_add(KRL_REFRESH)),
            });
        }
        drop(cached);
        self.published(krl)
    }

    /// `krl`, once the high-water mark holds its version: no KRL leaves before a restore
    /// of an older database would be noticed.
    fn published(&self, krl: Arc<Krl>) -> Result<Arc<Krl>, ServiceError> {
        if !self.guard.holds_krl(krl.version) {
            self.publish_state()?;
        }
        Ok(krl)
    }
}
