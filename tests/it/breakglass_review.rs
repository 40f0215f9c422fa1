//! The review of break-glass uses through the API (issue 20): who may give a verdict,
//! how a review closes, an `unjustified` verdict that revokes at once (the KRL lists the
//! serial), the lists, reminders and overdue notices, and every sink told of a use.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::breakglass::{TABLE, break_ok, breakglass_policy, events_of};
use crate::helpers::*;
use crate::notify::{Receiver, of_type};

/// `POST /v1/requests/{id}/review` as `user`.
async fn review(
    app: &TestApp,
    user: &str,
    id: &str,
    verdict: &str,
    comment: &str,
) -> (StatusCode, Value) {
    let body = json!({ "verdict": verdict, "comment": comment });
    app.post(user, &format!("/v1/requests/{id}/review"), body)
        .await
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_listed_reviewers_close_a_review_never_the_invoker_and_each_once() {
    let app = TestApp::spawn_with(&breakglass_policy()).await;
    // carol is both an invoker and a reviewer: never of her own use.
    let own = id_of(&break_ok(&app, "carol").await);
    let (status, body) = review(&app, "carol", &own, "justified", "fine by me").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "self_review"),
        "{body}"
    );
    let id = id_of(&break_ok(&app, "alice").await);
    // bob may read it (an admin, a prod-db approver) but is no reviewer; dave may not
    // even read it.
    let (status, body) = review(&app, "bob", &id, "justified", "ok").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "not_a_reviewer"),
        "{body}"
    );
    let (status, body) = review(&app, "dave", &id, "justified", "ok").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    for (verdict, comment) in [
        ("maybe", "x"),
        ("justified", ""),
        ("justified", "a\u{202e}b"),
    ] {
        let (status, body) = review(&app, "erin", &id, verdict, comment).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{verdict} {comment:?}: {body}"
        );
    }
    // erin, a reviewer, may read it though she could never approve it.
    let (status, body) = app.request("erin", &id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = review(&app, "erin", &id, "justified", "INC-4211 was real").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["status"], "pending_review",
        "one verdict of two: {body}"
    );
    assert_eq!(body["breakglass"]["verdicts"][0]["reviewer"], "erin");
    let (status, body) = review(&app, "erin", &id, "justified", "again").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "already_reviewed"),
        "{body}"
    );
    let (status, body) = review(&app, "carol", &id, "justified", "agreed").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "issued", "{body}");
    assert_eq!(body["breakglass"]["outcome"], "justified");
    assert!(body["breakglass"]["closed_at"].is_string());
    assert!(
        body["certificate"]["revoked"].is_null(),
        "a justified use keeps its certificate"
    );
    let (status, body) = review(&app, "carol", &id, "unjustified", "changed my mind").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "review_closed"),
        "{body}"
    );
    // A request that was approved is no break-glass use.
    let normal = app.create_ok("alice", "deploy").await;
    app.approve("dave", &normal).await;
    let (status, body) = review(&app, "bob", &normal, "justified", "x").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "not_breakglass"),
        "{body}"
    );
    // The trail: two verdicts, the close with its outcome; the chain verifies.
    assert_eq!(events_of(&app, "breakglass.reviewed").await.len(), 2);
    let closed = events_of(&app, "breakglass.review_closed").await;
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0]["detail"]["outcome"], "justified");
    assert_eq!(closed[0]["detail"]["reviewers"], json!(["erin", "carol"]));
    let refused = events_of(&app, "attempt.refused").await;
    assert!(
        refused.iter().any(|e| e["detail"]["code"] == "self_review"),
        "{refused:?}"
    );
    // Once reviewed, alice may break the glass again.
    break_ok(&app, "alice").await;
    let (status, body) = app.get("bob", "/v1/audit/verify").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_unjustified_verdict_revokes_at_once_and_the_review_closes_unjustified() {
    // A sink that asked for verdicts hears of each (the others do not: opt-in).
    let mut hook = Receiver::new(true);
    hook.start();
    let sink = hook.sink("verdicts", r#"["breakglass.reviewed"]"#, "");
    let app = TestApp::spawn_with(&format!("{}{sink}", breakglass_policy())).await;
    let used = break_ok(&app, "alice").await;
    let id = id_of(&used);
    let (_, line) = app.certificate("alice", &id).await;
    let (status, body) = review(&app, "erin", &id, "unjustified", "no incident").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["certificate"]["revoked"]["by"], "erin", "{body}");
    assert_eq!(
        body["status"], "pending_review",
        "still one verdict to come"
    );
    // In the KRL served now, as sshd reads it.
    let krl = app.krl().await;
    assert!(crate::revocation_krl::ssh_keygen_query(
        app.dir.path(),
        &krl,
        &line
    ));
    let (status, body) = review(&app, "carol", &id, "justified", "it was real").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["breakglass"]["outcome"], "unjustified",
        "justified only if all are"
    );
    let revoked = events_of(&app, "certificate.revoked").await;
    assert_eq!(revoked.len(), 1, "revoked once: {revoked:?}");
    let told = hook
        .wait_for(10, |e| of_type(e, "breakglass.reviewed").len() == 2)
        .await;
    // Deliveries may arrive in any order: the one after both verdicts says the outcome.
    let verdicts = of_type(&told, "breakglass.reviewed");
    let last = verdicts
        .iter()
        .map(|e| &e["data"]["request"])
        .find(|r| r["breakglass"]["reviews_received"] == 2)
        .unwrap_or_else(|| panic!("{told:?}"));
    assert_eq!(last["breakglass"]["outcome"], "unjustified", "{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uses_under_review_are_listed_as_pending_review_to_whoever_reviews_them() {
    let app = TestApp::spawn_with(&breakglass_policy()).await;
    let id = id_of(&break_ok(&app, "alice").await);
    let normal = app.create_ok("alice", "prod-db").await;
    app.approve("bob", &normal).await;
    for user in ["erin", "bob", "alice"] {
        let (status, body) = app.get(user, "/v1/requests?status=pending_review").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(listed_ids(&body), vec![id.clone()], "{user}");
    }
    let (_, body) = app.get("dave", "/v1/requests?status=pending_review").await;
    assert!(listed_ids(&body).is_empty(), "{body}");
    let (_, body) = app.get("bob", "/v1/requests?status=issued").await;
    assert_eq!(
        listed_ids(&body),
        vec![normal.clone()],
        "under review is not issued"
    );
    review(&app, "erin", &id, "justified", "ok").await;
    review(&app, "carol", &id, "justified", "ok").await;
    let (_, body) = app.get("bob", "/v1/requests?status=pending_review").await;
    assert!(listed_ids(&body).is_empty(), "{body}");
    let (_, body) = app.get("bob", "/v1/requests?status=issued").await;
    assert_eq!(listed_ids(&body).len(), 2, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sink_hears_of_a_use_within_seconds_and_of_late_reviews_once() {
    let mut hook = Receiver::new(true);
    hook.start();
    let mut slack = Receiver::new(false);
    slack.start();
    let mut dba = Receiver::new(true);
    dba.start();
    // Sinks that asked for another role's creations only: they hear of break-glass all
    // the same (that it happened, not the request's details); one of prod-db's hears all.
    let sinks = format!(
        "{}{}{}",
        hook.sink("hook", r#"["request.created"]"#, r#"roles = ["ops"]"#),
        slack.sink("slack", r#"["request.created"]"#, r#"roles = ["ops"]"#),
        dba.sink("dba", r#"["request.created"]"#, r#"roles = ["prod-db"]"#)
    );
    let clock = manual_clock();
    let app = TestApp::spawn_with_clock(&format!("{POLICY}{TABLE}{sinks}"), &clock).await;
    let id = id_of(&break_ok(&app, "alice").await);
    let started = std::time::Instant::now();
    let events = hook
        .wait_for(5, |e| of_type(e, "breakglass.used").len() == 1)
        .await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let used = &of_type(&events, "breakglass.used")[0]["data"]["request"];
    assert_eq!(used["id"], id.as_str());
    assert_eq!(used["status"], "pending_review");
    assert_eq!(
        (&used["requester"], &used["role"]),
        (&json!("alice"), &json!("prod-db"))
    );
    assert_eq!(used["breakglass"]["reviews_required"], 2);
    assert!(
        used["serial"].is_null() && used["reason"].is_null(),
        "{used}"
    );
    let events = dba
        .wait_for(5, |e| of_type(e, "breakglass.used").len() == 1)
        .await;
    let full = &of_type(&events, "breakglass.used")[0]["data"]["request"];
    assert!(full["serial"].is_string(), "{full}");
    assert_eq!(full["reason"], "INC-4211 db down");
    let said = |needle: &'static str| {
        move |e: &[Value]| {
            e.iter()
                .filter(|m| m["text"].as_str().is_some_and(|t| t.contains(needle)))
                .count()
                == 1
        }
    };
    slack.wait_for(5, said("BREAK-GLASS")).await;
    // Nothing is due yet; at three quarters of review_within (24h) a reminder; past it,
    // an overdue notice; each once, however often the sweep runs. (Told to the Slack
    // sink: a signed webhook's receiver refuses a timestamp 25 hours ahead of its own
    // clock, as Standard Webhooks receivers should.)
    assert_eq!(app.service.remind_breakglass().unwrap(), 0);
    clock.advance(Duration::from_secs(19 * 3600));
    assert_eq!(app.service.remind_breakglass().unwrap(), 1);
    assert_eq!(app.service.remind_breakglass().unwrap(), 0);
    slack.wait_for(10, said("still waits for its review")).await;
    clock.advance(Duration::from_secs(6 * 3600));
    assert_eq!(app.service.remind_breakglass().unwrap(), 1);
    assert_eq!(app.service.remind_breakglass().unwrap(), 0);
    slack.wait_for(10, said("past its review deadline")).await;
    let (_, body) = app.request("alice", &id).await;
    assert_eq!(body["breakglass"]["overdue"], true, "{body}");
    let reminded = events_of(&app, "breakglass.reminded").await;
    assert_eq!(reminded.len(), 1);
    assert_eq!(reminded[0]["actor"], "countersign");
    assert_eq!(events_of(&app, "breakglass.overdue").await.len(), 1);
    let text = app.metrics().await;
    assert!(text.contains("countersign_breakglass_overdue 1"), "{text}");
    // A closed review is never reminded of.
    review(&app, "erin", &id, "justified", "ok").await;
    review(&app, "carol", &id, "justified", "ok").await;
    clock.advance(Duration::from_secs(48 * 3600));
    assert_eq!(app.service.remind_breakglass().unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unjustified_verdict_revokes_a_certificate_just_past_its_end_too() {
    // A server whose clock lags by up to the backdate still takes a certificate that
    // has just ended by the CA's clock: the verdict must reach the KRL all the same.
    let clock = manual_clock();
    let app = TestApp::spawn_with_clock(&breakglass_policy(), &clock).await;
    let id = id_of(&break_ok(&app, "alice").await);
    clock.advance(Duration::from_secs(30 * 60 + 20));
    let (status, body) = review(&app, "erin", &id, "unjustified", "no incident").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["certificate"]["revoked"]["by"], "erin", "{body}");
}

/// An admin's allowance of one more use is told to the sinks that ask for it (opt-in):
/// about the use still waiting for its review, with who allowed whom.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowance_is_told_to_the_sinks_that_ask_for_it() {
    let mut hook = Receiver::new(true);
    hook.start();
    let mut other = Receiver::new(true);
    other.start();
    let sinks = format!(
        "{}{}",
        hook.sink("allowances", r#"["breakglass.allowed"]"#, ""),
        other.sink("verdicts", r#"["breakglass.reviewed"]"#, "")
    );
    let app = TestApp::spawn_with(&format!("{}{sinks}", breakglass_policy())).await;
    let id = id_of(&break_ok(&app, "alice").await);
    let (status, body) = app
        .post("bob", "/v1/breakglass/allow", json!({ "user": "alice" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let told = hook
        .wait_for(10, |e| {
            !of_type(e, "breakglass.allowed").is_empty()
                && !of_type(e, "breakglass.used").is_empty()
        })
        .await;
    let allowed = of_type(&told, "breakglass.allowed");
    assert_eq!(allowed.len(), 1, "{told:?}");
    let data = &allowed[0]["data"];
    assert_eq!(data["request"]["id"], id.as_str(), "{data}");
    assert_eq!(data["request"]["status"], "pending_review", "{data}");
    assert_eq!(
        data["allowance"],
        json!({ "user": "alice", "allowed_by": "bob" })
    );
    // Every sink hears of the use itself; only those that ask hear of the allowance.
    let heard = other
        .wait_for(10, |e| !of_type(e, "breakglass.used").is_empty())
        .await;
    assert!(
        of_type(&heard, "breakglass.allowed").is_empty(),
        "{heard:?}"
    );
    assert_eq!(of_type(&told, "breakglass.used").len(), 1, "{told:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_who_allowed_one_more_use_does_not_review_that_use() {
    // erin reviews (group security) and is an admin: she may allow alice one more use.
    let policy = breakglass_policy().replace("[users.erin]\n", "[users.erin]\nadmin = true\n");
    assert!(policy.contains("admin = true\ngroups = [\"security\"]"));
    let app = TestApp::spawn_with(&policy).await;
    let first = break_ok(&app, "alice").await;
    let (status, body) = app
        .post("erin", "/v1/breakglass/allow", json!({ "user": "alice" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let second = break_ok(&app, "alice").await;
    assert_eq!(second["breakglass"]["allowed_by"], "erin");

    let (status, body) = review(&app, "erin", &id_of(&second), "justified", "mine").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "self_review", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("erin allowed this break-glass use"),
        "{body}"
    );
    // The refusal is on the record, and the use she did not allow she reviews.
    let refused = events_of(&app, "attempt.refused").await;
    assert!(
        refused.iter().any(|e| e["actor"] == "erin"
            && e["request_id"] == second["id"]
            && e["detail"]["code"] == "self_review"),
        "{refused:?}"
    );
    let (status, body) = review(&app, "erin", &id_of(&first), "justified", "ok").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(events_of(&app, "breakglass.reviewed").await.len() == 1);
}

/// An `unjustified` verdict is a stop: the invoker breaks the glass again only once an
/// admin allows it (an attacker trial broke it again at once), and that allowance is
/// spent by one use. After a `justified` one, no allowance is needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_unjustified_verdict_the_next_use_needs_an_admins_allowance() {
    use crate::breakglass::break_glass;
    let app = TestApp::spawn_with(&breakglass_policy()).await;
    let id = id_of(&break_ok(&app, "alice").await);
    let (status, body) = review(&app, "erin", &id, "unjustified", "no incident").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = review(&app, "carol", &id, "justified", "maybe").await;
    assert_eq!(
        body["breakglass"]["outcome"], "unjustified",
        "{status} {body}"
    );

    let (status, body) = break_glass(&app, "alice", "prod-db", "INC-9 again", None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "unjustified_breakglass"),
        "{body}"
    );
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&id) && message.contains("breakglass allow alice"),
        "{message}"
    );
    let refused = events_of(&app, "attempt.refused").await;
    assert!(
        refused
            .iter()
            .any(|e| e["detail"]["code"] == "unjustified_breakglass"),
        "{refused:?}"
    );

    let (status, body) = app
        .post("bob", "/v1/breakglass/allow", json!({ "user": "alice" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (&body["unjustified"], &body["unreviewed"]),
        (&json!(id), &Value::Null)
    );
    let second = break_ok(&app, "alice").await;
    assert_eq!(second["breakglass"]["allowed_by"], "bob");
    // Spent: with that use reviewed justified, the next needs nothing.
    let second = id_of(&second);
    for reviewer in ["carol", "erin"] {
        let (status, body) = review(&app, reviewer, &second, "justified", "real").await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let third = break_ok(&app, "alice").await;
    assert!(third["breakglass"]["allowed_by"].is_null(), "{third}");
}
