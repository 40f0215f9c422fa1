//! Refusals of what is requested, over the real API: a certificate longer than the role
//! allows, a key that is not the requester's to use, one pending request too many.

use reqwest::StatusCode;

use crate::helpers::*;

#[tokio::test]
async fn ttl_above_the_roles_max_is_refused_not_clamped() {
    let app = TestApp::spawn().await;
    let (status, body) = app.create("alice", "prod-db", Some("3h")).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_request"),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_ttl")
    );
    let (status, body) = app.create("alice", "prod-db", Some("2h")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(app.count("SELECT count(*) FROM requests"), 1);
}

/// An approver must not get access they alone approved by having a colleague request it
/// for the approver's key: a key another user registered is never certified for the
/// requester, at creation (bad input: nothing written) and again at signing (after a
/// config change, the request ends `key_not_allowed`).
#[tokio::test]
async fn a_key_registered_to_another_user_is_never_certified_for_the_requester() {
    let bobs = new_key();
    let with_bobs_key = POLICY.replace(
        "[users.bob]\ngroups = [\"dba\"]",
        &format!(
            "[users.bob]\ngroups = [\"dba\"]\nssh_keys = [\"{}\"]",
            public_line(&bobs)
        ),
    );
    let app = TestApp::spawn_with(&with_bobs_key).await;
    let events = app.count("SELECT count(*) FROM audit");
    // frank registered no keys; bob's key is still not his to ask for.
    let (status, body) = app
        .create_with_key("frank", "prod-db", None, &public_line(&bobs))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_request"),
        "{body}"
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("registered to another user"), "{message}");
    let without_fingerprint: String = message
        .split(' ')
        .filter(|w| !w.starts_with("SHA256:"))
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        !without_fingerprint.contains("bob"),
        "the owner is not named: {message}"
    );
    assert_eq!(app.count("SELECT count(*) FROM requests"), 0);
    assert_eq!(app.count("SELECT count(*) FROM audit"), events);

    // Made while nobody had registered the key, approved after bob registered it.
    let app = app.restart_with(POLICY).await;
    let (status, body) = app
        .create_with_key("frank", "prod-db", None, &public_line(&bobs))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let app = app.restart_with(&with_bobs_key).await;
    let (status, body) = app.approve("bob", &id).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "key_not_allowed"),
        "{body}"
    );
    let (_, body) = app.request("frank", &id).await;
    assert_eq!(body["status"], "refused", "{body}");
    assert_eq!(body["decision_code"], "key_not_allowed", "{body}");
    assert_eq!(app.count("SELECT count(*) FROM certificates"), 0);
    assert_eq!(
        app.count("SELECT count(*) FROM audit WHERE action = 'request.refused'"),
        1
    );
}

/// A requester who registered keys after asking gets certificates for those only: a
/// request made with another key ends `key_not_allowed` at signing.
#[tokio::test]
async fn a_request_whose_key_is_not_among_keys_registered_since_ends_at_signing() {
    let app = TestApp::spawn().await;
    let id = app.create_ok("alice", "prod-db").await;
    let app = app
        .restart_with(&POLICY.replace(
            "[users.alice]\ngroups = [\"dev\"]",
            &format!(
                "[users.alice]\ngroups = [\"dev\"]\nssh_keys = [\"{}\"]",
                public_line(&new_key())
            ),
        ))
        .await;
    let (status, body) = app.approve("bob", &id).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "key_not_allowed"),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is not one of the keys registered to alice")
    );
    assert_eq!(app.request("alice", &id).await.1["status"], "refused");
    assert_eq!(app.count("SELECT count(*) FROM certificates"), 0);
}

/// A pending request whose key this version refuses (an older one accepted it: here an
/// ECDSA "point" of zeros, not on the curve) ends `key_not_allowed` when approved, instead
/// of being signed.
#[tokio::test]
async fn a_stored_key_that_is_no_longer_accepted_ends_the_request_at_signing() {
    let app = TestApp::spawn().await;
    let id = app.create_ok("alice", "prod-db").await;
    let mut zeros = vec![4u8];
    zeros.resize(65, 0);
    let point = ssh_key::public::EcdsaPublicKey::from_sec1_bytes(&zeros).unwrap();
    let line = ssh_key::PublicKey::new(ssh_key::public::KeyData::Ecdsa(point), "")
        .to_openssh()
        .unwrap();
    let (status, body) = app.create_with_key("frank", "prod-db", None, &line).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_request"),
        "{body}"
    );
    app.sql(&format!(
        "UPDATE requests SET public_key = '{line}' WHERE id = '{id}'"
    ));
    let (status, body) = app.approve("bob", &id).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "key_not_allowed"),
        "{body}"
    );
    assert_eq!(app.request("alice", &id).await.1["status"], "refused");
    assert_eq!(app.count("SELECT count(*) FROM certificates"), 0);
}

