//! Rule 1b: whose keys are certified. A key is registered to a person in the config
//! (`[users.NAME] ssh_keys`) or in the database (`countersign keys add`, after proving
//! possession); either way it is theirs alone.

use super::Refusal;
use crate::names::UserName;
use crate::policy::Policy;
use crate::pubkey::SubjectKey;

/// What the database says about one key and one person (read in the deciding
/// transaction): who registered the key, and whether the person registered any key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyFacts {
    /// Who registered the key with `countersign keys add`, if anyone did.
    pub owner: Option<UserName>,
    /// Whether the person registered at least one key with `countersign keys add`.
    pub has_keys: bool,
}

/// The one person `key` is registered to, in the config or the database (`facts`);
/// `None` when nobody registered it, or, should the config and the database name two
/// different people, when they disagree (then the key is nobody's).
pub fn key_owner<'a>(
    policy: &'a Policy,
    facts: &'a KeyFacts,
    key: &SubjectKey,
) -> Option<&'a UserName> {
    let in_config = policy.user_by_key(key).map(|u| &u.name);
    match (in_config, facts.owner.as_ref()) {
        (Some(a), Some(b)) if a != b => None,
        (a, b) => a.or(b),
    }
}

/// Whether `key` is registered to anyone other than `user` (in the config or the
/// database).
pub fn registered_to_another(
    policy: &Policy,
    facts: &KeyFacts,
    user: &UserName,
    key: &SubjectKey,
) -> bool {
    let in_config = policy.user_by_key(key).map(|u| &u.name);
    [in_config, facts.owner.as_ref()]
        .into_iter()
        .flatten()
        .any(|owner| owner != user)
}

/// Whether `key` is registered to `user` (and to nobody else).
fn registered_to(policy: &Policy, facts: &KeyFacts, user: &UserName, key: &SubjectKey) -> bool {
    key_owner(policy, facts, key) == Some(user)
}

/// The refusal of a key that the config gives one person and the database another.
fn disputed(policy: &Policy, facts: &KeyFacts, key: &SubjectKey) -> Option<Refusal> {
    let in_config = policy.user_by_key(key).map(|u| &u.name)?;
    let registered = facts.owner.as_ref()?;
    (in_config != registered).then(|| Refusal::KeyNotAllowed {
        fingerprint: key.fingerprint(),
        why: format!(
            "is in the config's ssh_keys of {in_config} and registered in the database by \
             {registered}, so it is nobody's until one of the two is removed (`countersign \
             keys remove`, or the config)"
        ),
    })
}

fn refuse(key: &SubjectKey, why: String) -> Result<(), Refusal> {
    Err(Refusal::KeyNotAllowed {
        fingerprint: key.fingerprint(),
        why,
    })
}

/// A certificate is only for a key of the requester's own: never a key another user
/// registered (else an approver could have a colleague request access for the approver's
/// own key, and use what they alone approved, under the colleague's name); and when the
/// requester registered keys (config or database), one of them.
pub fn key_must_be_requesters(
    policy: &Policy,
    facts: &KeyFacts,
    user: &UserName,
    key: &SubjectKey,
) -> Result<(), Refusal> {
    if let Some(r) = disputed(policy, facts, key) {
        return Err(r);
    }
    if registered_to_another(policy, facts, user, key) {
        return refuse(
            key,
            "is registered to another user; certificates are only issued for the \
             requester's own keys"
                .into(),
        );
    }
    let in_config = policy
        .users
        .get(user)
        .is_some_and(|u| !u.ssh_keys.is_empty());
    if (in_config || facts.has_keys) && !registered_to(policy, facts, user, key) {
        return refuse(
            key,
            format!(
                "is not one of the keys registered to {user} (`countersign keys list`): \
                 request with one of them, or register this one first (`countersign keys \
                 add`)"
            ),
        );
    }
    Ok(())
}

/// With `[requests] require_registered_keys` (`required`), only a key registered to the
/// requester is certified.
pub fn key_must_be_registered(
    required: bool,
    policy: &Policy,
    facts: &KeyFacts,
    user: &UserName,
    key: &SubjectKey,
) -> Result<(), Refusal> {
    if !required {
        return Ok(());
    }
    only_registered(
        policy,
        facts,
        (user, key),
        "this CA certifies only registered keys ([requests] require_registered_keys): the \
         key's owner registers it with `countersign keys add` (a service account's key goes \
         in its [users.NAME] ssh_keys)",
    )
}

/// Refused unless `key` is registered to `user`: a key the config and the database give
/// two people is disputed; any other, `why` it must be registered.
fn only_registered(
    policy: &Policy,
    facts: &KeyFacts,
    (user, key): (&UserName, &SubjectKey),
    why: &str,
) -> Result<(), Refusal> {
    if registered_to(policy, facts, user, key) {
        return Ok(());
    }
    if let Some(r) = disputed(policy, facts, key) {
        return Err(r);
    }
    refuse(key, format!("is not registered to {user}, and {why}"))
}

/// A request made with a session from the device flow (`countersign login --device`)
/// certifies only a key registered to the requester. Such a login can be started by
/// anyone and sent to someone else to confirm (device-code phishing): whoever holds the
/// session must not get the victim's access for a key of their own. Registering a key
/// asks a sign-in the device flow cannot give.
pub fn device_session_key_must_be_registered(
    policy: &Policy,
    facts: &KeyFacts,
    user: &UserName,
    key: &SubjectKey,
) -> Result<(), Refusal> {
    only_registered(
        policy,
        facts,
        (user, key),
        "a session from the device flow (`countersign login --device`) requests only for \
         registered keys: register it (`countersign keys add`, after signing in with a \
         browser: `countersign login --loopback`), or request from such a sign-in",
    )
}
