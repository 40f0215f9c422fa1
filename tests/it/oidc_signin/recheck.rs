//! The hourly re-check at the provider (`daemon::recheck_round`): a group removed at the
//! provider stops counting, a person the provider no longer knows loses their sessions,
//! a provider that is down changes nothing, and a session without a refresh token keeps
//! its provider groups for an hour only. Time passes by moving the sessions' check time
//! back (the provider's clock and the CA's stay the same).

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::*;
use crate::idp::Account;
use countersign::daemon::recheck_round;
use countersign::service::Recheck;

/// Asks for refresh tokens.
const OFFLINE: &str =
    "scopes = [\"openid\", \"profile\", \"email\", \"groups\", \"offline_access\"]";

/// As if `minutes` had passed for the sessions' re-checks (the provider's word, and
/// until when it counts, `minutes` older; the next check as much sooner). The sessions'
/// own lifetimes are left alone.
fn age_checks(app: &TestApp, minutes: i64) {
    let s = minutes * 60;
    app.sql(&format!(
        "UPDATE sessions SET checked_at = checked_at - {s}, groups_until = groups_until - {s}, \
         next_check_at = next_check_at - {s}"
    ));
}

#[tokio::test]
async fn a_group_removed_at_the_provider_stops_counting_at_the_next_recheck() {
    let (idp, state) = provider();
    let with_dba = state.account("yuri", Account::new("yuri", &["okta-dba"]));
    idp.set_state(&with_dba);
    let (app, _s) = spawn(&idp, OFFLINE).await;
    let yuri = sign_in_as(&app, "yuri").await;
    assert_eq!(
        app.count("SELECT count(*) FROM sessions WHERE refresh_token IS NOT NULL"),
        1
    );
    // Sealed at rest: the provider's token is not in the database as such.
    assert_eq!(
        app.count("SELECT count(*) FROM sessions WHERE refresh_token NOT LIKE 'v1.%'"),
        0
    );
    // Nothing is due right after the sign-in.
    assert_eq!(recheck_round(&app.service).await, Vec::<Recheck>::new());
    // The provider takes dba away; within the hour the re-check notices.
    idp.set_state(&with_dba.clone().account("yuri", Account::new("yuri", &[])));
    let id = app.create_ok("alice", "prod-db").await;
    age_checks(&app, 51);
    assert_eq!(recheck_round(&app.service).await, vec![Recheck::Changed]);
    let (status, body) = approve_with(&app, &yuri, &id).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    let changed: Vec<Value> = app
        .audit("")
        .await
        .into_iter()
        .filter(|e| e["action"] == "session.groups_changed")
        .collect();
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0]["detail"]["before"], json!(["dba"]));
    assert_eq!(changed[0]["detail"]["after"], json!([]));
    // Given back: the next re-check restores it, and the session still works.
    idp.set_state(&with_dba);
    age_checks(&app, 51);
    assert_eq!(recheck_round(&app.service).await, vec![Recheck::Changed]);
    let (status, body) = approve_with(&app, &yuri, &id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_person_the_provider_no_longer_knows_loses_their_sessions() {
    let (idp, state) = provider();
    let with_yuri = state
        .clone()
        .account("yuri", Account::new("yuri", &["okta-dba"]));
    idp.set_state(&with_yuri);
    let (app, _s) = spawn(&idp, OFFLINE).await;
    let first = sign_in_as(&app, "yuri").await;
    let second = sign_in_as(&app, "yuri").await;
    assert_eq!(whoami(&app, &first).await.0, StatusCode::OK);
    // Deprovisioned at the provider (the account is gone).
    idp.set_state(&state);
    age_checks(&app, 51);
    let rounds = recheck_round(&app.service).await;
    assert!(rounds.contains(&Recheck::Withdrawn(2)), "{rounds:?}");
    for token in [&first, &second] {
        assert_eq!(whoami(&app, token).await.0, StatusCode::UNAUTHORIZED);
    }
    let withdrawn: Vec<Value> = app
        .audit("")
        .await
        .into_iter()
        .filter(|e| e["action"] == "identity.withdrawn")
        .collect();
    assert_eq!(withdrawn.len(), 1, "{withdrawn:?}");
    assert_eq!(withdrawn[0]["detail"]["user"], "yuri");
    assert_eq!(withdrawn[0]["detail"]["sessions_ended"], 2);
}

#[tokio::test]
async fn a_provider_that_is_down_changes_nothing_and_is_asked_again_soon() {
    let (idp, state) = provider();
    idp.set_state(&state.account("yuri", Account::new("yuri", &["okta-dba"])));
    let (app, _s) = spawn(&idp, OFFLINE).await;
    let yuri = sign_in_as(&app, "yuri").await;
    drop(idp);
    age_checks(&app, 51);
    assert_eq!(recheck_round(&app.service).await, vec![Recheck::Retry]);
    // The session and its groups still count.
    let (_, me) = whoami(&app, &yuri).await;
    assert_eq!(me["groups"], json!(["dba"]));
    // Tried again in five minutes, not before.
    assert_eq!(recheck_round(&app.service).await, Vec::<Recheck>::new());
    age_checks(&app, 6);
    assert_eq!(recheck_round(&app.service).await, vec![Recheck::Retry]);
    // 75 minutes after the provider last vouched for them, its groups no longer count
    // (the session itself still works, with the TOML's groups: none for yuri).
    age_checks(&app, 19);
    let (status, me) = whoami(&app, &yuri).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["groups"], json!([]), "{me}");
}

