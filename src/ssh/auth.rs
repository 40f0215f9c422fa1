//! Who is knocking: an SSH public key and a login name become an [`Identity`], or a
//! refusal that says why (for the log; the client only hears "Permission denied").
//!
//! The key decides who the user is: it must be registered to exactly one user, in the
//! config's `ssh_keys` (the config loader refuses a key listed twice) or with `countersign
//! keys add` (the database holds one owner per key; should the two disagree, the key is
//! nobody's). The login name only has to agree: it is
//! that user's own name or the fixed name [`LOGIN_NAME`]. Certificates are never accepted
//! as client credentials: russh checks a certificate only against the CA key embedded in
//! it, and a countersign user is identified by their key, not by a certificate. A
//! disabled (offboarded) user's keys are refused, whatever the config says.

use ssh_key::public::KeyData;

use crate::names::UserName;
use crate::pubkey::SubjectKey;
use crate::service::ServiceError;

/// The login name anyone may use (`ssh ca@HOST ...`), besides their own user name.
pub const LOGIN_NAME: &str = "ca";

/// An authenticated user and the key they proved to hold; certificates are issued for
/// exactly this key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user the key is registered to.
    pub user: UserName,
    /// The key the client signed the authentication with.
    pub key: SubjectKey,
}

/// Why an authentication attempt was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum AuthRefusal {
    /// No user lists this key.
    #[error("key {fingerprint} is not registered to any user")]
    UnknownKey { fingerprint: String },
    /// The key's type or size is one countersign never certifies (so no user has it).
    #[error("key {fingerprint} is not accepted: {why}")]
    UnsupportedKey { fingerprint: String, why: String },
    /// The key belongs to `user`, but the login name is neither theirs nor `ca`.
    #[error("login name {login:?} is neither {user} nor {LOGIN_NAME}")]
    WrongLogin { login: String, user: UserName },
    /// A password or keyboard-interactive attempt: never offered, always refused.
    #[error("only public-key authentication is offered")]
    NotPublicKey,
    /// A certificate was offered as the client credential.
    #[error("certificates are not accepted as client keys; use the plain key")]
    Certificate,
    /// The source address used up its allowance of failed attempts.
    #[error("too many failed attempts from this address")]
    RateLimited,
    /// The key's user is disabled (offboarded) until an admin enables them again.
    #[error("user {user} is disabled")]
    Disabled { user: UserName },
    /// Whom the key is registered to could not be read; refused (fail closed).
    #[error("could not read whom key {fingerprint} is registered to")]
    OwnerUnread { fingerprint: String },
    /// Whether the key's user is disabled could not be read; refused (fail closed).
    #[error("could not check whether user {user} is disabled")]
    Unchecked { user: UserName },
}

impl AuthRefusal {
    /// A fixed word for the metrics (`countersign_ssh_refusals_total{reason}`): never the
    /// fingerprint, login or user the message names.
    pub(super) fn metric_reason(&self) -> &'static str {
        match self {
            AuthRefusal::UnknownKey { .. } => "unknown_key",
            AuthRefusal::UnsupportedKey { .. } => "unsupported_key",
            AuthRefusal::WrongLogin { .. } => "wrong_login",
            AuthRefusal::NotPublicKey => "not_public_key",
            AuthRefusal::Certificate => "certificate",
            AuthRefusal::RateLimited => "rate_limited",
            AuthRefusal::Disabled { .. } => "disabled",
            AuthRefusal::OwnerUnread { .. } | AuthRefusal::Unchecked { .. } => "unchecked",
        }
    }
}

/// `identity`, unless `check` (whether its user is enabled, read from the database)
/// says the user is disabled or cannot say.
pub(super) fn enabled(
    identity: Identity,
    check: Result<(), ServiceError>,
) -> Result<Identity, AuthRefusal> {
    match check {
        Ok(()) => Ok(identity),
        Err(ServiceError::Disabled(_)) => Err(AuthRefusal::Disabled {
            user: identity.user,
        }),
        Err(e) => {
            tracing::error!(error = ?e, user = %identity.user, "could not read whether an ssh user is disabled");
            Err(AuthRefusal::Unchecked {
                user: identity.user,
            })
        }
    }
}

