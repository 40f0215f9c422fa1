//! SSH keys proven by their owners (`countersign keys add|list|remove`): a person asks
//! for a challenge naming them and the key, signs it with the key's private half as an
//! SSH signature (`ssh-keygen -Y sign -n countersign-key`), and the key is theirs from
//! then on, like the config's `ssh_keys`: never certified for anyone else, and good at
//! the SSH front door. Every registration and removal is audited.

use crate::service::SteppedUp;
use rand::Rng;

use super::{Service, ServiceError, unix};
use crate::audit::{self, KeyRegistered, KeyRemoved, NewEvent};
use crate::error_code::ErrorCode;
use crate::names::UserName;
use crate::policy::rules;
use crate::pubkey::SubjectKey;
use crate::store::keys::{self, NewChallenge, RegisteredKey};
use crate::store::requests as rq;

mod proof;

pub use proof::{KEY_NAMESPACE, ProvenKey, check_proof, prove};

/// How long a challenge can be answered (seconds).
pub const CHALLENGE_LIFETIME: i64 = 300;

/// Challenges one person may have outstanding; a new one beyond forgets the oldest.
const CHALLENGES_PER_USER: i64 = 5;

/// Keys one person may register.
pub const MAX_KEYS_PER_USER: i64 = 32;

/// First line of every challenge.
const TITLE: &str = "countersign key registration";

/// Where a key of a person comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// `[users.NAME] ssh_keys` in the config.
    Config,
    /// Registered with `countersign keys add`.
    Registered,
}

impl KeySource {
    /// `config` or `registered`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeySource::Config => "config",
            KeySource::Registered => "registered",
        }
    }
}

/// A key of a person, as `keys list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyListing {
    /// Whose.
    pub user: UserName,
    /// `SHA256:...`.
    pub fingerprint: String,
    /// The key line (with the comment it was registered with, if any).
    pub public_key: String,
    /// Where it comes from.
    pub source: KeySource,
    /// When it was registered (Unix seconds); `None` for a key of the config.
    pub registered_at: Option<i64>,
}

/// A key taken back, and the pending requests for it that ended with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// The key as it was.
    pub key: KeyListing,
    /// The ids of the pending requests for it, cancelled.
    pub cancelled: Vec<String>,
}

impl Service {
    /// A challenge for `actor` to prove they hold `key`: text to sign, good once within
    /// [`CHALLENGE_LIFETIME`]. A key registered to someone else already is `key_taken`
    /// now rather than after the proof.
    pub fn key_challenge(&self, who: &SteppedUp, key: &SubjectKey) -> Result<String, ServiceError> {
        let actor = who.user_for(crate::service::StepUp::RegisterKey)?;
        refuse_bot(&self.config(), actor)?;
        if self.is_ca_key(key) {
            return Err(ServiceError::Invalid(
                "the CA key cannot be registered".into(),
            ));
        }
        let config = self.config();
        let now = self.now();
        let mut nonce = [0u8; 32];
        rand::rng().fill_bytes(&mut nonce);
        let expires_at = unix(now) + CHALLENGE_LIFETIME;
        let text = format!(
            "{TITLE}\nuser: {actor}\nkey: {}\nca: {}\nexpires: {}\nnonce: {}\n",
            key.fingerprint(),
            self.ca.fingerprint(),
            super::view::rfc3339(expires_at),
            hex::encode(nonce),
        );
        self.store.write(|tx| {
            self.require_enabled(tx, actor)?;
            let facts = keys::facts(tx, &key.fingerprint(), actor)?;
            if rules::registered_to_another(&config.policy, &facts, actor, key) {
                return Err(taken(key, "to another user"));
            }
            let challenge = NewChallenge {
                text: &text,
                user: actor,
                fingerprint: &key.fingerprint(),
            };
            // Ordered to the millisecond, so the oldest is the one forgotten.
            let made = now.timestamp_millis();
            keys::insert_challenge(
                tx,
                &challenge,
                made,
                unix(now),
                expires_at,
                CHALLENGES_PER_USER,
            )?;
            Ok(())
        })?;
        Ok(text)
    }

