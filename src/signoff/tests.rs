//! The decision about a file's signatures, with signatures made by ssh-key in the
//! SSHSIG format `ssh-keygen -Y sign` writes (the integration tests use ssh-keygen).

use std::collections::BTreeMap;
use std::convert::Infallible;

use serde_json::{Value, json};
use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey, SshSig};

use super::*;

const FILE: &[u8] = b"[users.alice]\nadmin = true\n# the exact bytes signed\n";

struct Key(PrivateKey);

impl Key {
    fn new() -> Key {
        Key(PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap())
    }
    fn fingerprint(&self) -> String {
        self.0.public_key().fingerprint(HashAlg::Sha256).to_string()
    }
    fn sign(&self, namespace: &str, bytes: &[u8]) -> String {
        self.0
            .sign(namespace, HashAlg::Sha512, bytes)
            .unwrap()
            .to_pem(LineEnding::LF)
            .unwrap()
    }
}

/// A policy summary: users with their key fingerprints, and `[policy]` if given.
fn summary(users: &[(&str, &Key)], policy: Option<(&[&str], u32, u64)>) -> Value {
    let mut s = json!({ "users": {} });
    for (name, key) in users {
        s["users"][*name] = json!({ "ssh_keys": [key.fingerprint()] });
    }
    if let Some((signers, required, version)) = policy {
        s["policy"] =
            json!({ "signers": signers, "signatures_required": required, "version": version });
    }
    s
}

/// `summary` as read from a file whose SHA-256 is `file` (what `policy.loaded` records).
fn from_file(mut summary: Value, file: &str) -> Value {
    summary["policy"]["file_sha256"] = json!(file);
    summary
}

