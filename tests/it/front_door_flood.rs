//! The SSH front door under one greedy client: connections per source address, the time
//! allowed to log in, and channels per connection. Silent clients are raw TCP sockets;
//! channels are opened with the russh client (OpenSSH opens one per command).

use std::sync::Arc;
use std::time::{Duration, Instant};

use russh::client::{self, Handle};
use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{ChannelMsg, ChannelOpenFailure};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::front_door_helper::*;

/// How long a test waits for the server to act before calling it a failure.
const PATIENCE: Duration = Duration::from_secs(20);

/// A TCP connection to the front door from `source` (any 127.0.0.0/8 address is local).
async fn connect_from(source: &str, d: &Door) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let to = format!("127.0.0.1:{}", d.door.port).parse().unwrap();
    socket.connect(to).await.unwrap()
}

/// The first line the server sends: its SSH version when the connection was admitted,
/// `""` when it was closed at accept.
async fn first_line(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    let read = async {
        while stream.read(&mut byte).await.unwrap_or(0) == 1 {
            got.push(byte[0]);
            if byte[0] == b'\n' {
                break;
            }
        }
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .expect("neither a greeting nor a close");
    String::from_utf8_lossy(&got).into_owned()
}

/// Whether the server admitted `stream` (sent its greeting).
async fn admitted(stream: &mut TcpStream) -> bool {
    let line = first_line(stream).await;
    assert!(
        line.is_empty() || line.starts_with("SSH-2.0-countersign"),
        "{line:?}"
    );
    !line.is_empty()
}

/// A silent connection from `source` that the server admitted, once it does (the place
/// of a connection that just closed is given back when the server has seen it close).
async fn admitted_from(source: &str, d: &Door) -> TcpStream {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut s = connect_from(source, d).await;
        if admitted(&mut s).await {
            return s;
        }
        assert!(Instant::now() < deadline, "{source} never admitted again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads (and discards) until the server closes `stream`; panics if it does not.
async fn closed_by_server(stream: &mut TcpStream) {
    let mut sink = [0u8; 4096];
    let read = async { while stream.read(&mut sink).await.unwrap_or(0) > 0 {} };
    tokio::time::timeout(PATIENCE, read)
        .await
        .expect("the server left the connection open");
}

#[tokio::test(flavor = "multi_thread")]
async fn another_client_gets_in_while_one_address_floods_silent_connections() {
    let d = Door::spawn("max_connections = 4\nmax_connections_per_address = 2").await;
    // Every connection is seen by the server (greeted or closed) before alice comes.
    let mut flood = Vec::new();
    let mut greeted = 0;
    for _ in 0..10 {
        let mut s = connect_from("127.0.0.2", &d).await;
        greeted += usize::from(admitted(&mut s).await);
        flood.push(s);
    }
    let out = d.ssh("alice", &["whoami"]).await;
    assert_eq!(
        out.status, 0,
        "locked out by another address's flood: {out:?}"
    );
    assert_eq!(greeted, 2, "flood connections admitted");
    assert!(out.stdout.starts_with("user         alice\n"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_per_address_are_counted_and_released_on_close() {
    let d = Door::spawn("max_connections_per_address = 2").await;
    let mut first = connect_from("127.0.0.1", &d).await;
    assert!(admitted(&mut first).await);
    let mut second = connect_from("127.0.0.1", &d).await;
    assert!(admitted(&mut second).await);
    let mut third = connect_from("127.0.0.1", &d).await;
    assert!(
        !admitted(&mut third).await,
        "a third connection was admitted"
    );
    // Another address has its own count.
    let mut other = connect_from("127.0.0.2", &d).await;
    assert!(admitted(&mut other).await);
    // Closing one gives its place back, and only one.
    drop(first);
    let _again = admitted_from("127.0.0.1", &d).await;
    let mut over = connect_from("127.0.0.1", &d).await;
    assert!(!admitted(&mut over).await, "over the cap after a release");
    drop(second);
    let _again = admitted_from("127.0.0.1", &d).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_that_never_logs_in_is_closed_after_auth_timeout() {
    let d = Door::spawn("auth_timeout = \"1s\"").await;
    // Says nothing at all.
    let mut silent = connect_from("127.0.0.1", &d).await;
    // Says its version, then stalls inside the key exchange.
    let mut stalled = connect_from("127.0.0.1", &d).await;
    stalled.write_all(b"SSH-2.0-stall\r\n").await.unwrap();
    // Finishes the key exchange and offers a key nobody registered, then stops.
    let mallory = tokio::spawn(russh_login(d.door.port, d.keys.path("mallory").into()));
    assert!(admitted(&mut silent).await);
    assert!(admitted(&mut stalled).await);
    closed_by_server(&mut silent).await;
    closed_by_server(&mut stalled).await;
    let (handle, logged_in) = mallory.await.unwrap();
    assert!(!logged_in);
    let deadline = Instant::now() + PATIENCE;
    while !handle.is_closed() {
        assert!(
            Instant::now() < deadline,
            "an unauthenticated session stayed open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_logged_in_connection_outlives_auth_timeout() {
    let d = Door::spawn("auth_timeout = \"1s\"").await;
    let waiting = d.ssh("alice", &["request", "shell", "--reason", "x"]);
    let approve = async {
        let id = d.pending_id("bob").await;
        // The point of the test is time passing beyond auth_timeout.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        d.app.approve("bob", &id).await
    };
    let (out, _) = tokio::join!(waiting, approve);
    assert_eq!(out.status, 0, "{out:?}");
    assert!(
        out.stdout.starts_with("ssh-ed25519-cert-v01@openssh.com "),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn channels_past_max_channels_per_connection_are_refused_until_one_closes() {
    let d = Door::spawn("max_channels_per_connection = 3").await;
    let (session, logged_in) = russh_login(d.door.port, d.keys.path("alice").into()).await;
    assert!(logged_in);
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(
            session
                .channel_open_session()
                .await
                .expect("within the cap"),
        );
    }
    let refused = session.channel_open_session().await;
    assert!(
        matches!(
            refused,
            Err(russh::Error::ChannelOpenFailure(
                ChannelOpenFailure::ResourceShortage
            ))
        ),
        "a fourth channel: {:?}",
        refused.map(|c| c.id())
    );
    // The first channels work; a command that ended frees its channel's place.
    let first = open.remove(0);
    assert_eq!(whoami(first).await, 0);
    open.push(session.channel_open_session().await.expect("place freed"));
    assert!(
        session.channel_open_session().await.is_err(),
        "over the cap"
    );
    // So does a channel the client closes.
    open.remove(0).close().await.unwrap();
    let fresh = session.channel_open_session().await.expect("place freed");
    assert_eq!(whoami(fresh).await, 0);
}

/// Runs `whoami` on `channel`; checks the output and returns the exit status.
async fn whoami(mut channel: russh::Channel<client::Msg>) -> u32 {
    channel.exec(true, "whoami").await.unwrap();
    let (mut stdout, mut status) = (Vec::new(), None);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, channel.wait()).await {
        match msg {
            ChannelMsg::Data { data } => stdout.extend_from_slice(&data),
            ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
            ChannelMsg::Close => break,
            _ => {}
        }
    }
    let stdout = String::from_utf8_lossy(&stdout);
    assert!(stdout.starts_with("user         alice\n"), "{stdout}");
    status.expect("an exit status")
}

/// A russh client that trusts any host key.
struct Client;

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// Connects to the front door on `port` and logs in as `ca` with the key at `key`;
/// returns the session and whether the login succeeded.
async fn russh_login(port: u16, key: std::path::PathBuf) -> (Handle<Client>, bool) {
    let config = Arc::new(client::Config::default());
    let mut handle = client::connect(config, ("127.0.0.1", port), Client)
        .await
        .expect("ssh handshake");
    let key = russh::keys::load_secret_key(key, None).expect("key file");
    let key = PrivateKeyWithHashAlg::new(Arc::new(key), None);
    let result = handle
        .authenticate_publickey("ca", key)
        .await
        .expect("authentication answered");
    (handle, result.success())
}