    /// Registers `proven` (the line as sent, its comment kept if it is plain text) for
    /// `actor`, if its challenge was handed to them for this key. A failed proof changes
    /// nothing (the challenge stays good until it expires); a successful one uses the
    /// challenge up. Returns the key and whether it was registered now (`false`: it was
    /// already theirs, nothing changed).
    pub fn register_key(
        &self,
        who: &SteppedUp,
        proven: &ProvenKey,
    ) -> Result<(KeyListing, bool), ServiceError> {
        let actor = who.user_for(crate::service::StepUp::RegisterKey)?;
        let ProvenKey {
            key,
            line,
            challenge,
        } = proven;
        let config = self.config();
        refuse_bot(&config, actor)?;
        let now = self.now();
        let fingerprint = key.fingerprint();
        let key = key.clone();
        let public_key = key.line_with(&crate::pubkey::plain_comment(line));
        self.store.write(|tx| {
            self.require_enabled(tx, actor)?;
            let used = keys::take_challenge(tx, challenge.as_str(), unix(now))?;
            if used != Some((actor.clone(), fingerprint.clone())) {
                return Err(ServiceError::KeyProof(
                    "this challenge is unknown, used, expired, or was handed out for another \
                     person or key: ask for a new one (POST /v1/keys/challenge)"
                        .into(),
                ));
            }
            let facts = keys::facts(tx, &fingerprint, actor)?;
            if rules::registered_to_another(&config.policy, &facts, actor, &key) {
                return Err(taken(&key, "to another user"));
            }
            if config.policy.user_by_key(&key).is_some() {
                return Err(taken(&key, "to you already, in the config (ssh_keys)"));
            }
            if facts.owner.is_some() {
                let mine = keys::list(tx, Some(actor))?
                    .into_iter()
                    .find(|k| k.fingerprint == fingerprint)
                    .ok_or_else(|| taken(&key, "already"))?;
                return Ok((listing(mine), false));
            }
            if keys::count(tx, actor)? >= MAX_KEYS_PER_USER {
                return Err(ServiceError::Invalid(format!(
                    "{actor} has registered {MAX_KEYS_PER_USER} keys, the most one person may \
                     have: remove one first (countersign keys remove)"
                )));
            }
            let registered = RegisteredKey {
                fingerprint: fingerprint.clone(),
                user: actor.clone(),
                public_key: public_key.clone(),
                registered_at: unix(now),
            };
            keys::insert(tx, &registered)?;
            audit::append(
                tx,
                now,
                &NewEvent::general(
                    actor.as_str(),
                    KeyRegistered {
                        user: actor.to_string(),
                        fingerprint: fingerprint.clone(),
                        key_type: key.key_data().algorithm().as_str().to_owned(),
                    },
                ),
            )?;
            Ok((listing(registered), true))
        })
    }

    /// The keys of `user` (`actor`'s own when `None`; another person's for admins
    /// only), from the config and registered; or every registered key and every key of
    /// the config (`all`, admins only).
    pub fn list_keys(
        &self,
        actor: &UserName,
        user: Option<&UserName>,
        all: bool,
    ) -> Result<Vec<KeyListing>, ServiceError> {
        let config = self.config();
        let whose = user.unwrap_or(actor);
        if all || whose != actor {
            self.require_admin(actor, "list other people's keys")?;
        }
        if all && user.is_some() {
            return Err(ServiceError::Invalid("name a user or all, not both".into()));
        }
        let whose = (!all).then_some(whose);
        let registered = self.store.read(|tx| {
            self.require_enabled(tx, actor)?;
            Ok::<_, ServiceError>(keys::list(tx, whose)?)
        })?;
        if let Some(w) = whose
            && registered.is_empty()
            && !config.policy.users.contains_key(w)
        {
            return Err(ServiceError::NotFound(format!(
                "no user {w}: not in the config, and no key registered by that name"
            )));
        }
        let mut out: Vec<KeyListing> = config
            .policy
            .users
            .values()
            .filter(|u| whose.is_none_or(|w| &u.name == w))
            .flat_map(|u| {
                u.ssh_keys.iter().map(|k| KeyListing {
                    user: u.name.clone(),
                    fingerprint: k.fingerprint(),
                    public_key: k.line_with(u.key_comment(k)),
                    source: KeySource::Config,
                    registered_at: None,
                })
            })
            .collect();
        out.extend(registered.into_iter().map(listing));
        out.sort_by(|a, b| a.user.cmp(&b.user));
        Ok(out)
    }

