//! Separation of duties for the policy itself (`[policy]`): signatures made with the real
//! `ssh-keygen -Y sign` and `countersign policy sign`, checked by the real server at start
//! and on SIGHUP, and the printed allowed_signers file checked by `ssh-keygen -Y verify`.

mod registered;
mod sign;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::helpers::{POLICY, new_key, public_line, write_key};
use crate::process::{Api, ServerProcess, create_token, init, operator};
use crate::reload::{can_approve, hangup, wait_for_log};

/// The people who sign, with their key files.
struct Signers {
    dir: PathBuf,
    lines: Vec<(&'static str, String)>,
}

impl Signers {
    fn new(dir: &Path) -> Signers {
        let lines = ["bob", "carol", "dave"]
            .into_iter()
            .map(|name| {
                let key = new_key();
                write_key(dir, &format!("{name}_key"), &key);
                (name, public_line(&key))
            })
            .collect();
        Signers {
            dir: dir.to_owned(),
            lines,
        }
    }

    fn key(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}_key"))
    }

    /// [`POLICY`] with the three keys as `ssh_keys`, dave approving prod-db if
    /// `dave_approves`, and `[policy]` with `signers` (2 required) at `version`.
    fn policy(&self, version: u32, signers: &[&str], dave_approves: bool) -> String {
        let mut text = POLICY.to_owned();
        for (name, line) in &self.lines {
            let header = format!("[users.{name}]\n");
            text = text.replacen(&header, &format!("{header}ssh_keys = [\"{line}\"]\n"), 1);
        }
        if dave_approves {
            text = text.replacen(
                "approvers = [\"group:dba\"]\ndefault_ttl",
                "approvers = [\"group:dba\", \"user:dave\"]\ndefault_ttl",
                1,
            );
        }
        let signers: Vec<String> = signers.iter().map(|s| format!("\"user:{s}\"")).collect();
        format!(
            "{text}\n[policy]\nsigners = [{}]\nsignatures_required = 2\nversion = {version}\n",
            signers.join(", ")
        )
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn sig_dir(config: &Path) -> PathBuf {
    PathBuf::from(format!("{}.sig.d", config.display()))
}

/// Writes a new version of the file, without any signature.
fn write_unsigned(config: &Path, body: &str) {
    std::fs::write(config, body).unwrap();
    let _ = std::fs::remove_dir_all(sig_dir(config));
}

/// `ssh-keygen -Y sign -n countersign-policy -f KEY FILE`, placed as `<user>.sig`.
fn ssh_keygen_sign(config: &Path, key: &Path, user: &str) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-Y", "sign", "-n", "countersign-policy", "-f"])
        .arg(key)
        .arg(config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    std::fs::create_dir_all(sig_dir(config)).unwrap();
    let made = PathBuf::from(format!("{}.sig", config.display()));
    std::fs::rename(made, sig_dir(config).join(format!("{user}.sig"))).unwrap();
}

/// `countersign policy sign --key KEY` (the user found from the key).
fn policy_sign(config: &Path, key: &Path) {
    let out = operator(config)
        .args(["policy", "sign", "--key"])
        .arg(key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

async fn dave_approves_prod_db(api: &Api, dave: &str) -> bool {
    can_approve(api, dave).await.to_string().contains("prod-db")
}

fn signed_by(event: &Value) -> Vec<String> {
    event["detail"]["signoff"]["signed_by"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["user"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_policy_change_takes_two_running_signers_and_a_refused_one_leaves_the_old_policy() {
    let dir = tempfile::tempdir().unwrap();
    let people = Signers::new(dir.path());
    let config = dir.path().join("countersign.toml");
    let v1 = people.policy(1, &["bob", "carol"], false);
    write_unsigned(&config, &v1);
    // Before any state: judged as the first signed policy.
    ssh_keygen_sign(&config, &people.key("bob"), "bob");
    let status = operator(&config)
        .args(["policy", "status"])
        .output()
        .unwrap();
    assert!(!status.status.success(), "1 of 2 would not start");
    let shown = text(&status.stdout);
    assert!(
        shown.contains("valid:    bob") && shown.contains("missing:  carol"),
        "{shown}"
    );
    std::fs::remove_dir_all(sig_dir(&config)).unwrap();
    let check = operator(&config).arg("check-config").output().unwrap();
    assert!(check.status.success(), "{}", text(&check.stderr));
    assert!(
        text(&check.stdout).contains("policy       signed: 2 of bob, carol (version 1)"),
        "{}",
        text(&check.stdout)
    );
    init(&config);
    let (bob, dave) = (create_token(&config, "bob"), create_token(&config, "dave"));

    // Unsigned, the first signed policy does not start.
    let refused = ServerProcess::start_with(operator(&config).arg("serve")).err();
    let log = refused.expect("an unsigned [policy] must not start");
    assert!(log.contains("0 of the 2 signatures"), "{log}");

    // Signed by its own two signers (bootstrap): with ssh-keygen, and with the CLI.
    ssh_keygen_sign(&config, &people.key("bob"), "bob");
    policy_sign(&config, &people.key("carol"));
    let status = operator(&config)
        .args(["policy", "status"])
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", text(&status.stdout));
    let shown = text(&status.stdout);
    assert!(
        shown.contains("valid:    bob") && shown.contains("valid:    carol"),
        "{shown}"
    );
    assert!(shown.contains("first signed policy"), "{shown}");
    let server = ServerProcess::start(&config);
    let api = Api::new(&server.url);
    let loaded = api.events(&bob, "policy.loaded").await;
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0]["detail"]["signoff"]["basis"], "bootstrap");
    assert_eq!(signed_by(&loaded[0]), ["bob", "carol"]);
    let refusals = api.events(&bob, "policy.refused").await;
    assert_eq!(refusals.len(), 1, "the refused start is on the record");
    assert_eq!(refusals[0]["detail"]["cause"], "start");

    // Anyone can check the signatures with OpenSSH alone.
    let allowed = operator(&config)
        .args(["policy", "allowed-signers"])
        .output()
        .unwrap();
    assert!(allowed.status.success(), "{}", text(&allowed.stderr));
    let allowed_file = dir.path().join("allowed_signers");
    std::fs::write(&allowed_file, &allowed.stdout).unwrap();
    assert_eq!(
        text(&allowed.stdout).lines().count(),
        2,
        "{}",
        text(&allowed.stdout)
    );
    for user in ["bob", "carol"] {
        let sig = sig_dir(&config).join(format!("{user}.sig"));
        let verify = Command::new("ssh-keygen")
            .args(["-Y", "verify", "-n", "countersign-policy", "-I", user, "-f"])
            .arg(&allowed_file)
            .arg("-s")
            .arg(&sig)
            .stdin(Stdio::from(std::fs::File::open(&config).unwrap()))
            .output()
            .unwrap();
        assert!(verify.status.success(), "{user}: {}", text(&verify.stderr));
    }
    let old_sigs = dir.path().join("v1.sig.d");
    copy_dir(&sig_dir(&config), &old_sigs);
    assert!(!dave_approves_prod_db(&api, &dave).await);

    // Version 2 makes dave an approver: with 1 of 2 signatures it is refused.
    let v2 = people.policy(2, &["bob", "carol"], true);
    write_unsigned(&config, &v2);
    policy_sign(&config, &people.key("bob"));
    let reload = operator(&config).arg("reload").output().unwrap();
    assert!(
        !reload.status.success(),
        "`reload` sends a file the server would refuse"
    );
    assert!(
        text(&reload.stderr).contains("1 of the 2"),
        "{}",
        text(&reload.stderr)
    );
    hangup(&server);
    wait_for_log(&server, "reload failed", 1);
    assert!(
        server.log().contains("1 of the 2 signatures"),
        "{}",
        server.log()
    );
    assert!(
        !dave_approves_prod_db(&api, &dave).await,
        "the old policy stays"
    );
    let refusals = api.events(&bob, "policy.refused").await;
    assert_eq!(refusals.len(), 2);
    assert_eq!(refusals[1]["detail"]["cause"], "reload");
    assert_eq!(
        refusals[1]["detail"]["signoff"]["signed_by"][0]["user"],
        "bob"
    );

    // A change that appoints dave a signer, signed by bob and dave: dave does not count.
    let appointing = people.policy(2, &["bob", "carol", "dave"], true);
    write_unsigned(&config, &appointing);
    policy_sign(&config, &people.key("bob"));
    policy_sign(&config, &people.key("dave"));
    hangup(&server);
    wait_for_log(&server, "reload failed", 2);
    assert!(!dave_approves_prod_db(&api, &dave).await);
    let refusals = api.events(&bob, "policy.refused").await;
    let rejected = refusals[2]["detail"]["rejected"].to_string();
    assert!(
        rejected.contains("dave is not a signer of the policy in force (version 1)"),
        "{rejected}"
    );

    // Both running signers sign version 2: in force, and on the record with them.
    write_unsigned(&config, &v2);
    policy_sign(&config, &people.key("bob"));
    ssh_keygen_sign(&config, &people.key("carol"), "carol");
    let reload = operator(&config).arg("reload").output().unwrap();
    assert!(reload.status.success(), "{}", text(&reload.stderr));
    wait_for_log(&server, "configuration reloaded", 1);
    assert!(dave_approves_prod_db(&api, &dave).await);
    let loaded = api.events(&bob, "policy.loaded").await;
    assert_eq!(loaded.len(), 2);
    assert_eq!(loaded[1]["detail"]["signoff"]["basis"], "running");
    assert_eq!(loaded[1]["detail"]["signoff"]["version"], 2);
    assert_eq!(signed_by(&loaded[1]), ["bob", "carol"]);

    let v2_sigs = dir.path().join("v2.sig.d");
    copy_dir(&sig_dir(&config), &v2_sigs);

    // Any other byte, a server setting too, takes a greater version, however signed.
    write_unsigned(
        &config,
        &v2.replace("pending_ttl = \"1h\"", "pending_ttl = \"2h\""),
    );
    policy_sign(&config, &people.key("bob"));
    policy_sign(&config, &people.key("carol"));
    hangup(&server);
    wait_for_log(&server, "reload failed", 3);
    assert!(
        server.log().contains("not greater than version 2"),
        "{}",
        server.log()
    );

    // The old file with its once-valid signatures: a replay, refused on reload...
    write_unsigned(&config, &v1);
    copy_dir(&old_sigs, &sig_dir(&config));
    hangup(&server);
    wait_for_log(&server, "reload failed", 4);
    assert!(dave_approves_prod_db(&api, &dave).await, "version 2 stays");
    // Offboarding a signer does not stop the file in force from starting again.
    write_unsigned(&config, &v2);
    copy_dir(&v2_sigs, &sig_dir(&config));
    let (status, body) = api
        .post(
            &bob,
            "/v1/users/carol/revoke",
            serde_json::json!({"reason": "left"}),
        )
        .await
        .unwrap();
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    let status = operator(&config)
        .args(["policy", "status"])
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", text(&status.stdout));
    assert!(
        text(&status.stdout).contains("the very file in force"),
        "{}",
        text(&status.stdout)
    );
    // The next version, signed by both: carol is disabled now, so hers counts for nothing.
    write_unsigned(&config, &people.policy(3, &["bob", "carol"], true));
    policy_sign(&config, &people.key("bob"));
    policy_sign(&config, &people.key("carol"));
    let status = operator(&config)
        .args(["policy", "status"])
        .output()
        .unwrap();
    let shown = text(&status.stdout);
    assert!(!status.status.success(), "{shown}");
    assert!(shown.contains("carol is disabled"), "{shown}");
    // The replayed file again, at start: refused before anything else is written (a new
    // [host_ca] in it makes no key).
    write_unsigned(
        &config,
        &format!(
            "{v1}
[host_ca]
key_file = \"planted_host_ca\"
"
        ),
    );
    copy_dir(&old_sigs, &sig_dir(&config));
    assert!(server.terminate());
    let log = ServerProcess::start_with(operator(&config).arg("serve"))
        .err()
        .expect("an unsigned file must not start");
    assert!(log.contains("not greater than version 2"), "{log}");
    assert!(
        !dir.path().join("data/planted_host_ca").exists(),
        "a refused start made a key"
    );
    // ...and the replayed file itself at start.
    write_unsigned(&config, &v1);
    copy_dir(&old_sigs, &sig_dir(&config));
    let log = ServerProcess::start_with(operator(&config).arg("serve"))
        .err()
        .expect("a replayed file must not start");
    assert!(log.contains("not greater than version 2"), "{log}");
    // The very file in force starts again with its own version, carol disabled or not.
    write_unsigned(&config, &v2);
    copy_dir(&v2_sigs, &sig_dir(&config));
    let server = ServerProcess::start(&config);
    let api = Api::new(&server.url);
    assert!(dave_approves_prod_db(&api, &dave).await);
    assert_eq!(api.events(&bob, "policy.refused").await.len(), 7);
    assert_eq!(api.events(&bob, "host_ca.recorded").await.len(), 0);

    // Version 3 takes dave off prod-db again: with 1 of 2 signatures it does not start.
    assert!(server.terminate());
    write_unsigned(&config, &people.policy(3, &["bob", "carol"], false));
    policy_sign(&config, &people.key("bob"));
    let log = ServerProcess::start_with(operator(&config).arg("serve"))
        .err()
        .expect("1 of 2 must not start");
    assert!(log.contains("1 of the 2 signatures"), "{log}");
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}
