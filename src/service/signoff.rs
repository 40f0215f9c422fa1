//! The policy's own signatures (`signoff.rs`) against the database: the signers'
//! registered keys and disabled marks, the decision about a file, and its record
//! (`policy.loaded` names the signatures, `policy.refused` a file that had too few).

use serde_json::Value;

use super::ServiceError;
use crate::audit::{self, NewEvent, PolicyRefused, Signoff};
use crate::config::Config;
use crate::names::UserName;
use crate::signoff::{self, Basis, CheckError, Folder, Outcome};
use crate::store::{StoreError, Tx, keys, users};

/// The decision about `config`'s file (whose policy summary is `new`), replacing the
/// policy `running` (the recorded summary; `None` if none is), read in `tx`.
pub(super) fn judge(
    tx: &Tx<'_>,
    config: &Config,
    running: Option<&Value>,
    new: &Value,
    folder: &Folder,
) -> Result<Outcome, ServiceError> {
    let facts = |user: &UserName| -> Result<(Vec<String>, bool), StoreError> {
        let registered = keys::list(tx, Some(user))?
            .into_iter()
            .map(|k| k.fingerprint)
            .collect();
        Ok((registered, users::is_disabled(tx, user)?))
    };
    let mut outcome = signoff::check(running, new, config.text.as_bytes(), folder, facts).map_err(
        |e| match e {
            CheckError::Recorded(m) => ServiceError::from(StoreError::Corrupt(m)),
            CheckError::Facts(e) => e.into(),
        },
    )?;
    // A file that names the CA it is for is refused by any other (a staging copy).
    let named = outcome.signing.as_ref().and_then(|s| s.ca.clone());
    if let (None, Some(named)) = (&outcome.refusal, named) {
        let this = crate::store::meta::current_ca(tx)?.map(|k| k.fingerprint);
        if this.as_deref() != Some(named.as_str()) {
            outcome.refusal = Some(format!(
                "[policy] ca = {named:?} is not this CA ({}): a file signed for another CA \
                 is not loaded here",
                this.as_deref().unwrap_or("none recorded")
            ));
        }
    }
    Ok(outcome)
}

/// The policy summary the database records as in force.
pub(super) fn recorded(tx: &Tx<'_>) -> Result<Option<Value>, StoreError> {
    crate::store::meta::recorded_policy(tx)?
        .map(|text| serde_json::from_str(&text))
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("the recorded policy: {e}")))
}

/// Who loads a file, and why (for `policy.refused` and `policy.loaded`).
pub(super) struct Loading<'a> {
    /// The operator (or the server itself) recorded as the actor.
    pub actor: &'a str,
    /// `start` or `reload`.
    pub cause: &'a str,
    /// When.
    pub now: chrono::DateTime<chrono::Utc>,
}

/// `config`'s file (policy summary `new`) judged in `tx` against the policy the database
/// records as in force, with the signatures of `folder`: the running summary and the
/// outcome, or, refused, the error to stop with — after `policy.refused` is written in
/// `tx` (commit it).
pub(super) fn judge_or_refuse(
    tx: &Tx<'_>,
    config: &Config,
    new: &Value,
    folder: &Folder,
    by: &Loading<'_>,
) -> Result<Result<(Option<Value>, Outcome), ServiceError>, ServiceError> {
    let running = recorded(tx)?;
    let outcome = judge(tx, config, running.as_ref(), new, folder)?;
    let Some(reason) = &outcome.refusal else {
        return Ok(Ok((running, outcome)));
    };
    audit::append(
        tx,
        by.now,
        &NewEvent::general(
            by.actor,
            PolicyRefused {
                cause: by.cause.to_owned(),
                digest: crate::policy::summary::digest(new),
                reason: reason.clone(),
                signoff: signoff_of(&outcome),
                rejected: outcome.tally.rejected.clone(),
            },
        ),
    )?;
    Ok(Err(ServiceError::Invalid(format!(
        "{} was refused: {reason} (signatures are read from {}; `countersign policy \
         status` says more)",
        config.path.display(),
        signoff::signatures_dir(&config.path).display()
    ))))
}

/// At a start, before anything else is written (a host CA key, its record): `config`'s
/// file judged against the policy in force, refused (and recorded) if it must be.
pub(super) fn judge_at_start(
    store: &crate::store::Store,
    config: &Config,
    actor: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), ServiceError> {
    let new = super::reload::policy_summary(config);
    let folder = Folder::read(&signoff::signatures_dir(&config.path));
    let by = Loading {
        actor,
        cause: "start",
        now,
    };
    store
        .write(|tx| judge_or_refuse(tx, config, &new, &folder, &by))?
        .map(drop)
}