    /// Removes the registered key `fingerprint`: the owner's own, or anyone's for an
    /// admin; audited as `key.removed`. A key of the config is removed from the config.
    pub fn remove_key(&self, actor: &UserName, fingerprint: &str) -> Result<Removed, ServiceError> {
        let config = self.config();
        let admin = config.policy.is_admin(actor);
        let now = self.now();
        let not_found = || ServiceError::NotFound(format!("no registered key {fingerprint}"));
        self.store.write(|tx| {
            self.require_enabled(tx, actor)?;
            // Whose config key it is matters only to them and admins: anyone else hears
            // what they hear of a key nobody has.
            let in_config = config.policy.users.values().any(|u| {
                (admin || u.name == *actor)
                    && u.ssh_keys.iter().any(|k| k.fingerprint() == fingerprint)
            });
            let Some(owner) = keys::owner(tx, fingerprint)? else {
                return Err(match in_config {
                    true => ServiceError::Invalid(format!(
                        "key {fingerprint} is in the config ([users.NAME] ssh_keys): an \
                         operator removes it there and reloads"
                    )),
                    false => not_found(),
                });
            };
            if owner != *actor && !admin {
                return Err(not_found());
            }
            let removed = keys::remove(tx, fingerprint)?.ok_or_else(not_found)?;
            audit::append(
                tx,
                now,
                &NewEvent::general(
                    actor.as_str(),
                    KeyRemoved {
                        user: removed.user.to_string(),
                        fingerprint: removed.fingerprint.clone(),
                    },
                ),
            )?;
            // A request still pending for the key would be signed for it: the owner has
            // no registered key left, say, after a lost laptop. It ends now.
            let note = crate::names::Text::parse(
                &format!("its key {fingerprint} was removed by {actor}"),
                "reason",
            )
            .map_err(|e| ServiceError::Invalid(e.to_string()))?;
            let mut cancelled = Vec::new();
            for row in rq::pending_of(tx, &removed.user, unix(now))? {
                if row.key_fingerprint == removed.fingerprint
                    && self.cancel_pending(tx, now, actor, &row, Some(&note))?
                {
                    cancelled.push(row.id.to_string());
                }
            }
            Ok(Removed {
                key: listing(removed),
                cancelled,
            })
        })
    }

    /// Logs a warning for every key the config gives one person and the database
    /// another (`countersign keys add` before the config named it): such a key is
    /// nobody's, refused for both, until one of the two is removed. Best effort: a
    /// failure to read is logged.
    pub(super) fn warn_key_clashes(&self, config: &crate::config::Config) {
        let registered = match self.store.read(|tx| keys::list(tx, None)) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %super::chain(&e), "could not read the registered keys");
                return;
            }
        };
        for k in registered {
            let Ok(key) = SubjectKey::parse(&k.public_key) else {
                continue;
            };
            if let Some(u) = config.policy.user_by_key(&key)
                && u.name != k.user
            {
                tracing::warn!(
                    key = %k.fingerprint,
                    config_user = %u.name,
                    registered_by = %k.user,
                    "a key in the config's ssh_keys is registered in the database to someone \
                     else: it is nobody's (refused for both) until one of the two is removed"
                );
            }
        }
    }

    /// The person `key` is registered to (config or database), if exactly one: who a
    /// key logging in at the SSH front door is.
    /// A key registered in the database counts only while its owner is someone: in the
    /// config, or (with `[oidc]`) a person with a live session; a name taken out of the
    /// config does not log in with the keys it once registered.
    pub fn key_owner(&self, key: &SubjectKey) -> Result<Option<UserName>, ServiceError> {
        let config = self.config();
        let now = self.now();
        self.store.read(|tx| {
            let owner = keys::owner(tx, &key.fingerprint())?;
            let facts = rules::KeyFacts {
                owner,
                has_keys: false,
            };
            let Some(user) = rules::key_owner(&config.policy, &facts, key).cloned() else {
                return Ok(None);
            };
            if config.policy.users.contains_key(&user) {
                return Ok(Some(user));
            }
            let idp = self.idp_groups(tx, &[&user], now)?;
            let known = crate::policy::People::new(&config.policy, &idp).is_known(&user);
            Ok(known.then_some(user))
        })
    }
}

/// A service account (`bot = true`) registers no key, whatever its credential: its keys
/// are in the config.
fn refuse_bot(config: &crate::config::Config, actor: &UserName) -> Result<(), ServiceError> {
    if config.policy.users.get(actor).is_some_and(|u| u.bot) {
        return Err(ServiceError::Forbidden(format!(
            "{actor} is a service account (bot = true): its keys are listed in its \
             [users.{actor}] ssh_keys, not registered"
        )));
    }
    Ok(())
}

fn taken(key: &SubjectKey, whose: &str) -> ServiceError {
    ServiceError::Conflict {
        code: ErrorCode::KeyTaken,
        message: format!("key {} is registered {whose}", key.fingerprint()),
    }
}

fn listing(k: RegisteredKey) -> KeyListing {
    KeyListing {
        user: k.user,
        fingerprint: k.fingerprint,
        public_key: k.public_key,
        source: KeySource::Registered,
        registered_at: Some(k.registered_at),
    }
}