/// The identity `login` + `key` stand for, or why there is none; `owner_of` says whom a
/// key is registered to (the config's `ssh_keys` or `countersign keys add`).
pub(super) fn authorize(
    login: &str,
    key: &KeyData,
    owner_of: impl FnOnce(&SubjectKey) -> Result<Option<UserName>, ServiceError>,
) -> Result<Identity, AuthRefusal> {
    let fingerprint = || key.fingerprint(ssh_key::HashAlg::Sha256).to_string();
    let key = SubjectKey::from_key_data(key.clone()).map_err(|e| AuthRefusal::UnsupportedKey {
        fingerprint: fingerprint(),
        why: e.to_string(),
    })?;
    // The SSH library checks a security key's signature but not that it was touched.
    if key.is_security_key() {
        return Err(AuthRefusal::UnsupportedKey {
            fingerprint: fingerprint(),
            why: "a security key (sk-...) is not taken here, where its touch is not checked: \
                  use the countersign command or the HTTP API"
                .into(),
        });
    }
    let user = match owner_of(&key) {
        Ok(Some(user)) => user,
        Ok(None) => {
            return Err(AuthRefusal::UnknownKey {
                fingerprint: fingerprint(),
            });
        }
        Err(e) => {
            tracing::error!(error = ?e, key = %fingerprint(), "could not read whom an ssh key is registered to");
            return Err(AuthRefusal::OwnerUnread {
                fingerprint: fingerprint(),
            });
        }
    };
    if login != LOGIN_NAME && login != user.as_str() {
        return Err(AuthRefusal::WrongLogin {
            login: printable(login),
            user,
        });
    }
    Ok(Identity { user, key })
}

/// A login name as it may be logged: at most 64 characters, control characters escaped
/// by the `{:?}` that prints it.
pub(super) fn printable(login: &str) -> String {
    login.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use ssh_key::{Algorithm, PrivateKey};

    use super::*;
    use crate::policy::{Policy, User};

    /// [`authorize`] with the keys of `policy` alone.
    fn by_policy(policy: &Policy, login: &str, k: &KeyData) -> Result<Identity, AuthRefusal> {
        authorize(login, k, |key| {
            Ok(policy.user_by_key(key).map(|u| u.name.clone()))
        })
    }

    fn key() -> KeyData {
        PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519)
            .unwrap()
            .public_key()
            .key_data()
            .clone()
    }

    fn policy_with(user: &str, keys: &[&KeyData]) -> Policy {
        let name = UserName::parse(user).unwrap();
        let ssh_keys = keys
            .iter()
            .map(|k| SubjectKey::from_key_data((*k).clone()).unwrap())
            .collect();
        let u = User {
            name: name.clone(),
            groups: BTreeSet::new(),
            admin: false,
            ssh_keys,
            key_comments: BTreeMap::new(),
            oidc_subject: None,
            bot: false,
        };
        Policy {
            users: BTreeMap::from([(name, u)]),
            ..Policy::default()
        }
    }

    #[test]
    fn a_registered_key_is_its_user_under_ca_or_their_own_name() {
        let k = key();
        let policy = policy_with("alice", &[&k]);
        for login in ["ca", "alice"] {
            let id = by_policy(&policy, login, &k).unwrap();
            assert_eq!(id.user.as_str(), "alice");
            assert_eq!(id.key.key_data(), &k);
        }
    }

    #[test]
    fn another_login_name_is_refused_even_with_a_registered_key() {
        let k = key();
        let policy = policy_with("alice", &[&k]);
        for login in ["root", "bob", "CA", "alice ", ""] {
            assert!(
                matches!(
                    by_policy(&policy, login, &k),
                    Err(AuthRefusal::WrongLogin { .. })
                ),
                "{login:?} accepted"
            );
        }
    }

    #[test]
    fn an_unregistered_key_is_nobody() {
        let policy = policy_with("alice", &[&key()]);
        let err = by_policy(&policy, "ca", &key()).unwrap_err();
        assert!(err.to_string().contains("SHA256:"), "{err}");
    }

    #[test]
    fn a_key_type_never_certified_is_refused_as_unsupported_with_the_reason() {
        let dsa = ssh_key::PublicKey::from_openssh(crate::pubkey::tests::DSA_KEY).unwrap();
        let policy = policy_with("alice", &[&key()]);
        let err = by_policy(&policy, "ca", dsa.key_data()).unwrap_err();
        assert!(matches!(err, AuthRefusal::UnsupportedKey { .. }), "{err:?}");
        assert!(err.to_string().contains("ssh-dss"), "{err}");
    }

    /// Even one registered to the user: its touch is not checked at the front door.
    #[test]
    fn a_security_key_is_refused_at_the_front_door() {
        let signing = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
        let (line, _) = crate::pubkey::sk_tests::sk_sshsig(&signing, "ssh:", ("n", b"m"), 1);
        let sk = ssh_key::PublicKey::from_openssh(&line).unwrap();
        let policy = policy_with("alice", &[sk.key_data()]);
        let err = by_policy(&policy, "ca", sk.key_data()).unwrap_err();
        assert!(matches!(err, AuthRefusal::UnsupportedKey { .. }), "{err:?}");
        assert!(err.to_string().contains("security key"), "{err}");
    }

    #[test]
    fn logged_login_names_are_bounded() {
        assert_eq!(printable(&"x".repeat(1000)).len(), 64);
    }
}
