//! `GET /metrics` (`[metrics] listen`), read by an independent parser: Python
//! `prometheus_client`'s (tests/py/metrics_parse.py). Counters move with a flow, every
//! family has its TYPE and HELP, and no label carries a user name, a token or an id.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// The families of `app`'s metrics page, as the Python parser read them.
async fn scrape(app: &TestApp) -> Vec<Value> {
    let resp = app.http.get(&app.metrics_url).send().await.expect("GET");
    assert_eq!(resp.status(), StatusCode::OK);
    let ctype = resp.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    let text = resp.text().await.expect("body");
    parse(&text)
}

/// `text` parsed by `prometheus_client` (tests/py/.venv, made by scripts/install-python.sh).
fn parse(text: &str) -> Vec<Value> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join("tests/py/.venv/bin/python");
    assert!(python.exists(), "run scripts/install-python.sh first");
    let mut child = Command::new(python)
        .arg(root.join("tests/py/metrics_parse.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("python ends");
    assert!(
        out.status.success(),
        "the parser refused the page: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// A well-formed request id that is not `id`.
fn other_id(id: &str) -> String {
    let last = id.chars().last().expect("an id");
    let other = id[2..].chars().find(|c| *c != last).expect("two letters");
    format!("{}{other}", &id[..id.len() - 1])
}

/// The family named `name` (as the parser names it: counters without `_total`).
fn family<'a>(families: &'a [Value], name: &str) -> &'a Value {
    families
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no family {name}"))
}

/// The value of sample `sample` whose labels include `labels` (0 if there is none).
fn value(families: &[Value], family_name: &str, sample: &str, labels: &[(&str, &str)]) -> f64 {
    // A family with no series yet (no request of that kind so far) is left out.
    let Some(f) = families.iter().find(|f| f["name"] == family_name) else {
        return 0.0;
    };
    f["samples"]
        .as_array()
        .expect("samples")
        .iter()
        .filter(|s| s["name"] == sample)
        .find(|s| labels.iter().all(|(k, v)| s["labels"][*k] == *v))
        .map_or(0.0, |s| s["value"].as_f64().expect("a number"))
}

#[tokio::test]
async fn counters_move_with_a_flow_and_every_family_is_described() {
    let app = TestApp::spawn().await;
    let before = scrape(&app).await;

    let id = app.create_ok("alice", "prod-db").await;
    // Refused by a rule: the requester approving her own request.
    let (status, _) = app.approve("alice", &id).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let pending = scrape(&app).await;
    let (status, body) = app.approve("bob", &id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = app.certificate("alice", &id).await;
    assert_eq!(status, StatusCode::OK);
    let missing_id = other_id(&id);
    let (status, _) = app
        .get("alice", &format!("/v1/requests/{missing_id}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let after = scrape(&app).await;

    let role = [("role", "prod-db")];
    let moved = |name: &str, sample: &str, labels: &[(&str, &str)]| {
        value(&after, name, sample, labels) - value(&before, name, sample, labels)
    };
    let created = "countersign_requests_created";
    assert_eq!(
        moved(created, "countersign_requests_created_total", &role),
        1.0
    );
    let decided = "countersign_requests_decided";
    let approved = [("role", "prod-db"), ("outcome", "approved")];
    assert_eq!(
        moved(decided, "countersign_requests_decided_total", &approved),
        1.0
    );
    let issued = "countersign_certificates_issued";
    assert_eq!(
        moved(issued, "countersign_certificates_issued_total", &role),
        1.0
    );
    let refusals = "countersign_sod_refusals";
    let own = [("code", "self_approval")];
    assert_eq!(moved(refusals, "countersign_sod_refusals_total", &own), 1.0);
    // The writer thread ran the writes (the create, the refusal's audit row, the
    // approval, one after another: a batch each; the tokens' use notes ride along or
    // make their own), on either backend, and was busy for some of it.
    let batches = moved(
        "countersign_store_batches",
        "countersign_store_batches_total",
        &[],
    );
    let ops = "countersign_store_batched_operations";
    let operations = moved(ops, &format!("{ops}_total"), &[]);
    assert!((3.0..=6.0).contains(&batches), "{batches}");
    assert!(operations >= 3.0 && operations >= batches, "{operations}");
    let busy = "countersign_store_writer_busy_seconds";
    let busy = moved(busy, &format!("{busy}_total"), &[]);
    assert!(busy > 0.0 && busy < 10.0, "{busy}");
    let waited = "countersign_request_decision_seconds";
    assert_eq!(
        moved(
            waited,
            "countersign_request_decision_seconds_count",
            &approved
        ),
        1.0
    );
    let signing = "countersign_signing_duration_seconds";
    assert_eq!(
        moved(signing, "countersign_signing_duration_seconds_count", &[]),
        1.0
    );
    // The request was pending in between, and is no more.
    let gauge = "countersign_requests_pending";
    assert_eq!(value(&pending, gauge, gauge, &role), 1.0);
    assert_eq!(value(&after, gauge, gauge, &role), 0.0);
    let oldest = "countersign_requests_oldest_pending_seconds";
    assert!(
        family(&pending, oldest)["samples"][0]["value"]
            .as_f64()
            .is_some()
    );
    assert!((0.0..60.0).contains(&value(&pending, oldest, oldest, &role)));
    let build = family(&after, "countersign_build_info");
    assert_eq!(build["samples"][0]["value"], 1.0);
    assert_eq!(
        build["samples"][0]["labels"]["version"],
        env!("CARGO_PKG_VERSION"),
        "{build}"
    );

    // HTTP answers by route template, never the raw path.
    let http = "countersign_http_requests";
    let sample = "countersign_http_requests_total";
    let approve = [
        ("route", "/v1/requests/{id}/approve"),
        ("method", "POST"),
        ("status", "200"),
    ];
    assert_eq!(moved(http, sample, &approve), 1.0);
    let refused = [
        ("route", "/v1/requests/{id}/approve"),
        ("method", "POST"),
        ("status", "403"),
    ];
    assert_eq!(moved(http, sample, &refused), 1.0);
    let missing = [("route", "/v1/requests/{id}"), ("status", "404")];
    assert_eq!(moved(http, sample, &missing), 1.0);
    let duration = "countersign_http_request_duration_seconds";
    let route = [("route", "/v1/requests/{id}/approve")];
    assert_eq!(
        moved(
            duration,
            "countersign_http_request_duration_seconds_count",
            &route
        ),
        2.0
    );

    // The audit head is the log's last event; the KRL gauges are the served KRL's.
    let events = app.audit("").await;
    let last = events
        .iter()
        .filter_map(|e| e["seq"].as_f64())
        .fold(0.0, f64::max);
    let head = "countersign_audit_head_seq";
    assert_eq!(value(&after, head, head, &[]), last);
    let resp = app
        .http
        .get(format!("{}/v1/krl", app.url))
        .send()
        .await
        .expect("GET");
    let etag = resp.headers()["etag"].to_str().expect("ascii").to_owned();
    let served: f64 = etag
        .trim_matches('"')
        .split('-')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("a version in the ETag");
    let krl = "countersign_krl_version";
    assert_eq!(value(&after, krl, krl, &[]), served);
    let up = "countersign_database_up";
    assert_eq!(value(&after, up, up, &[]), 1.0);

    // Every family the contract names is there, described, with its type.
    for (name, kind) in [
        ("countersign_requests_created", "counter"),
        ("countersign_requests_decided", "counter"),
        ("countersign_requests_pending", "gauge"),
        ("countersign_certificates_issued", "counter"),
        ("countersign_sod_refusals", "counter"),
        ("countersign_http_requests", "counter"),
        ("countersign_http_request_duration_seconds", "histogram"),
        ("countersign_audit_head_seq", "gauge"),
        ("countersign_krl_version", "gauge"),
        ("countersign_krl_entries", "gauge"),
        ("countersign_request_decision_seconds", "histogram"),
        ("countersign_signing_duration_seconds", "histogram"),
        ("countersign_revocations", "counter"),
        ("countersign_audit_append_duration_seconds", "histogram"),
        ("countersign_ssh_connections", "counter"),
        ("countersign_ssh_refusals", "counter"),
        ("countersign_notifications", "gauge"),
        ("countersign_sessions_active", "gauge"),
    ] {
        let f = family(&after, name);
        assert_eq!(f["type"], kind, "{name}");
        assert!(
            f["documentation"].as_str().is_some_and(|d| d.len() > 10),
            "{name} has no HELP"
        );
    }
    for f in &after {
        let name = f["name"].as_str().expect("name");
        assert!(name.starts_with("countersign_"), "{name}");
    }

    // No label value is a user name, a token or the request's id.
    let mut secret: Vec<String> = app.tokens.keys().cloned().collect();
    secret.extend(app.tokens.values().cloned());
    secret.push(id.clone());
    secret.push(missing_id);
    for f in &after {
        for s in f["samples"].as_array().expect("samples") {
            for (k, v) in s["labels"].as_object().expect("labels") {
                let v = v.as_str().expect("a string");
                assert!(
                    !secret.iter().any(|x| v.contains(x.as_str())),
                    "label {k}={v} of {} names a user, a token or an id",
                    s["name"]
                );
            }
        }
    }
}

#[tokio::test]
async fn revocations_and_ends_are_counted_by_outcome() {
    let app = TestApp::spawn().await;
    let before = scrape(&app).await;
    let denied = app.create_ok("alice", "prod-db").await;
    let (status, _) = app.deny("bob", &denied, "not now").await;
    assert_eq!(status, StatusCode::OK);
    let cancelled = app.create_ok("alice", "prod-db").await;
    let (status, _) = app.cancel("alice", &cancelled).await;
    assert_eq!(status, StatusCode::OK);
    let issued = app.create_ok("alice", "prod-db").await;
    let (status, body) = app.approve("bob", &issued).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let serial = body["certificate"]["serial"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| {
            body["certificate"]["serial"]
                .as_u64()
                .map(|s| s.to_string())
        })
        .expect("serial");
    let (status, body) = app
        .post(
            "bob",
            &format!("/v1/certificates/{serial}/revoke"),
            json!({"reason": "laptop lost"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let after = scrape(&app).await;
    let moved = |name: &str, sample: &str, labels: &[(&str, &str)]| {
        value(&after, name, sample, labels) - value(&before, name, sample, labels)
    };
    let decided = "countersign_requests_decided";
    let sample = "countersign_requests_decided_total";
    for outcome in ["denied", "cancelled", "approved"] {
        let labels = [("role", "prod-db"), ("outcome", outcome)];
        assert_eq!(moved(decided, sample, &labels), 1.0, "{outcome}");
    }
    let revocations = "countersign_revocations";
    assert_eq!(
        moved(revocations, "countersign_revocations_total", &[]),
        1.0
    );
    let entries = "countersign_krl_entries";
    assert_eq!(value(&after, entries, entries, &[]), 1.0);
}

#[tokio::test]
async fn only_metrics_are_served_there_and_the_api_does_not_serve_them() {
    let app = TestApp::spawn().await;
    let other = app.metrics_url.replace("/metrics", "/v1/health");
    let resp = app.http.get(&other).send().await.expect("GET");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let (status, _) = app.get("alice", "/metrics").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// The metrics listener has limits of its own: one address holds at most 8 connections
/// there (more are closed at accept), so idle connections cannot take the descriptors
/// the API needs; the API answers meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_to_the_metrics_port_are_capped() {
    use tokio::io::AsyncReadExt;
    let app = TestApp::spawn().await;
    let address = app
        .metrics_url
        .trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .to_owned();
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(
            tokio::net::TcpStream::connect(&address)
                .await
                .expect("connect"),
        );
    }
    let mut extra = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), extra.read(&mut buf))
        .await
        .expect("the extra connection is closed, not kept");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    let (status, _) = app.get("alice", "/v1/whoami").await;
    assert_eq!(status, StatusCode::OK);
    drop(held);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let resp = app.http.get(&app.metrics_url).send().await.expect("GET");
    assert_eq!(resp.status(), StatusCode::OK);
}

/// The WAL checkpoints beside the writer (`store/writer/checkpoint.rs`) run in a serving
/// process, not only in the store's tests: once the flows have filled a cycle (16,000
/// frames) the WAL starts again, no checkpoint fails, every call is answered meanwhile,
/// and the WAL file stays about one cycle long (SQLite: PostgreSQL has no such file).
#[tokio::test]
async fn the_wal_starts_again_under_load_and_the_metric_counts_it() {
    let app = TestApp::spawn().await;
    if app.pg.is_some() {
        return;
    }
    let family = "countersign_store_wal_checkpoints";
    let count = |f: &[Value], outcome: &str| {
        value(
            f,
            family,
            "countersign_store_wal_checkpoints_total",
            &[("outcome", outcome)],
        )
    };
    let mut flows = 0;
    let after = loop {
        let client = || async {
            for _ in 0..25 {
                let id = app.create_ok("alice", "prod-db").await;
                let (status, body) = app.approve("bob", &id).await;
                assert_eq!(status, StatusCode::OK, "{body}");
            }
        };
        tokio::join!(client(), client(), client(), client());
        flows += 100;
        let families = scrape(&app).await;
        if count(&families, "restarted") >= 1.0 {
            break families;
        }
        assert!(
            flows < 4_000,
            "the WAL never started again in {flows} flows"
        );
    };
    assert_eq!(count(&after, "failed"), 0.0);
    assert!(
        count(&after, "copied") >= 1.0,
        "the thread copied the WAL back first"
    );
    let mut wal = app.db_path().into_os_string();
    wal.push("-wal");
    let len = std::fs::metadata(&wal).expect("the WAL file").len();
    // A cycle of 4 KiB pages with their 24-byte headers, and what one batch adds.
    assert!(len < 80 << 20, "{len} bytes of WAL after {flows} flows");
}
