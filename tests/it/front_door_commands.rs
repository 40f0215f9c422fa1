//! More of the SSH front door with the real OpenSSH client: `list` paging, shell syntax
//! in arguments, a client that disconnects while waiting, help.

use std::process::Stdio;

use crate::front_door::CERT_PREFIX;
use crate::front_door_helper::*;
use crate::helpers::*;

#[tokio::test(flavor = "multi_thread")]
async fn list_pages_with_limit_and_after_and_names_the_next_page_on_stderr() {
    let d = Door::spawn("").await;
    // 10,001 of alice's requests straight into the database: one more than a list shows.
    let now = chrono::Utc::now().timestamp();
    let ids = insert_requests(
        &d.app,
        "alice",
        "shell",
        "denied",
        (0..10_001).map(|i| now - 20_000 + i),
    );
    let newest_first: Vec<&str> = ids.iter().rev().map(String::as_str).collect();
    let listed = |stdout: &str| -> Vec<String> {
        stdout
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().next().unwrap_or_default().to_owned())
            .collect()
    };
    let out = d.ssh("alice", &["list"]).await;
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(
        listed(&out.stdout),
        newest_first[..10_000],
        "the 10,000 newest"
    );
    assert_eq!(
        out.stderr.trim(),
        format!("more requests follow: list --after {}", newest_first[9_999])
    );
    let out = d
        .ssh("alice", &["list", "--after", newest_first[9_999]])
        .await;
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(
        listed(&out.stdout),
        [newest_first[10_000]],
        "the oldest alone"
    );
    assert_eq!(out.stderr, "", "the last page names no next one");
    // Small pages, with the filter and the limit repeated in the hint.
    let out = d
        .ssh("alice", &["list", "--status", "denied", "--limit", "2"])
        .await;
    assert_eq!(listed(&out.stdout), newest_first[..2]);
    assert_eq!(
        out.stderr.trim(),
        format!(
            "more requests follow: list --status denied --limit 2 --after {}",
            newest_first[1]
        )
    );
    let out = d
        .ssh(
            "alice",
            &["list", "--limit", "2", "--after", newest_first[1]],
        )
        .await;
    assert_eq!(listed(&out.stdout), newest_first[2..4]);
    // A cursor that is no request is an error, not an empty page.
    let out = d.ssh("alice", &["list", "--after", "r-aaaaaaaaaaaa"]).await;
    assert_eq!(out.status, 1, "{out:?}");
    assert!(
        out.stderr.starts_with("countersign: not_found: "),
        "{}",
        out.stderr
    );
    // Nor is a request she may not see (frank's): not found, as for status.
    let franks = insert_requests(&d.app, "frank", "shell", "denied", [now]);
    let out = d.ssh("alice", &["list", "--after", &franks[0]]).await;
    assert_eq!(out.status, 1, "{out:?}");
    assert!(
        out.stderr.starts_with("countersign: not_found: "),
        "{}",
        out.stderr
    );
    let out = d.ssh("alice", &["list", "--limit", "0"]).await;
    assert_eq!(out.status, 2, "{out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn shell_syntax_in_arguments_is_literal_text_or_an_error_never_run() {
    let d = Door::spawn("").await;
    let dir = d.app.dir.path();
    let pwned = |n: u32| dir.join(format!("pwned{n}"));
    let attempts = [
        format!("x; touch {}", pwned(1).display()),
        format!("$(touch {})", pwned(2).display()),
        format!("`touch {}`", pwned(3).display()),
        format!(
            "x | touch {} && touch {}",
            pwned(4).display(),
            pwned(5).display()
        ),
    ];
    for reason in &attempts {
        let out = d
            .ssh(
                "alice",
                &["request", "shell", "--no-wait", "--reason", reason],
            )
            .await;
        assert_eq!(out.status, 0, "{out:?}");
        let (_, body) = d.app.request("alice", out.stdout.trim()).await;
        assert_eq!(body["reason"], reason.as_str(), "stored as literal text");
        let out = d.ssh("alice", &["cancel", out.stdout.trim()]).await;
        assert_eq!(out.status, 0, "{out:?}");
    }
    let touch6 = format!("touch {}", pwned(6).display());
    for line in [
        format!("whoami; {touch6}"),
        format!("whoami && {touch6}"),
        format!("sh -c '{touch6}'"),
        format!("$({touch6})"),
    ] {
        let out = d.ssh("alice", &[&line]).await;
        assert_eq!(out.status, 2, "{line}: {out:?}");
    }
    for n in 1..=6 {
        assert!(!pwned(n).exists(), "{} was created", pwned(n).display());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_stays_pending_after_the_client_disconnects_and_cert_fetches_it_later() {
    let d = Door::spawn("").await;
    let mut child = d
        .door
        .command(
            d.keys.path("alice"),
            "ca",
            &["request", "shell", "--reason", "x"],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let id = d.pending_id("alice").await;
    child.kill().unwrap();
    child.wait().unwrap();
    let out = d.ssh("alice", &["status", &id]).await;
    assert!(out.stdout.contains("status       pending"), "{out:?}");

    let (_, body) = d.app.approve("bob", &id).await;
    assert_eq!(body["status"], "issued");
    let out = d.ssh("alice", &["cert", &id]).await;
    assert_eq!(out.status, 0, "{out:?}");
    assert!(out.stdout.starts_with(CERT_PREFIX));
    let (_, http) = d.app.certificate("alice", &id).await;
    assert_eq!(out.stdout, http, "the same certificate as over HTTP");
    // Only the requester may fetch it, as over HTTP.
    let out = d.ssh("bob", &["cert", &id]).await;
    assert!(
        out.stderr.starts_with("countersign: forbidden: "),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn help_and_a_shell_request_print_the_help() {
    let d = Door::spawn("").await;
    for args in [&["help"][..], &[][..], &["request", "--help"][..]] {
        let out = d.ssh("alice", args).await;
        assert_eq!(out.status, 0, "{args:?}: {out:?}");
        assert!(
            out.stdout.contains("Usage: ssh ca@HOST"),
            "{args:?}: {out:?}"
        );
    }
    let out = d.ssh("alice", &["help"]).await;
    for needle in [
        "request", "approve", "deny", "cancel", "cert", "whoami", "`ca`",
    ] {
        assert!(
            out.stdout.contains(needle),
            "help lacks {needle}: {}",
            out.stdout
        );
    }
}
