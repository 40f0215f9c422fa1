//! The audit log: fields, filters, paging, admin-only access, and tamper detection.

use reqwest::StatusCode;

use crate::helpers::*;

#[tokio::test]
async fn events_carry_the_chain_fields_and_page_in_order() {
    let app = TestApp::spawn().await;
    for _ in 0..3 {
        let id = app.create_ok("alice", "prod-db").await;
        app.approve("bob", &id).await;
    }
    let all = app.audit("").await;
    for pair in all.windows(2) {
        assert_eq!(
            pair[1]["seq"].as_i64().unwrap(),
            pair[0]["seq"].as_i64().unwrap() + 1
        );
        assert_eq!(pair[1]["prev_hash"], pair[0]["hash"]);
    }
    let e = all
        .iter()
        .find(|e| e["action"] == "certificate.issued")
        .unwrap();
    for field in [
        "seq",
        "at",
        "actor",
        "action",
        "request_id",
        "serial",
        "detail",
        "prev_hash",
        "hash",
    ] {
        assert!(!e[field].is_null(), "{field} missing in {e}");
    }
    assert!(e["at"].as_str().unwrap().ends_with('Z'));
    let (_, page) = app.get("bob", "/v1/audit?limit=2").await;
    let page = page["events"].as_array().unwrap().clone();
    assert_eq!(page.len(), 2);
    let after = page[1]["seq"].as_i64().unwrap();
    let (_, next) = app
        .get("bob", &format!("/v1/audit?limit=2&after_seq={after}"))
        .await;
    assert_eq!(next["events"][0]["seq"].as_i64().unwrap(), after + 1);
}

#[tokio::test]
async fn only_admins_read_the_audit_log() {
    let app = TestApp::spawn().await;
    for path in ["/v1/audit", "/v1/audit/verify"] {
        let (status, body) = app.get("carol", path).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{path}"
        );
    }
}

fn tamper(app: &TestApp, sql: &str) {
    let conn = rusqlite::Connection::open(app.db_path()).unwrap();
    conn.execute_batch(&format!(
        "DROP TRIGGER IF EXISTS audit_no_update; DROP TRIGGER IF EXISTS audit_no_delete; {sql}"
    ))
    .unwrap();
}

