//! On either backend (the PostgreSQL pass runs this too): a key the signer registered
//! with proof of possession signs for them; a signature over other bytes, in another
//! namespace, or by a key nobody registered counts for nothing; each refusal is on the
//! record and the policy in force stays.

use serde_json::Value;

use crate::helpers::{POLICY, TestApp};
use crate::keys::{events, key_file, registered, sign};

const NAMESPACE: &str = "countersign-policy";

#[tokio::test]
async fn a_registered_key_signs_and_other_signatures_count_for_nothing() {
    let app = TestApp::spawn().await;
    let (laptop, laptop_line) = registered(&app, "carol", "laptop").await;
    let (bob_key, bob_line) = key_file(&app, "bob_key");
    let policy = format!(
        "{}\n[policy]\nsigners = [\"user:bob\", \"user:carol\"]\nsignatures_required = 2\n\
         version = 1\n",
        POLICY.replacen(
            "[users.bob]\n",
            &format!("[users.bob]\nssh_keys = [\"{bob_line}\"]\n"),
            1
        )
    );
    let bytes = app.config_of(&policy).text.to_string();
    let dir = std::path::PathBuf::from(format!("{}.sig.d", app.config_path().display()));
    std::fs::create_dir_all(&dir).unwrap();
    let put =
        |user: &str, sig: String| std::fs::write(dir.join(format!("{user}.sig")), sig).unwrap();
    // The outcome and, if refused, its message.
    let reload = || {
        app.service
            .reload(app.config_of(&policy), "operator")
            .map(drop)
            .map_err(|e| e.to_string())
    };

    put("bob", sign(&bob_key, NAMESPACE, "another file"));
    put("carol", sign(&laptop, "file", &bytes));
    let refused = reload().expect_err("no valid signature");
    assert!(refused.contains("0 of the 2"), "{refused}");
    let (stray, _) = key_file(&app, "stray");
    put("carol", sign(&stray, NAMESPACE, &bytes));
    assert!(reload().is_err(), "a key nobody registered signed");
    assert!(
        app.service.config().policy.signing.is_none(),
        "the old policy stays"
    );

    // Properly signed, but for another CA (a staging copy): refused.
    let staging = policy.replace(
        "version = 1\n",
        "version = 1\nca = \"SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"\n",
    );
    let staging_bytes = app.config_of(&staging).text.to_string();
    put("bob", sign(&bob_key, NAMESPACE, &staging_bytes));
    put("carol", sign(&laptop, NAMESPACE, &staging_bytes));
    let refused = app
        .service
        .reload(app.config_of(&staging), "operator")
        .map(drop)
        .map_err(|e| e.to_string())
        .expect_err("a file for another CA");
    assert!(refused.contains("is not this CA"), "{refused}");
    // Named for this CA: loaded, with bob's config key and carol's registered key.
    let policy = policy.replace(
        "version = 1\n",
        &format!("version = 1\nca = \"{}\"\n", app.service.ca().fingerprint()),
    );
    let bytes = app.config_of(&policy).text.to_string();
    put("bob", sign(&bob_key, NAMESPACE, &bytes));
    put("carol", sign(&laptop, NAMESPACE, &bytes));
    let reload = || {
        app.service
            .reload(app.config_of(&policy), "operator")
            .map(drop)
            .map_err(|e| e.to_string())
    };
    assert!(
        reload().is_ok(),
        "bob's config key and carol's registered key"
    );
    assert!(app.service.config().policy.signing.is_some());

    let refusals = events(&app, "policy.refused").await;
    assert_eq!(refusals.len(), 3);
    let why = |e: &Value| e["detail"]["rejected"].to_string();
    assert!(
        why(&refusals[0]).contains("not over this file's bytes"),
        "{}",
        why(&refusals[0])
    );
    assert!(
        why(&refusals[0]).contains("namespace \\\"file\\\""),
        "{}",
        why(&refusals[0])
    );
    assert!(
        why(&refusals[1]).contains("not one of carol's keys"),
        "{}",
        why(&refusals[1])
    );
    let loaded = events(&app, "policy.loaded").await;
    let signoff = &loaded.last().unwrap()["detail"]["signoff"];
    assert_eq!(signoff["basis"], "bootstrap");
    let laptop_fp = crate::keys::fingerprint(&laptop_line);
    assert!(
        signoff["signed_by"].to_string().contains(&laptop_fp),
        "{signoff}"
    );

    // `policy allowed-signers` (the same calls) prints carol's registered key for the file
    // in force (it was left out); a stored line whose recorded fingerprint is another
    // key's is never printed.
    let config = app.config_of(&policy);
    let signers = || {
        let local = countersign::service::Local::open(&config).unwrap();
        let outcome = local.policy_outcome(&config).unwrap();
        local.signer_keys(&config, &outcome).unwrap()
    };
    let canonical = |line: &str| {
        countersign::pubkey::SubjectKey::parse(line)
            .unwrap()
            .to_openssh()
    };
    let (known, unknown) = signers();
    let carols: Vec<&str> = known
        .iter()
        .filter(|k| k.user.as_str() == "carol")
        .map(|k| k.public_key.as_str())
        .collect();
    assert_eq!(carols, [canonical(&laptop_line)], "{known:?}");
    assert!(unknown.is_empty(), "{unknown:?}");
    let (_, stray_line) = key_file(&app, "stray");
    app.sql(&format!(
        "UPDATE registered_keys SET public_key = '{}' WHERE fingerprint = '{laptop_fp}'",
        canonical(&stray_line)
    ));
    let (known, _) = signers();
    assert!(
        known
            .iter()
            .all(|k| k.user.as_str() != "carol" && k.public_key != canonical(&stray_line)),
        "{known:?}"
    );
    // A signer disabled in the database signs for nothing: left out.
    assert!(known.iter().any(|k| k.user.as_str() == "bob"), "{known:?}");
    app.sql(
        "INSERT INTO disabled_users (\"user\", disabled_at, disabled_by, reason) \
         VALUES ('bob', 1, 'carol', 'test')",
    );
    let (known, unknown) = signers();
    assert!(
        known.is_empty() && unknown.is_empty(),
        "{known:?} {unknown:?}"
    );
}
