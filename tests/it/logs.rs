//! `[server] log_format = "json"`: every line the real server writes is one JSON object
//! with timestamp, level, target and message, the request's fields (id, user, role,
//! serial) and its HTTP span (client address, route); never a token. Also the real
//! binary's `[metrics] listen`.

use serde_json::Value;

use crate::helpers::*;
use crate::process::{Api, ServerProcess, create_token, init};

#[tokio::test]
async fn json_logs_are_one_object_per_line_with_the_request_fields_and_no_secret() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("countersign.toml");
    let policy = POLICY.replace(
        "data_dir = \"data\"",
        "data_dir = \"data\"\nlog_format = \"json\"\n\n[metrics]\nlisten = \"127.0.0.1:0\"",
    );
    std::fs::write(&config, policy).expect("config");
    init(&config);
    let (alice, bob) = (create_token(&config, "alice"), create_token(&config, "bob"));
    let server = ServerProcess::start(&config);
    let api = Api::new(&server.url);
    api.issue(&alice, &bob).await;
    // A refused token is logged too, without the token.
    let resp = api
        .http
        .get(format!("{}/v1/whoami", server.url))
        .bearer_auth("cs_not_a_real_token_0123456789")
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), reqwest::StatusCode::UNAUTHORIZED);

    // The metrics listener of the real binary answers on the address it logged (a task
    // of its own logs it, and the log reaches this test through a reader thread: every
    // line looked for below is waited for, up to 10 s).
    let parse = |log: &str| -> Vec<Value> {
        log.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    };
    let logged = |lines: &[Value]| {
        lines
            .iter()
            .find(|l| l["message"] == "metrics listening (GET /metrics)")
            .and_then(|l| l["address"].as_str())
            .map(str::to_owned)
    };
    // The lines of the calls made above come through the same reader: waited for too.
    let complete = |lines: &[Value]| {
        logged(lines).is_some()
            && ["request approved", "request created"]
                .iter()
                .all(|m| lines.iter().any(|l| l["message"] == *m))
    };
    let mut log = server.log();
    let mut lines = parse(&log);
    for _ in 0..100 {
        if complete(&lines) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        log = server.log();
        lines = parse(&log);
    }
    let metrics = logged(&lines).expect("the metrics address is logged");
    let page = api
        .http
        .get(format!("http://{metrics}/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(page.status(), reqwest::StatusCode::OK);
    let page = page.text().await.expect("text");
    assert!(page.contains("countersign_certificates_issued_total{role=\"prod-db\"} 1"));
    assert!(server.terminate(), "the server stops on SIGTERM");

    for l in &lines {
        for key in ["timestamp", "level", "target"] {
            assert!(l[key].is_string(), "{key} missing: {l}");
        }
    }
    let approved = lines
        .iter()
        .find(|l| l["message"] == "request approved")
        .expect("the approval is logged");
    assert_eq!(approved["user"], "bob", "{approved}");
    assert_eq!(approved["role"], "prod-db", "{approved}");
    assert_eq!(approved["level"], "INFO", "{approved}");
    assert!(approved["id"].as_str().is_some_and(|i| i.starts_with("r-")));
    assert!(
        approved["serial"]
            .as_str()
            .is_some_and(|s| s.parse::<u64>().is_ok())
    );
    assert_eq!(approved["span"]["client"], "127.0.0.1", "{approved}");
    assert_eq!(approved["span"]["route"], "/v1/requests/{id}/approve");
    let created = lines
        .iter()
        .find(|l| l["message"] == "request created")
        .expect("the request is logged");
    assert_eq!(created["user"], "alice", "{created}");
    for secret in [&alice, &bob, "cs_not_a_real_token_0123456789"] {
        assert!(!log.contains(secret), "a token is in the log");
    }
}
