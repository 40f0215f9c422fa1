//! A whole data folder restored from an older copy — key, database and state mark
//! together, which the CA host cannot tell from the real thing (SECURITY.md T14) — must
//! not un-revoke on the servers. Found by an operator's trial and a penetration test
//! (2026-12-07): the servers' `krl --out` refused the restored CA's older KRL once, but
//! took the next one, whose version a new revocation had brought back up, without the
//! revocation the copy forgot; the certificate logged in to sshd again.

use reqwest::StatusCode;

use crate::helpers::*;
use crate::sshd::{ca_and_enforcing_sshd, issue, krl_from, logs_in, refresh_krl};
use crate::sshd_helper::current_user;

/// `app` stopped, its data folder replaced by `from` (copied whole), started again.
async fn with_data_folder(mut app: TestApp, from: &std::path::Path) -> TestApp {
    app.stop().await;
    let data = app.dir.path().join("data");
    std::fs::remove_dir_all(&data).unwrap();
    copy_folder(from, &data);
    app.restart().await
}

fn copy_folder(from: &std::path::Path, to: &std::path::Path) {
    let out = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn revoke(app: &TestApp, serial: &str, reason: &str) {
    let (status, body) = app
        .post(
            "bob",
            &format!("/v1/certificates/{serial}/revoke"),
            serde_json::json!({ "reason": reason }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_data_folder_restored_whole_never_unrevokes_on_the_servers() {
    let login = current_user();
    // SQLite: the whole state is the data folder.
    let (mut app, krl, sshd) = ca_and_enforcing_sshd(&login).await;
    let (key_a, cert_a, serial_a) = issue(&app, "laptop", "30m").await;
    let (key_b, cert_b, serial_b) = issue(&app, "desktop", "30m").await;
    let a_logs_in = || logs_in(&sshd, &login, &key_a, &cert_a);
    let b_logs_in = || logs_in(&sshd, &login, &key_b, &cert_b);
    assert!(a_logs_in() && b_logs_in(), "{}", sshd.log());

    // A snapshot of the whole folder (a VM or volume backup), then A is revoked.
    app.stop().await;
    let snapshot = app.dir.path().join("snapshot");
    copy_folder(&app.dir.path().join("data"), &snapshot);
    app = app.restart().await;
    revoke(&app, &serial_a, "laptop stolen").await;
    // C is issued after the snapshot and revoked: the copy will never have seen it.
    let (key_c, cert_c, serial_c) = issue(&app, "tablet", "30m").await;
    let c_logs_in = || logs_in(&sshd, &login, &key_c, &cert_c);
    revoke(&app, &serial_c, "tablet lost").await;
    tokio::task::block_in_place(|| refresh_krl(&app, &krl));
    assert!(
        !a_logs_in() && !c_logs_in(),
        "a revoked certificate logs in"
    );

    // The snapshot comes back whole: the CA starts (it cannot tell) with A unrevoked and
    // C unknown, at an older KRL version. The servers take its KRL (nothing is lost:
    // what it leaves out is kept) and the round fails, naming both.
    app = with_data_folder(app, &snapshot).await;
    let out = tokio::task::block_in_place(|| krl_from(&app.url, &krl));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("is older than"), "{stderr}");
    assert!(
        !a_logs_in() && !c_logs_in(),
        "a revoked certificate logs in again"
    );

    // The restored CA's own revocations reach the servers at once, with what it forgot.
    revoke(&app, &serial_b, "desktop retired").await;
    let out = tokio::task::block_in_place(|| krl_from(&app.url, &krl));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("no longer lists 2 revoked certificate")
            && stderr.contains(&format!("serial {serial_a} "))
            && stderr.contains(&format!("serial {serial_c} "))
            // One command ready to run for each (an operator's trial).
            && stderr.contains(&format!("krl forgotten --serial {serial_a} --valid-before"))
            && stderr.contains(&format!("krl forgotten --serial {serial_c} --valid-before")),
        "{stderr}"
    );
    assert!(!a_logs_in(), "A logs in again: the KRL forgot it");
    assert!(!c_logs_in(), "C logs in again: the KRL forgot it");
    assert!(
        !b_logs_in(),
        "B logs in: the CA's new revocation did not arrive"
    );
    // Run again: the file stays as it is, and the round still fails.
    let again = tokio::task::block_in_place(|| krl_from(&app.url, &krl));
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("is current"));
    // So does `krl sync --once` (a timer's unit then shows failed).
    let sync = tokio::task::block_in_place(|| {
        std::process::Command::new(env!("CARGO_BIN_EXE_countersign"))
            .args(["--url", &app.url, "krl", "sync", "--once", "--out"])
            .arg(&krl)
            .env_remove("COUNTERSIGN_TOKEN")
            .output()
            .unwrap()
    });
    let stderr = String::from_utf8_lossy(&sync.stderr);
    assert!(
        !sync.status.success() && stderr.contains("no longer lists"),
        "{stderr}"
    );
    assert!(!a_logs_in(), "A logs in again after krl sync");
    // The running loop says it once (not every round) and keeps the same serials (the
    // KRL is made again every minute: its date may move).
    let serials = || {
        countersign::krl::read(&std::fs::read(&krl).unwrap())
            .unwrap()
            .serials
    };
    let before = serials();
    let running = crate::krl_sync::Sync::start(&app.url, &krl, "1s");
    let rounds = || running.log().matches("is current").count();
    let said = tokio::task::block_in_place(|| {
        running.wait_for(std::time::Duration::from_secs(15), || rounds() >= 1)
    });
    tokio::task::block_in_place(|| std::thread::sleep(std::time::Duration::from_secs(3)));
    let log = running.log();
    assert!(said, "{log}");
    assert_eq!(log.matches("no longer lists 2").count(), 1, "{log}");
    assert_eq!(serials(), before);
    drop(running);
    assert!(
        !a_logs_in() && !c_logs_in(),
        "a kept revocation was lost by the loop"
    );

    // The operator lists both again on the CA. C's certificate is unknown to the copy:
    // revoking it is `not_found`, with the way out in the message.
    let (status, body) = app
        .post(
            "bob",
            &format!("/v1/certificates/{serial_c}/revoke"),
            serde_json::json!({ "reason": "again" }),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body.to_string().contains("krl forgotten"), "{body}");
    let c_end = chrono::Utc::now() + chrono::Duration::minutes(31);
    for (serial, known) in [(&serial_c, false), (&serial_a, true)] {
        let (status, body) = app
            .post(
                "bob",
                "/v1/krl/forgotten",
                serde_json::json!({
                    "serial": serial, "valid_before": c_end.to_rfc3339(),
                    "reason": "named by krl sync after the restore",
                }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["known"], known, "{body}");
    }
    // Twice is `already_revoked`, a later end moves it (a 60-day certificate's, say); an
    // end past or beyond the longest lifetime, a serial no certificate can have, or the
    // host KRL of a CA without one are refused.
    let later = c_end + chrono::Duration::days(59);
    let beyond = chrono::Utc::now() + chrono::Duration::days(400);
    let past = chrono::Utc::now() - chrono::Duration::minutes(1);
    for (serial, end, host, expected) in [
        (serial_c.as_str(), c_end, false, "already_revoked"),
        (serial_c.as_str(), later, false, ""),
        (serial_c.as_str(), c_end, false, "already_revoked"),
        (serial_c.as_str(), past, false, "invalid_request"),
        (serial_c.as_str(), beyond, false, "invalid_request"),
        ("18446744073709551615", c_end, false, "invalid_request"),
        (serial_c.as_str(), c_end, true, "not_found"),
    ] {
        let (_, body) = app
            .post(
                "bob",
                "/v1/krl/forgotten",
                serde_json::json!({
                    "serial": serial, "valid_before": end.to_rfc3339(), "reason": "x",
                    "host": host,
                }),
            )
            .await;
        match expected {
            "" => assert_eq!(body["known"], false, "{body}"),
            wanted => assert_eq!(code(&body), wanted, "{body}"),
        }
    }
    // Alice (no admin) may not.
    let (status, _) = app
        .post(
            "alice",
            "/v1/krl/forgotten",
            serde_json::json!({ "serial": "7", "valid_before": c_end.to_rfc3339(), "reason": "x" }),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let story = app.audit(&format!("serial={serial_c}")).await;
    assert!(
        story.iter().any(|e| e["action"] == "revocation.carried"),
        "{story:?}"
    );
    let out = tokio::task::block_in_place(|| krl_from(&app.url, &krl));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("no longer lists"), "{stderr}");
    assert!(
        !a_logs_in() && !b_logs_in() && !c_logs_in(),
        "a revoked certificate logs in"
    );
}