#[tokio::test]
async fn the_log_refuses_edits_and_a_tampered_row_is_detected() {
    // SQLite only: the test reaches into the database file itself.
    let mut app = TestApp::spawn_on_backend(POLICY, Backend::Sqlite).await;
    let id = app.create_ok("alice", "prod-db").await;
    app.approve("bob", &id).await;
    let conn = rusqlite::Connection::open(app.db_path()).unwrap();
    let err = conn
        .execute(
            "UPDATE audit SET actor = 'mallory' WHERE action = 'request.approved'",
            [],
        )
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    assert!(conn.execute("DELETE FROM audit", []).is_err());
    drop(conn);

    tamper(
        &app,
        "UPDATE audit SET actor = 'mallory' WHERE action = 'request.approved';",
    );
    let seq: i64 = app.count("SELECT seq FROM audit WHERE action = 'request.approved'");
    let (status, body) = app.get("bob", "/v1/audit/verify").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::INTERNAL_SERVER_ERROR, "audit_broken")
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("event {seq}")),
        "{body}"
    );

    // The operator command names the same event and exits non-zero.
    app.stop().await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_countersign"))
        .args(["audit", "verify", "--config"])
        .arg(app.config_path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("event {seq}")),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // And the server refuses to start on a broken chain.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_countersign"))
        .args(["serve", "--config"])
        .arg(app.config_path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("audit log broken"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_deleted_event_is_detected() {
    // SQLite only: the test reaches into the database file itself.
    let mut app = TestApp::spawn_on_backend(POLICY, Backend::Sqlite).await;
    let id = app.create_ok("alice", "prod-db").await;
    app.approve("bob", &id).await;
    app.stop().await;
    tamper(&app, "DELETE FROM audit WHERE action = 'request.created';");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_countersign"))
        .args(["audit", "verify", "--config"])
        .arg(app.config_path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("audit log broken"));
}

/// `certificate.issued` records the key that was actually signed (from the certificate,
/// not the request's stored fingerprint column) and what each approval step required.
#[tokio::test]
async fn issued_event_records_the_signed_keys_fingerprint_and_each_steps_requirement() {
    let app = TestApp::spawn().await;
    let key = new_key();
    let (status, body) = app
        .create_with_key("alice", "deploy-audit", None, &public_line(&key))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    // The copied column says something else; the event must not repeat it.
    app.sql(&format!(
        "UPDATE requests SET key_fingerprint = 'SHA256:not-the-signed-key' WHERE id = '{id}'"
    ));
    app.approve("bob", &id).await;
    let (_, body) = app.approve("erin", &id).await;
    assert_eq!(body["status"], "issued", "{body}");
    let cert =
        ssh_key::Certificate::from_openssh(app.certificate("alice", &id).await.1.trim()).unwrap();
    let signed = cert
        .public_key()
        .fingerprint(ssh_key::HashAlg::Sha256)
        .to_string();
    assert_eq!(
        signed,
        key.public_key()
            .fingerprint(ssh_key::HashAlg::Sha256)
            .to_string()
    );
    let events = app.audit(&format!("request={id}")).await;
    let issued = events
        .iter()
        .find(|e| e["action"] == "certificate.issued")
        .unwrap();
    assert_eq!(issued["detail"]["public_key_fingerprint"], signed.as_str());
    assert_eq!(
        issued["detail"]["approvals_required"],
        serde_json::json!([1, 1])
    );
    let (status, body) = app.get("bob", "/v1/audit/verify").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Regression: a `certificate.issued` event appended with a correct hash (the hash
/// function is public) for a request nobody approved passed `audit verify`. Now verify
/// also checks that each issuance follows its request and its approvals, and names the
/// event that does not; the server refuses to start on it.
#[tokio::test]
async fn an_issued_event_without_its_approvals_fails_verify_naming_it() {
    let mut app = TestApp::spawn().await;
    let real = app.create_ok("alice", "prod-db").await;
    app.approve("bob", &real).await;
    let forged = app.create_ok("alice", "prod-db").await;
    {
        // The forger writes with a correct hash (the hash function is public).
        let store = app.service.store();
        store
            .write(|tx| {
                countersign::audit::append(
                    tx,
                    chrono::Utc::now(),
                    &countersign::audit::NewEvent {
                        actor: "bob",
                        request_id: Some(&forged),
                        serial: countersign::names::Serial::new(4242),
                        event: countersign::audit::CertificateIssued {
                            serial: "4242".into(),
                            requester: "alice".into(),
                            role: "prod-db".into(),
                            approvals: vec![countersign::audit::CountedApproval {
                                approver: "bob".into(),
                                step: 1,
                            }],
                            approvals_required: vec![1],
                            ..Default::default()
                        }
                        .into(),
                    },
                )
            })
            .unwrap();
    }
    let seq = app.count("SELECT max(seq) FROM audit");
    let (status, body) = app.get("bob", "/v1/audit/verify").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::INTERNAL_SERVER_ERROR, "audit_broken"),
        "{body}"
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("event {seq}"))
            && message.contains(&format!("certificate.issued for request {forged}"))
            && message.contains("bob"),
        "{message}"
    );

    app.stop().await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_countersign"))
        .args(["audit", "verify", "--config"])
        .arg(app.config_path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("event {seq}")), "{err}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_countersign"))
        .args(["serve", "--config"])
        .arg(app.config_path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "serve must refuse a broken chain");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("event {seq}")), "{err}");
}

/// On PostgreSQL the log refuses UPDATE, DELETE and TRUNCATE too, and a row edited by
/// someone who turned the guard off (the database's owner can) breaks verification, on
/// the API and in the operator command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_the_log_refuses_edits_and_a_tampered_row_is_detected() {
    let mut app = TestApp::spawn_on_backend(POLICY, Backend::Postgres).await;
    let id = app.create_ok("alice", "prod-db").await;
    app.approve("bob", &id).await;
    let pg = app.pg.as_ref().expect("on PostgreSQL");
    for edit in [
        "UPDATE audit SET actor = 'mallory' WHERE action = 'request.approved'",
        "DELETE FROM audit",
        "TRUNCATE audit",
    ] {
        let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pg.psql(edit)));
        assert!(refused.is_err(), "{edit} was allowed");
    }

    pg.psql(
        "ALTER TABLE audit DISABLE TRIGGER USER; \
         UPDATE audit SET actor = 'mallory' WHERE action = 'request.approved'; \
         ALTER TABLE audit ENABLE TRIGGER USER;",
    );
    let seq = app.count("SELECT seq FROM audit WHERE action = 'request.approved'");
    let (status, body) = app.get("bob", "/v1/audit/verify").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::INTERNAL_SERVER_ERROR, "audit_broken"),
        "{body}"
    );
    app.stop().await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_countersign"))
        .args(["audit", "verify", "--config"])
        .arg(app.config_path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("event {seq}")), "{stderr}");
}
