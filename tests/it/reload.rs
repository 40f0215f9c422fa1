//! Configuration reload without a restart: SIGHUP and `countersign reload` against the
//! real binary, and the policy on the record (`policy.loaded`).

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::POLICY;
use crate::process::{Api, ServerProcess, create_token, init, operator};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("countersign runs")
}

/// Waits (up to 20 s) until the server has logged `needle` `times` times: the reload
/// runs when the signal arrives, not at a known moment.
pub(crate) fn wait_for_log(server: &ServerProcess, needle: &str, times: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.log().matches(needle).count() < times {
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in the log:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn policy_events(api: &Api, admin: &str) -> Vec<Value> {
    api.events(admin, "policy.loaded").await
}

pub(crate) async fn can_approve(api: &Api, token: &str) -> Value {
    let body: Value = api
        .http
        .get(format!("{}/v1/whoami", api.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["can_approve"].clone()
}

fn rewrite(config: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    assert!(text.contains(from), "{from:?} not in the config");
    std::fs::write(config, text.replacen(from, to, 1)).unwrap();
}

pub(crate) fn hangup(server: &ServerProcess) {
    let st = Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

#[tokio::test]
async fn a_reload_puts_a_new_policy_in_force_on_the_record_and_refuses_a_broken_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("countersign.toml");
    std::fs::write(&config, POLICY).unwrap();
    init(&config);
    let (bob, dave) = (create_token(&config, "bob"), create_token(&config, "dave"));
    let server = ServerProcess::start(&config);
    let api = Api::new(&server.url);
    let started = policy_events(&api, &bob).await;
    assert_eq!(started.len(), 1, "the start records the policy");
    assert_eq!(started[0]["detail"]["cause"], "start");
    assert!(
        !can_approve(&api, &dave)
            .await
            .to_string()
            .contains("prod-db")
    );

    // dave (sre) becomes an approver of prod-db.
    rewrite(
        &config,
        "approvers = [\"group:dba\"]\ndefault_ttl",
        "approvers = [\"group:dba\", \"user:dave\"]\ndefault_ttl",
    );
    let out = run(operator(&config).arg("reload"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    wait_for_log(&server, "configuration reloaded", 1);
    // The reloaded policy is the newest recorded: the server stays ready, no token needed.
    let ready = reqwest::get(format!("{}/v1/ready", server.url))
        .await
        .unwrap();
    assert_eq!(ready.status(), reqwest::StatusCode::OK);
    assert!(
        can_approve(&api, &dave)
            .await
            .to_string()
            .contains("prod-db")
    );
    let events = policy_events(&api, &bob).await;
    assert_eq!(events.len(), 2);
    let reloaded = &events[1]["detail"];
    assert_eq!(reloaded["cause"], "reload");
    assert_eq!(
        reloaded["changes"]["roles"]["changed"],
        serde_json::json!(["prod-db"])
    );
    assert!(
        reloaded["changes"]["approvers"]["prod-db"]["after"]
            .to_string()
            .contains("user:dave"),
        "{reloaded}"
    );
    assert!(reloaded["policy"]["roles"]["prod-db"].is_object());
    assert_ne!(reloaded["digest"], events[0]["detail"]["digest"]);

    // The same file again: nothing changed, nothing recorded.
    hangup(&server);
    wait_for_log(&server, "the policy is unchanged", 1);
    assert_eq!(policy_events(&api, &bob).await.len(), 2);

    // [requests] settings apply at once, and the log says which.
    rewrite(&config, "pending_ttl = \"1h\"", "pending_ttl = \"2h\"");
    hangup(&server);
    wait_for_log(&server, "settings changed and in force", 1);
    assert!(
        server.log().contains("[requests] pending_ttl"),
        "{}",
        server.log()
    );
    let events = policy_events(&api, &bob).await;
    assert_eq!(events.len(), 3, "a settings change is on the record");
    assert_eq!(
        events[2]["detail"]["changes"]["settings"]["after"]["pending_ttl"],
        7200
    );
    rewrite(&config, "pending_ttl = \"2h\"", "pending_ttl = \"1h\"");
    hangup(&server);
    wait_for_log(&server, "settings changed and in force", 2);

    // A broken file: `reload` refuses to send it; a raw SIGHUP is refused by the server,
    // which keeps running with the policy it had.
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("{good}\n[roles.broken]\nprincipals = []\n"),
    )
    .unwrap();
    let out = run(operator(&config).arg("reload"));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("nothing was sent"),
        "{}",
        text(&out.stderr)
    );
    hangup(&server);
    wait_for_log(&server, "reload refused", 1);
    assert!(
        can_approve(&api, &dave)
            .await
            .to_string()
            .contains("prod-db")
    );

    // A listen address change needs a restart: reported, and the server stays where it is.
    std::fs::write(
        &config,
        good.replacen("listen = \"127.0.0.1:0\"", "listen = \"127.0.0.1:1\"", 1),
    )
    .unwrap();
    hangup(&server);
    wait_for_log(&server, "need a restart", 1);
    assert!(server.log().contains("[server] listen"), "{}", server.log());
    let still = can_approve(&api, &bob).await;
    assert!(still.as_array().is_some_and(|r| !r.is_empty()), "{still}");
    assert_eq!(policy_events(&api, &bob).await.len(), 4);
    assert!(server.terminate());

    // A restart with the same policy records nothing new.
    std::fs::write(&config, &good).unwrap();
    let server = ServerProcess::start(&config);
    let api = Api::new(&server.url);
    assert_eq!(policy_events(&api, &bob).await.len(), 4);
    drop(server);
    let out = run(operator(&config).arg("reload"));
    assert!(!out.status.success(), "reload found a server that is gone");
}

#[test]
fn one_server_per_data_folder_and_reload_finds_it_whatever_the_binary_is_called() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("countersign.toml");
    std::fs::write(&config, POLICY).unwrap();
    init(&config);
    // The server runs as `cs` (a packaged name, a symlink).
    let cs = dir.path().join("cs");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_countersign"), &cs).unwrap();
    let server =
        ServerProcess::start_with(Command::new(&cs).arg("--config").arg(&config).arg("serve"))
            .expect("serves");
    let second = ServerProcess::start_with(operator(&config).arg("serve"));
    let log = match second {
        Ok(_) => panic!("a second server started on the same data folder"),
        Err(log) => log,
    };
    assert!(log.contains("another countersign serve"), "{log}");
    let out = run(operator(&config).arg("init"));
    assert!(!out.status.success(), "init ran beside a server");
    assert!(
        text(&out.stderr).contains("another countersign serve"),
        "{}",
        text(&out.stderr)
    );
    let out = run(operator(&config).arg("reload"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    wait_for_log(&server, "configuration reloaded", 1);
    // The second server's refusal left the first one's pid file alone.
    let out = run(operator(&config).arg("reload"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    wait_for_log(&server, "configuration reloaded", 2);
    assert!(server.terminate());
    let out = run(operator(&config).arg("reload"));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no countersign serve is running"),
        "{}",
        text(&out.stderr)
    );
}