/// A signatures folder holding `files` (name, text).
fn folder(files: &[(&str, String)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

fn no_facts(_: &UserName) -> Result<(Vec<String>, bool), Infallible> {
    Ok((Vec::new(), false))
}

fn decide(running: Option<&Value>, new: &Value, dir: &tempfile::TempDir) -> Outcome {
    check(running, new, FILE, &Folder::read(dir.path()), no_facts).unwrap()
}

fn signers(o: &Outcome) -> Vec<&str> {
    o.tally.valid.iter().map(|v| v.user.as_str()).collect()
}

#[test]
fn the_first_signed_policy_is_signed_by_its_own_signers() {
    let (alice, carol) = (Key::new(), Key::new());
    let new = summary(
        &[("alice", &alice), ("carol", &carol)],
        Some((&["alice", "carol"], 2, 1)),
    );
    let both = folder(&[
        ("alice.sig", alice.sign(NAMESPACE, FILE)),
        ("carol.sig", carol.sign(NAMESPACE, FILE)),
    ]);
    let o = decide(None, &new, &both);
    assert_eq!(o.refusal, None);
    assert_eq!(o.authority.as_ref().unwrap().basis, Basis::Bootstrap);
    assert_eq!(signers(&o), ["alice", "carol"]);
    // An unsigned policy in force is bootstrapped the same way.
    let unsigned = summary(&[("alice", &alice)], None);
    let o = decide(Some(&unsigned), &new, &both);
    assert_eq!(o.refusal, None);
    assert_eq!(o.authority.unwrap().basis, Basis::Bootstrap);
    // One of two is not enough.
    let one = folder(&[("alice.sig", alice.sign(NAMESPACE, FILE))]);
    let o = decide(None, &new, &one);
    assert!(
        o.refusal.as_deref().unwrap().contains("1 of the 2"),
        "{o:?}"
    );
    assert_eq!(o.missing(), [UserName::parse("carol").unwrap()]);
}

#[test]
fn a_change_counts_only_the_running_signers_and_their_keys() {
    let (alice, carol, eve) = (Key::new(), Key::new(), Key::new());
    let running = summary(
        &[("alice", &alice), ("carol", &carol)],
        Some((&["alice", "carol"], 2, 7)),
    );
    // The change appoints eve and gives carol a new key: neither counts.
    let carol_new = Key::new();
    let new = summary(
        &[("alice", &alice), ("carol", &carol_new), ("eve", &eve)],
        Some((&["alice", "eve"], 2, 8)),
    );
    let dir = folder(&[
        ("alice.sig", alice.sign(NAMESPACE, FILE)),
        ("eve.sig", eve.sign(NAMESPACE, FILE)),
        ("carol.sig", carol_new.sign(NAMESPACE, FILE)),
    ]);
    let o = decide(Some(&running), &new, &dir);
    assert_eq!(signers(&o), ["alice"]);
    assert!(o.refusal.is_some());
    let why: BTreeMap<&str, &str> = o
        .tally
        .rejected
        .iter()
        .map(|r| (r.file.as_str(), r.why.as_str()))
        .collect();
    assert!(why["eve.sig"].contains("not a signer"), "{why:?}");
    assert!(
        why["carol.sig"].contains("not one of carol's keys"),
        "{why:?}"
    );
    // carol's running key signs: enough.
    std::fs::write(dir.path().join("carol.sig"), carol.sign(NAMESPACE, FILE)).unwrap();
    let o = decide(Some(&running), &new, &dir);
    assert_eq!(o.refusal, None);
    assert_eq!(o.authority.unwrap().basis, Basis::Running);
}

#[test]
fn signatures_over_other_bytes_in_another_namespace_or_by_others_count_for_nothing() {
    let (alice, carol, mallory) = (Key::new(), Key::new(), Key::new());
    let running = summary(
        &[("alice", &alice), ("carol", &carol)],
        Some((&["alice", "carol"], 1, 1)),
    );
    let new = summary(
        &[("alice", &alice), ("carol", &carol)],
        Some((&["alice", "carol"], 1, 2)),
    );
    for (name, text) in [
        ("alice.sig", alice.sign(NAMESPACE, b"another file")),
        ("alice.sig", alice.sign("file", FILE)),
        ("alice.sig", mallory.sign(NAMESPACE, FILE)),
        // alice's signature filed as carol's: not one of carol's keys.
        ("carol.sig", alice.sign(NAMESPACE, FILE)),
        ("alice.sig", "not a signature".to_owned()),
        ("alice.txt", alice.sign(NAMESPACE, FILE)),
    ] {
        let o = decide(Some(&running), &new, &folder(&[(name, text)]));
        assert!(o.tally.valid.is_empty(), "{name}: {o:?}");
        assert!(o.refusal.is_some(), "{name}");
    }
    // The same key for two signers counts once.
    let twice = summary(
        &[("alice", &alice), ("carol", &alice)],
        Some((&["alice", "carol"], 2, 1)),
    );
    let dir = folder(&[
        ("alice.sig", alice.sign(NAMESPACE, FILE)),
        ("carol.sig", alice.sign(NAMESPACE, FILE)),
    ]);
    let o = decide(None, &twice, &dir);
    assert_eq!(o.tally.valid.len(), 1, "{o:?}");
    assert!(o.refusal.is_some());
}

#[test]
fn registered_keys_count_and_disabled_signers_do_not() {
    let (alice, carol, laptop) = (Key::new(), Key::new(), Key::new());
    let running = summary(
        &[("alice", &alice), ("carol", &carol)],
        Some((&["alice", "carol"], 2, 1)),
    );
    let new = summary(
        &[("alice", &alice), ("carol", &carol)],
        Some((&["alice", "carol"], 2, 2)),
    );
    let dir = folder(&[
        ("alice.sig", alice.sign(NAMESPACE, FILE)),
        ("carol.sig", laptop.sign(NAMESPACE, FILE)),
    ]);
    let registered = |u: &UserName| -> Result<(Vec<String>, bool), Infallible> {
        Ok(match u.as_str() {
            "carol" => (vec![laptop.fingerprint()], false),
            _ => (Vec::new(), false),
        })
    };
    let o = check(
        Some(&running),
        &new,
        FILE,
        &Folder::read(dir.path()),
        registered,
    )
    .unwrap();
    assert_eq!(o.refusal, None, "{o:?}");
    let carol_disabled = |u: &UserName| -> Result<(Vec<String>, bool), Infallible> {
        Ok((vec![laptop.fingerprint()], u.as_str() == "carol"))
    };
    let o = check(
        Some(&running),
        &new,
        FILE,
        &Folder::read(dir.path()),
        carol_disabled,
    )
    .unwrap();
    assert_eq!(signers(&o), ["alice"]);
    assert!(o.refusal.is_some());
}

#[test]
fn the_version_must_grow_unless_the_policy_is_the_one_in_force() {
    let (alice, carol) = (Key::new(), Key::new());
    let users = [("alice", &alice), ("carol", &carol)];
    let running = summary(&users, Some((&["alice", "carol"], 1, 7)));
    let dir = folder(&[("alice.sig", alice.sign(NAMESPACE, FILE))]);
    // The very file in force (a restart): fine, signatures or not.
    let in_force = from_file(running.clone(), "f1");
    let o = decide(Some(&in_force), &in_force, &folder(&[]));
    assert!(o.in_force && o.refusal.is_none(), "{o:?}");
    // The same policy from another file at the same version: refused.
    let o = decide(Some(&in_force), &from_file(running.clone(), "f2"), &dir);
    assert!(o.refusal.as_deref().unwrap().contains("differs"), "{o:?}");
    // A version too far above the running one could freeze the policy: refused.
    let far = summary(
        &users,
        Some((&["alice", "carol"], 1, 7 + MAX_VERSION_STEP + 1)),
    );
    let o = decide(Some(&running), &far, &dir);
    assert!(
        o.refusal.as_deref().unwrap().contains("more than 1000"),
        "{o:?}"
    );
    let near = summary(&users, Some((&["alice", "carol"], 1, 7 + MAX_VERSION_STEP)));
    assert_eq!(decide(Some(&running), &near, &dir).refusal, None);
    // Another policy with the same or an older version: a replay, refused however signed.
    for version in [7, 6] {
        let mut older = summary(&users, Some((&["alice", "carol"], 1, version)));
        older["users"]["mallory"] = json!({ "ssh_keys": [] });
        let o = decide(Some(&running), &older, &dir);
        assert!(
            o.refusal.as_deref().unwrap().contains("not greater"),
            "{o:?}"
        );
    }
    // A file without [policy] has no version: never accepted while a signed policy is in
    // force, however signed (its signature could be replayed forever).
    let unsigned = summary(&users, None);
    let o = decide(Some(&running), &unsigned, &dir);
    assert!(
        o.refusal.as_deref().unwrap().contains("version = 8"),
        "{o:?}"
    );
    // Signing retires with a greater version, signed by the running signers.
    let retire = summary(&users, Some((&[], 0, 8)));
    assert_eq!(decide(Some(&running), &retire, &dir).refusal, None);
    assert!(
        decide(Some(&running), &retire, &folder(&[]))
            .refusal
            .is_some()
    );
    // Once retired, a first signed policy again needs a greater version.
    let again = summary(&users, Some((&["alice", "carol"], 1, 8)));
    let o = decide(Some(&retire), &again, &dir);
    assert!(
        o.refusal.as_deref().unwrap().contains("not greater"),
        "{o:?}"
    );
    let again = summary(&users, Some((&["alice", "carol"], 1, 9)));
    let o = decide(Some(&retire), &again, &dir);
    assert_eq!(
        (o.refusal, o.authority.unwrap().basis),
        (None, Basis::Bootstrap)
    );
    // Once retired, the section stays (with it the floor): a file without it is refused,
    // and the retired version does not go down.
    let o = decide(Some(&retire), &unsigned, &folder(&[]));
    assert!(o.refusal.as_deref().unwrap().contains("retired"), "{o:?}");
    let lower = summary(&users, Some((&[], 0, 7)));
    assert!(
        decide(Some(&retire), &lower, &folder(&[]))
            .refusal
            .is_some()
    );
    let same = summary(&users, Some((&[], 0, 8)));
    assert_eq!(decide(Some(&retire), &same, &folder(&[])).refusal, None);
    let far = summary(&users, Some((&[], 0, 8 + MAX_VERSION_STEP + 1)));
    assert!(decide(Some(&retire), &far, &folder(&[])).refusal.is_some());
    // Nothing signed before or now: nothing to check.
    let o = decide(Some(&unsigned), &unsigned, &folder(&[]));
    assert!(o.authority.is_none() && o.refusal.is_none());
}

#[test]
fn the_signatures_folder_is_beside_the_file() {
    assert_eq!(
        signatures_dir(Path::new("/etc/countersign/countersign.toml")),
        Path::new("/etc/countersign/countersign.toml.sig.d")
    );
}

#[test]
fn a_link_or_a_fifo_is_not_read_and_does_not_hang_the_check() {
    let alice = Key::new();
    let new = summary(&[("alice", &alice)], Some((&["alice"], 1, 1)));
    let dir = folder(&[("real", alice.sign(NAMESPACE, FILE))]);
    std::os::unix::fs::symlink(dir.path().join("real"), dir.path().join("alice.sig")).unwrap();
    let o = decide(None, &new, &dir);
    assert!(
        o.tally.valid.is_empty(),
        "a symbolic link was followed: {o:?}"
    );
    std::fs::remove_file(dir.path().join("alice.sig")).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(dir.path().join("alice.sig"))
        .status()
        .unwrap();
    assert!(made.success());
    // Opening a FIFO for reading without O_NONBLOCK waits for a writer: bounded here, so
    // that a regression fails instead of hanging the suite.
    let (done, got) = std::sync::mpsc::channel();
    let path = dir.path().to_owned();
    std::thread::spawn(move || {
        let _ = done.send(Folder::read(&path));
    });
    let read = got
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("reading the folder hung on a FIFO");
    let o = check(None, &new, FILE, &read, no_facts).unwrap();
    assert!(o.refusal.is_some() && o.tally.valid.is_empty(), "{o:?}");
}

#[test]
fn oversized_files_a_crowded_folder_and_an_unreadable_one_are_named_with_why() {
    let alice = Key::new();
    let new = summary(&[("alice", &alice)], Some((&["alice"], 1, 1)));
    let mut big = alice.sign(NAMESPACE, FILE);
    big.push_str(&"\n".repeat(MAX_SIGNATURE_BYTES as usize));
    let o = decide(None, &new, &folder(&[("alice.sig", big)]));
    assert!(o.tally.valid.is_empty(), "{o:?}");
    assert!(
        o.tally.rejected.iter().any(|r| r.why.contains("too large")),
        "{o:?}"
    );

    let crowd: Vec<(String, String)> = (0..MAX_FILES + 10)
        .map(|i| (format!("note{i}"), String::new()))
        .collect();
    let crowd: Vec<(&str, String)> = crowd.iter().map(|(n, t)| (n.as_str(), t.clone())).collect();
    let o = decide(None, &new, &folder(&crowd));
    let past = o
        .tally
        .rejected
        .iter()
        .filter(|r| r.why.contains("the rest were not read"));
    assert_eq!(past.count(), 1, "{:?}", o.tally.rejected.len());

    let dir = tempfile::tempdir().unwrap();
    let not_a_folder = dir.path().join("countersign.toml.sig.d");
    std::fs::write(&not_a_folder, "").unwrap();
    let o = check(None, &new, FILE, &Folder::read(&not_a_folder), no_facts).unwrap();
    assert!(o.refusal.is_some());
    assert!(
        o.tally
            .rejected
            .iter()
            .any(|r| r.why.contains("cannot be read")),
        "{o:?}"
    );
}

#[test]
fn a_recorded_policy_section_that_breaks_its_rules_is_refused() {
    let alice = Key::new();
    let good = summary(&[("alice", &alice)], Some((&["alice"], 1, 1)));
    assert!(recorded_signing(&good).unwrap().is_some());
    for (signers, required, version) in [
        (&["alice"][..], 0, 1),
        (&["alice"][..], 2, 1),
        (&["alice"][..], 1, 0),
        (&["carol", "alice"][..], 1, 1),
        (&["alice", "alice"][..], 1, 1),
        (&[][..], 1, 4),
    ] {
        let bad = summary(&[("alice", &alice)], Some((signers, required, version)));
        assert!(
            recorded_signing(&bad).is_err(),
            "{signers:?} {required} {version}"
        );
    }
    let retired = summary(&[], Some((&[], 0, 4)));
    assert!(recorded_signing(&retired).unwrap().is_some());
}

#[test]
fn the_very_file_in_force_starts_again_even_when_a_signer_was_disabled_since() {
    let (alice, carol) = (Key::new(), Key::new());
    let running = summary(
        &[("alice", &alice), ("carol", &carol)],
        Some((&["alice", "carol"], 2, 3)),
    );
    let disabled = |_: &UserName| Ok::<_, Infallible>((Vec::new(), true));
    let running = from_file(running, "f");
    let o = check(Some(&running), &running, FILE, &Folder::default(), disabled).unwrap();
    assert!(o.in_force && o.refusal.is_none(), "{o:?}");
}

#[test]
fn rsa_with_sha1_and_unprintable_names_count_for_nothing() {
    let alice = Key::new();
    let new = summary(&[("alice", &alice)], Some((&["alice"], 1, 1)));
    let good = alice.0.sign(NAMESPACE, HashAlg::Sha512, FILE).unwrap();
    let sha1 = ssh_key::Signature::new(
        Algorithm::Rsa { hash: None },
        good.signature_bytes().to_vec(),
    )
    .unwrap();
    let forged = SshSig::new(good.public_key().clone(), NAMESPACE, HashAlg::Sha512, sha1)
        .unwrap()
        .to_pem(LineEnding::LF)
        .unwrap();
    let dir = folder(&[("alice.sig", forged), ("\u{1b}[2Kvalid.sig", String::new())]);
    let o = decide(None, &new, &dir);
    assert!(o.tally.valid.is_empty());
    let why: Vec<String> = o
        .tally
        .rejected
        .iter()
        .map(|r| format!("{}: {}", r.file, r.why))
        .collect();
    assert!(why.iter().any(|w| w.contains("SHA-1")), "{why:?}");
    assert!(
        why.iter().any(|w| w.starts_with("??2Kvalid.sig")),
        "{why:?}"
    );
}
