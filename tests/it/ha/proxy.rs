//! A connection cut right after COMMIT is sent: a TCP proxy between one replica and
//! PostgreSQL forwards the client's next simple query ending in `COMMIT` and then drops
//! both sides before the answer comes back. The replica does not know whether it
//! committed; it must find out (or fail), and never sign twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{Http, Replicas, request_body};
use crate::helpers::POLICY;

/// The proxy: arm it, and the next COMMIT through it loses its answer.
struct CutProxy {
    port: u16,
    armed: Arc<AtomicBool>,
    cuts: Arc<AtomicUsize>,
}

impl CutProxy {
    async fn start(upstream: u16) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed = Arc::new(AtomicBool::new(false));
        let cuts = Arc::new(AtomicUsize::new(0));
        let (a, c) = (armed.clone(), cuts.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                    continue;
                };
                tokio::spawn(relay(client, server, a.clone(), c.clone()));
            }
        });
        CutProxy { port, armed, cuts }
    }
}

/// Relays one connection; when armed, a client chunk holding a simple query whose text
/// ends in `COMMIT` is forwarded, and the answer is never relayed: both sides close.
async fn relay(
    client: TcpStream,
    server: TcpStream,
    armed: Arc<AtomicBool>,
    cuts: Arc<AtomicUsize>,
) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let cutting = Arc::new(AtomicBool::new(false));
    let cut = cutting.clone();
    let up = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let chunk = &buf[..n];
            // A simple query ending in COMMIT ("...; COMMIT\0", not "READ COMMITTED"),
            // anywhere in the chunk: the statements of a write are pipelined, so it
            // often follows their messages in the same read.
            let commit = chunk.windows(7).any(|w| w == b"COMMIT\0");
            if commit && armed.swap(false, Ordering::SeqCst) {
                // Set before the COMMIT leaves, so its answer is never relayed.
                cut.store(true, Ordering::SeqCst);
                let _ = sw.write_all(chunk).await;
                let _ = sw.flush().await;
                cuts.fetch_add(1, Ordering::SeqCst);
                // Give the server the time to read it before the socket closes.
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                return;
            }
            if sw.write_all(chunk).await.is_err() {
                return;
            }
        }
    };
    let down = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match sr.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if cutting.load(Ordering::SeqCst) || cw.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    // Whichever side ends first ends the connection (both halves dropped).
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_commit_whose_answer_is_lost_never_signs_twice() {
    let started = std::time::Instant::now();
    let db = crate::pg::fresh_database();
    let proxy = CutProxy::start(crate::pg::cluster().port()).await;
    let via_proxy = db.url.replace(
        &format!(":{}/", crate::pg::cluster().port()),
        &format!(":{}/", proxy.port),
    );
    let replicas = Replicas::start_with_urls(&db, POLICY, &[db.url.clone(), via_proxy]);
    let (direct, cut) = (replicas.url(0), replicas.url(1));
    let http = Http::new();
    let mut answers = Vec::new();
    for round in 0..4 {
        let a = http
            .post(
                &direct,
                replicas.token("alice"),
                "/v1/requests",
                request_body("prod-db"),
                None,
            )
            .await
            .unwrap();
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
        let id = a.body["id"].as_str().unwrap().to_owned();
        let before = proxy.cuts.load(Ordering::SeqCst);
        proxy.armed.store(true, Ordering::SeqCst);
        let approve = format!("/v1/requests/{id}/approve");
        let a = http
            .post(&cut, replicas.token("bob"), &approve, json!({}), None)
            .await
            .unwrap();
        assert!(
            a.status == StatusCode::OK || a.status == StatusCode::SERVICE_UNAVAILABLE,
            "round {round}: the cut approval answered {} {}",
            a.status,
            a.body
        );
        assert_eq!(
            proxy.cuts.load(Ordering::SeqCst),
            before + 1,
            "no COMMIT was cut"
        );
        answers.push(a.status);
        // The retry on the other replica does not sign again.
        let retry = http
            .post(&direct, replicas.token("carol"), &approve, json!({}), None)
            .await
            .unwrap();
        let view = http
            .get(
                &direct,
                replicas.token("bob"),
                &format!("/v1/requests/{id}"),
            )
            .await
            .unwrap();
        assert_eq!(view.body["status"], "issued", "{}", view.body);
        if a.status == StatusCode::OK {
            assert_eq!(retry.status, StatusCode::CONFLICT, "{}", retry.body);
            assert_eq!(
                a.body["certificate"]["serial"],
                view.body["certificate"]["serial"]
            );
        }
        let events = http
            .get(
                &direct,
                replicas.token("bob"),
                &format!("/v1/audit?request={id}"),
            )
            .await
            .unwrap();
        let issued = events.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "certificate.issued")
            .count();
        assert_eq!(issued, 1, "round {round}: {}", events.body);
    }
    // The cut hit the COMMIT, whose outcome the replica asked PostgreSQL for.
    let log = replicas.server(1).log();
    assert!(log.contains("the connection failed during COMMIT"), "{log}");
    replicas.audit_verify(0);
    eprintln!(
        "ha commit cut: answers {answers:?}, took {:?}",
        started.elapsed()
    );
}
