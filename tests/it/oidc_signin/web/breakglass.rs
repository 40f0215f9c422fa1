//! The break-glass review page in a real headless Chromium (`tests/oidc/breakglass.mjs`):
//! a reviewer finds the use waiting for her, sees it, gives an `unjustified` verdict from
//! the form, and the certificate is revoked; the invoker is told why she cannot review
//! her own use.

use super::*;
use crate::breakglass::TABLE;
use crate::idp::Front;

#[tokio::test]
async fn a_reviewer_judges_a_break_glass_use_from_the_browser() {
    let front = Front::bind();
    let callback = format!("{}/v1/oidc/callback", front.url);
    let state = IdpState::new(Client::new("countersign", SECRET, &callback))
        .account("alice", Account::new("alice", &[]))
        .account("erin", Account::new("erin", &[]));
    let idp = Idp::start(&state);
    let secrets = tempfile::tempdir().unwrap();
    let base = front.url.clone();
    let text = config(&idp, secrets.path(), "").replace(PUBLIC_URL, &base);
    let app = TestApp::spawn_with(&format!("{text}{TABLE}")).await;
    front.forward_to(&app.url);
    let (status, used) =
        crate::breakglass::break_glass(&app, "alice", "prod-db", "INC-4242 primary down", None)
            .await;
    assert_eq!(status, StatusCode::CREATED, "{used}");
    let id = used["id"].as_str().unwrap().to_owned();
    let shots = std::env::var("COUNTERSIGN_SCREENSHOTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| app.dir.path().to_owned());
    let cfg = json!({ "base": base, "use": id, "shots": shots });
    let said = super::chromium::drive("breakglass.mjs", cfg).await;
    let text = |k: &str| said[k].as_str().unwrap_or_default().to_owned();
    assert!(text("list").contains("Waiting for me (1)"), "{said:#}");
    assert!(text("list").contains(&id), "{said:#}");
    assert!(
        text("before").contains("Break-glass: taken without approval"),
        "{said:#}"
    );
    assert!(text("before").contains("INC-4242 primary down"), "{said:#}");
    assert_eq!(said["reviewed"]["status"], 303, "{said:#}");
    let after = said["reviewed"]["text"].as_str().unwrap_or_default();
    assert!(after.contains("You gave your verdict"), "{said:#}");
    assert!(
        after.contains("no incident was open at that time"),
        "{said:#}"
    );
    assert_eq!(said["reviewFormAfter"], false, "one verdict each: {said:#}");
    assert!(
        text("own").contains("nobody reviews their own break-glass"),
        "{said:#}"
    );
    assert_eq!(said["reviewFormForAlice"], false);
    // What the form did, read through the API: the verdict, and the revocation.
    let (_, view) = app.request("alice", &id).await;
    assert_eq!(
        view["breakglass"]["verdicts"][0]["reviewer"], "erin",
        "{view}"
    );
    assert_eq!(view["breakglass"]["verdicts"][0]["verdict"], "unjustified");
    assert_eq!(view["certificate"]["revoked"]["by"], "erin", "{view}");
    let meta = std::fs::metadata(shots.join("web-breakglass.png")).unwrap();
    assert!(meta.len() > 1000, "the screenshot is empty");
}