/// What an outcome says for the audit log (`None` when no signatures were needed).
pub(super) fn signoff_of(outcome: &Outcome) -> Option<Signoff> {
    let authority = outcome.authority.as_ref()?;
    Some(Signoff {
        basis: match authority.basis {
            Basis::Running => "running",
            Basis::Bootstrap => "bootstrap",
        }
        .into(),
        signers: authority
            .signing
            .signers
            .iter()
            .map(ToString::to_string)
            .collect(),
        signatures_required: authority.signing.signatures_required,
        signed_by: outcome.tally.valid.clone(),
        version: outcome.signing.as_ref().map(|s| s.version),
    })
}

/// The decision about `config`'s file before any state exists (no `init` yet): as a
/// first signed policy, judged by its own signers' `ssh_keys` (none is registered yet).
pub fn first_policy_outcome(config: &Config) -> Result<Outcome, ServiceError> {
    let new = super::reload::policy_summary(config);
    let folder = Folder::read(&signoff::signatures_dir(&config.path));
    signoff::check(None, &new, config.text.as_bytes(), &folder, |_| {
        Ok::<_, std::convert::Infallible>((Vec::new(), false))
    })
    .map_err(|e| match e {
        CheckError::Recorded(m) => ServiceError::Invalid(m),
        CheckError::Facts(never) => match never {},
    })
}

/// A signer's key fingerprint that counts but is known only as a fingerprint.
pub type Unknown = (UserName, String);

/// A key an authority's signer may sign with, known in full.
#[derive(Debug, Clone)]
pub struct SignerKey {
    /// Whose.
    pub user: UserName,
    /// `TYPE BASE64`, no comment.
    pub public_key: String,
    /// Its SHA-256 fingerprint.
    pub fingerprint: String,
}

impl super::Local {
    /// The decision about `config`'s file against the policy the database records as
    /// in force (what `serve` or a reload would decide now).
    pub fn policy_outcome(&self, config: &Config) -> Result<Outcome, ServiceError> {
        let new = super::reload::policy_summary(config);
        let folder = Folder::read(&signoff::signatures_dir(&config.path));
        self.store.read(|tx| {
            let running = recorded(tx)?;
            judge(tx, config, running.as_ref(), &new, &folder)
        })
    }

    /// Every key of `outcome`'s signers known in full: `ssh_keys` of `config` that the
    /// authority counts, and the keys the signers registered with proof of possession
    /// (which count for a signer whatever the file says, in force or judged); and the
    /// fingerprints the authority counts that neither knows in full (a key since removed
    /// from the file). Signers disabled in the database are left out: their signatures
    /// count for nothing.
    pub fn signer_keys(
        &self,
        config: &Config,
        outcome: &Outcome,
    ) -> Result<(Vec<SignerKey>, Vec<Unknown>), ServiceError> {
        let Some(authority) = &outcome.authority else {
            return Ok((Vec::new(), Vec::new()));
        };
        let none = std::collections::BTreeSet::new();
        let mut known = Vec::new();
        let mut left_out = Vec::new();
        for user in &authority.signing.signers {
            let (registered, disabled) = self.store.read(|tx| {
                Ok::<_, StoreError>((keys::list(tx, Some(user))?, users::is_disabled(tx, user)?))
            })?;
            if disabled {
                left_out.push(user);
                continue;
            }
            let counted = authority.keys.get(user).unwrap_or(&none);
            let listed = config
                .policy
                .users
                .get(user)
                .into_iter()
                .flat_map(|u| u.ssh_keys.iter())
                .map(|k| (k.to_openssh(), k.fingerprint()))
                .filter(|(_, fingerprint)| counted.contains(fingerprint));
            // Read back as keys, their fingerprints computed here: a stored line that does
            // not parse, or whose recorded fingerprint is another key's, is never printed.
            let registered = registered.into_iter().filter_map(|k| {
                let key = crate::pubkey::SubjectKey::parse(&k.public_key).ok()?;
                (key.fingerprint() == k.fingerprint).then(|| (key.to_openssh(), k.fingerprint))
            });
            for (public_key, fingerprint) in listed.chain(registered) {
                if !known
                    .iter()
                    .any(|k: &SignerKey| k.fingerprint == fingerprint)
                {
                    known.push(SignerKey {
                        user: user.clone(),
                        public_key,
                        fingerprint,
                    });
                }
            }
        }
        let unknown = authority
            .keys
            .iter()
            .filter(|(user, _)| !left_out.contains(user))
            .flat_map(|(user, fps)| fps.iter().map(move |f| (user.clone(), f.clone())))
            .filter(|(_, f)| !known.iter().any(|k| &k.fingerprint == f))
            .collect();
        Ok((known, unknown))
    }
}
