//! The moment of signing: the request checked again inside the approving transaction,
//! then the certificate, its row, the status change and the `certificate.issued` event.

use chrono::{DateTime, Utc};

use super::decide::{Outcome, decided};
use super::{Service, ServiceError, unix, view};
use crate::audit::{self, CertificateIssued, CountedApproval, NewEvent};
use crate::ca::Grant;
use crate::metrics::Outcome as Ended;
use crate::names::{Serial, UserName};
use crate::policy::rules;
use crate::policy::{People, Role};
use crate::pubkey::SubjectKey;
use crate::store::Tx;
use crate::store::certificates::{self as certs, CertificateRow};
use crate::store::requests::{self as rq, RequestRow, Status};

impl Service {
    /// The moment of signing: eligibility and conflicts checked again, then the
    /// certificate, its row, the status change and the `certificate.issued` event; returns
    /// the certificate's row.
    pub(super) fn issue(
        &self,
        tx: &Tx<'_>,
        now: DateTime<Utc>,
        actor: &UserName,
        role: &Role,
        row: &RequestRow,
        signing: Signing<'_>,
    ) -> Outcome<CertificateRow> {
        let Signing {
            people,
            requester_disabled,
            key_facts,
            grounds,
            ahead,
        } = signing;
        let config = self.config();
        let policy = &config.policy;
        // Who may have the role: its requesters when approved; for break-glass, the
        // table's invokers, checked by the caller in this transaction.
        let listed = match grounds {
            Grounds::Approved(_) => rules::requester_must_be_listed(people, role, &row.requester),
            Grounds::BreakGlass => Ok(()),
        };
        if let Err(r) =
            listed.and_then(|()| rules::principals_must_be_own(people, role, &row.requester))
        {
            return self.end_refused(tx, now, actor, row, r);
        }
        // A disabled requester may request nothing: offboarding cancels the pending
        // requests it finds, but one it left (overdue then, and pending again by a clock
        // set back) must not be signed.
        if requester_disabled {
            let r = rules::Refusal::NotARequester {
                user: row.requester.clone(),
                role: row.role.clone(),
            };
            return self.end_refused(tx, now, actor, row, r);
        }
        // Parsed (and so vetted) again: a key an older version accepted, that this one
        // refuses, ends the request instead of being signed.
        let subject = match SubjectKey::parse(&row.public_key) {
            Ok(key) => key,
            Err(e) => {
                let r = rules::Refusal::KeyNotAllowed {
                    fingerprint: row.key_fingerprint.clone(),
                    why: format!("is no longer accepted: {e}"),
                };
                return self.end_refused(tx, now, actor, row, r);
            }
        };
        let (facts, required) = (key_facts, config.requests.require_registered_keys);
        if let Err(r) = rules::key_must_be_requesters(policy, facts, &row.requester, &subject)
            .and_then(|()| {
                rules::key_must_be_registered(required, policy, facts, &row.requester, &subject)
            })
        {
            return self.end_refused(tx, now, actor, row, r);
        }
        let rivals: Vec<_> = policy.conflicting_roles(&row.role).into_iter().collect();
        let held = self.held();
        // The conflict probes and the check of a fresh serial, in one round trip, unless
        // they were read with the request, about the same request, requester and rivals
        // at the same moment.
        let ahead = ahead.filter(|a| {
            a.about.0 == row.id
                && a.about.1 == row.requester
                && a.held == held
                && a.rivals.len() == rivals.len()
                && a.rivals.iter().zip(&rivals).all(|(a, b)| a == *b)
        });
        let a = match ahead {
            Some(a) => a,
            None => read_for_signing(tx, policy, row, held, now)?,
        };
        let (candidate, holdings, taken) = (a.serial, a.read.holdings, a.read.serial_taken);
        if let Err(r) = rules::no_conflicting_holding(policy, &row.role, &row.requester, &holdings)
        {
            let r = self.conflict_lifts(tx, now, r, Some(&row.id))?;
            return self.end_refused(tx, now, actor, row, r);
        }
        let principals = role
            .principals_for(&row.requester)
            .map_err(|e| ServiceError::Invalid(e.to_string()))?;
        let serial = if taken {
            unused_serial(tx, now, &mut rand::rng())?
        } else {
            candidate
        };
        let key_id = match grounds {
            Grounds::Approved(_) => {
                format!("countersign:{}:{}:{}", row.id, row.requester, row.role)
            }
            // Every sshd login line shows that this access skipped approval.
            Grounds::BreakGlass => format!("countersign:breakglass:{}:{}", row.id, row.requester),
        };
        let valid_after = unix(now) - self.config().ca.backdate.as_secs() as i64;
        let valid_before = unix(now) + row.ttl_seconds;
        let extensions: Vec<String> = role.extensions.iter().cloned().collect();
        let signing = std::time::Instant::now();
        let cert = self.ca.sign(&Grant {
            serial,
            key_id: key_id.clone(),
            subject: &subject,
            principals: &principals,
            valid_after: valid_after.max(0) as u64,
            valid_before: valid_before as u64,
            extensions: &extensions,
            force_command: role.force_command.as_deref(),
            source_address: &role.source_address,
        })?;
        self.metrics.signed(signing.elapsed());
        let text = cert.to_openssh().map_err(crate::ca::CaError::Sign)?;
        // The key actually signed, from the certificate itself: not the request's copied
        // column, so the audit row cannot disagree with what servers will accept.
        let signed_key = cert
            .public_key()
            .fingerprint(ssh_key::HashAlg::Sha256)
            .to_string();
        let cert_row = CertificateRow {
            serial,
            key_id: key_id.clone(),
            valid_after,
            valid_before,
            certificate: text,
            revocation: None,
        };
        certs::insert(tx, row, &cert_row)?;
        // The request was read as pending in this transaction, under the write lock.
        decided(rq::decide_read_pending(
            tx,
            (&row.id, &row.requester),
            &rq::Decision {
                status: Status::Issued,
                at: unix(now),
                by: actor.as_str(),
                code: None,
                note: None,
            },
        )?)?;
        let counted: Vec<_> = match grounds {
            Grounds::Approved(tally) => tally
                .counted
                .iter()
                .map(|(u, step)| CountedApproval {
                    approver: u.to_string(),
                    step: step + 1,
                })
                .collect(),
            Grounds::BreakGlass => Vec::new(),
        };
        // What each step required, so that `audit verify` can check the approvals listed
        // against it (added field; events written before it lack it). A break-glass
        // issuance required none: its `breakglass.used` came before it instead.
        let breakglass = matches!(grounds, Grounds::BreakGlass);
        let required: Vec<u32> = match grounds {
            Grounds::Approved(_) => role.steps.iter().map(|s| s.approvals).collect(),
            Grounds::BreakGlass => Vec::new(),
        };
        audit::append(
            tx,
            now,
            &NewEvent {
                actor: actor.as_str(),
                request_id: Some(row.id.as_str()),
                serial: Some(serial),
                event: CertificateIssued {
                    serial: serial.to_string(),
                    key_id: key_id.clone(),
                    requester: row.requester.to_string(),
                    role: row.role.to_string(),
                    principals: principals.iter().map(|p| p.as_str().to_owned()).collect(),
                    valid_after: view::rfc3339(valid_after),
                    valid_before: view::rfc3339(valid_before),
                    public_key_fingerprint: signed_key.clone(),
                    approvals: counted,
                    reason: row.reason.clone(),
                    approvals_required: required,
                    breakglass,
                }
                .into(),
            },
        )?;
        let issued_role = row.role.to_string();
        self.count(tx, move |m| m.certificate_issued(&issued_role));
        // Break-glass is told louder, by its caller, to every sink.
        if !breakglass {
            self.tell(tx, now, crate::config::NotifyEvent::RequestDecided, &row.id)?;
            self.count_decided(tx, row.role.as_str(), row.created_at, Ended::Approved);
        }
        Ok(Ok(cert_row))
    }
}

