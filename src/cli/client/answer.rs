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