#[tokio::test]
async fn key_must_be_one_of_the_registered_keys_when_the_user_has_any() {
    let registered = new_key();
    let policy = POLICY.replace(
        "[users.alice]\ngroups = [\"dev\"]",
        &format!(
            "[users.alice]\ngroups = [\"dev\"]\nssh_keys = [\"{} alice@laptop\"]",
            public_line(&registered)
        ),
    );
    let app = TestApp::spawn_with(&policy).await;
    let (status, body) = app.create("alice", "prod-db", None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_request"),
        "{body}"
    );
    let (status, body) = app
        .create_with_key("alice", "prod-db", None, &public_line(&registered))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // The CA's own key is never certified.
    let (status, body) = app
        .create_with_key(
            "frank",
            "prod-db",
            None,
            &app.service.ca().public_key_line(),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_request"),
        "{body}"
    );
}

/// `[requests] max_pending_per_user` (default 10): one more pending request is refused
/// with 429 `too_many_pending`, writes nothing (no request, no audit row: a limit, not a
/// decision), and room comes back when a request ends.
#[tokio::test]
async fn one_pending_request_past_the_limit_is_refused_too_many_pending() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.push(app.create_ok("alice", "prod-db").await);
    }
    let audit_rows = app.count("SELECT count(*) FROM audit");
    let (status, body) = app.create("alice", "prod-db", None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::TOO_MANY_REQUESTS, "too_many_pending"),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("10 pending"),
        "{body}"
    );
    assert_eq!(app.count("SELECT count(*) FROM requests"), 10);
    assert_eq!(app.count("SELECT count(*) FROM audit"), audit_rows);
    // Per user: frank is not held back by alice's requests.
    app.create_ok("frank", "prod-db").await;
    // An ended request frees its place.
    assert_eq!(app.cancel("alice", &ids[0]).await.0, StatusCode::OK);
    app.create_ok("alice", "prod-db").await;

    // The limit is configurable.
    let app = TestApp::spawn_with(&POLICY.replace(
        "pending_ttl = \"1h\"",
        "pending_ttl = \"1h\"\nmax_pending_per_user = 1",
    ))
    .await;
    app.create_ok("alice", "prod-db").await;
    let (status, body) = app.create("alice", "deploy", None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::TOO_MANY_REQUESTS, "too_many_pending"),
        "{body}"
    );
}

/// A disabled user hears `user_disabled` before anything about the request they name,
/// even when its stored row does not parse (the request and the disabled marks are read
/// in one query; the mark must still come first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_user_hears_so_before_a_broken_request_row() {
    use countersign::names::{RequestId, UserName};
    use countersign::service::{ServiceError, StepUp};

    let app = TestApp::spawn().await;
    let id = app.create_ok("alice", "prod-db").await;
    // bob authenticated (a token is no session: it needs no step-up), then is disabled.
    let service = app.service.clone();
    let caller = service.authenticate_credential(app.token("bob")).unwrap();
    let bob_approves = service.step_up(&caller, StepUp::Approve).unwrap();
    app.sql(&format!(
        "UPDATE requests SET role = 'not a role name!' WHERE id = '{id}'; \
         INSERT INTO disabled_users (\"user\", disabled_at, disabled_by, reason) \
         VALUES ('bob', 1, 'carol', 'test'), ('alice', 1, 'carol', 'test')"
    ));
    let request = RequestId::parse(&id).unwrap();
    let (bob, alice) = (
        UserName::parse("bob").unwrap(),
        UserName::parse("alice").unwrap(),
    );
    assert_eq!(caller.user(), &bob);
    let bob = bob_approves;
    let (approved, fetched) = tokio::task::spawn_blocking(move || {
        (
            service.approve(&bob, &request, None),
            service.certificate(&alice, &request),
        )
    })
    .await
    .unwrap();
    assert!(
        matches!(approved, Err(ServiceError::Disabled(_))),
        "{approved:?}"
    );
    assert!(
        matches!(fetched, Err(ServiceError::Disabled(_))),
        "{fetched:?}"
    );
}

/// An approval acts at its own moment, taken once its batch holds the write lock, not at
/// its plan's (made before the lock: `service/decide/plan.rs`): a request whose deadline
/// passes between the two is expired, not approved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_planned_before_the_deadline_but_run_after_it_is_too_late() {
    use countersign::error_code::ErrorCode;
    use countersign::names::RequestId;
    use countersign::service::StepUp;

    let clock = manual_clock();
    let app = TestApp::spawn_with_clock(POLICY, &clock).await;
    let id = app.create_ok("alice", "prod-db").await;
    let service = app.service.clone();
    let caller = service.authenticate_credential(app.token("bob")).unwrap();
    let bob = service.step_up(&caller, StepUp::Approve).unwrap();
    let request = RequestId::parse(&id).unwrap();
    let later = clock.clone();
    let approved = tokio::task::spawn_blocking(move || {
        let plan = service.plan_approve(&bob, &request);
        // The pending deadline (1h) passes while the approval waits for its turn.
        later.advance(std::time::Duration::from_secs(2 * 3600));
        service
            .approve_planned(&bob, &request, None, None, plan)
            .map_err(|e| e.code())
    })
    .await
    .unwrap();
    let refused = approved.expect_err("approved after its deadline");
    assert_eq!(refused, ErrorCode::Expired);
    let (_, view) = app.request("alice", &id).await;
    assert_eq!(view["status"], "expired", "{view}");
}