/// What the moment of signing is given, read in the approving transaction.
pub(super) struct Signing<'a> {
    /// Who is in which group: the policy and the provider's groups of the requester and
    /// the approvers, read in the approving transaction.
    pub people: &'a People<'a>,
    /// The requester's disabled mark (read with the request: `requests::get_marked`).
    pub requester_disabled: bool,
    /// What the database says of its key (read with the request).
    pub key_facts: &'a rules::KeyFacts,
    /// Why it is signed: the approvals that complete it, or break-glass.
    pub grounds: Grounds<'a>,
    /// The signing checks, if they were read with the request.
    pub ahead: Option<ReadAhead>,
}

/// Why a certificate is signed.
#[derive(Clone, Copy)]
pub(super) enum Grounds<'a> {
    /// The approvals that complete the request.
    Approved(&'a rules::Tally),
    /// Break-glass: the invoker was checked against the role's table, in this
    /// transaction, and the `breakglass.used` event written.
    BreakGlass,
}

/// Signing checks read with the request ([`rq::SigningAsk`]), and what they were asked
/// about: used only if signing would ask the same.
pub(super) struct ReadAhead {
    /// The request and the requester the probes were about.
    pub about: (crate::names::RequestId, crate::names::UserName),
    /// The rival roles probed.
    pub rivals: Vec<crate::names::RoleName>,
    /// How long certificates counted as held.
    pub held: rq::Held,
    /// The serial checked.
    pub serial: Serial,
    /// The answers.
    pub read: rq::SigningRead,
}

/// Taken serials drawn at the clock's millisecond before [`unused_serial`] draws anywhere.
const DRAWS_AT_THE_CLOCK: u32 = 16;

