//! Connection limits through the real HTTP server: header size, time per request and per
//! stalled write, requests in flight, connections per address.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;
use crate::limits::with_server_lines;

#[tokio::test]
async fn oversized_request_headers_get_431() {
    let app = TestApp::spawn_with(&with_server_lines("max_header_bytes = 4096")).await;
    let resp = app
        .http
        .get(format!("{}/v1/health", app.url))
        .header("x-filler", "a".repeat(8000))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let resp = app
        .http
        .get(format!("{}/v1/health", app.url))
        .header("x-filler", "a".repeat(1000))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

fn addr(app: &TestApp) -> String {
    app.url.trim_start_matches("http://").to_owned()
}

/// Opens a connection and sends the head of a POST whose body never arrives.
async fn stalled_post(app: &TestApp) -> TcpStream {
    let mut s = TcpStream::connect(addr(app)).await.unwrap();
    let head = format!(
        "POST /v1/requests HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
        app.token("alice")
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s
}

/// Reads what the server sends until it closes or `limit` passes.
async fn read_reply(s: &mut TcpStream, limit: Duration) -> String {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(limit, s.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test]
async fn stalled_bodies_time_out_and_requests_in_flight_are_bounded() {
    let app = TestApp::spawn_with(&with_server_lines(
        "request_timeout = \"3s\"\nmax_concurrent_requests = 2",
    ))
    .await;
    let before = app.count("SELECT count(*) FROM requests");
    let started = Instant::now();
    let mut a = stalled_post(&app).await;
    let mut b = stalled_post(&app).await;
    // Once the server has read both heads, the two stalled requests hold both slots.
    let overloaded = loop {
        let resp = app
            .http
            .get(format!("{}/v1/ca.pub", app.url))
            .send()
            .await
            .unwrap();
        if resp.status() == StatusCode::SERVICE_UNAVAILABLE {
            break resp;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "never overloaded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(overloaded.headers()["retry-after"], "1");
    let body: serde_json::Value = overloaded.json().await.unwrap();
    assert_eq!(code(&body), "overloaded");
    // The health and readiness checks are exempt: a busy server is neither dead nor one
    // to take out of rotation.
    for check in ["/v1/health", "/v1/ready"] {
        let answer = app
            .http
            .get(format!("{}{check}", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK, "{check}");
    }
    let still = app
        .http
        .get(format!("{}/v1/ca.pub", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        still.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "the slots were still held while health answered"
    );

    for s in [&mut a, &mut b] {
        let reply = read_reply(s, Duration::from_secs(10)).await;
        assert!(reply.starts_with("HTTP/1.1 503"), "{reply}");
        assert!(reply.contains("\"timeout\""), "{reply}");
    }
    let waited = started.elapsed();
    assert!(
        (Duration::from_secs(3)..Duration::from_secs(9)).contains(&waited),
        "{waited:?}"
    );
    // A fresh connection: the pooled ones sat idle past the server's 3 s header timeout,
    // and a client reusing one just as the server closes it sees IncompleteMessage.
    let resp = reqwest::Client::new()
        .get(format!("{}/v1/health", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "permits are given back");
    assert_eq!(app.count("SELECT count(*) FROM requests"), before);
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let app = TestApp::spawn_with(&with_server_lines("request_timeout = \"1s\"")).await;
    let mut s = TcpStream::connect(addr(&app)).await.unwrap();
    s.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let started = Instant::now();
    let reply = read_reply(&mut s, Duration::from_secs(10)).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "connection still open after {:?}",
        started.elapsed()
    );
    assert!(!reply.contains("200 OK"), "{reply}");
}

/// One address cannot take every connection slot: beyond its share, its connections are
/// closed at accept while other clients still get in.
#[tokio::test]
async fn one_address_gets_at_most_its_share_of_connections() {
    let app = TestApp::spawn_with(&with_server_lines("max_connections_per_address = 3")).await;
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(TcpStream::connect(addr(&app)).await.unwrap());
    }
    // The fourth from 127.0.0.1 is closed at once, without an answer.
    let mut fourth = TcpStream::connect(addr(&app)).await.unwrap();
    fourth
        .write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .ok();
    let closing = Instant::now();
    let reply = read_reply(&mut fourth, Duration::from_secs(5)).await;
    assert_eq!(reply, "", "no answer");
    assert!(
        closing.elapsed() < Duration::from_secs(2),
        "closed, not left hanging"
    );
    // From another loopback address (127.0.0.2), and again once one closes.
    let other = tokio::net::TcpSocket::new_v4().unwrap();
    other.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut other = other.connect(addr(&app).parse().unwrap()).await.unwrap();
    other
        .write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let reply = read_reply(&mut other, Duration::from_secs(5)).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    drop(idle.pop());
    let started = Instant::now();
    loop {
        let resp = reqwest::Client::new()
            .get(format!("{}/v1/health", app.url))
            .send()
            .await;
        if resp.is_ok_and(|r| r.status() == StatusCode::OK) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "slot never given back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A trusted proxy's connections are not capped: every client behind it shares its
/// address.
#[tokio::test]
async fn a_trusted_proxy_is_not_capped_per_address() {
    let app = TestApp::spawn_with(&with_server_lines(
        "max_connections_per_address = 1\ntrusted_proxies = [\"127.0.0.1\"]",
    ))
    .await;
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(TcpStream::connect(addr(&app)).await.unwrap());
    }
    let mut s = TcpStream::connect(addr(&app)).await.unwrap();
    s.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let reply = read_reply(&mut s, Duration::from_secs(5)).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}

/// A client that stops reading a large answer is disconnected once the server's writes
/// have made no progress for `request_timeout`, instead of holding the answer's memory.
#[tokio::test]
async fn a_client_that_stops_reading_its_answer_is_disconnected() {
    // SQLite only: the test reaches into the database file itself.
    let app = TestApp::spawn_on_backend(
        &with_server_lines("request_timeout = \"2s\""),
        Backend::Sqlite,
    )
    .await;
    let now = chrono::Utc::now().timestamp();
    insert_requests(
        &app,
        "bob",
        "ops",
        "denied",
        (0..6000).map(|i| now - 7000 + i),
    );
    app.sql("UPDATE requests SET reason = printf('%.2000c', 'x')");
    // About 14 MB of JSON, read through a small receive buffer: far more than the socket
    // buffers hold, so the server's writes stall.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    let mut s = socket.connect(addr(&app).parse().unwrap()).await.unwrap();
    let head = format!(
        "GET /v1/requests?limit=6000 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
        app.token("bob")
    );
    s.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut got = Vec::new();
    let started = Instant::now();
    let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the server kept the connection open");
    assert!(started.elapsed() < Duration::from_secs(5));
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "{}",
        &text[..text.len().min(200)]
    );
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_owned)
        })
        .expect("content-length")
        .trim()
        .parse()
        .unwrap();
    assert!(
        body.len() < length,
        "the whole answer ({length} bytes) arrived: the connection was not cut"
    );
}
