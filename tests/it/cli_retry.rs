//! `countersign request` through a connection that breaks after the server answered
//! (a load balancer whose backend died between COMMIT and the response): the CLI sends
//! the create again with the same `Idempotency-Key`, and one request exists, not two.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use crate::cli::{client, run, text};
use crate::helpers::*;

/// A TCP proxy to `target` whose first `broken` connections carry the request to the
/// server, wait for its answer, and hang up on the client instead of passing it on;
/// later connections pass both ways. Returns its address and the connection count.
async fn answer_eating_proxy(target: SocketAddr, broken: usize) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let n = count.fetch_add(1, Ordering::SeqCst);
            let Ok(server) = TcpStream::connect(target).await else {
                continue;
            };
            tokio::spawn(async move {
                let (mut client_read, client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let upstream = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                });
                if n < broken {
                    // The server answered, so it committed; the client never hears it.
                    let mut first = [0u8; 1];
                    let _ = server_read.read(&mut first).await;
                    drop(client_write);
                    upstream.abort();
                } else {
                    let mut client_write = client_write;
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                }
            });
        }
    });
    (format!("http://{addr}"), seen)
}

/// Runs `countersign request prod-db` as alice against `url`, with a fresh key file.
async fn request_through(app: &TestApp, url: &str) -> std::process::Output {
    let key = write_key(app.dir.path(), "id_ed25519", &new_key());
    let mut cmd = client(app, "alice");
    cmd.env("COUNTERSIGN_URL", url)
        .args([
            "request",
            "prod-db",
            "--reason",
            "INC-4211: replica lag",
            "--key",
        ])
        .arg(key.with_extension("pub"));
    run(cmd).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_create_whose_answer_was_lost_is_sent_again_and_made_once() {
    let app = TestApp::spawn().await;
    let target: SocketAddr = app.url.trim_start_matches("http://").parse().unwrap();
    let (proxy, connections) = answer_eating_proxy(target, 1).await;
    let out = request_through(&app, &proxy).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("sending it again with the same Idempotency-Key"),
        "{stderr}"
    );
    assert_eq!(connections.load(Ordering::SeqCst), 2, "sent twice");
    // The first attempt was made and committed; the retry found it.
    let (_, list) = app.get("alice", "/v1/requests").await;
    let requests = list["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 1, "{list}");
    assert_eq!(requests[0]["id"].as_str(), Some(stdout.trim()), "{stdout}");
    let created = app
        .audit("")
        .await
        .iter()
        .filter(|e| e["action"] == "request.created")
        .count();
    assert_eq!(created, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_create_that_never_gets_an_answer_gives_up_saying_so() {
    let app = TestApp::spawn().await;
    let target: SocketAddr = app.url.trim_start_matches("http://").parse().unwrap();
    let (proxy, connections) = answer_eating_proxy(target, usize::MAX).await;
    let out = request_through(&app, &proxy).await;
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("no answer from countersign"), "{stderr}");
    assert!(stderr.contains("3 times"), "{stderr}");
    assert_eq!(
        connections.load(Ordering::SeqCst),
        3,
        "sent three times, no more"
    );
    // However often it was sent, it was made once.
    let (_, list) = app.get("alice", "/v1/requests").await;
    assert_eq!(list["requests"].as_array().unwrap().len(), 1, "{list}");
}

/// A create that never reached a server (nothing listens there, or TLS spoken to plain
/// HTTP) is not sent again: trying again changes nothing, and the hint says what to fix.
#[tokio::test]
async fn a_create_that_never_connected_is_not_sent_again() {
    let app = TestApp::spawn().await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let tls = app.url.replacen("http://", "https://", 1);
    for (url, hint) in [
        (format!("http://{closed}"), "cannot reach countersign"),
        (tls, "does not answer TLS"),
    ] {
        let out = request_through(&app, &url).await;
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(stderr.contains(hint), "{url}: {stderr}");
        assert!(!stderr.contains("sending it again"), "{url}: {stderr}");
    }
}