/// A serial no user or host certificate has, for one signed at `now`: [`Serial::fresh`];
/// after [`DRAWS_AT_THE_CLOCK`] taken ones, anywhere in `1..=i64::MAX` ([`Serial::any`]),
/// so that a clock outside 1970..2109, which puts every fresh serial in one millisecond's
/// 2,097,152 values, never leaves the writer drawing taken ones forever.
pub(super) fn unused_serial(
    tx: &Tx<'_>,
    now: DateTime<Utc>,
    rng: &mut impl rand::Rng,
) -> Result<Serial, ServiceError> {
    let mut draws = 0;
    loop {
        let serial = match draws < DRAWS_AT_THE_CLOCK {
            true => Serial::fresh(now, rng),
            false => Serial::any(rng),
        };
        if !certs::serial_taken(tx, serial)? {
            return Ok(serial);
        }
        draws += 1;
    }
}

/// The conflict probes and a fresh serial's check that signing `row` makes, read now.
pub(super) fn read_for_signing(
    tx: &Tx<'_>,
    policy: &crate::policy::Policy,
    row: &RequestRow,
    held: rq::Held,
    now: DateTime<Utc>,
) -> Result<ReadAhead, ServiceError> {
    let rivals: Vec<crate::names::RoleName> = policy
        .conflicting_roles(&row.role)
        .into_iter()
        .cloned()
        .collect();
    let serial = Serial::fresh(now, &mut rand::rng());
    let roles: Vec<&crate::names::RoleName> = rivals.iter().collect();
    let (holdings, serial_taken) = rq::holdings_and_serial_taken(
        tx,
        (&row.requester, unix(now), held, Some(&row.id)),
        &roles,
        serial,
    )?;
    Ok(ReadAhead {
        about: (row.id.clone(), row.requester.clone()),
        rivals,
        held,
        serial,
        read: rq::SigningRead {
            holdings,
            serial_taken,
        },
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::store::Store;
    use crate::store::hosts::{self, HostCertRow};

    fn host_cert(serial: Serial) -> HostCertRow {
        HostCertRow {
            serial,
            key_fingerprint: format!("SHA256:{serial}"),
            public_key: "ssh-ed25519 AAAA".into(),
            principals: Vec::new(),
            key_id: format!("countersign:host:{serial}"),
            valid_after: 0,
            valid_before: 1,
            certificate: String::new(),
            issued_at: 0,
            token_id: None,
            renewed_from: None,
            revocation: None,
            superseded_by: None,
        }
    }

    #[test]
    fn a_serial_a_host_certificate_has_is_not_drawn_again_even_with_the_clock_stuck() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let at = |ms: i64| Utc.timestamp_millis_opt(ms).single().unwrap();
        let seeded = || ChaCha8Rng::seed_from_u64(27);
        // What the generator draws first is a host certificate's: another is drawn, at
        // the same millisecond.
        let now = at(1_796_000_000_123);
        let first = Serial::fresh(now, &mut seeded());
        let drawn = store
            .write(|tx| {
                hosts::insert_cert(tx, &host_cert(first), None)?;
                unused_serial(tx, now, &mut seeded())
            })
            .unwrap();
        assert_ne!(
            drawn, first,
            "a host certificate's serial is taken for users too"
        );
        assert_eq!(
            drawn.get() >> 21,
            first.get() >> 21,
            "{drawn}: the same millisecond"
        );
        // A clock before 1970 puts every fresh serial in 2^21 values: once the first 16
        // drawn are taken, the next is drawn anywhere instead of at that millisecond.
        let y1900 = at(-2_208_988_800_000);
        let mut rng = seeded();
        let stuck: Vec<Serial> = (0..16).map(|_| Serial::fresh(y1900, &mut rng)).collect();
        let drawn = store
            .write(|tx| {
                for s in &stuck {
                    hosts::insert_cert(tx, &host_cert(*s), None)?;
                }
                unused_serial(tx, y1900, &mut seeded())
            })
            .unwrap();
        assert!(!stuck.contains(&drawn), "{drawn} is unused");
        assert!(
            drawn.get() >= 1 << 21,
            "{drawn}: drawn outside the stuck millisecond"
        );
    }

    #[test]
    fn a_serial_a_rollback_carried_a_revocation_of_is_not_drawn_again() {
        let now = Utc
            .timestamp_millis_opt(1_796_000_000_123)
            .single()
            .unwrap();
        let seeded = || ChaCha8Rng::seed_from_u64(29);
        let first = Serial::fresh(now, &mut seeded());
        // The certificate is gone with the rolled-back copy; only its revocation is left,
        // in the user CA's table and then the host CA's.
        for carry in [certs::carry_revocation, hosts::carry_revocation] {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(&dir.path().join("db")).unwrap();
            let (taken, drawn) = store
                .write(|tx| {
                    assert!(carry(tx, first, i64::MAX, 0)?);
                    let taken = certs::serial_taken(tx, first)?;
                    Ok::<_, ServiceError>((taken, unused_serial(tx, now, &mut seeded())?))
                })
                .unwrap();
            assert!(
                taken,
                "{first}: a carried revocation's serial counts as used"
            );
            assert_ne!(drawn, first, "a new certificate would be in the KRL");
        }
    }
}
