//! Reading what a server answers: its body, bounded, its words, made fit to print, and
//! whether it answered TLS at all.

use anyhow::{Context, bail};

/// The largest answer read: a KRL of millions of serials, a page of 10,000 audit events.
pub(super) const MAX_ANSWER: usize = 64 * 1024 * 1024;

/// The most characters of a server's error code or message repeated to the user.
pub(super) const MAX_SAID: usize = 1000;

/// What a server says, fit to repeat on a terminal or in a journal: without control
/// characters (escape sequences, a line break that forges a line of our own), nor any
/// that hides or reorders text (a reason may not have them either), and bounded.
pub(super) fn printable(said: &str) -> String {
    said.chars()
        .filter(|&c| !crate::names::is_forbidden_char(c))
        .take(MAX_SAID)
        .collect()
}

/// The body of `resp`, refused beyond [`MAX_ANSWER`] bytes (an endless answer must not
/// take the memory of the host it runs on).
pub(super) async fn read_capped(mut resp: reqwest::Response) -> anyhow::Result<Vec<u8>> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.context("reading the response")? {
        if body.len() + chunk.len() > MAX_ANSWER {
            bail!(
                "the server's answer is larger than {} MiB: not read",
                MAX_ANSWER / (1024 * 1024)
            );
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Whether the TLS handshake failed because the server answered with something that is
/// not TLS at all (a plain-HTTP server answers the ClientHello with an HTTP 400).
pub(super) fn answered_without_tls(e: &reqwest::Error) -> bool {
    // `source()` of an `io::Error` skips the error it wraps, so those are unwrapped here
    // (the connector nests the rustls error in two of them).
    fn is_plain_text(mut c: &(dyn std::error::Error + 'static)) -> bool {
        loop {
            if let Some(tls) = c.downcast_ref::<rustls::Error>() {
                return matches!(
                    tls,
                    rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType)
                );
            }
            match c
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
            {
                Some(inner) => c = inner,
                None => return false,
            }
        }
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if is_plain_text(c) {
            return true;
        }
        cause = c.source();
    }
    false
}

/// Whether a failed call may pass if made again: never connected, or timed out; and for a
/// read (`read_only`: GET, HEAD), also a connection the server closed or reset before its
/// answer was complete — a server restarting (`request --wait` through a rolling
/// restart: found by an operator's trial, 2026-12-07). A write cut off so may have been
/// done: its callers decide (`post_once`).
pub(super) fn passes(e: &reqwest::Error, read_only: bool) -> bool {
    e.is_connect() || e.is_timeout() || (read_only && (e.is_request() || e.is_body()))
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    /// A server that takes each connection's request and hangs up without an answer, as
    /// one shutting down mid-request does.
    fn hanging_up() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut head = [0u8; 4096];
                let _ = conn.read(&mut head);
                let _ = conn.flush();
            }
        });
        url
    }

    #[test]
    fn a_read_cut_off_may_be_asked_again_and_a_write_is_not_guessed() {
        let url = hanging_up();
        let client = crate::cli::client::Client::anonymous(&url).unwrap();
        let read = client.get_text("/v1/requests/r-1").unwrap_err();
        assert!(
            read.downcast_ref::<super::super::Transient>().is_some(),
            "{read:#}"
        );
        let fetched = client.get_if_changed("/v1/krl", None).unwrap_err();
        assert!(
            fetched.downcast_ref::<super::super::Transient>().is_some(),
            "{fetched:#}"
        );
        let write = client
            .send_bytes(client.http.post(format!("{url}/v1/x")))
            .unwrap_err();
        assert!(
            write.downcast_ref::<super::super::Transient>().is_none(),
            "{write:#}"
        );
    }
}
