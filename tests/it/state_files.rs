//! Files of the state, through the real binary: files other users could replace are
//! refused, and a backup whose audit chain does not verify is not kept.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::process::{create_token, operator};
use crate::state::{assert_refused, data, run, serve_refused, setup, text};

#[test]
fn files_other_users_could_replace_are_refused_naming_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path());
    let data = data(dir.path());
    let db = data.join("countersign.db");
    let chmod = |p: &Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
    };

    chmod(&data, 0o770);
    let log = serve_refused(operator(&config).arg("serve"));
    assert!(log.contains("writable by group or others"), "{log}");
    assert!(log.contains("chmod 700"), "{log}");
    chmod(&data, 0o700);

    chmod(&db, 0o644);
    let log = serve_refused(operator(&config).arg("serve"));
    assert!(log.contains("chmod 600"), "{log}");
    let out = run(operator(&config).args(["audit", "verify"]));
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("accessible by group or others"));
    chmod(&db, 0o600);

    let moved = dir.path().join("elsewhere.db");
    std::fs::rename(&db, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &db).unwrap();
    let log = serve_refused(operator(&config).arg("serve"));
    assert!(log.contains("is a symlink"), "{log}");
    std::fs::remove_file(&db).unwrap();
    std::fs::rename(&moved, &db).unwrap();

    let mark = data.join("countersign.mark");
    chmod(&mark, 0o666);
    let log = serve_refused(operator(&config).arg("serve"));
    assert!(
        log.contains("countersign.mark: is writable by group or others"),
        "{log}"
    );
    chmod(&mark, 0o600);

    if std::os::unix::fs::chown(&db, Some(65534), None).is_ok() {
        let log = serve_refused(operator(&config).arg("serve"));
        assert!(log.contains("owned by uid 65534"), "{log}");
        std::os::unix::fs::chown(&db, Some(unsafe_euid()), None).unwrap();
    } else {
        eprintln!("owner check skipped: not allowed to chown (not root)");
    }
    let out = run(operator(&config).args(["audit", "verify"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
}

fn unsafe_euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

#[test]
fn a_backup_whose_audit_chain_does_not_verify_is_not_kept() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path());
    create_token(&config, "alice");
    // Someone edits history in place (the triggers dropped first).
    let conn = rusqlite::Connection::open(data(dir.path()).join("countersign.db")).unwrap();
    conn.execute_batch(
        "DROP TRIGGER audit_no_update; UPDATE audit SET actor = 'mallory' WHERE seq = 1;",
    )
    .unwrap();
    drop(conn);
    let copy = dir.path().join("copy.db");
    let out = run(operator(&config).args(["backup", "--out"]).arg(&copy));
    assert_refused(&out, "the copy's audit chain does not verify");
    assert!(!copy.exists(), "a copy that does not verify was kept");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains("copy.db"))
        .collect();
    assert!(left.is_empty(), "a temporary copy was left: {left:?}");
}

/// The mark's list of revocations is read as text and turned into serials only by the
/// rollback that carries them over: one hand-edited entry does not stop every start (as
/// before serials were typed), and the server rewrites the list from the database.
#[tokio::test]
async fn a_mark_with_an_unreadable_serial_still_starts_and_is_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path());
    let path = data(dir.path()).join("countersign.mark");
    let mut mark: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    mark["revoked"] = serde_json::json!([{ "serial": "abc", "valid_before": 4_000_000_000u64 }]);
    std::fs::write(&path, mark.to_string()).unwrap();

    let server = crate::process::ServerProcess::start(&config);
    assert!(server.terminate(), "serve stopped cleanly");
    let rewritten = std::fs::read_to_string(&path).unwrap();
    // The list itself, not the whole text: a hash in the mark may contain "abc".
    let mark: serde_json::Value = serde_json::from_str(&rewritten).unwrap();
    assert_eq!(mark["revoked"], serde_json::json!([]), "{rewritten}");
}
