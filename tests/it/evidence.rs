//! Evidence for investigators and auditors: signed checkpoints that expose truncation and
//! rollback, exports, access reports.

use std::process::{Command, Output};

use crate::helpers::*;
use crate::revocation::{issued, revoke_serial};

fn countersign(app: &TestApp, user: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_countersign"));
    cmd.arg("--config")
        .arg(app.config_path())
        .args(args)
        .env("COUNTERSIGN_URL", &app.url);
    match user {
        Some(u) => cmd.env("COUNTERSIGN_TOKEN", app.token(u)),
        None => cmd.env_remove("COUNTERSIGN_TOKEN"),
    };
    cmd.output().expect("countersign runs")
}

async fn run(app: &TestApp, user: Option<&str>, args: &[&str]) -> Output {
    tokio::task::block_in_place(|| countersign(app, user, args))
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `sql` on the server's database with the audit log's guard triggers off, as
/// someone with write access to the database could (SQLite or PostgreSQL).
fn drop_triggers_and(app: &TestApp, sql: &str) {
    match &app.pg {
        Some(pg) => {
            pg.psql(&format!(
                "ALTER TABLE audit DISABLE TRIGGER USER; {sql} \
                 ALTER TABLE audit ENABLE TRIGGER USER;"
            ));
        }
        None => app.sql(&format!(
            "DROP TRIGGER IF EXISTS audit_no_update; DROP TRIGGER IF EXISTS audit_no_delete; {sql}"
        )),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn checkpoint_is_an_ssh_signature_and_exposes_truncation() {
    let app = TestApp::spawn().await;
    issued(&app, "alice", "prod-db", None).await;
    let cp = app.dir.path().join("checkpoint");
    let out = run(
        &app,
        None,
        &["audit", "checkpoint", "--out", cp.to_str().unwrap()],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));

    // ssh-keygen -Y verify accepts it with the CA key as the allowed signer.
    let signers = app.dir.path().join("allowed_signers");
    std::fs::write(
        &signers,
        format!(
            "countersign-ca namespaces=\"countersign-audit\" {}\n",
            app.service.ca().public_key_line()
        ),
    )
    .unwrap();
    let verify = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ssh-keygen -Y verify -f {} -I countersign-ca -n countersign-audit -s {}.sig < {}",
            signers.display(),
            cp.display(),
            cp.display()
        ))
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}{}",
        stdout(&verify),
        stderr(&verify)
    );

    // More events later: the checkpoint still holds.
    issued(&app, "frank", "prod-db", None).await;
    let ok = run(
        &app,
        None,
        &["audit", "verify", "--checkpoint", cp.to_str().unwrap()],
    )
    .await;
    assert!(ok.status.success(), "{}", stderr(&ok));

    // Cut off the newest events: the chain alone still verifies, the checkpoint does not.
    let head: i64 = std::fs::read_to_string(&cp)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .trim_start_matches("seq: ")
        .parse()
        .unwrap();
    drop_triggers_and(&app, &format!("DELETE FROM audit WHERE seq >= {head};"));
    let plain = run(&app, None, &["audit", "verify"]).await;
    assert!(
        plain.status.success(),
        "a truncated chain is still a valid chain: {}",
        stderr(&plain)
    );
    let caught = run(
        &app,
        None,
        &["audit", "verify", "--checkpoint", cp.to_str().unwrap()],
    )
    .await;
    assert!(!caught.status.success());
    assert!(
        stderr(&caught).contains("cut off or the database was rolled back"),
        "{}",
        stderr(&caught)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn checkpoint_exposes_a_rollback_to_an_old_copy_and_a_forged_statement() {
    // SQLite only: the test reaches into the database file itself.
    let mut app = TestApp::spawn_on_backend(POLICY, Backend::Sqlite).await;
    issued(&app, "alice", "prod-db", None).await;
    let snapshot = app.dir.path().join("old-copy.db");
    {
        let conn = rusqlite::Connection::open(app.db_path()).unwrap();
        conn.execute("VACUUM INTO ?1", [snapshot.to_str().unwrap()])
            .unwrap();
    }
    let mark = app.dir.path().join("data/countersign.mark");
    let old_mark = std::fs::read(&mark).unwrap();
    let (_, serial, _) = issued(&app, "frank", "prod-db", None).await;
    revoke_serial(&app, "bob", &serial).await;
    let out = run(&app, None, &["audit", "checkpoint"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let doc = app.dir.path().join("checkpoint.txt");
    std::fs::write(&doc, stdout(&out)).unwrap();
    assert!(
        run(
            &app,
            None,
            &["audit", "verify", "--checkpoint", doc.to_str().unwrap()]
        )
        .await
        .status
        .success()
    );

    // Someone restores the old copy to make the revocation disappear.
    app.stop().await;
    let db = app.db_path();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    std::fs::copy(&snapshot, &db).unwrap();
    std::fs::set_permissions(&db, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    // The high-water mark beside the CA key refuses it at once ...
    let refused = run(&app, None, &["audit", "verify"]).await;
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("rolled back"),
        "{}",
        stderr(&refused)
    );
    // ... and where the whole folder was restored (the old mark with the old database),
    // the checkpoint kept elsewhere still catches it.
    std::fs::write(&mark, old_mark).unwrap();
    let plain = run(&app, None, &["audit", "verify"]).await;
    assert!(plain.status.success(), "{}", stderr(&plain));
    let caught = run(
        &app,
        None,
        &["audit", "verify", "--checkpoint", doc.to_str().unwrap()],
    )
    .await;
    assert!(!caught.status.success());
    assert!(
        stderr(&caught).contains("rolled back"),
        "{}",
        stderr(&caught)
    );

    // A statement edited after signing fails the signature check.
    let forged = app.dir.path().join("forged.txt");
    std::fs::write(&forged, stdout(&out).replacen("seq: ", "seq: 1", 1)).unwrap();
    let bad = run(
        &app,
        None,
        &["audit", "verify", "--checkpoint", forged.to_str().unwrap()],
    )
    .await;
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("signature"), "{}", stderr(&bad));
}

#[tokio::test(flavor = "multi_thread")]
async fn export_and_report_give_auditors_the_evidence() {
    let app = TestApp::spawn().await;
    let (_, serial, _) = issued(&app, "alice", "prod-db", None).await;
    issued(&app, "frank", "deploy", None).await;
    revoke_serial(&app, "bob", &serial).await;

    let jsonl = run(&app, Some("bob"), &["audit", "export", "--since", "1h"]).await;
    assert!(jsonl.status.success(), "{}", stderr(&jsonl));
    let events: Vec<serde_json::Value> = stdout(&jsonl)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len() as i64, app.count("SELECT count(*) FROM audit"));
    assert!(events.windows(2).all(|w| w[1]["prev_hash"] == w[0]["hash"]));

    let csv = run(
        &app,
        Some("bob"),
        &["audit", "export", "--since", "1h", "--format", "csv"],
    )
    .await;
    let text = stdout(&csv);
    assert!(text.starts_with("seq,at,actor,action,request_id,serial,detail,prev_hash,hash\n"));
    assert_eq!(text.lines().count(), events.len() + 1);

    let none = run(
        &app,
        Some("bob"),
        &["audit", "export", "--since", "2999-01-01T00:00:00Z"],
    )
    .await;
    assert!(stdout(&none).is_empty());
    let denied = run(&app, Some("alice"), &["audit", "export", "--since", "1h"]).await;
    assert!(!denied.status.success());
    assert!(stderr(&denied).contains("forbidden"));

    let report = run(&app, Some("bob"), &["report", "--since", "90d", "--json"]).await;
    assert!(report.status.success(), "{}", stderr(&report));
    let by_role: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    let db = &by_role["prod-db"][0];
    assert_eq!(db["user"], "alice");
    assert_eq!(db["approved_by"], serde_json::json!(["bob"]));
    assert_eq!(db["reason"], "INC-4211: prod-db for alice");
    assert!(db["revoked"].as_str().unwrap().contains("laptop stolen"));
    // Held from issue to revocation, moments apart: not from the backdated valid_after
    // (a minute earlier). Both times in whole seconds.
    assert!(db["seconds"].as_i64().unwrap() < 30, "{db}");
    for t in [&db["from"], &db["until"]] {
        let t = t.as_str().unwrap();
        assert!(t.ends_with('Z') && !t.contains('.'), "{t}");
    }
    assert_eq!(by_role["deploy"][0]["user"], "frank");
    assert_eq!(
        by_role["deploy"][0]["approved_by"],
        serde_json::json!(["dave"])
    );
    let table = run(&app, Some("bob"), &["report", "--since", "90d"]).await;
    assert!(
        stdout(&table).contains("role prod-db: 1 certificate(s)"),
        "{}",
        stdout(&table)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn revoke_and_done_from_the_command_line() {
    let app = TestApp::spawn().await;
    let (id1, s1, _) = issued(&app, "alice", "prod-db", None).await;
    let (id2, s2, _) = issued(&app, "alice", "prod-db", None).await;
    let (id3, s3, _) = issued(&app, "frank", "prod-db", None).await;

    let out = run(
        &app,
        Some("bob"),
        &["revoke", "--request", &id1, "--reason", "incident over"],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        format!("revoked certificate serial {s1}")
    );

    let out = run(
        &app,
        Some("alice"),
        &["revoke", "--user", "frank", "--reason", "x"],
    )
    .await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("forbidden"), "{}", stderr(&out));

    let out = run(&app, Some("alice"), &["done", &id2]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&s2));

    let out = run(
        &app,
        Some("bob"),
        &["revoke", "--user", "frank", "--reason", "left the company"],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        format!("revoked certificate serial {s3}")
    );
    // frank is disabled now (offboarding.rs): an admin reads it.
    let (_, body) = app.request("bob", &id3).await;
    assert_eq!(body["certificate"]["revoked"]["reason"], "left the company");
    // The human views say so too.
    let shown = stdout(&run(&app, Some("bob"), &["show", &id3]).await);
    assert!(
        shown.contains("revoked      ") && shown.contains("by bob: left the company"),
        "{shown}"
    );
    let listed = stdout(&run(&app, Some("bob"), &["list"]).await);
    assert!(listed.contains("issued (revoked)"), "{listed}");

    let out = run(
        &app,
        Some("bob"),
        &["revoke", "--serial", &s3, "--reason", "again"],
    )
    .await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("already_revoked"), "{}", stderr(&out));
    let out = run(&app, Some("bob"), &["revoke", "--reason", "nothing named"]).await;
    assert!(
        !out.status.success(),
        "one of --serial, --request, --user is required"
    );
}
