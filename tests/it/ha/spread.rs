//! What one replica does, the others show at once: a revocation in every replica's KRL
//! (same bytes, version and `ETag`), and an approval made on replica A wakes a waiter
//! on replica B (LISTEN/NOTIFY).

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use super::{Http, Replicas, krl_serials, request_body};
use crate::front_door_helper::{KeyRing, policy};
use crate::helpers::POLICY;

/// Creates a prod-db request for alice on replica `a`, approves it on `b`: the serial.
async fn issue(replicas: &Replicas, http: &Http, a: usize, b: usize) -> u64 {
    let created = http
        .post(
            &replicas.url(a),
            replicas.token("alice"),
            "/v1/requests",
            request_body("prod-db"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap();
    let approved = http
        .post(
            &replicas.url(b),
            replicas.token("bob"),
            &format!("/v1/requests/{id}/approve"),
            json!({}),
            None,
        )
        .await
        .unwrap();
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.body);
    approved.body["certificate"]["serial"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revocation_is_in_every_replicas_krl_at_once() {
    let started = Instant::now();
    let db = crate::pg::fresh_database();
    let replicas = Replicas::start(&db, POLICY, 3);
    let http = Http::new();
    let mut newest = 0;
    let mut revoked = Vec::new();
    for round in 0..4 {
        let serial = issue(&replicas, &http, round % 3, (round + 1) % 3).await;
        let a = http
            .post(
                &replicas.url((round + 2) % 3),
                replicas.token("bob"),
                &format!("/v1/certificates/{serial}/revoke"),
                json!({"reason": "lost laptop"}),
                None,
            )
            .await
            .unwrap();
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        revoked.push(serial);
        let mut krls = Vec::new();
        for i in 0..3 {
            krls.push(http.krl(&replicas.url(i)).await);
        }
        for (i, (version, etag, bytes)) in krls.iter().enumerate() {
            assert!(
                *version > newest,
                "round {round}: replica {i} serves version {version}"
            );
            assert_eq!(version, &krls[0].0, "round {round}: replica {i}");
            let listed = krl_serials(bytes);
            assert_eq!(
                listed,
                krl_serials(&krls[0].2),
                "round {round}: replica {i}"
            );
            assert!(
                revoked.iter().all(|s| listed.contains(s)),
                "replica {i}: {listed:?}"
            );
            // Every replica dates its KRL by the start of the minute: the same bytes and
            // ETag everywhere, unless these fetches straddled the end of a minute.
            let date = |b: &[u8]| countersign::krl::read(b).unwrap().generated_date;
            let (mine, first) = (date(bytes), date(&krls[0].2));
            assert_eq!(mine % 60, 0, "dated by the minute: {mine}");
            if mine == first {
                assert!(
                    bytes == &krls[0].2,
                    "round {round}: replica {i} serves other bytes"
                );
                assert_eq!(etag, &krls[0].1, "round {round}: replica {i}");
            } else {
                assert_eq!(mine.abs_diff(first), 60, "round {round}: replica {i}");
                eprintln!("round {round}: the fetches straddled the end of a minute");
            }
        }
        newest = krls[0].0;
    }
    // Later polls from any replica never go back to an older version.
    for i in [2, 0, 1, 2, 1, 0] {
        let (version, _, _) = http.krl(&replicas.url(i)).await;
        assert!(
            version >= newest,
            "replica {i}: version {version} < {newest}"
        );
    }
    eprintln!("ha KRL across replicas took {:?}", started.elapsed());
}

/// `address=127.0.0.1:PORT` of the "SSH front door listening" line of a replica's log.
fn ssh_port(replicas: &Replicas, i: usize) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = replicas.server(i).log();
        let port = log
            .lines()
            .find(|l| l.contains("SSH front door listening"))
            .and_then(|l| l.split("address=").nth(1))
            .and_then(|a| a.split_whitespace().next())
            .and_then(|a| a.trim_matches('"').parse::<std::net::SocketAddr>().ok())
            .map(|a| a.port());
        if let Some(port) = port {
            return port;
        }
        assert!(Instant::now() < deadline, "no SSH listening line:\n{log}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_waiter_on_one_replica_hears_an_approval_on_another() {
    let started = Instant::now();
    let keys = KeyRing::new();
    let db = crate::pg::fresh_database();
    let replicas = Replicas::start(&db, &policy(&keys, "", "1h"), 2);
    let http = Http::new();
    // alice waits on replica 1, over the SSH front door (which waits on the commits it
    // hears, not on a poll).
    let port = ssh_port(&replicas, 1);
    let mut ssh = crate::sshd_helper::ssh_command(&[], keys.path("alice"), port, "ca");
    ssh.args(["request", "shell", "--reason", "INC-14", "waiting"]);
    let waiter = tokio::task::spawn_blocking(move || {
        let out = ssh.output().unwrap();
        (out, Instant::now())
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let id = loop {
        let a = http
            .get(
                &replicas.url(0),
                replicas.token("bob"),
                "/v1/requests?status=pending",
            )
            .await
            .unwrap();
        if let Some(id) = a.body["requests"][0]["id"].as_str() {
            break id.to_owned();
        }
        assert!(Instant::now() < deadline, "the request never appeared");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let approved = http
        .post(
            &replicas.url(0),
            replicas.token("bob"),
            &format!("/v1/requests/{id}/approve"),
            json!({}),
            None,
        )
        .await
        .unwrap();
    let answered = Instant::now();
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.body);
    let (out, done) = tokio::time::timeout(Duration::from_secs(20), waiter)
        .await
        .expect("the waiter on the other replica learns of the approval")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("-cert-v01@openssh.com"), "{stdout}");
    // Printed, not asserted: without NOTIFY it would be up to the 1 s poll.
    eprintln!(
        "ha waiter on replica 1 finished {:?} after the approval on replica 0 \
         (test took {:?})",
        done.saturating_duration_since(answered),
        started.elapsed()
    );
}
