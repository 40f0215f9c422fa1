//! Rule 1b: whose keys are certified, from the config and the database together.

use super::*;
use crate::pubkey::SubjectKey;

fn key() -> SubjectKey {
    let k = ssh_key::PrivateKey::random(&mut rand::rng(), ssh_key::Algorithm::Ed25519).unwrap();
    SubjectKey::from_key_data(k.public_key().key_data().clone()).unwrap()
}

/// alice has `alices` in the config; bob and carol have none there.
fn with_config_key(alices: &SubjectKey) -> Policy {
    policy(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"d\"\n\
         [users.alice]\nssh_keys = [\"{}\"]\n[users.bob]\n[users.carol]\n",
        alices.to_openssh()
    ))
}

fn registered_to(owner: Option<&str>, has_keys: bool) -> KeyFacts {
    KeyFacts {
        owner: owner.map(u),
        has_keys,
    }
}

#[test]
fn a_key_registered_in_the_database_is_its_owners_alone() {
    let p = with_config_key(&key());
    let k = key();
    let bobs = registered_to(Some("bob"), false);
    assert_eq!(key_owner(&p, &bobs, &k), Some(&u("bob")));
    assert!(key_must_be_requesters(&p, &bobs, &u("bob"), &k).is_ok());
    let err = key_must_be_requesters(&p, &bobs, &u("carol"), &k).unwrap_err();
    assert_eq!(err.error_code(), ErrorCode::KeyNotAllowed);
    assert!(err.to_string().contains("another user"), "{err}");
}

#[test]
fn once_a_person_registered_keys_only_theirs_are_certified() {
    let alices = key();
    let p = with_config_key(&alices);
    let other = key();
    // bob registered some key in the database, not this one.
    let facts = registered_to(None, true);
    assert!(key_must_be_requesters(&p, &facts, &u("bob"), &other).is_err());
    // carol registered none anywhere: any key nobody has (the documented limit).
    assert!(key_must_be_requesters(&p, &registered_to(None, false), &u("carol"), &other).is_ok());
    // alice's config key, and a key she registered in the database, are both hers.
    assert!(key_must_be_requesters(&p, &registered_to(None, true), &u("alice"), &alices).is_ok());
    let hers = registered_to(Some("alice"), true);
    assert!(key_must_be_requesters(&p, &hers, &u("alice"), &other).is_ok());
}

#[test]
fn a_key_the_config_and_the_database_give_to_two_people_is_nobodys() {
    let alices = key();
    let p = with_config_key(&alices);
    let clash = registered_to(Some("bob"), true);
    assert_eq!(key_owner(&p, &clash, &alices), None);
    for who in ["alice", "bob"] {
        assert!(
            key_must_be_requesters(&p, &clash, &u(who), &alices).is_err(),
            "{who}"
        );
        assert!(
            key_must_be_registered(true, &p, &clash, &u(who), &alices).is_err(),
            "{who}"
        );
    }
}

#[test]
fn require_registered_keys_refuses_every_key_not_the_requesters() {
    let alices = key();
    let p = with_config_key(&alices);
    let stray = key();
    let none = registered_to(None, false);
    assert!(key_must_be_registered(false, &p, &none, &u("carol"), &stray).is_ok());
    let err = key_must_be_registered(true, &p, &none, &u("carol"), &stray).unwrap_err();
    assert_eq!(err.error_code(), ErrorCode::KeyNotAllowed);
    assert!(err.to_string().contains("countersign keys add"), "{err}");
    assert!(key_must_be_registered(true, &p, &none, &u("alice"), &alices).is_ok());
    let carols = registered_to(Some("carol"), true);
    assert!(key_must_be_registered(true, &p, &carols, &u("carol"), &stray).is_ok());
}
