//! The web UI in a real headless Chromium (Debian's, driven by Playwright from npm:
//! `tests/oidc/web.mjs`): sign in through the test provider, see a waiting request,
//! approve it and see it issued; a stale page answers 409; the requester sees why they
//! cannot approve their own request; a `<script>` in a reason stays text; a form on
//! another site (another loopback port) is refused. Screenshots of the request list and
//! the review page are taken (into `COUNTERSIGN_SCREENSHOTS`, e.g. `docs/`, when set).

use std::process::{Command, Stdio};

use super::*;
use crate::idp::Front;

/// Runs the browser driver `script` (in `tests/oidc/`) with `cfg`: what it said it saw,
/// once it ended without an error.
pub(super) async fn drive(script: &str, cfg: Value) -> Value {
    let script = crate::idp::oidc_dir().join(script);
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .arg(cfg.to_string())
            .stdin(Stdio::null())
            .output()
            .expect("node runs the browser driver")
    })
    .await
    .unwrap();
    let said: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "the browser driver said: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(out.status.success(), "{said:#}");
    said
}

#[tokio::test]
async fn the_web_ui_in_a_real_browser() {
    let front = Front::bind();
    let callback = format!("{}/v1/oidc/callback", front.url);
    let state = IdpState::new(Client::new("countersign", SECRET, &callback))
        .account("alice", Account::new("alice", &["okta-dba"]))
        .account("bob", Account::new("bob", &[]))
        .account("dave", Account::new("dave", &[]));
    let idp = Idp::start(&state);
    let secrets = tempfile::tempdir().unwrap();
    let base = front.url.clone();
    let text = config(&idp, secrets.path(), "").replace(PUBLIC_URL, &base);
    let app = TestApp::spawn_with(&text).await;
    front.forward_to(&app.url);

    let approve = app.create_ok("alice", "prod-db").await;
    let stale = app.create_ok("alice", "two-person").await;
    let key = crate::helpers::public_line(&crate::helpers::new_key());
    let shots = std::env::var("COUNTERSIGN_SCREENSHOTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| app.dir.path().to_owned());
    let cfg = json!({
        "base": base, "approve": approve, "stale": stale, "key": key,
        "shots": shots,
    });
    let said = drive("web.mjs", cfg).await;
    let text = |k: &str| said[k].as_str().unwrap_or_default().to_owned();

    // bob sees alice's request waiting for him, approves it, and sees it issued.
    assert!(text("list").contains("Waiting for me (2)"), "{said:#}");
    assert!(text("list").contains(&approve), "{said:#}");
    assert!(text("review").contains("1 of group:dba"), "{said:#}");
    assert_eq!(said["approved"]["status"], 303, "{said:#}");
    assert!(
        said["approved"]["text"]
            .as_str()
            .unwrap()
            .contains("issued"),
        "{said:#}"
    );
    let (_, view) = app.request("alice", &approve).await;
    assert_eq!(view["status"], "issued", "{view}");

    // The page bob held went stale when dave approved: 409, and only dave's approval.
    assert_eq!(said["daveApproved"]["status"], 303, "{said:#}");
    assert_eq!(said["stale"]["status"], 409, "{said:#}");
    assert!(
        said["stale"]["text"]
            .as_str()
            .unwrap()
            .contains("request_changed"),
        "{said:#}"
    );
    let (_, view) = app.request("alice", &stale).await;
    assert_eq!(view["approvals"].as_array().unwrap().len(), 1, "{view}");

    // alice asked through the form, and on her own request: told why, no button, and
    // the reason's script inert.
    assert_eq!(said["created"]["status"], 303, "{said:#}");
    assert!(
        text("own").contains("Your request is made: it waits for 1 more of group:dba"),
        "{said:#}"
    );
    let own = text("ownUrl");
    let own = own
        .rsplit("/requests/")
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap();
    let (_, view) = app.request("alice", own).await;
    assert_eq!(view["status"], "pending", "{view}");
    assert_eq!(view["ttl_seconds"], 2700, "{view}");
    assert!(text("own").contains("it is your own request"), "{said:#}");
    assert_eq!(said["approveButtonForAlice"], false);
    assert_eq!(said["scriptRan"], false);
    assert_eq!(text("ownReason"), "INC-9 <script>window.pwned = 1</script>");

    // Another site's form posted from bob's browser: refused, nothing changed.
    assert_eq!(said["forged"]["status"], 403, "{said:#}");
    let refusal = said["forged"]["text"].as_str().unwrap_or_default();
    assert!(
        refusal.contains("did not come from a countersign page"),
        "{said:#}"
    );
    let (_, view) = app.request("alice", &stale).await;
    assert_eq!(view["status"], "pending");
    assert_eq!(view["approvals"].as_array().unwrap().len(), 1, "{view}");
    for shot in ["web-requests.png", "web-review.png"] {
        let meta = std::fs::metadata(shots.join(shot)).unwrap();
        assert!(meta.len() > 1000, "{shot} is empty");
    }
}