#[tokio::test]
async fn an_older_word_of_the_provider_never_outranks_a_newer_one() {
    use super::device::{confirm_and_sign_in, device_start, poll};
    // pat signs in by the device flow while in okta-dba, but polls late: meanwhile the
    // provider took dba away and a fresh sign-in said so.
    let (idp, state) = provider();
    let with_dba = state
        .clone()
        .account("pat", Account::new("pat", &["okta-dba"]));
    idp.set_state(&with_dba);
    let (app, _s) = spawn(&idp, "").await;
    let grant = device_start(&app).await;
    let url = grant["verification_uri_complete"].as_str().unwrap();
    confirm_and_sign_in(&app, url, grant["user_code"].as_str().unwrap(), "pat").await;
    // One second on (vouches are in seconds), the provider no longer has pat in okta-dba.
    app.sql("UPDATE device_logins SET vouched_at = vouched_at - 1");
    idp.set_state(&state.account("pat", Account::new("pat", &[])));
    let fresh = sign_in_as(&app, "pat").await;
    assert_eq!(whoami(&app, &fresh).await.1["groups"], json!([]));
    // The late poll makes a session from the older word: it does not bring dba back.
    let (status, body) = poll(&app, grant["device_code"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let late = body["session"].as_str().unwrap().to_owned();
    for token in [&fresh, &late] {
        assert_eq!(whoami(&app, token).await.1["groups"], json!([]));
    }
}

#[tokio::test]
async fn without_a_refresh_token_provider_groups_count_for_an_hour() {
    let (idp, state) = provider();
    idp.set_state(&state.account("yuri", Account::new("yuri", &["okta-dba"])));
    let clock = manual_clock();
    let secrets = tempfile::tempdir().unwrap();
    // The default scopes: no offline_access, no refresh token.
    let app = TestApp::spawn_with_clock(&config(&idp, secrets.path(), ""), &clock).await;
    let yuri = sign_in_as(&app, "yuri").await;
    assert_eq!(
        app.count("SELECT count(*) FROM sessions WHERE refresh_token IS NULL"),
        1
    );
    assert_eq!(whoami(&app, &yuri).await.1["groups"], json!(["dba"]));
    clock.advance(std::time::Duration::from_secs(3601));
    let (status, me) = whoami(&app, &yuri).await;
    assert_eq!(status, StatusCode::OK, "the session itself lives on");
    assert_eq!(me["groups"], json!([]), "{me}");
}
