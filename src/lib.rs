//! countersign: an SSH certificate authority that signs short-lived OpenSSH user
//! certificates only after someone else approved, with separation of duties enforced.
//!
//! Layout, from the edge inwards:
//! - `main.rs` (binary): parses the command line and dispatches to [`cli`].
//! - [`cli`]: one file per command; client commands talk HTTP, operator commands on the CA
//!   host go through [`service::Local`] (`init` through [`service::Service`], `serve`
//!   through [`daemon`]).
//! - [`daemon`]: `countersign serve` put together: both front doors and the background
//!   work on one [`service`]; the one module that starts the front ends.
//! - [`api`]: axum router, bearer-token extractor, one file per resource, [`api::ApiError`].
//! - [`ssh`]: the SSH front door (russh): the user's key is their identity, the command
//!   line a countersign command; the same [`service`] operations as the API.
//! - [`service`]: the operations (create, approve, deny, cancel, revoke, disable and enable
//!   users, tokens, reload, reads), each one transaction: facts from [`store`], decision
//!   from [`policy::rules`], outcome plus its [`audit`] row, certificate from [`ca`]; the
//!   time from the [`clock`] it is given.
//! - [`policy`]: the validated policy and the pure separation-of-duties rules;
//!   [`policy::People`]: who is in which group for one decision (TOML and provider).
//! - [`oidc`]: countersign as OpenID Connect client of the company's identity provider
//!   (discovery, code exchange, ID token checks, refresh), used by [`service`].
//! - [`config`]: TOML -> [`config::Config`] (settings + [`policy::Policy`]).
//! - [`error_code`]: every public error code, in one list the docs are checked against.
//! - [`clock`]: the time the service goes by: the system clock, or a test clock.
//! - [`names`], [`pubkey`]: input parsed into types at the edge.
//! - [`render`]: the text a request or a user is shown as, shared by the CLI and SSH.
//! - [`store`]: SQLite (WAL, `synchronous=FULL`), migrations, rows and queries.
//! - [`state`]: the database, the CA key it belongs to and the high-water mark beside
//!   the key, opened as one whole (a lost or rolled-back half is refused).
//! - [`audit`]: the append-only, hash-chained audit log and its verification.
//! - [`ca`]: the CA key (a file, or held by an SSH agent) and the one function that signs
//!   certificates.
//! - [`host_key`]: the SSH front door's host key file, created once.
//! - [`krl`]: the OpenSSH KRL writer (and reader, to compare two); [`checkpoint`]: signed
//!   audit checkpoints.
//! - [`logging`]: the log's format (`[server] log_format`: text or JSON lines).
//! - [`metrics`]: the Prometheus metrics (`[metrics] listen`), counted after commit.
//! - [`net`]: client addresses as the abuse limits of both front doors count them.
//! - [`tls`]: rustls set-up for the server and the CLI client.
//! - `fuzzing` (hidden): the entry points of the cargo-fuzz targets in `fuzz/`.
//!
//! The front ends ([`cli`], [`api`], [`ssh`]) depend on the [`service`] and on neutral
//! modules ([`render`], [`net`], [`host_key`], [`error_code`]), never on each other.

pub mod api;
pub mod audit;
pub mod ca;
pub mod checkpoint;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod error_code;
#[doc(hidden)]
pub mod fuzzing;
pub mod host_key;
pub mod krl;
pub mod logging;
pub mod metrics;
pub mod names;
pub mod net;
pub mod notify;
pub mod oidc;
pub mod policy;
pub mod pubkey;
pub mod render;
pub mod service;
pub mod signoff;
pub mod ssh;
pub mod state;
pub mod store;
pub mod tls;

/// Lower-case hex of `bytes`, as `hex::encode` writes it, without building the string
/// a character at a time: audit hashes, token hashes and request versions are written
/// several times a flow, and that took ~2,200 instructions for 32 bytes (callgrind).
pub(crate) fn hex_lower(bytes: &[u8]) -> String {
    let mut out = vec![0u8; bytes.len() * 2];
    // Fails only for a buffer of another length than twice the input.
    let _ = hex::encode_to_slice(bytes, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_lower_is_hex_encode() {
        for bytes in [&[][..], &[0], &[0x0f, 0xa0, 0xff], &[0xde; 32], &[1; 33]] {
            assert_eq!(super::hex_lower(bytes), hex::encode(bytes));
        }
    }
}
